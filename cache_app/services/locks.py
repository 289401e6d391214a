"""Single flight: one fetch per artifact per node, and per fleet when Redis is configured.

Three layers, taken in this order and released in reverse:
1. a ``threading.Lock`` per key, so threads of one process queue without touching the disk;
2. a ``filelock.FileLock`` in the cache folder, so worker processes of one node queue (the OS frees it if
   the holder dies, so a killed worker never wedges the node);
3. a Redis lock, so nodes queue and the origin sees one download. Its lease is short and renewed while
   the holder lives, so a node that dies mid-fetch frees the fleet within one lease, not one deadline.
   Redis down is not fatal: the node carries on with 1 and 2 and the failure is logged.
Waiters give up after ``timeout`` seconds with ``FetchWaitTimeout``.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import filelock
from django.conf import settings

from cache_app.services.errors import ArtifactUnavailable

logger = logging.getLogger(__name__)


class FetchWaitTimeout(ArtifactUnavailable):
    code = "model_fetch_busy"


_guard = threading.Lock()
_thread_locks: dict[str, threading.Lock] = {}


def _thread_lock(key: str) -> threading.Lock:
    with _guard:
        return _thread_locks.setdefault(key, threading.Lock())


# How often a waiter looks at a lock held by another process or node. Waiters leave as soon as the work
# is done, so a short interval is what keeps 31 waiters from trailing a fetch by 31 polls.
FILE_LOCK_POLL_SECONDS = 0.005
FLEET_LOCK_POLL_SECONDS = 0.02


@contextmanager
def single_flight(key: str, *, timeout: float, done: Callable[[], bool]) -> Iterator[bool]:
    """Yield True to the one caller that must do the work, False to those for whom ``done()`` came true.

    ``done`` is checked after each layer is taken, so a waiter whose work another thread, process or node
    finished leaves at once, without queueing through the layers behind it.
    """
    deadline = time.monotonic() + timeout
    with ExitStack() as held:
        thread_lock = _thread_lock(key)
        if not thread_lock.acquire(timeout=timeout):
            raise FetchWaitTimeout(f"waited {timeout:.0f}s for another thread fetching {key}")
        held.callback(thread_lock.release)
        if done():
            yield False
            return

        lock_dir = Path(settings.MODEL_CACHE_DIR) / ".locks"
        lock_dir.mkdir(parents=True, exist_ok=True)
        file_lock = filelock.FileLock(lock_dir / f"{key}.lock")
        try:
            file_lock.acquire(timeout=max(0.0, deadline - time.monotonic()), poll_interval=FILE_LOCK_POLL_SECONDS)
        except filelock.Timeout as error:
            raise FetchWaitTimeout(f"waited {timeout:.0f}s for another process fetching {key}") from error
        held.callback(file_lock.release)
        if done():
            yield False
            return

        fleet_lock = _fleet_lock(key, wait=max(0.0, deadline - time.monotonic()))
        if fleet_lock is not None:
            held.callback(_release_quietly, fleet_lock)
            held.enter_context(_renewed(fleet_lock))
        yield not done()


def _fleet_lock(key: str, *, wait: float):
    from cache_app.services import fleet

    client = fleet.redis_client()
    if client is None:
        return None
    import redis

    lock = client.lock(
        f"model-cache:fetch:{key}",
        timeout=settings.MODEL_FETCH_LOCK_LEASE_SECONDS,
        blocking_timeout=wait,
        sleep=FLEET_LOCK_POLL_SECONDS,
    )
    try:
        acquired = lock.acquire()
    except redis.RedisError as error:
        fleet.redis_failed(error)
        return None
    if not acquired:
        raise FetchWaitTimeout(f"waited {wait:.0f}s for another node fetching {key}")
    return lock


@contextmanager
def _renewed(lock):
    """Keep extending the lease while the fetch runs; stop (and let it lapse) if Redis goes away."""
    import redis

    lease = settings.MODEL_FETCH_LOCK_LEASE_SECONDS
    stop = threading.Event()

    def renew() -> None:
        while not stop.wait(lease / 3):
            try:
                lock.extend(lease, replace_ttl=True)
            except redis.RedisError as error:
                logger.warning("could not renew the fleet lock: %s", error)
                return

    renewer = threading.Thread(target=renew, name="fleet-lock-renewer", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()


def _release_quietly(lock) -> None:
    import redis

    try:
        lock.release()
    except redis.RedisError as error:  # expired lease or Redis gone: the lock is free either way
        logger.warning("releasing fleet lock failed: %s", error)


def locks_reset() -> None:
    with _guard:
        _thread_locks.clear()
