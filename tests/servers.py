"""Real servers for the test suite: moto (S3), Azurite (Azure Blob) and a fault-injecting HTTP proxy.

Each server is a real process (or, for the proxy, a real socket server) on a free loopback port, started
once per session and stopped at the end. When one cannot start, its tests skip with the command that
installs it; the root conftest turns those skips into failures in CI.
"""

import http.client
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

REPO_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
# Azurite's well-known development account: public, documented, and accepted by nothing but Azurite.
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
STARTUP_SECONDS = 30.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def server_start(command: list[str], *, log_path: Path, ready_url: str, what: str, install_hint: str):
    """Start ``command``; return the process once ``ready_url`` answers any HTTP status."""
    log = open(log_path, "wb")  # noqa: SIM115 - closed in server_stop
    try:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    except OSError as error:
        log.close()
        pytest.skip(f"cannot start {what} ({error}); {install_hint}")
    give_up = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < give_up:
        if process.poll() is not None:
            break
        try:
            requests.get(ready_url, timeout=5)
            return process, log
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or still importing
            time.sleep(0.1)
    server_stop(process, log)
    pytest.skip(f"{what} did not start (see {log_path}); {install_hint}")


def server_stop(process: subprocess.Popen, log) -> None:
    process.terminate()
    try:
        # Azurite's graceful stop waits for idle keep-alive connections that SDK pools never close;
        # its data lives in a temporary folder, so a kill loses nothing.
        process.wait(timeout=3)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


# --- moto (S3) -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MotoServer:
    endpoint_url: str


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory):
    """A moto S3 server process for the whole session: ``moto_server.endpoint_url``."""
    executable = Path(sys.executable).parent / "moto_server"
    hint = "install it with `pip install 'moto[server]'` in the project's virtualenv"
    if not executable.exists():
        pytest.skip(f"{executable} not found; {hint}")
    port = free_port()
    endpoint_url = f"http://{LOOPBACK}:{port}"
    process, log = server_start(
        [str(executable), "-H", LOOPBACK, "-p", str(port)],
        log_path=tmp_path_factory.mktemp("moto") / "moto.log",
        ready_url=endpoint_url,
        what="moto_server",
        install_hint=hint,
    )
    yield MotoServer(endpoint_url=endpoint_url)
    server_stop(process, log)


@pytest.fixture
def s3_bucket(moto_server, settings):
    """A fresh bucket on moto; settings point the S3 tier at it. Yields the bucket name."""
    import boto3

    from cache_app.services.tiers import tiers_reset

    settings.AWS_S3_ENDPOINT_URL = moto_server.endpoint_url
    settings.AWS_ACCESS_KEY_ID = "testing"
    settings.AWS_SECRET_ACCESS_KEY = "testing"
    settings.AWS_S3_REGION_NAME = "us-east-1"
    bucket = f"test-{uuid.uuid4().hex[:16]}"  # moto rejects names under 3 characters
    boto3.client(
        "s3",
        endpoint_url=moto_server.endpoint_url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    tiers_reset()
    yield bucket
    tiers_reset()


# --- Azurite (Azure Blob) --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AzuriteServer:
    blob_endpoint: str

    @property
    def connection_string(self) -> str:
        return self.connection_string_via(self.blob_endpoint)

    @staticmethod
    def connection_string_via(blob_endpoint: str) -> str:
        """The account's connection string with another endpoint, e.g. a fault proxy in front of Azurite."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={blob_endpoint};"
        )


@pytest.fixture(scope="session")
def azurite_server(tmp_path_factory):
    """An Azurite blob server process for the whole session: ``.connection_string``, ``.blob_endpoint``."""
    executable = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"
    hint = "install it with `npm ci` (or `npm install`) at the repository root; it needs node"
    if not executable.exists() or shutil.which("node") is None:
        pytest.skip(f"Azurite not found at {executable}; {hint}")
    port = free_port()
    location = tmp_path_factory.mktemp("azurite")
    process, log = server_start(
        [
            str(executable),
            "--silent",
            "--location",
            str(location),
            "--blobHost",
            LOOPBACK,
            "--blobPort",
            str(port),
            # The Python SDK may speak a newer API version than this Azurite release knows.
            "--skipApiVersionCheck",
            "--loose",
        ],
        log_path=location / "azurite.log",
        ready_url=f"http://{LOOPBACK}:{port}/",
        what="azurite-blob",
        install_hint=hint,
    )
    yield AzuriteServer(blob_endpoint=f"http://{LOOPBACK}:{port}/{AZURITE_ACCOUNT}")
    server_stop(process, log)


@pytest.fixture
def azure_container(azurite_server, settings):
    """A fresh container on Azurite; settings point the Azure tier at it. Yields the container name."""
    from azure.storage.blob import BlobServiceClient

    from cache_app.services.tiers import tiers_reset

    settings.AZURE_CONNECTION_STRING = azurite_server.connection_string
    container = f"test-{uuid.uuid4().hex[:16]}"
    BlobServiceClient.from_connection_string(azurite_server.connection_string).create_container(container)
    tiers_reset()
    yield container
    tiers_reset()


# --- Fault proxy -----------------------------------------------------------------------------------------

# Headers that describe one connection rather than the message; the proxy manages its own.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
}
BODY_CHUNK = 64 * 1024


class QuietHTTPServer(ThreadingHTTPServer):
    """A threaded server that stays silent when a client drops its connection: injected faults and
    SDK pools closing idle keep-alive sockets do that all the time. Other errors are still printed."""

    daemon_threads = True

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@dataclass
class _Rule:
    kind: str  # "fail", "truncate" or "delay"
    remaining: int
    method: str | None
    status: int = 503
    after_bytes: int = 0
    seconds: float = 0.0


class FaultProxy:
    """A threaded HTTP reverse proxy in front of ``upstream`` that fails, truncates or delays on demand.

    Rules apply, in the order they were added, to the next ``n`` requests (of ``method``, when given).
    Every request is counted on arrival, before any rule, so ``count`` is exact under concurrency.
    """

    def __init__(self, upstream: str):
        parts = upstream.split("://", 1)[-1].split("/", 1)[0]
        self._upstream_host, _, port = parts.partition(":")
        self._upstream_port = int(port or 80)
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._always_status: int | None = None
        self._requests: list[tuple[str, str]] = []
        # Delayed requests wait on this event, so reset() and stop() release them at once.
        self._wake = threading.Event()
        self._server = QuietHTTPServer((LOOPBACK, 0), self._handler_class())
        self.url = f"http://{LOOPBACK}:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="fault-proxy", daemon=True
        )
        self._thread.start()

    # Controls --------------------------------------------------------------------------------------------

    def fail_next(self, n: int, *, status: int = 503, method: str | None = None) -> None:
        self._add(_Rule("fail", n, method, status=status))

    def truncate_next(self, n: int, *, after_bytes: int, method: str | None = "GET") -> None:
        """Send the full headers (Content-Length included), then close after ``after_bytes`` body bytes."""
        self._add(_Rule("truncate", n, method, after_bytes=after_bytes))

    def delay_next(self, n: int, seconds: float, *, method: str | None = None) -> None:
        self._add(_Rule("delay", n, method, seconds=seconds))

    def always_fail(self, status: int = 500) -> None:
        with self._lock:
            self._always_status = status

    def reset(self) -> None:
        """Drop every rule and the counters, and release delayed requests."""
        with self._lock:
            self._rules.clear()
            self._always_status = None
            self._requests.clear()
            self._wake.set()
            self._wake = threading.Event()

    def count(self, method: str | None = None, path_contains: str | None = None) -> int:
        with self._lock:
            return sum(
                1
                for seen_method, path in self._requests
                if (method is None or seen_method == method) and (path_contains is None or path_contains in path)
            )

    def stop(self) -> None:
        self._wake.set()
        self._server.shutdown()
        self._server.server_close()

    # Internals -------------------------------------------------------------------------------------------

    def _add(self, rule: _Rule) -> None:
        with self._lock:
            self._rules.append(rule)

    def _arrived(self, method: str, path: str) -> tuple[_Rule | None, int | None, threading.Event]:
        """Count the request and take the rule that applies to it, atomically."""
        with self._lock:
            self._requests.append((method, path))
            wake = self._wake
            if self._always_status is not None:
                return None, self._always_status, wake
            for rule in self._rules:
                if rule.method is None or rule.method == method:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        self._rules.remove(rule)
                    return rule, None, wake
            return None, None, wake

    def _handler_class(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as SDKs expect of a real endpoint

            def log_message(self, format, *args):  # noqa: A002 - silence the per-request stderr log
                pass

            def _any(self):
                rule, always_status, wake = proxy._arrived(self.command, self.path)
                body = self._read_body()
                if always_status is not None:
                    return self._fail(always_status)
                if rule is not None and rule.kind == "fail":
                    return self._fail(rule.status)
                if rule is not None and rule.kind == "delay":
                    wake.wait(rule.seconds)
                try:
                    self._forward(body, truncate_after=rule.after_bytes if rule and rule.kind == "truncate" else None)
                except (BrokenPipeError, ConnectionResetError):
                    # The client gave up (its timeout fired during a delay): nothing left to answer.
                    self.close_connection = True

            do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = do_OPTIONS = _any

            def _read_body(self) -> bytes | None:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    parts = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass  # trailers
                            return b"".join(parts)
                        parts.append(self.rfile.read(size))
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else None

            def _fail(self, status: int) -> None:
                payload = f"fault proxy: injected {status}\n".encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)

            def _forward(self, body: bytes | None, *, truncate_after: int | None) -> None:
                upstream = http.client.HTTPConnection(proxy._upstream_host, proxy._upstream_port, timeout=120)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                    if body is not None:
                        headers["Content-Length"] = str(len(body))
                    # skip_host/accept_encoding: send the client's headers exactly, Host included.
                    upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                    for name, value in headers.items():
                        upstream.putheader(name, value)
                    upstream.endheaders(body)
                    response = upstream.getresponse()
                    self.send_response_only(response.status, response.reason)
                    length = response.getheader("Content-Length")
                    for name, value in response.getheaders():
                        if name.lower() not in HOP_BY_HOP:
                            self.send_header(name, value)
                    has_body = self.command != "HEAD" and response.status not in (204, 304)
                    chunked = has_body and length is None
                    if chunked:
                        self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    if not has_body:
                        return
                    sent = 0
                    while data := response.read(BODY_CHUNK):
                        if truncate_after is not None and sent + len(data) >= truncate_after:
                            self.wfile.write(data[: truncate_after - sent])
                            self.wfile.flush()
                            # Full Content-Length announced, fewer bytes sent, then the connection drops.
                            self.close_connection = True
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                        sent += len(data)
                    if chunked:
                        self.wfile.write(b"0\r\n\r\n")
                finally:
                    upstream.close()

        return Handler


@pytest.fixture
def fault_proxy_factory():
    """Start fault proxies in front of real servers: ``proxy = fault_proxy_factory(moto_server.endpoint_url)``.

    Point a tier at ``proxy.url`` (for Azure, ``azurite_server.connection_string_via(proxy.url +
    "/devstoreaccount1")``), then steer it with ``fail_next``, ``truncate_next``, ``delay_next``,
    ``always_fail`` and ``reset``, and read ``count(method=..., path_contains=...)``. Every proxy stops at
    the end of the test.
    """
    proxies: list[FaultProxy] = []

    def start(upstream: str) -> FaultProxy:
        proxy = FaultProxy(upstream)
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()
