"""Reads of the cache's state: stats, metrics, hit rates. Pure reads: a caller that wants this process's
latest counts included flushes them first (``stats.counters().flush()``), as the views and commands do."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from cache_app.models import CacheEntry, FetchRecord, Tier, TierCounter
from cache_app.services import fleet
from cache_app.services.limits import limits_current
from cache_app.services.memory import memory_tier

MB = 1024 * 1024


def _current_entries():
    """Ready copies of the current generation: what a request could actually be served from."""
    return CacheEntry.objects.filter(state=CacheEntry.State.READY, generation=F("artifact__generation"))


def tier_counts(*, node: str | None = None, since=None) -> dict[str, dict]:
    rows = TierCounter.objects.all()
    if node:
        rows = rows.filter(node=node)
    if since:
        rows = rows.filter(bucket_start__gte=since)
    totals = {
        row["tier"]: row
        for row in rows.values("tier").annotate(
            hits=Sum("hits"),
            misses=Sum("misses"),
            errors=Sum("errors"),
            bytes_transferred=Sum("bytes_transferred"),
            fetch_seconds=Sum("fetch_seconds"),
        )
    }
    result = {}
    for tier in Tier.values:
        row = totals.get(tier, {})
        hits, misses = row.get("hits") or 0, row.get("misses") or 0
        result[tier] = {
            "hits": hits,
            "misses": misses,
            "errors": row.get("errors") or 0,
            "hit_rate": round(hits / (hits + misses), 4) if hits + misses else None,
            "bytes_transferred": row.get("bytes_transferred") or 0,
            "fetch_seconds": round(row.get("fetch_seconds") or 0.0, 3),
        }
    return result


def cache_stats() -> dict:
    node = settings.NODE_NAME
    # One row per (artifact, node, tier) is a constraint, so counting entries counts models.
    per_node = [
        {"node": row["node"], "total_models": row["models"], "total_size_mb": round((row["size"] or 0) / MB, 2)}
        for row in _current_entries()
        .filter(tier=Tier.DISK)
        .values("node")
        .annotate(models=Count("pk"), size=Sum("size_bytes"))
        .order_by("node")
    ]
    this_node = next((row for row in per_node if row["node"] == node), {"total_models": 0, "total_size_mb": 0.0})
    limits = limits_current()
    residents = memory_tier().snapshot()
    counts = tier_counts(node=node)
    shared = _current_entries().filter(tier=Tier.SHARED).aggregate(models=Count("pk"), size=Sum("size_bytes"))
    return {
        "total_models": this_node["total_models"],
        "total_size_mb": this_node["total_size_mb"],
        "cache_dir": str(settings.MODEL_CACHE_DIR),
        "node": node,
        "limits": {
            "disk_max_bytes": limits.disk_max_bytes,
            "memory_max_bytes": limits.memory_max_bytes,
            "memory_max_count": limits.memory_max_count,
        },
        "tiers": {
            "memory": {
                "models": len(residents),
                "size_mb": round(sum(r["size_bytes"] for r in residents) / MB, 2),
                "scope": "this worker process",
                **counts[Tier.MEMORY],
            },
            "disk": {
                "models": this_node["total_models"],
                "size_mb": this_node["total_size_mb"],
                "max_mb": round(limits.disk_max_bytes / MB, 2),
                **counts[Tier.DISK],
            },
            "shared": {
                "configured": bool(settings.MODEL_SHARED_URI),
                "uri": settings.MODEL_SHARED_URI,
                "models": shared["models"] or 0,
                "size_mb": round((shared["size"] or 0) / MB, 2),
                **counts[Tier.SHARED],
            },
            "origin": counts[Tier.ORIGIN],
        },
        "fleet": per_node,
        "redis": fleet.redis_status(),
    }


def cache_metrics(*, hours: int = 24) -> dict:
    """Hit rates per tier, bytes moved, egress avoided and fetch latency, for the API and the dashboard."""
    since = timezone.now() - timedelta(hours=hours)
    counts = tier_counts(since=since)
    fetches = FetchRecord.objects.filter(created_at__gte=since, error="")
    remote_bytes = fetches.aggregate(total=Sum("size_bytes"))["total"] or 0
    remote_fetches = fetches.count()
    # Every memory or disk hit is a download that did not happen; price it at the average remote fetch size.
    average_size = remote_bytes / remote_fetches if remote_fetches else 0
    cache_hits = counts[Tier.MEMORY]["hits"] + counts[Tier.DISK]["hits"]
    latencies = sorted(fetches.values_list("seconds", flat=True))
    return {
        "window_hours": hours,
        "tiers": counts,
        "remote_fetches": remote_fetches,
        "bytes_downloaded": remote_bytes,
        "egress_avoided_bytes": int(cache_hits * average_size),
        "fetch_latency_seconds": {
            "p50": _quantile(latencies, 0.5),
            "p95": _quantile(latencies, 0.95),
            "max": latencies[-1] if latencies else None,
        },
        "failed_fetches": FetchRecord.objects.filter(created_at__gte=since).filter(~Q(error="")).count(),
    }


def hit_rate_series(*, hours: int = 24) -> list[dict]:
    """Per-minute hits and misses per tier over the window, for the dashboard chart."""
    since = timezone.now() - timedelta(hours=hours)
    return list(
        TierCounter.objects.filter(bucket_start__gte=since)
        .values("bucket_start", "tier")
        .annotate(hits=Sum("hits"), misses=Sum("misses"))
        .order_by("bucket_start", "tier")
    )


def _quantile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))], 4)
