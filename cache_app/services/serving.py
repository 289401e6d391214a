"""The whole tiered lookup: memory, then ``artifact_fetch`` (disk, shared, origin), then the caller's loader.

A copy that sat on disk is checked against its manifest while the loader reads it (the two overlap: the
check releases the GIL, and both read the same pages). A copy whose bytes differ, or which the loader cannot
load, is never kept: it is invalidated on every process and node, fetched again and loaded from the fresh
copy, so the request still gets a correct answer. See docs/cache-integrity.md.
"""

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from cache_app.models import Artifact, Tier
from cache_app.services.errors import ArtifactUnavailable
from cache_app.services.eviction import CacheFull, disk_entry_in_use
from cache_app.services.fetch import COMPLETE_MARKER, Fetched, GenerationMoved, artifact_fetch, disk_copy_problems
from cache_app.services.limits import limits_current
from cache_app.services.maintenance import disk_copy_invalidate
from cache_app.services.memory import _Resident, memory_tier
from cache_app.services.stats import counters

logger = logging.getLogger(__name__)

# Builds the in-memory object from an extracted folder; returns it with its estimated size in bytes.
Loader = Callable[[Path], tuple[Any, int]]
EVICTED_WHILE_LOADING_RETRIES = 3


class ModelUnloadable(ArtifactUnavailable):
    """A freshly fetched, verified copy still fails to load: the published model itself is at fault."""

    code = "model_unloadable"


class _Damaged(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class Served:
    obj: Any
    tier: str  # memory, disk, shared or origin
    fetch_seconds: float = 0.0
    load_seconds: float = 0.0

    @property
    def from_cache(self) -> bool:
        """True when no remote download was needed (the seeds' ``from_cache``)."""
        return self.tier in (Tier.MEMORY, Tier.DISK)


# How artifacts become objects, said once by the app that knows what they hold (``predictions`` registers
# its predictor loader when it starts): the cache itself never learns what a model is.
_registered_loader: Loader | None = None


def loader_register(loader: Loader) -> None:
    global _registered_loader
    _registered_loader = loader


# What a warm-up can fail with, and how it found the artifact (``Served.tier``): said the same way by the
# admin, the API and the commands.
WARM_ERRORS = (ArtifactUnavailable, OSError)
WARM_SOURCES = {Tier.MEMORY: "already in memory", Tier.DISK: "already on disk"}


def artifact_warm(*, artifact: Artifact) -> Served:
    """Warm means the same on every surface (admin, API, commands, start-up): the artifact is fetched onto
    this node's disk, verified, and loaded into this process's memory with the registered loader, so the
    next request here is a memory hit and a model that cannot be served says so now, not on first use."""
    if _registered_loader is None:
        raise ImproperlyConfigured("no loader registered: call cache_app.services.serving.loader_register first")
    return artifact_serve(artifact=artifact, loader=_registered_loader)


def artifact_serve(*, artifact: Artifact, loader: Loader) -> Served:
    memory = memory_tier()
    resident = memory.get(artifact.cache_key)
    if resident is not None:
        _memory_hit(resident)
        return Served(obj=resident.obj, tier=Tier.MEMORY)

    with memory.load_lock(artifact.cache_key):
        resident = memory.get(artifact.cache_key)
        if resident is not None:
            _memory_hit(resident)
            return Served(obj=resident.obj, tier=Tier.MEMORY)
        counters().record(Tier.MEMORY, misses=1)
        began = time.monotonic()
        artifact, fetched, (obj, size_bytes) = _fetch_and_load(artifact, loader)
        load_seconds = time.monotonic() - began - fetched.seconds
        limits = limits_current()
        memory.put(
            artifact.cache_key,
            _Resident(
                obj=obj,
                size_bytes=size_bytes,
                artifact_id=artifact.pk,
                generation=artifact.generation,
                disk_entry_id=fetched.entry_id,
            ),
            max_bytes=limits.memory_max_bytes,
            max_count=limits.memory_max_count,
        )
        return Served(obj=obj, tier=fetched.tier, fetch_seconds=fetched.seconds, load_seconds=max(load_seconds, 0.0))


def _fetch_and_load(artifact: Artifact, loader: Loader) -> tuple[Artifact, Fetched, tuple[Any, int]]:
    """Fetch and load, going round again when the copy was removed under us (a clear or eviction between
    fetch and lock: then serve the generation the database now names) or found damaged (invalidated, then
    fetched afresh once)."""
    repaired = False
    for _ in range(EVICTED_WHILE_LOADING_RETRIES):
        try:
            fetched = artifact_fetch(artifact=artifact)
        except GenerationMoved:
            artifact = Artifact.objects.get(pk=artifact.pk)
            continue
        try:
            loaded = _load_checked(fetched, loader)
        except _Damaged as damaged:
            if fetched.tier != Tier.DISK or repaired:
                # The copy was verified as it was written: the model itself cannot be loaded here.
                raise ModelUnloadable(f"artifact {artifact.pk} cannot be loaded: {damaged.reason}") from damaged
            disk_copy_invalidate(artifact=artifact, generation=artifact.generation, reason=damaged.reason)
            repaired = True
            artifact = Artifact.objects.get(pk=artifact.pk)
            continue
        if loaded is None:
            artifact = Artifact.objects.get(pk=artifact.pk)
            continue
        return artifact, fetched, loaded
    raise CacheFull(
        f"the disk copy of artifact {artifact.pk} was evicted {EVICTED_WHILE_LOADING_RETRIES} times before "
        "it could be loaded: the disk cache is too small for the models in use"
    )


def _load_checked(fetched: Fetched, loader: Loader) -> tuple[Any, int] | None:
    """Load under the in-use lock; None if the folder went before the lock was taken. Raises ``_Damaged``
    when the files differ from the manifest or the loader fails on a copy whose files match."""
    folder = fetched.path.parent
    with disk_entry_in_use(str(folder)):
        if not (folder / COMPLETE_MARKER).exists():
            return None
        # Bytes fetched just now were hashed as they were written; a copy that sat on disk is checked.
        check = _Check(folder) if fetched.tier == Tier.DISK else None
        try:
            loaded, error = loader(fetched.path), None
        except Exception as load_error:  # noqa: BLE001 - judged below, with the check's result
            loaded, error = None, load_error
        problems = check.problems() if check is not None else []
    if problems:
        raise _Damaged("; ".join(problems))
    if isinstance(error, ArtifactUnavailable):
        raise error  # a deliberate refusal (wrong version, not a predictor) about intact files
    if error is not None:
        logger.warning("loading %s failed: %r", fetched.path, error)
        raise _Damaged(f"the loader failed: {type(error).__name__}: {error}") from error
    return loaded


class _Check:
    """The manifest check, run in a thread beside the load."""

    def __init__(self, folder: Path):
        self._problems: list[str] = []
        self._thread = threading.Thread(target=self._run, args=(folder,), name="disk-copy-check", daemon=True)
        self._thread.start()

    def _run(self, folder: Path) -> None:
        self._problems = disk_copy_problems(folder)

    def problems(self) -> list[str]:
        self._thread.join()
        return self._problems


def _memory_hit(resident: _Resident) -> None:
    counters().record(Tier.MEMORY, hits=1)
    if resident.disk_entry_id is not None:
        # The disk copy is what would be reloaded: keep it young in the LRU without a write per request.
        counters().touch(resident.disk_entry_id)
