"""What staff do to the cache: clear, warm, verify, pin, reconcile. API, admin and commands all call these."""

import logging
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from cache_app.models import Artifact, CacheEntry, Tier
from cache_app.services import fleet
from cache_app.services.errors import CacheFolderNotOwned, CacheStorageFault
from cache_app.services.eviction import disk_entry_remove, folder_quarantine, folder_remove
from cache_app.services.fetch import (
    COMPLETE_MARKER,
    cache_root,
    disk_copy_problems,
    disk_entry_record,
    shared_location,
)
from cache_app.services.housekeeping import ENTRY_NAME, cache_folder_sweep, cache_root_claim
from cache_app.services.memory import memory_tier
from cache_app.services.tiers import tier_for
from cache_app.services.tiers.base import TierError

logger = logging.getLogger(__name__)


@dataclass
class Cleared:
    artifact_id: int
    generation: int
    memory_dropped: int = 0
    disk_bytes_freed: int = 0
    shared_deleted: bool = False


def artifact_clear(*, artifact: Artifact, include_shared: bool = False) -> Cleared:
    """Drop this node's copies now and make every other node's copies stale (generation bump).

    In-flight predictions keep the object they hold; the origin is never touched.
    """
    Artifact.objects.filter(pk=artifact.pk).update(generation=F("generation") + 1, updated_at=timezone.now())
    artifact.refresh_from_db(fields=["generation"])
    result = _older_copies_drop(artifact, state=CacheEntry.State.EVICTED)

    if include_shared:
        location = shared_location(artifact)
        if location is not None:
            try:
                tier_for(location).delete(location)
                result.shared_deleted = True
            except TierError as error:
                logger.warning("could not delete the shared copy of artifact %s: %s", artifact.pk, error)
        CacheEntry.objects.filter(artifact=artifact, tier=Tier.SHARED).update(state=CacheEntry.State.EVICTED)

    logger.info("cleared artifact %s (now generation %s) on %s", artifact.pk, artifact.generation, settings.NODE_NAME)
    return result


def disk_copy_invalidate(*, artifact: Artifact, generation: int, reason: str) -> bool:
    """A disk copy of ``generation`` found corrupt or unloadable: every process and node drops it at once.

    The bump is conditional on ``generation``, so requests that found the same damage together cause one
    bump, not one each. Returns True if this call made it.
    """
    bumped = Artifact.objects.filter(pk=artifact.pk, generation=generation).update(
        generation=F("generation") + 1, updated_at=timezone.now()
    )
    logger.error("disk copy of artifact %s generation %s is damaged: %s", artifact.pk, generation, reason)
    if bumped:
        _older_copies_drop(Artifact.objects.get(pk=artifact.pk), state=CacheEntry.State.CORRUPT)
    return bool(bumped)


def _older_copies_drop(artifact: Artifact, *, state: str) -> Cleared:
    """Drop this node's copies older than ``artifact.generation`` and tell every process to do the same.

    Each folder goes under the in-use lock (a load in progress finishes first); a newer generation's folder
    or row, written meanwhile by a request that already saw the new generation, is left alone.
    """
    result = Cleared(artifact_id=artifact.pk, generation=artifact.generation)
    result.memory_dropped = memory_tier().discard_artifact(artifact.pk, before_generation=artifact.generation)
    for entry in CacheEntry.objects.filter(
        artifact=artifact, node=settings.NODE_NAME, tier=Tier.DISK, generation__lt=artifact.generation
    ).exclude(state=CacheEntry.State.EVICTED):
        result.disk_bytes_freed += entry.size_bytes
        disk_entry_remove(entry, wait=True)
        CacheEntry.objects.filter(pk=entry.pk, generation__lt=artifact.generation).update(state=state)
    for folder in cache_root().glob(f"{artifact.pk}-*"):
        match = ENTRY_NAME.match(folder.name)
        if match and int(match["generation"]) < artifact.generation:
            folder_remove(folder)
    fleet.invalidation_publish(artifact_id=artifact.pk, generation=artifact.generation)
    return result


def artifact_clear_all(*, include_shared: bool = False) -> list[Cleared]:
    return [artifact_clear(artifact=a, include_shared=include_shared) for a in Artifact.objects.order_by("pk")]


@dataclass
class Verified:
    artifact_id: int
    checked: bool
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def artifact_verify(*, artifact: Artifact) -> Verified:
    """Re-hash this node's disk copy against its manifest; a damaged copy is invalidated everywhere, so the
    next use on any process or node fetches a good one."""
    entry = CacheEntry.objects.filter(
        artifact=artifact, node=settings.NODE_NAME, tier=Tier.DISK, state=CacheEntry.State.READY
    ).first()
    if entry is None:
        return Verified(artifact_id=artifact.pk, checked=False)
    problems = disk_copy_problems(Path(entry.location))
    if problems:
        disk_copy_invalidate(artifact=artifact, generation=entry.generation, reason="; ".join(problems))
        artifact.refresh_from_db(fields=["generation"])  # as after a clear: the caller's object stays current
    else:
        entry.verified_at = timezone.now()
        entry.save(update_fields=["verified_at"])
    return Verified(artifact_id=artifact.pk, checked=True, problems=problems)


def artifact_pin(*, artifact: Artifact, pinned: bool) -> None:
    Artifact.objects.filter(pk=artifact.pk).update(pinned=pinned, updated_at=timezone.now())
    artifact.pinned = pinned


@dataclass
class Reconciled:
    temporaries_removed: int = 0
    lock_files_removed: int = 0
    rows_marked_evicted: int = 0
    folders_adopted: int = 0
    folders_removed: int = 0
    folders_quarantined: int = 0
    folders_not_ours: int = 0
    refused: str = ""  # why the cache folder was left untouched, if it was


@transaction.atomic
def cache_reconcile() -> Reconciled:
    """Make the database and this node's cache folder agree, after a restart or a crash. Never raises for
    what it finds on disk, so a server always starts.

    A folder that is not the cache's is refused whole (``refused`` says why); inside the cache's folder,
    temporaries of dead processes and unused lock files are swept, rows whose folder is gone are marked
    evicted, complete folders of the current generation without a row are adopted, stale or half-written
    entry folders nobody reads are removed, and a folder that cannot be understood is quarantined. Anything
    whose name the cache does not give is left alone.
    """
    result = Reconciled()
    try:
        root = cache_root_claim()
    except (CacheFolderNotOwned, CacheStorageFault) as error:
        logger.error("cache reconcile skipped: %s", error)
        result.refused = str(error)
        return result
    swept = cache_folder_sweep()
    result.temporaries_removed, result.lock_files_removed = swept.temporaries, swept.lock_files

    live = CacheEntry.objects.filter(
        node=settings.NODE_NAME, tier=Tier.DISK, state__in=[CacheEntry.State.READY, CacheEntry.State.FETCHING]
    ).select_related("artifact")
    for entry in live:
        folder = Path(entry.location)
        if not (folder / COMPLETE_MARKER).exists() or folder.name != entry.artifact.cache_key:
            entry.state = CacheEntry.State.EVICTED
            entry.save(update_fields=["state"])
            result.rows_marked_evicted += 1

    artifacts = {a.cache_key: a for a in Artifact.objects.all()}
    recorded = set(
        CacheEntry.objects.filter(node=settings.NODE_NAME, tier=Tier.DISK, state=CacheEntry.State.READY).values_list(
            "location", flat=True
        )
    )
    for folder in root.iterdir():
        if folder.name.startswith(".") or str(folder) in recorded:
            continue
        if not (ENTRY_NAME.match(folder.name) and folder.is_dir() and not folder.is_symlink()):
            logger.warning("cache reconcile leaves %s alone: the cache did not create it", folder)
            result.folders_not_ours += 1
            continue
        _entry_folder_reconcile(folder, artifacts.get(folder.name), result)
    return result


def _entry_folder_reconcile(folder: Path, artifact: Artifact | None, result: Reconciled) -> None:
    if artifact is None or not (folder / COMPLETE_MARKER).exists():
        # Stale (older generation, deleted artifact) or half-written: removed unless someone reads it now.
        if folder_remove(folder, wait=False):
            result.folders_removed += 1
        return
    try:
        disk_entry_record(artifact, folder, verified=False)
        result.folders_adopted += 1
    except (OSError, ValueError, KeyError, TypeError) as error:
        folder_quarantine(folder, reason=f"complete, but its manifest is unreadable ({error})")
        result.folders_quarantined += 1
