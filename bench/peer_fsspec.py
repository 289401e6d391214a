"""The peer, run by var/bench/peer-venv/bin/python (s3fs pins an older botocore than the portal's boto3):
fsspec ``simplecache::s3://`` over s3fs, or ``simplecache::abfs://`` over adlfs, then tarfile extraction.
Prints {"seconds": ...}; imports excluded.

Usage: peer_fsspec.py s3 ENDPOINT BUCKET KEY WORKDIR
       peer_fsspec.py azure CONNECTION_STRING CONTAINER KEY WORKDIR
"""

import json
import os
import shutil
import sys
import tarfile
import time

import adlfs  # noqa: F401 - imported before the clock, as the SDKs are for ours and the floor
import fsspec
import s3fs  # noqa: F401


def main() -> None:
    cloud, where, bucket, key, workdir = sys.argv[1:6]
    cache_dir = os.path.join(workdir, "fsspec-cache")
    dest = os.path.join(workdir, "fsspec-extract")
    if cloud == "s3":
        url = f"simplecache::s3://{bucket}/{key}"
        options = {"s3": {"key": "testing", "secret": "testing",
                          "client_kwargs": {"endpoint_url": where, "region_name": "us-east-1"}}}
    else:
        url = f"simplecache::abfs://{bucket}/{key}"
        options = {"abfs": {"connection_string": where}}
    began = time.perf_counter()
    with fsspec.open(url, mode="rb", simplecache={"cache_storage": cache_dir}, **options) as f:
        with tarfile.open(fileobj=f, mode="r:gz") as tf:
            tf.extractall(dest, filter="data")
    seconds = time.perf_counter() - began
    shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({"seconds": seconds, "fsspec": fsspec.__version__}))


if __name__ == "__main__":
    main()
