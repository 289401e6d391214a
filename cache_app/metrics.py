"""Prometheus metrics of the cache.

Under gunicorn each worker is a process: with ``PROMETHEUS_MULTIPROC_DIR`` set (``make run`` sets it) the
client library writes per-process files that ``/metrics`` aggregates, so every worker's counts are seen.
"""

import os

from prometheus_client import REGISTRY as DEFAULT_REGISTRY
from prometheus_client import CollectorRegistry, Counter, generate_latest, multiprocess

_REQUESTS = Counter(
    "model_cache_requests_total", "Lookups per tier and outcome.", ["tier", "outcome"]
)
_BYTES = Counter("model_cache_bytes_total", "Bytes moved from a tier into the node.", ["tier"])


def record(tier: str, *, hits: int = 0, misses: int = 0, errors: int = 0, bytes_transferred: int = 0) -> None:
    for outcome, count in (("hit", hits), ("miss", misses), ("error", errors)):
        if count:
            _REQUESTS.labels(tier=tier, outcome=outcome).inc(count)
    if bytes_transferred:
        _BYTES.labels(tier=tier).inc(bytes_transferred)


def metrics_render() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(DEFAULT_REGISTRY)
