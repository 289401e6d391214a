"""The disk tier stays under its byte limit: least recently used goes first; pinned and in-use entries stay."""

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cache_app.models import CacheEntry, CacheLimits, Tier
from cache_app.services import limits
from cache_app.services.eviction import CacheFull, disk_entry_in_use
from cache_app.services.fetch import artifact_fetch
from cache_app.services.maintenance import artifact_pin
from tests.processes import REPO_ROOT, child_env

# Another worker process of this node holding a disk entry while it loads it, until told to stop.
READER_PROCESS = """
import sys, django
django.setup()
from cache_app.services.eviction import disk_entry_in_use
with disk_entry_in_use(sys.argv[1]):
    print("reading", flush=True)
    sys.stdin.readline()
"""

MB = 1024 * 1024


@pytest.fixture
def disk_limit(db):
    def set_limit(max_bytes: int):
        row = limits.limits_current()
        CacheLimits.objects.filter(pk=row.pk).update(disk_max_bytes=max_bytes)
        limits.limits_reset()

    return set_limit


def room_for_two_and_a_download(third) -> int:
    """Two extracted copies fit; the third one's archive and extraction do not, so exactly one must go."""
    return 3 * third.unpacked_bytes + third.size_bytes - 1


def state(artifact) -> str:
    entry = CacheEntry.objects.filter(artifact=artifact, tier=Tier.DISK).first()
    return entry.state if entry else "absent"


def fetch_in_order(*artifacts):
    for artifact in artifacts:
        artifact_fetch(artifact=artifact)
        time.sleep(0.01)  # distinct last-access times


def test_least_recently_used_is_evicted_first(make_artifact, disk_limit):
    a, b, c = (make_artifact(size=MB) for _ in range(3))
    disk_limit(room_for_two_and_a_download(c))
    fetch_in_order(a, b)
    artifact_fetch(artifact=a)  # a is now more recent than b
    artifact_fetch(artifact=c)
    assert (state(a), state(b), state(c)) == ("ready", "evicted", "ready")
    assert not Path(CacheEntry.objects.get(artifact=b, tier=Tier.DISK).location).exists()


def test_pinned_entries_are_never_evicted(make_artifact, disk_limit):
    a, b, c = (make_artifact(size=MB) for _ in range(3))
    disk_limit(room_for_two_and_a_download(c))
    fetch_in_order(a, b)
    artifact_pin(artifact=a, pinned=True)
    artifact_fetch(artifact=c)
    assert (state(a), state(b), state(c)) == ("ready", "evicted", "ready")


def test_entries_in_use_are_never_evicted(make_artifact, disk_limit):
    a, b, c = (make_artifact(size=MB) for _ in range(3))
    disk_limit(room_for_two_and_a_download(c))
    fetch_in_order(a, b)
    location = CacheEntry.objects.get(artifact=a, tier=Tier.DISK).location
    with disk_entry_in_use(location):
        artifact_fetch(artifact=c)
    assert (state(a), state(b), state(c)) == ("ready", "evicted", "ready")


def test_an_entry_another_process_is_reading_is_never_evicted(make_artifact, disk_limit, settings):
    a, b, c = (make_artifact(size=MB) for _ in range(3))
    disk_limit(room_for_two_and_a_download(c))
    fetch_in_order(a, b)
    location = CacheEntry.objects.get(artifact=a, tier=Tier.DISK).location
    reader = subprocess.Popen(
        [sys.executable, "-c", READER_PROCESS, location],
        cwd=REPO_ROOT,
        env=child_env(settings),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "reading"
        artifact_fetch(artifact=c)
        assert (state(a), state(b), state(c)) == ("ready", "evicted", "ready")
        assert Path(location).is_dir()
    finally:
        reader.communicate("done\n", timeout=30)
    assert reader.returncode == 0


@pytest.mark.django_db(transaction=True)  # the clear runs on another thread, with its own connection
def test_a_clear_waits_for_a_load_in_progress(make_artifact):
    from django.db import connection

    from cache_app.services.maintenance import artifact_clear

    artifact = make_artifact(size=MB)
    fetched = artifact_fetch(artifact=artifact)
    files_seen = []

    def clear_later():
        time.sleep(0.2)
        try:
            artifact_clear(artifact=artifact)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        with disk_entry_in_use(str(fetched.path.parent)):
            clearing = pool.submit(clear_later)
            time.sleep(0.5)  # the clear has started by now, and must be waiting for this reader
            files_seen.append(sum(1 for _ in fetched.path.rglob("*")))
            assert not clearing.done()
        clearing.result(timeout=30)
    assert files_seen[0] > 0
    assert not fetched.path.exists()
    assert state(artifact) == "evicted"


def test_an_artifact_bigger_than_the_limit_is_refused_clearly(make_artifact, disk_limit):
    big = make_artifact(size=2 * MB)
    disk_limit(MB)
    with pytest.raises(CacheFull, match="more than the cache limit"):
        artifact_fetch(artifact=big)


def test_when_everything_else_is_pinned_the_refusal_says_so(make_artifact, disk_limit):
    a, b = (make_artifact(size=MB) for _ in range(2))
    disk_limit(a.unpacked_bytes + a.size_bytes + MB // 2)
    artifact_fetch(artifact=a)
    artifact_pin(artifact=a, pinned=True)
    with pytest.raises(CacheFull, match="pinned or in use"):
        artifact_fetch(artifact=b)
    assert state(a) == "ready"


def test_a_volume_short_of_space_is_refused_clearly(make_artifact, settings, monkeypatch):
    import shutil
    from collections import namedtuple

    artifact = make_artifact(size=MB)
    usage = namedtuple("usage", "total used free")
    # The one thing a test cannot make real: a full volume. Everything else runs as in production.
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10 * MB, 10 * MB - 100, 100))
    with pytest.raises(CacheFull, match="the cache volume has 100 bytes free"):
        artifact_fetch(artifact=artifact)
