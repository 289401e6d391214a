"""Room on the disk tier: least recently used first, never pinned entries or entries being read."""

import logging
import shutil
import threading
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db.models import Sum

from cache_app.models import CacheEntry, Tier
from cache_app.services.errors import ArtifactUnavailable
from cache_app.services.limits import limits_current
from cache_app.services.stats import counters

logger = logging.getLogger(__name__)

# Kept free on the volume beyond what an artifact needs, so the cache never fills the disk to the brim.
VOLUME_HEADROOM_BYTES = 64 * 1024 * 1024


class CacheFull(ArtifactUnavailable):
    """The artifact cannot fit: bigger than the limit, everything else pinned or in use, or the volume is full."""

    code = "cache_full"


_in_use_lock = threading.Lock()
_in_use: Counter[str] = Counter()


@contextmanager
def disk_entry_in_use(location: str):
    """Marks a disk entry as being read (e.g. loaded into memory) so eviction leaves it alone meanwhile."""
    with _in_use_lock:
        _in_use[location] += 1
    try:
        yield
    finally:
        with _in_use_lock:
            _in_use[location] -= 1
            if _in_use[location] <= 0:
                del _in_use[location]


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
        with _in_use_lock:
            busy = set(_in_use)
        # The (node, tier, state, last_accessed_at) index serves this query in LRU order.
        candidates = (
            CacheEntry.objects.filter(node=node, tier=Tier.DISK, state=CacheEntry.State.READY, artifact__pinned=False)
            .exclude(artifact_id=keep_artifact_id)
            .order_by("last_accessed_at")
        )
        for entry in candidates.iterator():
            if used + needed_bytes <= limit:
                break
            if entry.location in busy:
                continue
            disk_entry_remove(entry)
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


def disk_entry_remove(entry: CacheEntry) -> None:
    """Delete a disk copy: the row first says evicted (so nobody is sent to it), then the folder goes."""
    entry.state = CacheEntry.State.EVICTED
    entry.save(update_fields=["state"])
    shutil.rmtree(entry.location, ignore_errors=True)
    logger.info("evicted %s (%s bytes) from %s", entry.location, entry.size_bytes, entry.node)


def _existing_parent(path: Path) -> Path:
    while not path.exists():
        path = path.parent
    return path
