"""P2: a disk hit in a fresh process (time to first prediction) vs TabularPredictor.load + predict."""

import json
import statistics

from bench.p1_memory import sample_features
from bench.rows import not_measured, row
from bench.runtime import base_env, run_child


def run(ctx) -> list[dict]:
    from cache_app.services.fetch import artifact_fetch

    reps = 2 if ctx.quick else 6
    features = json.dumps(sample_features())
    env = base_env(ctx.run_dir, PORTAL_PRELOAD_AUTOGLUON="0")
    rows = []
    # Quick mode: the demo model only (each repetition is a fresh interpreter importing AutoGluon).
    for name, version in ctx.versions.items():
        if ctx.quick and name != "demo":
            rows.append(not_measured(f"P2 {ctx.model_labels[name]}: disk hit in a fresh process",
                                     "quick mode: demo model only (full run measures the large model)", "≤ 1.1x"))
            continue
        artifact_fetch(artifact=version.artifact)  # on disk (P1 usually did it already)
        # The large model: 4 reps a side (each a fresh interpreter loading 1 GB, ~6 s), the demo model 6.
        n = reps if (ctx.quick or name == "demo") else 4
        ours, raw = [], []
        if not ctx.quick:
            run_child("bench.p2_child", ["raw", str(version.pk), features], env)  # page cache warm for both
        for i in range(n):
            # Alternate the order so neither always runs second on a warmer machine.
            pair = ["ours", "raw"] if i % 2 == 0 else ["raw", "ours"]
            for mode in pair:
                seconds = run_child("bench.p2_child", [mode, str(version.pk), features], env)["seconds"]
                (ours if mode == "ours" else raw).append(seconds)
        o, r = statistics.median(ours) * 1000, statistics.median(raw) * 1000
        label = ctx.model_labels[name]
        rows.append(row(f"P2 {label}: disk hit in a fresh process, time to first prediction (p50)", round(o, 1),
                        round(r, 1), "TabularPredictor.load + predict, same folder, fresh process", "ms",
                        target="≤ 1.1x", met=o / r <= 1.1, reps=n,
                        details={"ours_ms": [round(x * 1000, 1) for x in ours],
                                 "raw_ms": [round(x * 1000, 1) for x in raw],
                                 "excluded": "interpreter start, django.setup, import autogluon, input frame"}))
        ctx.latency[f"{label}: disk hit, fresh process"] = round(o, 1)
    return rows
