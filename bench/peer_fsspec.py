"""The peer, run by var/bench/peer-venv/bin/python (s3fs pins an older botocore than the portal's boto3):
fsspec ``simplecache::s3://`` over s3fs, then tarfile extraction. Prints {"seconds": ...}; imports excluded.

Usage: peer_fsspec.py ENDPOINT BUCKET KEY WORKDIR
"""

import json
import os
import shutil
import sys
import tarfile
import time

import fsspec
import s3fs  # noqa: F401 - imported before the clock, as the SDKs are for ours and the floor


def main() -> None:
    endpoint, bucket, key, workdir = sys.argv[1:5]
    cache_dir = os.path.join(workdir, "fsspec-cache")
    dest = os.path.join(workdir, "fsspec-extract")
    began = time.perf_counter()
    with fsspec.open(
        f"simplecache::s3://{bucket}/{key}",
        mode="rb",
        s3={"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint,
                                                                   "region_name": "us-east-1"}},
        simplecache={"cache_storage": cache_dir},
    ) as f:
        with tarfile.open(fileobj=f, mode="r:gz") as tf:
            tf.extractall(dest, filter="data")
    seconds = time.perf_counter() - began
    shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({"seconds": seconds, "fsspec": fsspec.__version__}))


if __name__ == "__main__":
    main()
