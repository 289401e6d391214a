"""Expensive inputs, built once and cached in var/bench/cache/: the large RF + XT + GBM ensemble.

The seeds' production model is a ~1 GB AutoGluon ensemble whose "load + predict" costs 1-2 s; the demo
model (one small LightGBM) is not representative of that, so P1/P2 also run on this one.
"""

import json
import shutil
import sys
import time
from pathlib import Path

from bench.common import CACHE_DIR

# Full: ~50k rows, RF + XT with enough trees to reach ~1 GB of pickles. Quick: same shape, ~10x smaller.
LARGE_SPECS = {
    "full": {"rows": 50_000, "rf_trees": 240, "xt_trees": 240},
    "quick": {"rows": 20_000, "rf_trees": 12, "xt_trees": 12},
}


def _folder_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def large_model(kind: str = "full") -> Path:
    """The cached ensemble's folder, training it first if missing (minutes, once)."""
    spec = LARGE_SPECS[kind]
    target = CACHE_DIR / f"large-{kind}-{spec['rows']}-{spec['rf_trees']}-{spec['xt_trees']}"
    if (target / ".done").exists():
        return target
    from autogluon.tabular import TabularPredictor

    from predictions.demo import house_prices

    shutil.rmtree(target, ignore_errors=True)
    began = time.monotonic()
    TabularPredictor(label="price", path=str(target), verbosity=0).fit(
        house_prices(spec["rows"], seed=7),
        hyperparameters={
            "RF": {"n_estimators": spec["rf_trees"]},
            "XT": {"n_estimators": spec["xt_trees"]},
            "GBM": {"num_boost_round": 200},
        },
        fit_weighted_ensemble=True,
        num_cpus=2,
    )
    info = {"spec": spec, "train_seconds": round(time.monotonic() - began, 1), "bytes": _folder_bytes(target)}
    (target / "bench-info.json").write_text(json.dumps(info))
    (target / ".done").write_text("ok")
    return target


def demo_model() -> Path:
    target = CACHE_DIR / "demo-house-prices"
    if (target / ".done").exists():
        return target
    from predictions.demo import train_house_prices

    shutil.rmtree(target, ignore_errors=True)
    train_house_prices(target)
    (target / ".done").write_text("ok")
    return target


if __name__ == "__main__":
    for kind in sys.argv[1:] or ["quick", "full"]:
        folder = demo_model() if kind == "demo" else large_model(kind)
        print(kind, folder, _folder_bytes(folder) / 1e6, "MB", flush=True)
