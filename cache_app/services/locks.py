"""Single flight: one fetch per artifact per node, and per fleet when Redis is configured.

Three layers, taken in this order and released in reverse:
1. one leading thread per key in each process; the others wait on an event, so they wake together;
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
# Per key, while one thread of this process leads: set when it leaves, waking every follower at once.
_flights: dict[str, threading.Event] = {}

# How often a waiter looks at a lock held by another process or node, and at whether the work is done:
# waiters leave as soon as it is, without queueing through the lock one by one.
FILE_LOCK_POLL_SECONDS = 0.005
FLEET_LOCK_POLL_SECONDS = 0.02


class _Done(Exception):
    """Raised inside single_flight when a waiter sees the work done while it waits."""


@contextmanager
def single_flight(key: str, *, timeout: float, done: Callable[[], bool]) -> Iterator[bool]:
    """Yield True to the one caller that must do the work, False to those for whom ``done()`` came true.

    ``done`` is checked while waiting for this process's leader and for this node's file lock, and after
    taking them, so a waiter whose work another thread or process finished leaves at once.
    """
    deadline = time.monotonic() + timeout
    try:
        with ExitStack() as held:
            held.enter_context(_thread_flight(key, deadline=deadline, done=done))
            held.enter_context(_file_lock(key, deadline=deadline, done=done))
            if done():
                raise _Done
            # With this node's file lock held, nobody else here can do the work: the fleet lock only orders
            # this node behind another one fetching the same key.
            fleet_lock = _fleet_lock(key, deadline=deadline)
            if fleet_lock is not None:
                held.callback(_release_quietly, fleet_lock)
                held.enter_context(_renewed(fleet_lock))
            yield True
    except _Done:
        yield False


@contextmanager
def _thread_flight(key: str, *, deadline: float, done: Callable[[], bool]) -> Iterator[None]:
    """One thread of this process leads; the others wait for it to leave, then check ``done``."""
    while True:
        with _guard:
            flight = _flights.get(key)
            if flight is None:
                flight = _flights[key] = threading.Event()
                break
        if not flight.wait(max(0.0, deadline - time.monotonic())):
            raise FetchWaitTimeout(f"waited for another thread fetching {key} until the wait limit")
        if done():
            raise _Done
        # The leader failed: the next one to get here leads.
    try:
        yield
    finally:
        with _guard:
            del _flights[key]
        flight.set()


@contextmanager
def _file_lock(key: str, *, deadline: float, done: Callable[[], bool]) -> Iterator[None]:
    """One process of this node at a time; the OS frees it if the holder dies, so a killed worker never
    wedges the node."""
    lock_dir = Path(settings.MODEL_CACHE_DIR) / ".locks"
    lock_dir.mkdir(parents=True, exist_ok=True)
    file_lock = filelock.FileLock(lock_dir / f"{key}.lock")
    while True:
        try:
            file_lock.acquire(timeout=FILE_LOCK_POLL_SECONDS, poll_interval=FILE_LOCK_POLL_SECONDS)
            break
        except filelock.Timeout:
            if done():
                raise _Done from None
            if time.monotonic() >= deadline:
                raise FetchWaitTimeout(f"waited for another process fetching {key} until the wait limit") from None
    try:
        yield
    finally:
        file_lock.release()


def _fleet_lock(key: str, *, deadline: float):
    from cache_app.services import fleet

    client = fleet.redis_client()
    if client is None:
        return None
    import redis

    lock = client.lock(f"model-cache:fetch:{key}", timeout=settings.MODEL_FETCH_LOCK_LEASE_SECONDS)
    while True:
        try:
            if lock.acquire(blocking=False):
                return lock
        except redis.RedisError as error:
            fleet.redis_failed(error)
            return None
        if time.monotonic() >= deadline:
            raise FetchWaitTimeout(f"waited for another node fetching {key} until the wait limit")
        time.sleep(FLEET_LOCK_POLL_SECONDS)


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
        _flights.clear()
