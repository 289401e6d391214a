"""P2's fresh process: time to first prediction from the disk tier. Django setup, ``import autogluon.tabular``
and building the input frame happen BEFORE the clock in both modes (excluded consistently).

Usage: python -m bench.p2_child ours|raw VERSION_ID FEATURES_JSON
"""

import json
import os
import sys
import time


def first_prediction(mode: str, version_id: int, features: dict, *, ours_tier: str, raw_prepare) -> None:
    """Print {"seconds", "prediction"} of the first prediction: ``predictor_serve`` + predict (ours, which
    must come from ``ours_tier``) or ``raw_prepare(version)(frame)`` (raw; the preparation is before the clock)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    import autogluon.tabular  # noqa: F401 - preloaded, as gunicorn does

    from predictions import inputs, services
    from predictions.models import ModelVersion

    version = ModelVersion.objects.select_related("artifact", "model").get(pk=version_id)
    frame = inputs.frame_of(inputs.rows_from_json(version=version, rows=[features], where="features").features)
    raw = raw_prepare(version) if mode == "raw" else None
    began = time.perf_counter()
    if mode == "ours":
        served = services.predictor_serve(version=version)
        assert served.tier == ours_tier, served.tier
        prediction = served.obj.predict(frame)
    else:
        prediction = raw(frame)
    seconds = time.perf_counter() - began
    print(json.dumps({"seconds": seconds, "prediction": float(prediction.iloc[0])}))


def _load_from_disk(version):
    from autogluon.tabular import TabularPredictor

    from cache_app.services.fetch import entry_dir
    from predictions import loaders

    folder = loaders.predictor_root(entry_dir(version.artifact) / "model")
    return lambda frame: TabularPredictor.load(str(folder), verbosity=0, require_version_match=False).predict(frame)


def main() -> None:
    mode, version_id, features = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    first_prediction(mode, version_id, features, ours_tier="disk", raw_prepare=_load_from_disk)


if __name__ == "__main__":
    main()
