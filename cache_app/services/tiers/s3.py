"""The ``s3://bucket/key`` tier: AWS S3 or any S3-compatible server (MinIO, moto, Ceph)."""

import os
import threading
import time
from contextlib import contextmanager
from typing import BinaryIO

import boto3
import boto3.exceptions
import botocore.exceptions
import s3transfer.exceptions
import urllib3.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from django.conf import settings

from . import adaptive
from .base import Location, ObjectMissing, RemoteTier, TierError

MiB = 1024 * 1024
# Connecting to S3 takes milliseconds; a host that has not answered in 10 s is down, not slow.
CONNECT_TIMEOUT = 10.0
# The longest silence tolerated on an open connection; downloads lower it to the time left.
READ_TIMEOUT = 60.0
# A download's read timeout is the time it has left, at most READ_TIMEOUT. botocore fixes timeouts per client,
# so calls share one client per step of this ladder (the largest step within the time left; other calls take
# the first): building a client and its first call cost tens of milliseconds, most of a small model's fetch.
READ_TIMEOUT_STEPS = (READ_TIMEOUT, 30.0, 15.0, 8.0, 4.0, 2.0, 1.0, 0.5, 0.25)
# HTTP statuses and error codes meaning "no such object" (HeadObject has no body, hence the bare "404").
MISSING_CODES = {"404", "NoSuchKey", "NotFound"}
# Everything the SDK stack raises for a failed transfer. s3transfer wraps streaming errors it retried in
# RetriesExceededError; boto3 wraps upload failures in S3UploadFailedError (a Boto3Error).
SDK_ERRORS = (
    botocore.exceptions.BotoCoreError,
    boto3.exceptions.Boto3Error,
    s3transfer.exceptions.RetriesExceededError,
    s3transfer.exceptions.S3DownloadFailedError,
    s3transfer.exceptions.S3UploadFailedError,
    urllib3.exceptions.HTTPError,
    ConnectionError,
    TimeoutError,
)


class S3Tier(RemoteTier):
    """One bucket. The boto3 session and clients are built on first use, from settings read at that time."""

    scheme = "s3"

    def __init__(self, *, container: str):
        self.bucket = container
        self._lock = threading.Lock()
        self._session: boto3.session.Session | None = None
        self._clients: dict[float, object] = {}  # per read timeout, a step of READ_TIMEOUT_STEPS

    def download(self, location: Location, writer: BinaryIO, *, deadline: float) -> None:
        client = self._download_client(deadline=deadline)

        def open_range(start: int):
            ranged = {"Range": f"bytes={start}-"} if start else {}
            _sending.download = (deadline, location.uri)
            try:
                response = client.get_object(Bucket=self.bucket, Key=location.key, **ranged)
            finally:
                _sending.download = None
            body = response["Body"]
            total = int(response["ContentRange"].rsplit("/", 1)[1]) if start else response["ContentLength"]
            return body.iter_chunks(adaptive.CHUNK_BYTES), total, body.close

        with self._errors(location, action="download"):
            adaptive.transfer(
                open_range,
                writer,
                deadline=deadline,
                attempts=max(1, settings.MODEL_FETCH_RETRIES),
                retryable=SDK_ERRORS,
                what=location.uri,
            )

    def upload(self, location: Location, source_path: os.PathLike | str) -> None:
        with self._errors(location, action="upload"):
            self._shared_client().upload_file(
                os.fspath(source_path), self.bucket, location.key, Config=self._transfer_config()
            )

    def size(self, location: Location) -> int:
        with self._errors(location, action="head"):
            return self._shared_client().head_object(Bucket=self.bucket, Key=location.key)["ContentLength"]

    def delete(self, location: Location) -> None:
        # S3 answers 204 whether or not the key existed, so "absent is not an error" comes for free.
        with self._errors(location, action="delete"):
            self._shared_client().delete_object(Bucket=self.bucket, Key=location.key)

    def _transfer_config(self) -> TransferConfig:
        # Uploads: 8 parts of 8 MiB in flight, enough to fill a 10 Gb/s link to S3.
        return TransferConfig(
            multipart_threshold=8 * MiB,
            multipart_chunksize=8 * MiB,
            max_concurrency=8,
            num_download_attempts=max(1, settings.MODEL_FETCH_RETRIES),
        )

    def _shared_client(self):
        return self._client_for(READ_TIMEOUT)

    def _download_client(self, *, deadline: float):
        """The client whose timeouts fit the time this download has left (``READ_TIMEOUT_STEPS``)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TierError("deadline passed before the download started")
        step = next((step for step in READ_TIMEOUT_STEPS if step <= remaining), READ_TIMEOUT_STEPS[-1])
        return self._client_for(step)

    def _client_for(self, read_timeout: float):
        with self._lock:
            client = self._clients.get(read_timeout)
            if client is None:
                connect_timeout = min(CONNECT_TIMEOUT, read_timeout)
                client = self._new_client(read_timeout=read_timeout, connect_timeout=connect_timeout)
                # Checked before every attempt of a download, so botocore's retries cannot outrun its deadline.
                client.meta.events.register("before-send.s3.*", _deadline_check)
                self._clients[read_timeout] = client
            return client

    def _new_client(self, *, read_timeout: float, connect_timeout: float):
        """Build a client; the caller holds ``self._lock`` (boto3 sessions are not thread-safe)."""
        if self._session is None:
            self._session = boto3.session.Session(
                aws_access_key_id=settings.AWS_ACCESS_KEY_ID,
                aws_secret_access_key=settings.AWS_SECRET_ACCESS_KEY,
                region_name=settings.AWS_S3_REGION_NAME,
            )
        config = Config(
            # "standard" retries throttling and 5xx with jittered backoff; the default "legacy" mode
            # does not retry every transient error.
            retries={"max_attempts": max(1, settings.MODEL_FETCH_RETRIES), "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=16,
        )
        return self._session.client("s3", endpoint_url=settings.AWS_S3_ENDPOINT_URL or None, config=config)

    @contextmanager
    def _errors(self, location: Location, *, action: str):
        """Turn SDK failures into the tier's two errors; local errors (a full disk) pass through as is."""
        try:
            yield
        except TierError:
            raise
        except botocore.exceptions.ClientError as error:
            if str(error.response.get("Error", {}).get("Code", "")) in MISSING_CODES:
                raise ObjectMissing(f"{location.uri} does not exist") from error
            raise TierError(f"S3 {action} of {location.uri} failed: {error}") from error
        except SDK_ERRORS as error:
            raise TierError(f"S3 {action} of {location.uri} failed: {error!r}") from error


# (deadline, URI) of the download request this thread is sending: botocore's event handlers are per client,
# and a client is shared by concurrent downloads.
_sending = threading.local()


def _deadline_check(**_ignored) -> None:
    download = getattr(_sending, "download", None)
    if download is not None and time.monotonic() > download[0]:
        raise TierError(f"deadline passed while downloading {download[1]}")
