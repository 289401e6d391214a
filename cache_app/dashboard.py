"""Read-only views of the cache shaped for the staff dashboard (charts, top lists, the hit-rate warning).

Built on ``cache_app.selectors``; nothing here writes.
"""

from datetime import timedelta

from django.db.models import F, Q, Sum
from django.utils import timezone

from cache_app import selectors
from cache_app.models import Artifact, CacheEntry, FetchRecord, Tier
from cache_app.services.limits import limits_current

MB = 1024 * 1024
TOP = 10
RECENT_FETCHES = 20


def overall_hit_rate(tiers: dict[str, dict]) -> float | None:
    """The share of lookups answered without a download: (memory hits + disk hits) / lookups.

    Every lookup ends in exactly one of: a memory hit, a disk hit, or a disk miss (which goes remote).
    Warm-ups skip memory, so counting disk misses rather than memory misses keeps them in.
    """
    cached = tiers[Tier.MEMORY]["hits"] + tiers[Tier.DISK]["hits"]
    lookups = cached + tiers[Tier.DISK]["misses"]
    return round(cached / lookups, 4) if lookups else None


def hit_rate_chart(*, hours: int) -> dict:
    """Minute labels and, per tier, the hit rate in percent in each minute (None where it saw no lookup)."""
    rows = selectors.hit_rate_series(hours=hours)
    minutes = sorted({row["bucket_start"] for row in rows})
    by_key = {(row["bucket_start"], row["tier"]): row for row in rows}
    datasets = []
    for tier in (Tier.MEMORY, Tier.DISK, Tier.SHARED, Tier.ORIGIN):
        points = []
        for minute in minutes:
            row = by_key.get((minute, tier))
            total = (row["hits"] + row["misses"]) if row else 0
            points.append(round(100 * row["hits"] / total, 1) if total else None)
        if any(p is not None for p in points):
            datasets.append({"tier": tier, "points": points})
    return {
        "labels": [timezone.localtime(m).strftime("%m-%d %H:%M") for m in minutes],
        "datasets": datasets,
    }


def disk_chart(stats: dict) -> dict:
    """Disk use per node against the (fleet-wide) byte limit."""
    limit_mb = round(limits_current().disk_max_bytes / MB, 2)
    nodes = stats["fleet"] or [{"node": stats["node"], "total_size_mb": 0.0, "total_models": 0}]
    return {
        "labels": [row["node"] for row in nodes],
        "used_mb": [row["total_size_mb"] for row in nodes],
        "free_mb": [max(0.0, round(limit_mb - row["total_size_mb"], 2)) for row in nodes],
        "limit_mb": limit_mb,
    }


def top_artifacts(*, by: str) -> list[dict]:
    """The artifacts with the most cache hits (``by="hits"``) or the most bytes cached (``by="size"``)."""
    current = Q(entries__generation=F("generation"), entries__state=CacheEntry.State.READY)
    artifacts = Artifact.objects.annotate(
        hits=Sum("entries__hit_count"),
        cached_bytes=Sum("entries__size_bytes", filter=current & Q(entries__tier=Tier.DISK)),
    )
    if by == "hits":
        artifacts = artifacts.filter(hits__gt=0).order_by("-hits", "pk")
    else:
        artifacts = artifacts.filter(cached_bytes__gt=0).order_by("-cached_bytes", "pk")
    return [
        {
            "name": str(artifact),
            "artifact_id": artifact.pk,
            "hits": artifact.hits or 0,
            "cached_mb": round((artifact.cached_bytes or 0) / MB, 2),
            "archive_mb": round((artifact.size_bytes or 0) / MB, 2),
            "pinned": artifact.pinned,
            "generation": artifact.generation,
        }
        for artifact in artifacts[:TOP]
    ]


def recent_fetches(*, hours: int, limit: int = RECENT_FETCHES) -> list[dict]:
    since = timezone.now() - timedelta(hours=hours)
    records = FetchRecord.objects.filter(created_at__gte=since).select_related("artifact").order_by("-created_at")
    return [
        {
            "name": str(record.artifact),
            "node": record.node,
            "tier": record.tier or "-",
            "size_mb": round(record.size_bytes / MB, 2),
            "seconds": round(record.seconds, 3),
            "error": record.error,
            "created_at": record.created_at,
        }
        for record in records[:limit]
    ]


def dashboard_data(*, hours: int) -> dict:
    stats = selectors.cache_stats()
    metrics = selectors.cache_metrics(hours=hours)
    hit_rate = overall_hit_rate(metrics["tiers"])
    threshold = limits_current().hit_rate_warning
    return {
        "hours": hours,
        "stats": stats,
        "metrics": metrics,
        "hit_rate": hit_rate,
        "hit_rate_warning": threshold,
        "warn": hit_rate is not None and hit_rate < threshold,
        "hit_rate_chart": hit_rate_chart(hours=hours),
        "disk_chart": disk_chart(stats),
        "top_by_hits": top_artifacts(by="hits"),
        "top_by_size": top_artifacts(by="size"),
        "recent_fetches": recent_fetches(hours=hours),
    }
