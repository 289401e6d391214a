"""The cache folder itself: who owns it, and sweeping what dead processes left in it.

The folder is owned: a marker at its root says the cache created it, and a non-empty folder without one is
refused, so ``MODEL_CACHE_DIR`` pointed at the wrong place never loses anyone's data. Inside an owned folder
the cache only ever removes what it names itself: temporaries, lock files and entry folders.

Temporaries are named after the cache key they belong to, and a fetch holds that key's lock file for as
long as it writes them: a temporary whose key is not locked belongs to a dead process and is swept; one
whose key is locked is a download in progress and is left alone, however old.
"""

import functools
import logging
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from cache_app.services.errors import CacheFolderNotOwned, CacheStorageFault
from cache_app.services.eviction import IN_USE_FOLDER, QUARANTINE_FOLDER, TEMP_FOLDER
from cache_app.services.locks import LOCKS_FOLDER, lock_file_held, lock_file_sweep

logger = logging.getLogger(__name__)

OWNER_MARKER = ".model-cache"
# An entry folder's name is its artifact's cache key: "<artifact id>-<sha256 prefix>-g<generation>".
ENTRY_NAME = re.compile(r"^(?P<artifact_id>\d+)-[0-9a-z]+-g(?P<generation>\d+)$")
_OWN_NAMES = {OWNER_MARKER, TEMP_FOLDER, LOCKS_FOLDER, IN_USE_FOLDER, QUARANTINE_FOLDER}

_claimed: set[str] = set()
_claim_lock = threading.Lock()


def cache_root() -> Path:
    return _root_path(settings.MODEL_CACHE_DIR)


# Every disk hit and every woken waiter asks for the root: building a Path costs more than the stat that follows.
@functools.lru_cache(maxsize=8)
def _root_path(configured: str | Path) -> Path:
    return Path(configured)


def made_by_cache(name: str) -> bool:
    return name in _OWN_NAMES or ENTRY_NAME.match(name) is not None


def cache_root_claim() -> Path:
    """The cache folder, created and marked as ours if new; ``CacheFolderNotOwned`` if it holds others' data.

    A folder without the marker whose every entry is one the cache names (a cache from before the marker) is
    adopted. Checked once per process and folder.
    """
    root = cache_root()
    if str(root) in _claimed:
        return root
    with _claim_lock:
        try:
            root.mkdir(parents=True, exist_ok=True)
            if not (root / OWNER_MARKER).exists():
                strangers = sorted(child.name for child in root.iterdir() if not made_by_cache(child.name))
                if strangers:
                    raise CacheFolderNotOwned(
                        f"MODEL_CACHE_DIR {root} holds files the model cache did not create "
                        f"({', '.join(strangers[:5])}{', ...' if len(strangers) > 5 else ''}) and has no "
                        f"{OWNER_MARKER} marker: the cache will not use it, so it never deletes them. Point "
                        "MODEL_CACHE_DIR at an empty or new folder."
                    )
                (root / OWNER_MARKER).write_text("This folder is the model cache's: it may delete what it created here.\n")
        except OSError as error:
            raise CacheStorageFault.from_os_error(error, doing=f"claiming the cache folder {root}") from error
        _claimed.add(str(root))
    return root


@dataclass
class Swept:
    temporaries: int = 0
    lock_files: int = 0


def cache_folder_sweep() -> Swept:
    """Remove temporaries of dead processes and lock files nobody holds. Safe while requests run."""
    root = cache_root()
    swept = Swept()
    present = {child.name for child in root.iterdir()} if root.is_dir() else set()
    temp_root = root / TEMP_FOLDER
    for leftover in _children(temp_root):
        # "<key>.<unique>.archive|dir": kept while a fetch of that key holds its lock; ".discarded" ones are
        # already on their way out, whoever is deleting them.
        key = leftover.name.split(".", 1)[0]
        if not leftover.name.endswith(".discarded") and lock_file_held(root / LOCKS_FOLDER / f"{key}.lock"):
            continue
        if leftover.is_dir() and not leftover.is_symlink():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        swept.temporaries += 1
    window = settings.MODEL_FETCH_FAILURE_MEMORY_SECONDS
    for folder in (LOCKS_FOLDER, IN_USE_FOLDER):
        for path in _children(root / folder):
            if path.suffix == ".failed":
                if time.time() - _mtime(path) > window:
                    path.unlink(missing_ok=True)
            elif path.stem not in present and lock_file_sweep(path):
                # Only locks of folders that are gone: those of present folders are in steady use.
                swept.lock_files += 1
    return swept


def _children(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except FileNotFoundError:
        return []


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return time.time()


# --- The periodic sweep: one daemon thread per process (threads do not survive fork, hence the pid) -------

_sweeper_guard = threading.Lock()
_sweeper_pid: int | None = None
_sweeper_stop = threading.Event()


def sweeper_start() -> None:
    """Start this process's sweeper if it is not running (``runtime.start``). Idempotent."""
    global _sweeper_pid, _sweeper_stop
    if _sweeper_pid == os.getpid():
        return
    with _sweeper_guard:
        if _sweeper_pid == os.getpid():
            return
        _sweeper_pid = os.getpid()
        _sweeper_stop = threading.Event()
        threading.Thread(
            target=_sweep_forever, args=(_sweeper_stop,), name="cache-folder-sweeper", daemon=True
        ).start()


def _sweep_forever(stop: threading.Event) -> None:
    while not stop.wait(settings.MODEL_CACHE_SWEEP_SECONDS):
        try:
            swept = cache_folder_sweep()
        except Exception:  # noqa: BLE001 - a failed sweep is retried next period; serving goes on
            logger.exception("sweeping the cache folder failed")
            continue
        if swept.temporaries or swept.lock_files:
            logger.info("swept %s temporaries and %s lock files", swept.temporaries, swept.lock_files)


def housekeeping_reset() -> None:
    global _sweeper_pid
    with _sweeper_guard:
        _sweeper_stop.set()
        _sweeper_pid = None
    _claimed.clear()
