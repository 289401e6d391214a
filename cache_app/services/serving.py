"""The whole tiered lookup: memory, then ``artifact_fetch`` (disk, shared, origin), then the caller's loader."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cache_app.models import Artifact, Tier
from cache_app.services.eviction import CacheFull, disk_entry_in_use
from cache_app.services.fetch import COMPLETE_MARKER, artifact_fetch
from cache_app.services.limits import limits_current
from cache_app.services.memory import _Resident, memory_tier
from cache_app.services.stats import counters

# Builds the in-memory object from an extracted folder; returns it with its estimated size in bytes.
Loader = Callable[[Path], tuple[Any, int]]
EVICTED_WHILE_LOADING_RETRIES = 3


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


def artifact_serve(*, artifact: Artifact, loader: Loader) -> Served:
    memory = memory_tier()
    key = artifact.cache_key
    resident = memory.get(key)
    if resident is not None:
        _memory_hit(resident)
        return Served(obj=resident.obj, tier=Tier.MEMORY)

    with memory.load_lock(key):
        resident = memory.get(key)
        if resident is not None:
            _memory_hit(resident)
            return Served(obj=resident.obj, tier=Tier.MEMORY)
        counters().record(Tier.MEMORY, misses=1)
        for _ in range(EVICTED_WHILE_LOADING_RETRIES):
            fetched = artifact_fetch(artifact=artifact)
            began = time.monotonic()
            with disk_entry_in_use(str(fetched.path.parent)):
                # Another process may have evicted or cleared the folder between the fetch and the lock.
                if (fetched.path.parent / COMPLETE_MARKER).exists():
                    obj, size_bytes = loader(fetched.path)
                    break
        else:
            raise CacheFull(
                f"the disk copy of artifact {artifact.pk} was evicted {EVICTED_WHILE_LOADING_RETRIES} times before "
                "it could be loaded: the disk cache is too small for the models in use"
            )
        load_seconds = time.monotonic() - began
        limits = limits_current()
        memory.put(
            key,
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
        return Served(obj=obj, tier=fetched.tier, fetch_seconds=fetched.seconds, load_seconds=load_seconds)


def _memory_hit(resident: _Resident) -> None:
    counters().record(Tier.MEMORY, hits=1)
    if resident.disk_entry_id is not None:
        # The disk copy is what would be reloaded: keep it young in the LRU without a write per request.
        counters().touch(resident.disk_entry_id)
