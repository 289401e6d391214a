"""Per-tier counters, counted on the hot path without a database write per request.

Counts accumulate in a per-process buffer and are flushed as ``F()`` increments: at most once every
``FLUSH_SECONDS`` by whichever request comes by, before stats are read, and at process exit. A flush swaps
the buffer out under the lock first, so concurrent counting never loses or double-counts; a failed flush
merges its counts back for the next one.
"""

import atexit
import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from cache_app.models import CacheEntry, TierCounter

logger = logging.getLogger(__name__)

FLUSH_SECONDS = 5.0


@dataclass
class _Counts:
    hits: int = 0
    misses: int = 0
    errors: int = 0
    bytes_transferred: int = 0
    fetch_seconds: float = 0.0

    def add(self, other: "_Counts") -> None:
        self.hits += other.hits
        self.misses += other.misses
        self.errors += other.errors
        self.bytes_transferred += other.bytes_transferred
        self.fetch_seconds += other.fetch_seconds


@dataclass
class _Buffer:
    counts: dict[tuple[str, datetime], _Counts] = field(default_factory=lambda: defaultdict(_Counts))
    # Disk entries read through the memory tier: their LRU position must still move.
    touched: dict[int, tuple[datetime, int]] = field(default_factory=dict)


class CounterBuffer:
    def __init__(self):
        self._lock = threading.Lock()
        self._buffer = _Buffer()
        self._last_flush = time.monotonic()

    def record(self, tier: str, *, hits=0, misses=0, errors=0, bytes_transferred=0, fetch_seconds=0.0) -> None:
        bucket = timezone.now().replace(second=0, microsecond=0)
        with self._lock:
            self._buffer.counts[(tier, bucket)].add(
                _Counts(hits, misses, errors, bytes_transferred, fetch_seconds)
            )
        _prometheus_record(tier, hits=hits, misses=misses, errors=errors, bytes_transferred=bytes_transferred)
        self.flush_if_due()

    def touch(self, entry_id: int) -> None:
        now = timezone.now()
        with self._lock:
            _, hits = self._buffer.touched.get(entry_id, (now, 0))
            self._buffer.touched[entry_id] = (now, hits + 1)

    def flush_if_due(self) -> None:
        if time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            buffer, self._buffer = self._buffer, _Buffer()
            self._last_flush = time.monotonic()
        if not buffer.counts and not buffer.touched:
            return
        try:
            _write(buffer, node=settings.NODE_NAME)
        except Exception:
            logger.exception("counter flush failed; keeping the counts for the next flush")
            with self._lock:
                for key, counts in buffer.counts.items():
                    self._buffer.counts[key].add(counts)
                for entry_id, (at, hits) in buffer.touched.items():
                    _, pending = self._buffer.touched.get(entry_id, (at, 0))
                    self._buffer.touched[entry_id] = (at, hits + pending)

    def discard(self) -> None:
        with self._lock:
            self._buffer = _Buffer()


def _write(buffer: _Buffer, *, node: str) -> None:
    with transaction.atomic():
        for (tier, bucket), counts in buffer.counts.items():
            increments = {
                "hits": F("hits") + counts.hits,
                "misses": F("misses") + counts.misses,
                "errors": F("errors") + counts.errors,
                "bytes_transferred": F("bytes_transferred") + counts.bytes_transferred,
                "fetch_seconds": F("fetch_seconds") + counts.fetch_seconds,
            }
            bucket_rows = TierCounter.objects.filter(node=node, tier=tier, bucket_start=bucket)
            if bucket_rows.update(**increments):
                continue
            try:
                # Another process may create the same bucket between our update and create: then update.
                with transaction.atomic():
                    TierCounter.objects.create(
                        node=node,
                        tier=tier,
                        bucket_start=bucket,
                        hits=counts.hits,
                        misses=counts.misses,
                        errors=counts.errors,
                        bytes_transferred=counts.bytes_transferred,
                        fetch_seconds=counts.fetch_seconds,
                    )
            except IntegrityError:
                bucket_rows.update(**increments)
        for entry_id, (at, hits) in buffer.touched.items():
            CacheEntry.objects.filter(pk=entry_id).update(last_accessed_at=at, hit_count=F("hit_count") + hits)


_counters = CounterBuffer()


def counters() -> CounterBuffer:
    return _counters


def _flush_at_exit() -> None:
    try:
        _counters.flush()
    except Exception:  # the interpreter is going down; logging may already be gone
        pass


atexit.register(_flush_at_exit)


def _prometheus_record(tier: str, **counts: int) -> None:
    from cache_app import metrics

    metrics.record(tier, **counts)
