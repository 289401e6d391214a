"""How many OpenMP threads a prediction may use, set per call on the thread that predicts.

LightGBM (and XGBoost) spread every predict over an OpenMP team as large as the machine. For a few rows the
team costs more than the trees (on a busy 2-core machine a one-row LightGBM predict took 4 ms with two
threads, against well under 1 ms with one): a threaded server already runs one request per thread. For a
large batch the team pays, but N gunicorn workers each starting a team of all the cores oversubscribe them
N times; each worker's share is ``PREDICT_THREADS_PER_WORKER`` (by default the cores divided among the
workers, ``WEB_CONCURRENCY``).

OpenMP's thread count is per calling thread (an internal control variable of the thread), so setting it
here affects only the request that predicts, never a neighbour. Every OpenMP runtime in the process is set
(LightGBM links the system's libgomp, scikit-learn ships its own).
"""

import os
import sys
import threading

from django.conf import settings

# Up to this many rows a prediction runs on its thread alone (the same bound as ``loaders.predictor_threads``).
from predictions.loaders import SEQUENTIAL_MAX_ROWS

_lock = threading.Lock()
_runtimes: list = []
_seen_modules: tuple = ()
# Libraries that bring an OpenMP runtime in when they are first imported (by a model's load).
_OPENMP_USERS = ("lightgbm", "xgboost", "catboost", "sklearn")


def threads_per_worker() -> int:
    """This worker's share of the cores for one large prediction."""
    configured = settings.PREDICT_THREADS_PER_WORKER
    if configured > 0:
        return configured
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, settings.WEB_CONCURRENCY))


def prediction_threads_set(*, rows: int) -> int:
    """Set the calling thread's OpenMP team size for a prediction of ``rows`` rows; returns it."""
    count = 1 if rows <= SEQUENTIAL_MAX_ROWS else threads_per_worker()
    openmp_threads_set(count)
    return count


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
