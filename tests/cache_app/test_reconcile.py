"""Restarts and crashes lose nothing and serve nothing half-written."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cache_app.models import CacheEntry, Tier
from cache_app.services.eviction import TEMP_FOLDER
from cache_app.services.fetch import COMPLETE_MARKER, artifact_fetch, entry_dir
from cache_app.services.maintenance import cache_reconcile
from tests.cache_app.conftest import write_tree
from tests.cache_app.test_fetch import same_tree
from tests.processes import REPO_ROOT, child_env


def test_reconcile_marks_rows_whose_folder_is_gone(make_artifact):
    artifact = make_artifact()
    fetched = artifact_fetch(artifact=artifact)
    import shutil

    shutil.rmtree(fetched.path.parent)
    result = cache_reconcile()
    assert result.rows_marked_evicted == 1
    assert CacheEntry.objects.get(artifact=artifact, tier=Tier.DISK).state == CacheEntry.State.EVICTED
    assert artifact_fetch(artifact=artifact).tier == Tier.ORIGIN


def test_reconcile_adopts_complete_folders_and_removes_the_rest(make_artifact, settings):
    artifact = make_artifact()
    fetched = artifact_fetch(artifact=artifact)
    CacheEntry.objects.filter(artifact=artifact).delete()
    stray = Path(settings.MODEL_CACHE_DIR) / "999-deadbeef-g1"
    write_tree(stray, total_bytes=1000)
    leftover = Path(settings.MODEL_CACHE_DIR) / TEMP_FOLDER / "abc.archive"
    leftover.write_bytes(b"partial")

    result = cache_reconcile()
    assert (result.folders_adopted, result.folders_removed, result.temporaries_removed) == (1, 1, 1)
    assert not stray.exists() and not leftover.exists()
    entry = CacheEntry.objects.get(artifact=artifact, tier=Tier.DISK)
    assert entry.state == CacheEntry.State.READY and entry.location == str(fetched.path.parent)
    assert artifact_fetch(artifact=artifact).tier == Tier.DISK


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_process_killed_mid_extraction_leaves_nothing_half_written(make_artifact, settings, tmp_path):
    # Many files make extraction take long enough to be caught in the middle of it.
    artifact = make_artifact(size=1024, format="tar")  # its row, pointed below at a bigger archive
    source = tmp_path / "many"
    for index in range(1500):
        (source / f"d{index % 30}").mkdir(parents=True, exist_ok=True)
        (source / f"d{index % 30}" / f"f{index}.bin").write_bytes(os.urandom(16 * 1024))
    from cache_app.services import archives
    from cache_app.services.integrity import file_sha256

    archive = Path(settings.MODEL_ORIGIN_URI.removeprefix("file://")) / "many.tar"
    archives.archive_create(source_dir=source, dest_path=archive, format="tar")
    artifact.source_uri, artifact.sha256 = archive.as_uri(), file_sha256(archive)
    artifact.size_bytes = archive.stat().st_size
    artifact.save()

    child = subprocess.Popen(
        [sys.executable, "-m", "tests.cache_app.fetch_worker", str(artifact.pk), "1"],
        cwd=REPO_ROOT,
        # A killed holder's fleet lock (with REDIS_URL) lapses after one lease: keep it short here.
        env=child_env(settings, MODEL_FETCH_LOCK_LEASE_SECONDS="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    staging_root = Path(settings.MODEL_CACHE_DIR) / TEMP_FOLDER
    give_up = time.monotonic() + 120
    caught = False
    while time.monotonic() < give_up and child.poll() is None:
        staged = list(staging_root.glob("*.dir/model/d*/*.bin")) if staging_root.exists() else []
        if len(staged) > 50:
            child.send_signal(signal.SIGKILL)
            caught = True
            break
        time.sleep(0.002)
    child.wait()
    assert caught, "the child finished before it could be killed mid-extraction"
    assert not (entry_dir(artifact) / COMPLETE_MARKER).exists()

    result = cache_reconcile()
    assert result.temporaries_removed >= 1
    assert list(staging_root.iterdir()) == []
    assert not CacheEntry.objects.filter(artifact=artifact, state=CacheEntry.State.READY).exists()
    fetched = artifact_fetch(artifact=artifact)
    assert fetched.tier == Tier.ORIGIN and same_tree(fetched.path, source)
