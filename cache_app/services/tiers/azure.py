"""The ``azure://container/blob`` tier: Azure Blob Storage (or Azurite)."""

import math
import os
import threading
import time
from contextlib import contextmanager
from typing import BinaryIO

import requests
from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient, ExponentialRetry
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from . import adaptive
from .base import Location, ObjectMissing, RemoteTier, TierError

MiB = 1024 * 1024
# Connecting takes milliseconds; a host that has not answered in 10 s is down, not slow.
CONNECT_TIMEOUT = 10.0
# The longest silence tolerated on an open connection; downloads lower it to the time left.
READ_TIMEOUT = 60.0
# Uploads: blocks of 8 MiB, 8 in flight.
CHUNK_SIZE = 8 * MiB
CONCURRENCY = 8
DEADLINE_OPTION = "portal_deadline"


class _DeadlineRetry(ExponentialRetry):
    """Exponential retry that gives up rather than sleep past the download's deadline.

    The deadline rides along as a per-operation option: the SDK copies operation options into every
    request of a download (the first GET and each parallel range), and this policy takes it out before
    the transport sees it.
    """

    def configure_retries(self, request):
        retry_settings = super().configure_retries(request)
        retry_settings["deadline"] = request.context.options.pop(DEADLINE_OPTION, None)
        return retry_settings

    def sleep(self, settings, transport):  # noqa: A002 - the SDK's name for the retry settings
        backoff = max(0.0, self.get_backoff_time(settings))
        deadline = settings["deadline"]
        if deadline is not None and time.monotonic() + backoff > deadline:
            raise TierError("the deadline leaves no time to retry")
        if backoff:
            transport.sleep(backoff)


def _stream_with_headers(response, stream, headers):
    return response, stream, headers


def _nothing() -> None:
    pass


class AzureTier(RemoteTier):
    """One container. The service client is built on first use, from settings read at that time."""

    scheme = "azure"

    def __init__(self, *, container: str):
        self.container = container
        self._lock = threading.Lock()
        self._container_client: ContainerClient | None = None

    def download(self, location: Location, writer: BinaryIO, *, deadline: float) -> None:
        if deadline - time.monotonic() <= 0:
            raise TierError("deadline passed before the download started")
        blob = self._client().get_blob_client(location.key)

        def open_range(start: int):
            remaining = max(0.001, deadline - time.monotonic())
            # The SDK's public downloader reads each range whole into memory; its generated operation
            # streams one GET, with the client's authentication, retries and deadline-aware policy.
            try:
                _, chunks, headers = blob._client.blob.download(  # noqa: SLF001
                    range=f"bytes={start}-",
                    # Server-side limit, then the client-side socket limits, each bounded by the time left.
                    timeout=max(1, math.ceil(remaining)),
                    read_timeout=min(READ_TIMEOUT, remaining),
                    connection_timeout=min(CONNECT_TIMEOUT, remaining),
                    cls=_stream_with_headers,
                    **{DEADLINE_OPTION: deadline},
                )
            except HttpResponseError as error:
                if start == 0 and error.status_code == 416:
                    return iter(()), 0, _nothing  # an empty blob has no range to ask for
                raise
            total = int(headers["Content-Range"].rsplit("/", 1)[1])
            return chunks, total, chunks.response.internal_response.close

        with self._errors(location, action="download"):
            adaptive.transfer(
                open_range,
                writer,
                deadline=deadline,
                attempts=max(1, settings.MODEL_FETCH_RETRIES),
                retryable=(AzureError, requests.RequestException),
                what=location.uri,
            )

    def upload(self, location: Location, source_path: os.PathLike | str) -> None:
        blob = self._client().get_blob_client(location.key)
        with self._errors(location, action="upload"):
            try:
                self._upload(blob, source_path)
            except ResourceNotFoundError:
                # The first write to a fresh shared store creates its container; racing nodes may both try.
                try:
                    self._client().create_container()
                except ResourceExistsError:
                    pass
                self._upload(blob, source_path)

    @staticmethod
    def _upload(blob, source_path: os.PathLike | str) -> None:
        with open(source_path, "rb") as source:
            blob.upload_blob(source, overwrite=True, max_concurrency=CONCURRENCY)

    def size(self, location: Location) -> int:
        with self._errors(location, action="get properties of"):
            return self._client().get_blob_client(location.key).get_blob_properties().size

    def delete(self, location: Location) -> None:
        with self._errors(location, action="delete"):
            try:
                self._client().get_blob_client(location.key).delete_blob()
            except ResourceNotFoundError:
                pass

    def _client(self) -> ContainerClient:
        with self._lock:
            if self._container_client is None:
                if not settings.AZURE_CONNECTION_STRING:
                    raise ImproperlyConfigured("an azure:// location needs AZURE_CONNECTION_STRING")
                service = BlobServiceClient.from_connection_string(
                    settings.AZURE_CONNECTION_STRING,
                    # The SDK's default policy waits ~15 s, ~18 s, ~24 s between attempts: longer than a
                    # request can wait. Small jitter keeps the total predictable against the deadline.
                    retry_policy=_DeadlineRetry(
                        initial_backoff=1,
                        increment_base=2,
                        random_jitter_range=1,
                        retry_total=settings.MODEL_FETCH_RETRIES,
                    ),
                    connection_timeout=CONNECT_TIMEOUT,
                    read_timeout=READ_TIMEOUT,
                    max_single_get_size=CHUNK_SIZE,
                    max_chunk_get_size=CHUNK_SIZE,
                    max_block_size=CHUNK_SIZE,
                    max_single_put_size=CHUNK_SIZE,
                    # How much a streamed GET hands over at a time (the transport's default is 4 KiB).
                    connection_data_block_size=adaptive.CHUNK_BYTES,
                )
                self._container_client = service.get_container_client(self.container)
            return self._container_client

    @contextmanager
    def _errors(self, location: Location, *, action: str):
        """Turn SDK failures into the tier's two errors; local errors (a full disk) pass through as is."""
        try:
            yield
        except TierError:
            raise
        except ResourceNotFoundError as error:
            raise ObjectMissing(f"{location.uri} does not exist") from error
        except (AzureError, requests.RequestException) as error:
            raise TierError(f"Azure {action} {location.uri} failed: {error}") from error
