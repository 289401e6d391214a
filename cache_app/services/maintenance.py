"""What staff do to the cache: clear, warm, verify, pin, reconcile. API, admin and commands all call these."""

import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from cache_app.models import Artifact, CacheEntry, Tier
from cache_app.services import archives, fleet
from cache_app.services.eviction import TEMP_FOLDER, disk_entry_remove, folder_discard
from cache_app.services.fetch import (
    COMPLETE_MARKER,
    MANIFEST_NAME,
    MODEL_FOLDER,
    Fetched,
    artifact_fetch,
    cache_root,
    disk_entry_record,
    shared_location,
)
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
    result = Cleared(artifact_id=artifact.pk, generation=artifact.generation)
    result.memory_dropped = memory_tier().discard_artifact(artifact.pk)

    for entry in CacheEntry.objects.filter(
        artifact=artifact, node=settings.NODE_NAME, tier=Tier.DISK
    ).exclude(state=CacheEntry.State.EVICTED):
        result.disk_bytes_freed += entry.size_bytes
        disk_entry_remove(entry, wait=True)  # a load in progress elsewhere finishes first
    for folder in cache_root().glob(f"{artifact.pk}-*"):
        folder_discard(folder)

    if include_shared:
        location = shared_location(artifact)
        if location is not None:
            try:
                tier_for(location).delete(location)
                result.shared_deleted = True
            except TierError as error:
                logger.warning("could not delete the shared copy of artifact %s: %s", artifact.pk, error)
        CacheEntry.objects.filter(artifact=artifact, tier=Tier.SHARED).update(state=CacheEntry.State.EVICTED)

    fleet.invalidation_publish(artifact_id=artifact.pk, generation=artifact.generation)
    logger.info("cleared artifact %s (now generation %s) on %s", artifact.pk, artifact.generation, settings.NODE_NAME)
    return result


def artifact_clear_all(*, include_shared: bool = False) -> list[Cleared]:
    return [artifact_clear(artifact=a, include_shared=include_shared) for a in Artifact.objects.order_by("pk")]


def artifact_warm(*, artifact: Artifact) -> Fetched:
    """Bring the artifact onto this node's disk (and through to the shared tier if origin served it)."""
    return artifact_fetch(artifact=artifact)


@dataclass
class Verified:
    artifact_id: int
    checked: bool
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def artifact_verify(*, artifact: Artifact) -> Verified:
    """Re-hash this node's disk copy against its manifest; a corrupt copy is removed so the next use refetches."""
    entry = CacheEntry.objects.filter(
        artifact=artifact, node=settings.NODE_NAME, tier=Tier.DISK, state=CacheEntry.State.READY
    ).first()
    if entry is None:
        return Verified(artifact_id=artifact.pk, checked=False)
    folder = Path(entry.location)
    try:
        manifest = json.loads((folder / MANIFEST_NAME).read_text())
        problems = archives.manifest_verify(root=folder / MODEL_FOLDER, manifest=manifest)
    except (OSError, ValueError) as error:
        problems = [f"manifest unreadable: {error}"]
    if problems:
        logger.error("disk copy of artifact %s is corrupt: %s", artifact.pk, "; ".join(problems))
        entry.state = CacheEntry.State.CORRUPT
        entry.save(update_fields=["state"])
        folder_discard(folder)
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
    rows_marked_evicted: int = 0
    folders_adopted: int = 0
    folders_removed: int = 0


@transaction.atomic
def cache_reconcile() -> Reconciled:
    """Make the database and this node's cache folder agree, after a restart or a crash.

    Anything half-written (temporaries, folders without a completion marker) is deleted, rows whose folder
    is gone are marked evicted, and complete folders of the artifact's current generation without a row are
    adopted. Nothing half-written is ever served.
    """
    result = Reconciled()
    root = cache_root()
    temp_root = root / TEMP_FOLDER
    if temp_root.exists():
        for leftover in temp_root.iterdir():
            shutil.rmtree(leftover, ignore_errors=True) if leftover.is_dir() else leftover.unlink(missing_ok=True)
            result.temporaries_removed += 1

    live = CacheEntry.objects.filter(
        node=settings.NODE_NAME, tier=Tier.DISK, state__in=[CacheEntry.State.READY, CacheEntry.State.FETCHING]
    ).select_related("artifact")
    for entry in live:
        folder = Path(entry.location)
        if not (folder / COMPLETE_MARKER).exists() or folder.name != entry.artifact.cache_key:
            entry.state = CacheEntry.State.EVICTED
            entry.save(update_fields=["state"])
            result.rows_marked_evicted += 1

    if root.exists():
        artifacts = {a.cache_key: a for a in Artifact.objects.all()}
        recorded = set(
            CacheEntry.objects.filter(
                node=settings.NODE_NAME, tier=Tier.DISK, state=CacheEntry.State.READY
            ).values_list("location", flat=True)
        )
        for folder in root.iterdir():
            if folder.name.startswith(".") or not folder.is_dir() or str(folder) in recorded:
                continue
            artifact = artifacts.get(folder.name)
            if artifact is not None and (folder / COMPLETE_MARKER).exists():
                disk_entry_record(artifact, folder, verified=False)
                result.folders_adopted += 1
            else:
                shutil.rmtree(folder, ignore_errors=True)
                result.folders_removed += 1
    return result

