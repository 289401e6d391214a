"""single_flight's own rules: one leader, waiters that leave once the work is done, a failed leader handing
over, and a wait limit at each layer."""

import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from cache_app.services import locks
from cache_app.services.locks import FetchWaitTimeout, single_flight
from tests.processes import in_threads

# Another process of this node holding the artifact's file lock until told to let go.
LOCK_HOLDER = """
import sys, filelock
lock = filelock.FileLock(sys.argv[1])
lock.acquire()
print("held", flush=True)
sys.stdin.readline()
"""


@pytest.fixture
def cache_dir(settings, tmp_path):
    settings.MODEL_CACHE_DIR = str(tmp_path / "cache")
    settings.REDIS_URL = ""  # these are the node's own layers; the fleet layer is tested with real nodes
    return Path(settings.MODEL_CACHE_DIR)


@pytest.fixture
def holder(cache_dir):
    """Start a process holding the file lock of a key; yields a function to start it."""
    started = []

    def hold(key: str) -> subprocess.Popen:
        (cache_dir / ".locks").mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(cache_dir / ".locks" / f"{key}.lock")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout.readline().strip() == "held"
        return process

    yield hold
    for process in started:
        process.communicate("\n", timeout=10)


def test_one_thread_leads_and_the_others_leave_when_it_is_done(cache_dir):
    finished = threading.Event()
    leaders = []

    def fetch():
        with single_flight("k1", timeout=30, done=finished.is_set) as must_fetch:
            if must_fetch:
                leaders.append(threading.get_ident())
                time.sleep(0.3)  # the others arrive meanwhile
                finished.set()
            return must_fetch

    results = in_threads(16, fetch)
    assert results.count(True) == 1 and len(leaders) == 1


def test_a_failed_leader_hands_over_to_a_waiter(cache_dir):
    finished = threading.Event()
    attempts = []

    def fetch():
        with single_flight("k2", timeout=30, done=finished.is_set) as must_fetch:
            if not must_fetch:
                return "waited"
            attempts.append(1)
            if len(attempts) == 1:
                time.sleep(0.2)
                raise RuntimeError("origin down")
            finished.set()
            return "fetched"

    def guarded():
        try:
            return fetch()
        except RuntimeError:
            return "failed"

    results = in_threads(8, guarded)
    assert Counter(results) == {"failed": 1, "fetched": 1, "waited": 6}
    assert len(attempts) == 2


def test_a_thread_waiter_gives_up_at_the_wait_limit(cache_dir):
    inside = threading.Event()
    release = threading.Event()

    def lead():
        with single_flight("k3", timeout=30, done=lambda: False):
            inside.set()
            release.wait(30)

    leader = threading.Thread(target=lead)
    leader.start()
    try:
        assert inside.wait(10)
        with pytest.raises(FetchWaitTimeout, match="another thread"):
            with single_flight("k3", timeout=0.3, done=lambda: False):
                pass
    finally:
        release.set()
        leader.join()


def test_a_process_waiter_gives_up_at_the_wait_limit(holder):
    holder("k4")
    with pytest.raises(FetchWaitTimeout, match="another process"):
        with single_flight("k4", timeout=0.3, done=lambda: False):
            pass


def test_a_process_waiter_leaves_as_soon_as_the_work_is_done(holder):
    holder("k5")
    done_after = time.monotonic() + 0.2
    # The other process never lets go: leaving without the lock is the only way out before the limit.
    with single_flight("k5", timeout=30, done=lambda: time.monotonic() > done_after) as must_fetch:
        assert must_fetch is False


def test_waiters_wake_together_when_the_leader_lands_not_when_it_leaves(cache_dir):
    from cache_app.services.locks import flight_landed

    finished = threading.Event()
    followers_inside = threading.Semaphore(0)
    followers_left = []
    leader_left = threading.Event()

    def lead():
        with single_flight("k6", timeout=30, done=finished.is_set) as must_fetch:
            assert must_fetch
            for _ in range(7):  # every follower is waiting before the work lands
                assert followers_inside.acquire(timeout=10)
            time.sleep(0.1)  # and has reached its wait
            finished.set()
            flight_landed("k6")
            # The leader's own bookkeeping (records, write-through) runs on: the followers must not wait for it.
            deadline = time.monotonic() + 10
            while len(followers_left) < 7 and time.monotonic() < deadline:
                time.sleep(0.01)
        leader_left.set()

    def follow():
        followers_inside.release()
        with single_flight("k6", timeout=30, done=finished.is_set) as must_fetch:
            followers_left.append((must_fetch, leader_left.is_set()))

    leader = threading.Thread(target=lead)
    leader.start()
    time.sleep(0.1)  # the leader holds the flight first
    in_threads(7, follow)
    leader.join()
    assert followers_left == [(False, False)] * 7


# Another process leading a key: holds its lock exclusively, then lands (marks the work done and turns its
# lock shared, as flight_landed does) and keeps holding it until told to leave.
LANDING_HOLDER = """
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.readline()
open(sys.argv[2], "w").close()
fcntl.flock(fd, fcntl.LOCK_SH)
print("landed", flush=True)
sys.stdin.readline()
"""


def _landing_holder(cache_dir: Path, key: str, marker: Path) -> subprocess.Popen:
    """Start LANDING_HOLDER on ``key``'s lock file, once it holds the lock; it writes ``marker`` as it lands."""
    (cache_dir / ".locks").mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", LANDING_HOLDER, str(cache_dir / ".locks" / f"{key}.lock"), str(marker)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder


def _land(holder: subprocess.Popen) -> None:
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.stdout.readline().strip() == "landed"


def test_process_waiters_wake_together_when_the_holder_lands_before_it_leaves(cache_dir):
    marker = cache_dir / "done"
    holder = _landing_holder(cache_dir, "k7", marker)
    try:
        # Waiters that see the work done only after the holder landed (the limit would end a missed wake-up).
        results = []

        def wait():
            with single_flight("k7", timeout=30, done=marker.exists) as must_fetch:
                results.append(must_fetch)

        waiters = [threading.Thread(target=wait) for _ in range(4)]
        for waiter in waiters:
            waiter.start()
        _land(holder)
        for waiter in waiters:
            waiter.join(30)
        assert results == [False] * 4
        assert holder.poll() is None  # the holder still holds its (shared) lock: nobody waited for it to leave
    finally:
        holder.communicate("\n", timeout=10)


def test_followers_of_a_leader_that_landed_leave_without_looking_again(cache_dir):
    from cache_app.services.locks import flight_landed

    finished = threading.Event()
    followers_inside = threading.Semaphore(0)
    looks = []

    def look() -> bool:
        looks.append(threading.get_ident())
        return finished.is_set()

    def lead():
        with single_flight("k8", timeout=30, done=finished.is_set) as must_fetch:
            assert must_fetch
            for _ in range(7):
                assert followers_inside.acquire(timeout=10)
            time.sleep(0.1)  # every follower has reached its wait
            finished.set()
            flight_landed("k8")
            time.sleep(0.1)  # still leading while they leave: none of them can become a leader that looks

    def follow():
        followers_inside.release()
        with single_flight("k8", timeout=30, done=look) as must_fetch:
            return must_fetch

    leader = threading.Thread(target=lead)
    leader.start()
    time.sleep(0.1)
    assert in_threads(7, follow) == [False] * 7
    leader.join()
    assert looks == []


def _until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_followers_of_a_waiter_that_saw_the_work_done_leave_without_looking_again(cache_dir):
    marker = cache_dir / "done"
    holder = _landing_holder(cache_dir, "k9", marker)
    looks = []
    results = []

    def look() -> bool:
        looks.append(threading.get_ident())
        return marker.exists()

    def wait(done):
        with single_flight("k9", timeout=30, done=done) as must_fetch:
            results.append(must_fetch)

    try:
        # This process's leader waits for the other process's lock; three followers wait for it.
        waiters = [threading.Thread(target=wait, args=(marker.exists,))]
        waiters[0].start()
        _until(lambda: "k9" in locks._flights)  # it leads this process's flight
        waiters += [threading.Thread(target=wait, args=(look,)) for _ in range(3)]
        for waiter in waiters[1:]:
            waiter.start()
        time.sleep(0.1)
        _land(holder)
        for waiter in waiters:
            waiter.join(30)
        assert results == [False] * 4
        assert looks == []
    finally:
        holder.communicate("\n", timeout=10)


def test_a_thread_that_comes_after_the_landing_looks_for_itself(cache_dir):
    from cache_app.services.locks import flight_landed

    landed = threading.Event()
    release = threading.Event()

    def lead():
        with single_flight("k10", timeout=30, done=lambda: False) as must_fetch:
            assert must_fetch
            flight_landed("k10")  # landed, yet the work is gone again at once (evicted meanwhile)
            landed.set()
            release.wait(30)  # the leader's own bookkeeping runs on

    leader = threading.Thread(target=lead)
    leader.start()
    try:
        assert landed.wait(10)
        threading.Timer(0.3, release.set).start()
        # Not told the work is done on the leader's word: it waits for the leader to leave, then leads.
        with single_flight("k10", timeout=30, done=lambda: False) as must_fetch:
            assert must_fetch
    finally:
        release.set()
        leader.join()
