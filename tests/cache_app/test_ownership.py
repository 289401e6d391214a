"""The cache folder is owned: refused when it holds others' data, never emptied of what the cache did not
create, in-progress downloads kept, dead processes' leftovers and unused lock files swept while running."""

import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from cache_app.models import Tier
from cache_app.services import runtime
from cache_app.services.errors import CacheFolderNotOwned
from cache_app.services.fetch import artifact_fetch
from cache_app.services.housekeeping import OWNER_MARKER, cache_folder_sweep
from cache_app.services.maintenance import artifact_clear, cache_reconcile
from tests.cache_app.test_locks import LOCK_HOLDER
from tests.processes import REPO_ROOT, child_env


@pytest.fixture
def cache_dir(settings) -> Path:
    return Path(settings.MODEL_CACHE_DIR)


def test_a_folder_holding_other_data_is_refused_and_left_intact(make_artifact, cache_dir, settings):
    cache_dir.mkdir(parents=True)
    (cache_dir / "thesis.tex").write_text("years of work")
    (cache_dir / "photos").mkdir()
    artifact = make_artifact()

    with pytest.raises(CacheFolderNotOwned, match="thesis.tex"):
        artifact_fetch(artifact=artifact)
    result = cache_reconcile()
    assert "holds files the model cache did not create" in result.refused
    assert sorted(p.name for p in cache_dir.iterdir()) == ["photos", "thesis.tex"]


@pytest.mark.django_db(transaction=True)
def test_the_reconcile_command_in_a_real_process_refuses_without_failing(make_artifact, cache_dir, settings):
    """gunicorn runs it before it starts: an unowned folder must not keep the server down."""
    cache_dir.mkdir(parents=True)
    (cache_dir / "notes.txt").write_text("mine")
    done = subprocess.run(
        [sys.executable, "manage.py", "cache_reconcile"],
        cwd=REPO_ROOT, env=child_env(settings), capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "cache folder left untouched" in done.stderr and "notes.txt" in done.stderr
    assert (cache_dir / "notes.txt").read_text() == "mine"


def test_a_cache_folder_from_before_the_marker_is_adopted(make_artifact, cache_dir):
    artifact = make_artifact()
    artifact_fetch(artifact=artifact)
    (cache_dir / OWNER_MARKER).unlink()
    runtime.reset()
    assert artifact_fetch(artifact=artifact).tier == Tier.DISK
    assert (cache_dir / OWNER_MARKER).exists()


def test_reconcile_never_deletes_what_the_cache_did_not_name(make_artifact, cache_dir):
    artifact_fetch(artifact=make_artifact())
    (cache_dir / "README.txt").write_text("left by an operator")
    (cache_dir / "backup").mkdir()
    (cache_dir / "12-not-a-key").mkdir()
    result = cache_reconcile()
    assert result.folders_not_ours == 3 and result.folders_removed == 0
    assert (cache_dir / "README.txt").exists() and (cache_dir / "backup").is_dir() and (cache_dir / "12-not-a-key").is_dir()


def test_an_in_progress_download_is_kept_and_a_dead_ones_leftovers_swept(make_artifact, cache_dir):
    artifact = make_artifact()
    artifact_fetch(artifact=make_artifact())  # claims the folder
    key = artifact.cache_key
    in_progress = cache_dir / ".tmp" / f"{key}.0123.dir"
    in_progress.mkdir(parents=True)
    dead = cache_dir / ".tmp" / "1-feedface-g1.4567.archive"
    dead.write_bytes(b"half a download")
    # Another process fetching the key holds its lock, however old its temporaries look.
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(cache_dir / ".locks" / f"{key}.lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        swept = cache_reconcile()
        assert in_progress.is_dir() and not dead.exists()
        assert swept.temporaries_removed == 1
    finally:
        holder.communicate("\n", timeout=10)
    assert cache_folder_sweep().temporaries == 1 and not in_progress.exists()


def test_unused_lock_files_are_swept_and_held_ones_kept(make_artifact, cache_dir):
    artifact = make_artifact()
    artifact_fetch(artifact=artifact)
    old_key = artifact.cache_key
    artifact_clear(artifact=artifact)  # the old generation's lock files are now unused
    artifact_fetch(artifact=artifact)
    assert (cache_dir / ".locks" / f"{old_key}.lock").exists()
    assert cache_folder_sweep().lock_files >= 1
    assert not (cache_dir / ".locks" / f"{old_key}.lock").exists()
    assert (cache_dir / ".locks" / f"{artifact.cache_key}.lock").exists()  # its folder is here: kept
    assert artifact_fetch(artifact=artifact).tier == Tier.DISK


def test_leftovers_are_swept_while_running_not_only_at_start(make_artifact, cache_dir, settings):
    settings.MODEL_CACHE_SWEEP_SECONDS = 0.1
    artifact = make_artifact()
    artifact_fetch(artifact=artifact)
    runtime.start(serving=False)  # as a server process starts after its fork: the sweeper runs from now
    dead = cache_dir / ".tmp" / "7-0badc0de-g3.89ab.dir"
    dead.mkdir(parents=True)
    give_up = time.monotonic() + 10
    while dead.exists() and time.monotonic() < give_up:
        time.sleep(0.05)
    assert not dead.exists()
