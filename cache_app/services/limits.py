"""Runtime limits: one database row that staff edit in the admin, read by every node every few seconds."""

import threading
import time

from django.conf import settings

from cache_app.models import CacheLimits

# How stale a node's view of the limits may be: an admin change takes effect within this many seconds.
REFRESH_SECONDS = 5.0

_lock = threading.Lock()
_cached: tuple[float, CacheLimits] | None = None


def limits_current() -> CacheLimits:
    global _cached
    with _lock:
        if _cached and time.monotonic() - _cached[0] < REFRESH_SECONDS:
            return _cached[1]
    limits = CacheLimits.objects.order_by("pk").first() or CacheLimits.objects.create(
        disk_max_bytes=settings.MODEL_CACHE_MAX_BYTES,
        memory_max_bytes=settings.MODEL_MEMORY_MAX_BYTES,
        memory_max_count=settings.MODEL_MEMORY_MAX_COUNT,
        hit_rate_warning=settings.MODEL_CACHE_HIT_RATE_WARNING,
    )
    with _lock:
        _cached = (time.monotonic(), limits)
    return limits


def limits_reset() -> None:
    """Forget the cached row (after an edit on this node, and between tests)."""
    global _cached
    with _lock:
        _cached = None
