"""P2's fresh process: time to first prediction from the disk tier. Django setup, ``import autogluon.tabular``
and building the input frame happen BEFORE the clock in both modes (excluded consistently).

Usage: python -m bench.p2_child ours|raw VERSION_ID FEATURES_JSON
"""

import json
import os
import sys
import time


def main() -> None:
    mode, version_id, features = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    import autogluon.tabular  # noqa: F401 - preloaded, as gunicorn does
    from autogluon.tabular import TabularPredictor

    from cache_app.services.fetch import entry_dir
    from predictions import inputs, loaders, services
    from predictions.models import ModelVersion

    version = ModelVersion.objects.select_related("artifact", "model").get(pk=version_id)
    frame = inputs.rows_from_json(version=version, rows=[features], where="features").frame
    folder = loaders.predictor_root(entry_dir(version.artifact) / "model")
    began = time.perf_counter()
    if mode == "ours":
        served = services.predictor_serve(version=version)
        assert served.tier == "disk", served.tier
        prediction = served.obj.predict(frame)
    else:
        prediction = TabularPredictor.load(str(folder), verbosity=0, require_version_match=False).predict(frame)
    seconds = time.perf_counter() - began
    print(json.dumps({"seconds": seconds, "prediction": float(prediction.iloc[0])}))


if __name__ == "__main__":
    main()
