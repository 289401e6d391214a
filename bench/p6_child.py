"""P6, in its own PORTAL_DATA_DIR (its own SQLite): the stats at 10k artifacts, the LRU query at 1k/10k/100k.

Usage: python -m bench.p6_child REPS. Prints one JSON line.
"""

import json
import os
import random
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path


def _populate(*, artifacts: int, nodes: list[str], counters: bool) -> None:
    from django.utils import timezone

    from cache_app.models import Artifact, CacheEntry, TierCounter

    rng = random.Random(42)
    now = timezone.now()
    start = (Artifact.objects.order_by("-pk").values_list("pk", flat=True).first() or 0) + 1
    Artifact.objects.bulk_create(
        [Artifact(source_uri=f"s3://origin/m{i}/x.tar.gz", sha256=f"{i:064x}", size_bytes=10_000_000,
                  unpacked_bytes=30_000_000, format="tar.gz", pinned=rng.random() < 0.05)
         for i in range(start, start + artifacts)], batch_size=2000)
    ids = list(Artifact.objects.filter(pk__gte=start).values_list("pk", flat=True))
    states = ["ready"] * 18 + ["fetching", "evicted"]
    entries = [
        CacheEntry(artifact_id=a, node=node, tier="disk", location=f"/cache/{a}", size_bytes=30_000_000,
                   state=rng.choice(states), last_accessed_at=now - timedelta(seconds=rng.randint(0, 30 * 86400)))
        for node in nodes for a in ids
    ]
    CacheEntry.objects.bulk_create(entries, batch_size=5000)
    if counters:
        minute = now.replace(second=0, microsecond=0)
        TierCounter.objects.bulk_create(
            [TierCounter(node=node, tier=tier, bucket_start=minute - timedelta(minutes=m), hits=5, misses=1,
                         bytes_transferred=1000, fetch_seconds=0.1)
             for node in nodes for tier in ("memory", "disk", "shared", "origin") for m in range(24 * 60)],
            batch_size=5000)


def _time(fn, reps: int) -> dict:
    fn()
    samples = []
    for _ in range(reps):
        began = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - began)
    return {"p50_ms": round(statistics.median(samples) * 1000, 3), "max_ms": round(max(samples) * 1000, 3),
            "n": reps}


def main() -> None:
    reps = int(sys.argv[1])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0, interactive=False)
    import requests

    from bench.runtime import Gunicorn, staff_token
    from cache_app import selectors
    from cache_app.models import Artifact, CacheEntry, Tier

    out = {}
    node = settings.NODE_NAME
    # --- stats at 10,000 artifacts (disk entries on this node and another, a day of minute counters)
    _populate(artifacts=10_000, nodes=[node, "node-b"], counters=True)
    out["stats_population"] = {"artifacts": Artifact.objects.count(), "entries": CacheEntry.objects.count()}
    out["cache_stats_inprocess"] = _time(selectors.cache_stats, reps)
    token = staff_token()
    server = Gunicorn(Path(settings.DATA_DIR), workers=1)
    try:
        headers = {"Authorization": f"Bearer {token}"}
        server.wait_ready("/api/models/", headers=headers)
        session = requests.Session()
        session.headers.update(headers)

        def get():
            answer = session.get(f"{server.url}/api/models/cache/stats")
            assert answer.status_code == 200, answer.text[:300]

        out["cache_stats_http"] = _time(get, reps)
    finally:
        server.stop()

    # --- the eviction choice: the LRU query of cache_app/services/eviction.py, at growing table sizes
    def candidates():
        return (CacheEntry.objects.filter(node=node, tier=Tier.DISK, state=CacheEntry.State.READY,
                                          artifact__pinned=False)
                .exclude(artifact_id=None).order_by("last_accessed_at"))

    CacheEntry.objects.all().delete()
    Artifact.objects.all().delete()
    out["lru"] = {}
    nodes = [node, "node-b", "node-c", "node-d"]
    for total in (1_000, 10_000, 100_000):
        have = CacheEntry.objects.count()
        _populate(artifacts=(total - have) // len(nodes), nodes=nodes, counters=False)
        sql, params = candidates().query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
            plan = [r[-1] for r in cursor.fetchall()]
        out["lru"][str(CacheEntry.objects.count())] = {
            "first_10_candidates": _time(lambda: list(candidates()[:10]), reps),
            "first_candidate_via_iterator": _time(lambda: next(candidates().iterator()), reps),
            "plan": plan,
        }
    out["lru_sql"] = sql
    print(json.dumps(out))


if __name__ == "__main__":
    main()
