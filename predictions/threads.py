"""How many OpenMP threads a prediction may use, set per call on the thread that predicts.

LightGBM (and XGBoost) spread every predict over an OpenMP team as large as the machine. For a few rows the
team costs more than the trees (on a busy 2-core machine a one-row LightGBM predict took 4 ms with two
threads, against well under 1 ms with one): a threaded server already runs one request per thread, so small
predictions use one thread.

A large one gets the cores that no other large prediction of the server holds at that moment (at least one):
alone it uses the whole machine, and N workers predicting at once share the cores instead of each starting a
team of all of them (N times oversubscribed, each team's threads spinning against the others). A static share
(cores / workers) would leave cores idle whenever the other workers are parsing or answering, which is most of
the time: a 1,000-row request spends far more under the GIL than in the trees. The cores held are counted in
shared memory made before gunicorn forks (``portal/gunicorn.conf.py`` imports this module in the master), one
slot per worker process, so a worker that dies mid-prediction is forgotten (``worker_forget``) and its cores
come back. ``PREDICT_THREADS_PER_WORKER`` > 0 fixes the team size instead.

OpenMP's thread count is per calling thread (an internal control variable of the thread), so setting it
here affects only the request that predicts, never a neighbour. Every OpenMP runtime in the process is set
(LightGBM links the system's libgomp, scikit-learn ships its own).
"""

import contextlib
import multiprocessing
import os
import sys
import threading

from django.conf import settings

# Up to this many rows a prediction runs on its thread alone. Tree ensembles (RF, XT) also spread one
# prediction over a thread pool they create per call: for a few rows the pool costs more than the trees (one
# row on the 1 GB ensemble of bench/: 64 ms with it, 24 ms without); from about a thousand rows it pays.
SEQUENTIAL_MAX_ROWS = 512
_lock = threading.Lock()
_runtimes: list = []
_seen_modules: tuple = ()
# Libraries that bring an OpenMP runtime in when they are first imported (by a model's load).
_OPENMP_USERS = ("lightgbm", "xgboost", "catboost", "sklearn")

# (pid, cores held) per process predicting with a team; zeroed slots are free. More workers than slots only
# means the extra ones count nothing and take the free cores as they find them.
MAX_WORKERS = 128
_held = multiprocessing.Array("q", 2 * MAX_WORKERS)


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@contextlib.contextmanager
def prediction_threads(*, rows: int):
    """For the duration of a prediction of ``rows`` rows, the calling thread's OpenMP team; yields its size.
    A small one also runs scikit-learn's tree ensembles on the calling thread, without their pool."""
    if rows <= SEQUENTIAL_MAX_ROWS:
        from joblib import parallel_config  # scikit-learn's parallelism; the setting is per thread

        openmp_threads_set(1)
        with parallel_config(backend="sequential"):
            yield 1
        return
    if settings.PREDICT_THREADS_PER_WORKER > 0:
        openmp_threads_set(settings.PREDICT_THREADS_PER_WORKER)
        yield settings.PREDICT_THREADS_PER_WORKER
        return
    count = _cores_take()
    try:
        openmp_threads_set(count)
        yield count
    finally:
        _cores_give_back(count)


def cores_held() -> int:
    """Cores held by large predictions of every process sharing the counter (this server's workers)."""
    with _held.get_lock():
        return sum(_held[2 * slot + 1] for slot in range(MAX_WORKERS))


def worker_forget(pid: int) -> None:
    """In the gunicorn master when a worker exits: whatever it held is free again."""
    with _held.get_lock():
        for slot in range(MAX_WORKERS):
            if _held[2 * slot] == pid:
                _held[2 * slot] = _held[2 * slot + 1] = 0


def _cores_take() -> int:
    pid = os.getpid()
    with _held.get_lock():
        count = max(1, cores() - sum(_held[2 * slot + 1] for slot in range(MAX_WORKERS)))
        slot = _slot(pid)
        if slot is not None:
            _held[2 * slot] = pid
            _held[2 * slot + 1] += count
    return count


def _cores_give_back(count: int) -> None:
    with _held.get_lock():
        slot = _slot(os.getpid())
        if slot is not None and _held[2 * slot] == os.getpid():
            _held[2 * slot + 1] = max(0, _held[2 * slot + 1] - count)


def _slot(pid: int) -> int | None:
    """This process's slot, or a free one; called with the counter's lock held."""
    free = None
    for slot in range(MAX_WORKERS):
        if _held[2 * slot] == pid:
            return slot
        if free is None and _held[2 * slot + 1] == 0:
            free = slot
    return free


def openmp_threads_set(count: int) -> None:
    for runtime in _openmp_runtimes():
        runtime.set_num_threads(count)


def _openmp_runtimes() -> list:
    global _runtimes, _seen_modules
    seen = tuple(name for name in _OPENMP_USERS if name in sys.modules)
    if seen != _seen_modules:
        from threadpoolctl import ThreadpoolController

        with _lock:
            _runtimes = ThreadpoolController().select(user_api="openmp").lib_controllers
            _seen_modules = seen
    return _runtimes
