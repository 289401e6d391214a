"""P10's fresh process: the first prediction of a model whose only copy is in S3. Django setup, ``import
autogluon.tabular``, ``import boto3`` and building the input frame happen BEFORE the clock in both modes.

Usage: python -m bench.p10_child ours|raw VERSION_ID FEATURES_JSON ENDPOINT BUCKET KEY SCRATCH

ours: ``predictor_serve`` (S3 -> verified, extracted disk copy -> loaded, persisted predictor) + predict.
raw:  one streamed ``get_object`` extracted by tarfile as it arrives + ``TabularPredictor.load`` + predict:
      the fastest raw path on this server (P3), with no checksum, no manifest and no fsync.
"""

import json
import os
import shutil
import sys
import tarfile
import time
from pathlib import Path


def main() -> None:
    mode, version_id, features = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    endpoint, bucket, key, scratch = sys.argv[4], sys.argv[5], sys.argv[6], Path(sys.argv[7])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    import autogluon.tabular  # noqa: F401 - preloaded, as gunicorn does
    import boto3
    from autogluon.tabular import TabularPredictor

    from predictions import inputs, loaders, services
    from predictions.models import ModelVersion

    version = ModelVersion.objects.select_related("artifact", "model").get(pk=version_id)
    frame = inputs.rows_from_json(version=version, rows=[features], where="features").frame
    began = time.perf_counter()
    if mode == "ours":
        served = services.predictor_serve(version=version)
        assert served.tier == "origin", served.tier
        prediction = served.obj.predict(frame)
    else:
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        with tarfile.open(fileobj=body, mode="r|gz") as tf:
            tf.extractall(scratch, filter="data")
        folder = loaders.predictor_root(scratch)
        prediction = TabularPredictor.load(str(folder), verbosity=0, require_version_match=False).predict(frame)
    seconds = time.perf_counter() - began
    shutil.rmtree(scratch, ignore_errors=True)
    print(json.dumps({"seconds": seconds, "prediction": float(prediction.iloc[0])}))


if __name__ == "__main__":
    main()
