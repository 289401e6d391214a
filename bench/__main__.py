"""``make bench [ARGS=--quick]``: every row of bench/README.md, written to bench/results.{json,md} + charts.

Usage: python -m bench [--quick] [--only P1,P3,...]
"""

import argparse
import json
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime, timezone
from pathlib import Path

from bench import report
from bench.common import machine
from bench.rows import not_measured

ROWS = ["P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9", "P10", "FLEET", "UPLOADS"]


@dataclass
class Context:
    run_dir: Path
    quick: bool
    token: str = ""
    versions: dict = field(default_factory=dict)  # "demo" / "large" -> ModelVersion
    model_labels: dict = field(default_factory=dict)
    latency: dict = field(default_factory=dict)  # chart: label -> p50 ms
    throughput: list = field(default_factory=list)  # chart: (label, method, MB/s)
    extra: dict = field(default_factory=dict)
    log: list = field(default_factory=list)


def say(message: str) -> None:
    print(f"[bench {datetime.now():%H:%M:%S}] {message}", flush=True)


def setup(ctx: Context) -> None:
    from bench import models
    from bench.runtime import django_setup, staff_token

    django_setup(ctx.run_dir)
    from predictions.services import model_publish

    ctx.token = staff_token()
    kind = "quick" if ctx.quick else "full"
    say("training/reusing models in var/bench/cache ...")
    demo_dir = models.demo_model()
    large_dir = models.large_model(kind)
    info = json.loads((large_dir / "bench-info.json").read_text())
    ctx.extra["large_model"] = {"kind": kind, **info}
    say("publishing demo + large model to the file:// origin ...")
    ctx.versions["demo"] = model_publish(predictor_dir=demo_dir, name="demo-house-prices")
    ctx.versions["large"] = model_publish(predictor_dir=large_dir, name=f"large-ensemble-{kind}")
    mb = info["bytes"] / 1e6
    ctx.model_labels = {"demo": "demo GBM", "large": f"large RF+XT+GBM ({mb:.0f} MB{', quick' if ctx.quick else ''})"}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, small archives and models")
    parser.add_argument("--only", default="", help="comma-separated rows, e.g. P1,P3")
    args = parser.parse_args()
    selected = [r.strip().upper() for r in args.only.split(",") if r.strip()] or ROWS

    from bench.runtime import make_run_dir

    started = time.monotonic()
    ctx = Context(run_dir=make_run_dir(), quick=args.quick)
    say(f"run dir {ctx.run_dir} ({'quick' if args.quick else 'full'})")
    setup(ctx)
    from bench import (
        fleet_row,
        p1_memory,
        p2_disk,
        p3_cold,
        p4_single_flight,
        p5_throughput,
        p6_scale,
        p7_batching,
        p8_shared_memory,
        p9_threads,
        p10_first_prediction,
        upload_memory,
    )

    modules = {"P1": p1_memory, "P2": p2_disk, "P3": p3_cold, "P4": p4_single_flight, "P5": p5_throughput,
               "P6": p6_scale, "P7": p7_batching, "P8": p8_shared_memory,
               "P9": p9_threads, "P10": p10_first_prediction, "FLEET": fleet_row,
               "UPLOADS": upload_memory}
    results = []
    row_seconds = {}
    for name in selected:
        say(f"{name} ...")
        began = time.monotonic()
        try:
            results += modules[name].run(ctx)
        except Exception as error:  # a broken row is reported, the others still run
            traceback.print_exc()
            results.append(not_measured(f"{name}", f"{type(error).__name__}: {error}"))
        row_seconds[name] = round(time.monotonic() - began, 1)
        say(f"{name} done in {row_seconds[name]:.0f}s")
    document = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "only": selected if args.only else [],
        "machine": machine(),
        "run_dir": str(ctx.run_dir),
        "seconds": round(time.monotonic() - started, 1),
        "row_seconds": row_seconds,
        "rows": results,
        "latency_chart": ctx.latency,
        "throughput_chart": ctx.throughput,
        "extra": ctx.extra,
    }
    tag = report.write(document)
    say(f"done in {document['seconds']}s: bench/results{tag}.json, bench/results{tag}.md")


if __name__ == "__main__":
    main()
