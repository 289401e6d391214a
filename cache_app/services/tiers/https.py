"""The ``https://host/path`` (and ``http://``) tier: a read-only origin such as a model hub or CDN."""

import threading
import time
from typing import BinaryIO

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from .base import Location, ObjectMissing, RemoteTier, TierError

CHUNK_SIZE = 4 * 1024 * 1024
# Connecting takes milliseconds; a host that has not answered in 10 s is down, not slow.
CONNECT_TIMEOUT = 10.0
# The longest silence tolerated on an open connection; downloads lower it to the time left.
READ_TIMEOUT = 60.0


class HttpsTier(RemoteTier):
    """One host. The requests session is built on first use."""

    scheme = "https"

    def __init__(self, *, container: str):
        self.host = container
        self._lock = threading.Lock()
        self._session: requests.Session | None = None

    def download(self, location: Location, writer: BinaryIO, *, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TierError("deadline passed before the download started")
        url = f"{location.scheme}://{self.host}/{location.key}"
        timeout = (min(CONNECT_TIMEOUT, remaining), min(READ_TIMEOUT, remaining))
        try:
            with self._client().get(url, stream=True, timeout=timeout) as response:
                if response.status_code == 404:
                    raise ObjectMissing(f"{url} does not exist")
                if response.status_code != 200:
                    raise TierError(f"GET {url} answered {response.status_code}")
                received = 0
                for chunk in response.iter_content(CHUNK_SIZE):
                    if time.monotonic() > deadline:
                        raise TierError(f"deadline passed while downloading {url}")
                    writer.write(chunk)
                    received += len(chunk)
                expected = response.headers.get("Content-Length")
                # Belt and braces: urllib3 already refuses a body shorter than Content-Length, but a
                # short file must never pass silently (unless the body was compressed in transit).
                if expected and "Content-Encoding" not in response.headers and received != int(expected):
                    raise TierError(f"GET {url} ended after {received} of {expected} bytes")
        except requests.RequestException as error:
            raise TierError(f"GET {url} failed: {error}") from error

    def upload(self, location, source_path) -> None:
        raise TierError(f"{location.uri}: read-only origin")

    def size(self, location: Location) -> int:
        url = f"{location.scheme}://{self.host}/{location.key}"
        try:
            response = self._client().head(url, allow_redirects=True, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT))
        except requests.RequestException as error:
            raise TierError(f"HEAD {url} failed: {error}") from error
        if response.status_code == 404:
            raise ObjectMissing(f"{url} does not exist")
        if response.status_code != 200 or "Content-Length" not in response.headers:
            raise TierError(f"HEAD {url} answered {response.status_code} without a size")
        return int(response.headers["Content-Length"])

    def delete(self, location: Location) -> None:
        raise TierError(f"{location.uri}: read-only origin")

    def _client(self) -> requests.Session:
        with self._lock:
            if self._session is None:
                session = requests.Session()
                # Retry connection failures and 5xx with a short backoff (0.5 s, 1 s, 2 s...); the read
                # timeout and the per-chunk check bound the rest by the deadline.
                retry = Retry(
                    total=settings.MODEL_FETCH_RETRIES,
                    backoff_factor=0.5,
                    status_forcelist=(500, 502, 503, 504),
                    allowed_methods=frozenset({"GET", "HEAD"}),
                    raise_on_status=False,
                )
                adapter = HTTPAdapter(max_retries=retry)
                session.mount("http://", adapter)
                session.mount("https://", adapter)
                self._session = session
            return self._session
