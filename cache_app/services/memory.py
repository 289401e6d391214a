"""The memory tier: loaded objects in this process, an LRU bounded by estimated bytes and by count.

What an object is, and how it is loaded, is the caller's business (``predictions`` passes a loader that
builds an AutoGluon predictor): this module only keeps them, keyed by ``Artifact.cache_key``, so a clear
(which changes the key) makes every process miss and reload on its next access.
"""

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any


@dataclass
class _Resident:
    obj: Any
    size_bytes: int
    artifact_id: int
    generation: int
    disk_entry_id: int | None


class MemoryTier:
    def __init__(self):
        self._lock = threading.Lock()
        self._residents: OrderedDict[str, _Resident] = OrderedDict()
        self._load_locks: dict[str, threading.Lock] = {}

    def get(self, key: str) -> _Resident | None:
        with self._lock:
            resident = self._residents.get(key)
            if resident is not None:
                self._residents.move_to_end(key)
            return resident

    def load_lock(self, key: str) -> threading.Lock:
        """Held while loading ``key``, so many threads asking for one cold object cause one load."""
        with self._lock:
            return self._load_locks.setdefault(key, threading.Lock())

    def put(self, key: str, resident: _Resident, *, max_bytes: int, max_count: int) -> list[str]:
        """Keep ``resident``; drop older generations of its artifact and then the least recently used.

        An object bigger than ``max_bytes`` is still served to the request that loaded it, just not kept.
        Returns the evicted keys.
        """
        with self._lock:
            same = [(k, r) for k, r in self._residents.items() if r.artifact_id == resident.artifact_id and k != key]
            evicted = [k for k, r in same if r.generation < resident.generation]
            for stale in evicted:
                del self._residents[stale]
            if resident.size_bytes > max_bytes or any(r.generation > resident.generation for _, r in same):
                # A request still holding an older generation is served, but never replaces a newer copy.
                return evicted
            self._residents[key] = resident
            self._residents.move_to_end(key)
            while len(self._residents) > max_count or self._bytes() > max_bytes:
                oldest, _ = self._residents.popitem(last=False)
                evicted.append(oldest)
            return evicted

    def discard_artifact(self, artifact_id: int, *, before_generation: int | None = None) -> int:
        """Drop an artifact's objects (only those older than ``before_generation``, when given)."""
        with self._lock:
            keys = [
                k
                for k, r in self._residents.items()
                if r.artifact_id == artifact_id and (before_generation is None or r.generation < before_generation)
            ]
            for key in keys:
                del self._residents[key]
            return len(keys)

    def clear(self) -> None:
        with self._lock:
            self._residents.clear()
            self._load_locks.clear()

    def _bytes(self) -> int:
        return sum(r.size_bytes for r in self._residents.values())

    def snapshot(self) -> list[dict]:
        with self._lock:
            return [
                {"key": k, "artifact_id": r.artifact_id, "size_bytes": r.size_bytes}
                for k, r in self._residents.items()
            ]


_memory = MemoryTier()


def memory_tier() -> MemoryTier:
    return _memory
