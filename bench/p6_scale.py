"""P6: the stats at 10,000 artifacts and the eviction (LRU) query at 1k / 10k / 100k rows."""

from bench.rows import row
from bench.runtime import base_env, run_child


def run(ctx) -> list[dict]:
    reps = 10 if ctx.quick else 30
    data_dir = ctx.run_dir / "p6"
    data_dir.mkdir(exist_ok=True)
    result = run_child("bench.p6_child", [str(reps)], base_env(data_dir, PORTAL_PRELOAD_AUTOGLUON="0"), timeout=900)
    ctx.extra["p6"] = result
    pop = result["stats_population"]
    rows = [
        row(f"P6 cache_stats() in process at {pop['artifacts']:,} artifacts / {pop['entries']:,} entries, p50",
            result["cache_stats_inprocess"]["p50_ms"], 50, "target 50 ms", "ms", target="≤ 50 ms",
            met=result["cache_stats_inprocess"]["p50_ms"] <= 50, reps=reps),
        row(f"P6 GET /api/models/cache/stats at {pop['artifacts']:,} artifacts over HTTP, p50",
            result["cache_stats_http"]["p50_ms"], 50, "target 50 ms", "ms", target="≤ 50 ms",
            met=result["cache_stats_http"]["p50_ms"] <= 50, reps=reps),
    ]
    base = None
    for total, lru in result["lru"].items():
        t = lru["first_10_candidates"]["p50_ms"]
        base = base or t
        uses_index = any("entry_lru" in step for step in lru["plan"])
        no_sort = not any("TEMP B-TREE" in step for step in lru["plan"])
        rows.append(row(f"P6 eviction LRU query (first 10 candidates) at {int(total):,} entries, p50", t, base,
                        "same query at the smallest size", "ms", target="index entry_lru used, no sort",
                        met=uses_index and no_sort, reps=reps,
                        details={"plan": lru["plan"], "first_candidate": lru["first_candidate_via_iterator"]}))
    return rows
