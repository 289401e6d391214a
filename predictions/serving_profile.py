"""The serving profile of a version, measured at publish in a fresh worker process.

Load time, resident memory (what loading and ``persist`` add to the process), one-row latency and rows per
second at 1,000 rows, as a gunicorn worker would see them. A fresh process, because the publisher's own
process has other models, caches and AutoGluon's import in its memory. The memory tier then budgets the
version with the measured bytes instead of its folder size (``services.predictor_serve``).

``python -m predictions.serving_profile <predictor folder>`` with the features as JSON on stdin prints the
profile as JSON; it needs no Django.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ONE_ROW_REPEATS = 20
BATCH_ROWS = 1000


def version_profile_measure(*, root: Path, features: list[dict], contract: dict, timeout: float) -> dict:
    """Run the measurement in a child process; a failure is recorded as ``{"error": ...}``, never raised
    (a publish does not fail because it could not be profiled)."""
    row = _example_row(features, contract)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "predictions.serving_profile", str(root)],
            input=json.dumps(row), capture_output=True, text=True, timeout=timeout,
            cwd=Path(__file__).resolve().parent.parent, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    except subprocess.TimeoutExpired:
        return {"error": f"not measured: took longer than {timeout:g} s"}
    if done.returncode != 0:
        return {"error": f"not measured: the worker failed: {done.stderr.strip()[-500:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _example_row(features: list[dict], contract: dict) -> dict:
    """A row inside what training saw: each number the middle of its range, each category the first known."""
    described = (contract or {}).get("features") or {}
    row = {}
    for feature in features:
        seen = described.get(feature["name"], {})
        if feature.get("categories"):
            row[feature["name"]] = feature["categories"][0]
        elif seen.get("min") is not None and seen.get("max") is not None:
            middle = (seen["min"] + seen["max"]) / 2
            row[feature["name"]] = round(middle) if feature["dtype"] == "int" else middle
        else:
            row[feature["name"]] = None
    return row


def _measure(root: Path, row: dict) -> dict:
    import pandas as pd
    import psutil

    import autogluon.tabular  # noqa: F401 - imported before the baseline: every worker has it already

    from predictions import loaders, threads

    process = psutil.Process()
    baseline = process.memory_info().rss
    began = time.perf_counter()
    predictor, _ = loaders.predictor_load(root)
    load_seconds = time.perf_counter() - began
    resident = max(process.memory_info().rss - baseline, 0)

    one = pd.DataFrame([row])
    loaders.predictor_answer(predictor, one)  # the first call builds lazy state no later request pays
    timings = []
    with threads.prediction_threads(rows=1):
        for _ in range(ONE_ROW_REPEATS):
            began = time.perf_counter()
            loaders.predictor_answer(predictor, one)
            timings.append(time.perf_counter() - began)
    batch = pd.DataFrame([row] * BATCH_ROWS)
    began = time.perf_counter()
    loaders.predictor_answer(predictor, batch)
    batch_seconds = time.perf_counter() - began
    return {
        "load_seconds": round(load_seconds, 4),
        "resident_bytes": int(resident),
        "one_row_ms": round(sorted(timings)[len(timings) // 2] * 1000, 3),
        "rows_per_second": round(BATCH_ROWS / batch_seconds, 1),
        "batch_rows": BATCH_ROWS,
        "autogluon_version": loaders.autogluon_version(),
    }


if __name__ == "__main__":
    print(json.dumps(_measure(Path(sys.argv[1]), json.loads(sys.stdin.read()))))
