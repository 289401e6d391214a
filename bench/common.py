"""Shared helpers: paths, statistics, the machine description, timing."""

import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO_ROOT / "bench"
VAR_BENCH = REPO_ROOT / "var" / "bench"
CACHE_DIR = VAR_BENCH / "cache"
CACHE_DIR.mkdir(parents=True, exist_ok=True)
PYTHON = str(REPO_ROOT / ".venv" / "bin" / "python")
MiB = 1024 * 1024


def percentile(values, q: float) -> float:
    """Nearest-rank percentile (q in 0-100) of a non-empty list."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(q / 100 * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def summary(values_s) -> dict:
    """Milliseconds: median, p99, min, count, from a list of seconds."""
    ms = [v * 1000 for v in values_s]
    return {
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "min_ms": round(min(ms), 3),
        "n": len(ms),
    }


def machine() -> dict:
    return {
        "uname": subprocess.run(["uname", "-a"], capture_output=True, text=True).stdout.strip(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


class Timer:
    def __enter__(self):
        self.began = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.began
