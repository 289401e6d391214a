"""P10's fresh process: the first prediction of a model whose only copy is in S3. Django setup, ``import
autogluon.tabular``, ``import boto3`` and building the input frame happen BEFORE the clock in both modes.

Usage: python -m bench.p10_child ours|raw VERSION_ID FEATURES_JSON ENDPOINT BUCKET KEY SCRATCH

ours: ``predictor_serve`` (S3 -> verified, extracted disk copy -> loaded, persisted predictor) + predict.
raw:  one streamed ``get_object`` extracted by tarfile as it arrives + ``TabularPredictor.load`` + predict:
      the fastest raw path on this server (P3), with no checksum, no manifest and no fsync.
"""

import json
import shutil
import sys
import tarfile
from pathlib import Path

import boto3  # noqa: F401 - imported before the clock on both sides (ours imports it with its S3 tier)

from bench.p2_child import first_prediction


def main() -> None:
    mode, version_id, features = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
    endpoint, bucket, key, scratch = sys.argv[4], sys.argv[5], sys.argv[6], Path(sys.argv[7])

    def download_extract_load(version):
        from autogluon.tabular import TabularPredictor

        from predictions import loaders

        def predict(frame):
            client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                  aws_access_key_id="testing", aws_secret_access_key="testing")
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
            with tarfile.open(fileobj=body, mode="r|gz") as tf:
                tf.extractall(scratch, filter="data")
            folder = loaders.predictor_root(scratch)
            return TabularPredictor.load(str(folder), verbosity=0, require_version_match=False).predict(frame)

        return predict

    try:
        first_prediction(mode, version_id, features, ours_tier="origin", raw_prepare=download_extract_load)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
