"""Single flight: one fetch per artifact per node, and per fleet when Redis is configured.

Three layers, taken in this order and released in reverse:
1. one leading thread per key in each process; the others wait on an event, set as soon as the leader has
   committed (``flight_landed``), so they wake together and leave without taking any lock;
2. an flock on a lock file in the cache folder, so worker processes of one node wait (the OS frees it if
   the holder dies, so a killed worker never wedges the node): the holder's is exclusive, the waiters ask
   for a shared one, granted to them all at once when the holder lands (it turns its lock shared) or leaves;
3. a Redis lock, so nodes queue and the origin sees one download. Its lease is short and renewed while
   the holder lives, so a node that dies mid-fetch frees the fleet within one lease, not one deadline.
   Redis down is not fatal: the node carries on with 1 and 2 and the failure is logged.
Waiters give up after ``timeout`` seconds with ``FetchWaitTimeout``.

A leader's failure is shared: it is remembered for ``MODEL_FETCH_FAILURE_MEMORY_SECONDS`` in this process
and in a file beside the lock file, and whoever was waiting for that leader (or asks meanwhile) gets the same
error instead of running the whole retry chain again: N callers cost one retry cycle.
"""

import errno
import fcntl
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from django.conf import settings

from cache_app.services.errors import ArtifactUnavailable, CacheStorageFault

logger = logging.getLogger(__name__)


class FetchWaitTimeout(ArtifactUnavailable):
    code = "model_fetch_busy"


class _Flight(threading.Event):
    """A key's flight in this process: set when its leader leaves, waking every follower at once. ``landed``
    says the leader saw the work done, so its followers leave without each looking again."""

    landed = False


_guard = threading.Lock()
# Per key, while one thread of this process leads.
_flights: dict[str, _Flight] = {}

# How often a waiter looks at a lock held by another node, and at whether the work is done: waiters leave
# as soon as it is, without queueing through the lock one by one. Within a node, waiters are woken by the
# holder; they only look again after this pause when a holder left without the work done.
FILE_LOCK_POLL_SECONDS = 0.005
FLEET_LOCK_POLL_SECONDS = 0.02
# A process waiting for another's fetch re-checks its wait limit (and the disk) at least this often.
SHARED_WAIT_SLICE_SECONDS = 0.1

# Per key, the descriptor of the file lock this process's leader holds (flight_landed shares it).
_file_locks: dict[str, int] = {}


# Per key: (when it failed, the error) for the last failed leader of this process.
_failures: dict[str, tuple[float, ArtifactUnavailable]] = {}

LOCKS_FOLDER = ".locks"


class SharedFailure(ArtifactUnavailable):
    """Another process's leader failed moments ago; its error, as it was told, without retrying it all."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.code = code


class _Done(Exception):
    """Raised inside single_flight when a waiter sees the work done while it waits."""


@contextmanager
def single_flight(key: str, *, timeout: float, done: Callable[[], bool]) -> Iterator[bool]:
    """Yield True to the one caller that must do the work, False to those for whom ``done()`` came true.

    ``done`` is checked while waiting for this process's leader and for this node's file lock, and after
    taking them, so a waiter whose work another thread or process finished leaves at once.
    """
    deadline = time.monotonic() + timeout
    _raise_recent_failure(key)
    try:
        with ExitStack() as held:
            held.enter_context(_thread_flight(key, deadline=deadline, done=done))
            held.enter_context(_file_lock(key, deadline=deadline, done=done))
            if done():
                raise _Done
            # A leader in another process failed while this one waited for the file lock.
            _raise_recent_failure(key)
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
                flight = _flights[key] = _Flight()
                break
        woken = not flight.is_set()
        if not flight.wait(max(0.0, deadline - time.monotonic())):
            raise FetchWaitTimeout(f"waited for another thread fetching {key} until the wait limit")
        # A follower that waited takes the leader's word; one that came after the landing (the work may have
        # gone again since, and it is back for that reason) looks for itself.
        if (woken and flight.landed) or done():
            raise _Done
        # The leader failed: its error is ours, unless it is old news (then the next one here leads).
        _raise_recent_failure(key)
        with _guard:
            landed_but_gone = _flights.get(key) is flight
        if landed_but_gone:
            # It landed, yet the work is not done (evicted at once): wait for the leader to leave, then lead.
            time.sleep(FILE_LOCK_POLL_SECONDS)
    try:
        yield
    except _Done:
        flight.landed = True
        raise
    finally:
        with _guard:
            del _flights[key]
        flight.set()


def flight_landed(key: str) -> None:
    """Called by the leader once the work is done and visible: every waiter of this node wakes now, together,
    and leaves (without each looking at the disk again) while the leader finishes what only it needs.

    This process's waiters wait on the flight's event; other processes' wait for a shared lock on the key's
    lock file, granted to all of them at once when the leader turns its exclusive lock into a shared one.
    Held shared, the lock still tells the sweep that the leader's temporaries are in use.
    """
    with _guard:
        flight = _flights.get(key)
        fd = _file_locks.get(key)
    if fd is not None:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except OSError as error:  # the other processes then wake when the leader leaves, as before
            logger.warning("could not share the lock of %s with its waiters: %s", key, error)
    if flight is not None:
        flight.landed = True
        flight.set()


@contextmanager
def _file_lock(key: str, *, deadline: float, done: Callable[[], bool]) -> Iterator[None]:
    """One process of this node at a time; the OS frees it if the holder dies, so a killed worker never
    wedges the node."""
    path = _key_paths(settings.MODEL_CACHE_DIR, key)[0]
    waiting: _SharedWait | None = None
    try:
        while (fd := lock_file_acquire(path, exclusive=True, blocking=False)) is None:
            if done():
                raise _Done
            if time.monotonic() >= deadline:
                raise FetchWaitTimeout(f"waited for another process fetching {key} until the wait limit")
            if waiting is None:
                waiting = _SharedWait(path)
            # Granted when the holder lands or leaves; the slice only bounds how late the wait limit is seen.
            if waiting.granted.wait(min(SHARED_WAIT_SLICE_SECONDS, max(0.0, deadline - time.monotonic()))):
                if done():
                    flight_landed(key)  # this process's followers wake now, not once this wait is unwound
                    raise _Done
                # The holder left without the work done (it failed): queue for the exclusive lock again.
                waiting.close()
                waiting = None
                time.sleep(FILE_LOCK_POLL_SECONDS)
    finally:
        if waiting is not None:
            waiting.close()
    with _guard:
        _file_locks[key] = fd
    try:
        yield
    finally:
        with _guard:
            _file_locks.pop(key, None)
        os.close(fd)  # closing the descriptor releases the flock


class _SharedWait:
    """A shared lock on a lock file, asked for in a thread (a blocking flock cannot time out): ``granted`` is
    set once it is held. ``close`` lets go, now or, if it is still being waited for, as soon as it comes."""

    def __init__(self, path: Path):
        self.granted = threading.Event()
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._closed = False
        threading.Thread(target=self._wait, args=(path,), name="fetch-lock-wait", daemon=True).start()

    def _wait(self, path: Path) -> None:
        try:
            fd = lock_file_acquire(path, exclusive=False, blocking=True)
        except CacheStorageFault:
            fd = None  # the waiter polls on until its limit, as without this thread
        with self._lock:
            if self._closed:
                if fd is not None:
                    os.close(fd)
                return
            self._fd = fd
        if fd is not None:
            self.granted.set()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def lock_file_acquire(path: Path, *, exclusive: bool, blocking: bool) -> int | None:
    """flock ``path`` (created if missing); return the descriptor holding it, or None if ``blocking`` is off
    and another holder is in the way. Close the descriptor to release.

    Lock files are swept once unused (``lock_file_sweep``). A process that opened a file just before it was
    swept would lock an unlinked inode while a newcomer locks a fresh file, and both would think they hold
    it: so the lock only counts if the path still names the inode we locked; otherwise try again.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = _lock_file_open(path)
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                return None
            except BaseException:
                os.close(fd)
                raise
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    return fd
            except FileNotFoundError:
                pass
            os.close(fd)
    except OSError as error:
        raise CacheStorageFault.from_os_error(error, doing=f"taking the lock {path.name}") from error


def _lock_file_open(path: Path) -> int:
    try:
        return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        # A cache folder made read-only still serves the copies it holds: flock works on a read-only
        # descriptor of a lock file that exists. Only what needs a new file fails.
        if error.errno in (errno.EROFS, errno.EACCES) and path.exists():
            return os.open(path, os.O_RDONLY)
        raise


def lock_file_sweep(path: Path) -> bool:
    """Delete a lock file nobody holds (True), or leave a held one alone (False)."""
    try:
        fd = lock_file_acquire(path, exclusive=True, blocking=False)
    except CacheStorageFault:
        return False
    if fd is None:
        return False
    try:
        # Unlinked while we hold it: anyone who opened it before sees the inode change and opens afresh.
        path.unlink(missing_ok=True)
        _failure_path(path.stem).unlink(missing_ok=True)
    finally:
        os.close(fd)
    return True


def lock_file_held(path: Path) -> bool:
    """True while some thread or process holds ``path`` (e.g. a fetch in progress owns its temporaries)."""
    try:
        fd = lock_file_acquire(path, exclusive=True, blocking=False)
    except CacheStorageFault:
        return True  # cannot tell: assume in use, so nothing is swept from under it
    if fd is None:
        return True
    os.close(fd)
    return False


# --- Shared failures ----------------------------------------------------------------------------------------


def fetch_failure_remember(key: str, error: ArtifactUnavailable) -> None:
    """Called by the leader when its fetch failed, while it still holds the locks."""
    with _guard:
        _failures[key] = (time.monotonic(), error)
    try:
        _failure_path(key).write_text(json.dumps({"at": time.time(), "code": error.code, "message": str(error)}))
    except OSError as error_writing:  # the other processes just retry on their own
        logger.warning("could not share the failure of %s with this node's processes: %s", key, error_writing)


def fetch_failure_forget(key: str) -> None:
    with _guard:
        _failures.pop(key, None)
    try:
        _failure_path(key).unlink(missing_ok=True)
    except OSError:
        pass


def _raise_recent_failure(key: str) -> None:
    window = settings.MODEL_FETCH_FAILURE_MEMORY_SECONDS
    with _guard:
        failure = _failures.get(key)
    if failure is not None and time.monotonic() - failure[0] < window:
        raise failure[1]
    try:
        shared = json.loads(_failure_path(key).read_text())
    except (OSError, ValueError):
        return
    if time.time() - shared["at"] < window:
        raise SharedFailure(shared["message"], code=shared["code"])


def _failure_path(key: str) -> Path:
    return _key_paths(settings.MODEL_CACHE_DIR, key)[1]


# Built once per key: every request that waits on a fetch asks for both, and the Paths cost more than the
# system calls made on them.
@functools.lru_cache(maxsize=1024)
def _key_paths(cache_dir: str | Path, key: str) -> tuple[Path, Path]:
    folder = Path(cache_dir) / LOCKS_FOLDER
    return folder / f"{key}.lock", folder / f"{key}.failed"


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
        _failures.clear()
