"""Room on the disk tier: least recently used first, never pinned entries or entries being read."""

import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db.models import Sum

from cache_app.models import CacheEntry, Tier
from cache_app.services.errors import ArtifactUnavailable
from cache_app.services.limits import limits_current
from cache_app.services.locks import lock_file_acquire
from cache_app.services.stats import counters

logger = logging.getLogger(__name__)

# Kept free on the volume beyond what an artifact needs, so the cache never fills the disk to the brim.
VOLUME_HEADROOM_BYTES = 64 * 1024 * 1024


class CacheFull(ArtifactUnavailable):
    """The artifact cannot fit: bigger than the limit, everything else pinned or in use, or the volume is full."""

    code = "cache_full"


# Inside the cache folder, so renames into it are atomic and a restart sweeps what a crash left there.
TEMP_FOLDER = ".tmp"
# One lock file per entry folder; unused ones are swept (``locks.lock_file_sweep`` makes that safe).
IN_USE_FOLDER = ".in-use"
# Folders found damaged are moved here, never deleted outright: someone may want to look at them.
QUARANTINE_FOLDER = ".quarantine"


@contextmanager
def _entry_lock(location: str, *, exclusive: bool, wait: bool) -> Iterator[bool]:
    """An flock on the entry's lock file, shared by every thread and worker process of this node.

    Yields False, without waiting, when ``wait`` is off and another holder is in the way.
    """
    folder = Path(location)
    fd = lock_file_acquire(folder.parent / IN_USE_FOLDER / f"{folder.name}.lock", exclusive=exclusive, blocking=wait)
    if fd is None:
        yield False
        return
    try:
        yield True
    finally:
        os.close(fd)


@contextmanager
def disk_entry_in_use(location: str) -> Iterator[None]:
    """Marks a disk entry as being read (e.g. loaded into memory): eviction by any process skips it, a clear
    waits for it. The reader must still check the folder is whole once this is held: it may have gone
    between the fetch and the lock."""
    with _entry_lock(location, exclusive=False, wait=True):
        yield


def disk_used_bytes(*, node: str) -> int:
    used = CacheEntry.objects.filter(
        node=node, tier=Tier.DISK, state__in=[CacheEntry.State.READY, CacheEntry.State.FETCHING]
    ).aggregate(total=Sum("size_bytes"))["total"]
    return used or 0


def disk_make_room(*, needed_bytes: int, keep_artifact_id: int | None = None) -> list[CacheEntry]:
    """Evict until ``needed_bytes`` more fit under the byte limit; refuse clearly when they cannot."""
    node = settings.NODE_NAME
    limit = limits_current().disk_max_bytes
    if needed_bytes > limit:
        raise CacheFull(f"the model needs {needed_bytes} bytes on disk, more than the cache limit of {limit} bytes")

    evicted = []
    # Recent hits are buffered: write them first so the least recently used really is.
    counters().flush()
    used = disk_used_bytes(node=node)
    if used + needed_bytes > limit:
        # The (node, tier, state, last_accessed_at) index serves this query in LRU order.
        candidates = (
            CacheEntry.objects.filter(node=node, tier=Tier.DISK, state=CacheEntry.State.READY, artifact__pinned=False)
            .exclude(artifact_id=keep_artifact_id)
            .order_by("last_accessed_at")
        )
        for entry in candidates.iterator():
            if used + needed_bytes <= limit:
                break
            if not disk_entry_remove(entry, wait=False):
                continue  # being read
            used -= entry.size_bytes
            evicted.append(entry)
        if used + needed_bytes > limit:
            raise CacheFull(
                f"the model needs {needed_bytes} bytes but only {limit - used} of the {limit}-byte limit can be "
                "freed: the rest is pinned or in use"
            )

    free = shutil.disk_usage(_existing_parent(Path(settings.MODEL_CACHE_DIR))).free
    if free < needed_bytes + VOLUME_HEADROOM_BYTES:
        raise CacheFull(
            f"the cache volume has {free} bytes free; the model needs {needed_bytes} plus "
            f"{VOLUME_HEADROOM_BYTES} of headroom"
        )
    return evicted


def disk_entry_remove(entry: CacheEntry, *, wait: bool) -> bool:
    """Delete a disk copy once no process reads it; with ``wait`` off, give up at once (False) if one does.

    The row says evicted first, so nobody is sent to it; the folder is then renamed away in one step, so a
    reader finds it whole or absent, and deleted at leisure. A row another request has meanwhile pointed at
    a newer generation's folder is left alone: only the folder this row named when it was read goes.
    """
    with _entry_lock(entry.location, exclusive=True, wait=wait) as held:
        if not held:
            return False
        CacheEntry.objects.filter(pk=entry.pk, location=entry.location).update(state=CacheEntry.State.EVICTED)
        entry.state = CacheEntry.State.EVICTED
        _discard(Path(entry.location))
    logger.info("evicted %s (%s bytes) from %s", entry.location, entry.size_bytes, entry.node)
    return True


def folder_remove(folder: Path, *, wait: bool = True) -> bool:
    """Remove a cache folder once no process reads it (every removal goes through the in-use lock, so a
    load never sees its folder vanish); False if ``wait`` is off and it is in use."""
    with _entry_lock(str(folder), exclusive=True, wait=wait) as held:
        if held:
            _discard(folder)
        return held


def folder_quarantine(folder: Path, *, reason: str) -> Path | None:
    """Move a damaged cache folder aside, under the in-use lock, rather than serve or delete it."""
    target = folder.parent / QUARANTINE_FOLDER / f"{folder.name}.{uuid.uuid4().hex[:8]}"
    with _entry_lock(str(folder), exclusive=True, wait=True):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            folder.rename(target)
        except FileNotFoundError:
            return None
    logger.error("quarantined %s as %s: %s", folder, target, reason)
    return target


def _discard(folder: Path) -> None:
    """Renamed into the temporary folder in one step, then deleted: readers see it whole or not at all."""
    doomed = folder.parent / TEMP_FOLDER / f"{uuid.uuid4().hex}.discarded"
    doomed.parent.mkdir(parents=True, exist_ok=True)
    try:
        folder.rename(doomed)
    except FileNotFoundError:
        return
    shutil.rmtree(doomed, ignore_errors=True)


def _existing_parent(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path
