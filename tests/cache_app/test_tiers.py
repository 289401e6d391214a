"""Remote tiers against real servers: a folder, moto (S3) and Azurite, plus a fault proxy in front."""

import hashlib
import os
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler

import pytest

from cache_app.services.integrity import HashingWriter
from cache_app.services.tiers import (
    Location,
    ObjectMissing,
    TierError,
    tier_for,
    tiers_reset,
)
from tests.servers import QuietHTTPServer

MiB = 1024 * 1024
# Several chunks of the streamed GET, so a truncation in the middle is resumed with a ranged GET.
PAYLOAD_BYTES = 20 * MiB + 12345
# A persistent failure must end within the deadline; this is the scheduling slack allowed on top.
SLACK_SECONDS = 1.5


@pytest.fixture(scope="module")
def payload(tmp_path_factory):
    path = tmp_path_factory.mktemp("payload") / "model.zip"
    path.write_bytes(os.urandom(PAYLOAD_BYTES))
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(params=["file", "s3", "azure"])
def store(request, tmp_path):
    """A base Location on each real backend."""
    if request.param == "file":
        return Location.parse((tmp_path / "store").as_uri())
    if request.param == "s3":
        return Location(scheme="s3", container=request.getfixturevalue("s3_bucket"), key="models")
    return Location(scheme="azure", container=request.getfixturevalue("azure_container"), key="models")


def download(location, target, *, seconds=60.0):
    """Download into a HashingWriter; return (sha256, bytes on disk)."""
    writer = HashingWriter(target)
    try:
        tier_for(location).download(location, writer, deadline=time.monotonic() + seconds)
        digest = writer.hexdigest()
    finally:
        writer.close()
    return digest, target.stat().st_size


def test_round_trip(store, payload, tmp_path):
    source, sha256 = payload
    location = store.child("a/b/model.zip")
    tier = tier_for(location)

    tier.upload(location, source)

    assert tier.size(location) == PAYLOAD_BYTES
    assert download(location, tmp_path / "copy") == (sha256, PAYLOAD_BYTES)
    tier.delete(location)
    with pytest.raises(ObjectMissing):
        tier.size(location)
    tier.delete(location)  # absent: not an error


def test_missing_object(store, tmp_path):
    location = store.child("never/uploaded.zip")
    with pytest.raises(ObjectMissing):
        download(location, tmp_path / "copy")
    with pytest.raises(ObjectMissing):
        tier_for(location).size(location)


def test_instances_are_shared_per_container_and_reset(tmp_path):
    first = tier_for(Location.parse("s3://bucket-one/a"))
    assert tier_for(Location.parse("s3://bucket-one/b")) is first
    assert tier_for(Location.parse("s3://bucket-two/a")) is not first
    tiers_reset()
    assert tier_for(Location.parse("s3://bucket-one/a")) is not first


# --- S3 through the fault proxy ----------------------------------------------------------------------------


@pytest.fixture
def s3_behind_proxy(s3_bucket, moto_server, fault_proxy_factory, payload, settings):
    """An object uploaded straight to moto, then the S3 tier pointed at a fault proxy in front of it."""
    location = Location(scheme="s3", container=s3_bucket, key="models/model.zip")
    tier_for(location).upload(location, payload[0])
    proxy = fault_proxy_factory(moto_server.endpoint_url)
    settings.AWS_S3_ENDPOINT_URL = proxy.url
    settings.MODEL_FETCH_RETRIES = 3
    tiers_reset()
    return location, proxy


def test_s3_retries_a_503_within_the_deadline(s3_behind_proxy, payload, tmp_path):
    location, proxy = s3_behind_proxy
    proxy.fail_next(2, status=503)

    assert download(location, tmp_path / "copy", seconds=30) == (payload[1], PAYLOAD_BYTES)
    assert proxy.count(path_contains="model.zip") >= 2 + 1  # 2 failures, then the streamed GET


def test_s3_persistent_500_fails_within_the_deadline(s3_behind_proxy, tmp_path):
    location, proxy = s3_behind_proxy
    proxy.always_fail(500)
    started = time.monotonic()

    with pytest.raises(TierError) as raised:
        download(location, tmp_path / "copy", seconds=8)

    assert time.monotonic() - started < 8 + SLACK_SECONDS
    assert not isinstance(raised.value, ObjectMissing)
    assert proxy.count() >= 2  # it did retry


def test_s3_truncated_body_is_retried_or_refused_never_short(s3_behind_proxy, payload, tmp_path):
    location, proxy = s3_behind_proxy
    proxy.truncate_next(1, after_bytes=MiB)

    try:
        result = download(location, tmp_path / "copy", seconds=30)
    except TierError:
        return
    # A stream that ended early is opened again where it stopped: the result must then be whole and exact.
    assert result == (payload[1], PAYLOAD_BYTES)
    assert proxy.count(method="GET") >= 2


def test_s3_always_truncated_raises(s3_behind_proxy, tmp_path):
    location, proxy = s3_behind_proxy
    proxy.truncate_next(1000, after_bytes=MiB)

    with pytest.raises(TierError):
        download(location, tmp_path / "copy", seconds=30)


def test_s3_delay_beyond_deadline_raises_on_time(s3_behind_proxy, tmp_path):
    location, proxy = s3_behind_proxy
    proxy.delay_next(100, 30)
    started = time.monotonic()

    with pytest.raises(TierError):
        download(location, tmp_path / "copy", seconds=2)

    assert time.monotonic() - started < 2 + SLACK_SECONDS


def test_s3_downloads_share_a_client_per_timeout_step(s3_behind_proxy, payload, tmp_path):
    """Building a client costs more than a small model's download: downloads share one, whose read timeout
    still fits the time each has left."""
    location, _ = s3_behind_proxy
    tier = tier_for(location)
    far = tier._download_client(deadline=time.monotonic() + 600)
    assert tier._download_client(deadline=time.monotonic() + 90) is far
    assert far.meta.config.read_timeout == 60
    near = tier._download_client(deadline=time.monotonic() + 3)
    assert near is not far and near.meta.config.read_timeout <= 3
    # Concurrent downloads on the shared clients each get their own bytes.
    results = {}

    def fetch(index):
        results[index] = download(location, tmp_path / f"copy-{index}")

    threads = [threading.Thread(target=fetch, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(results.values()) == {(payload[1], PAYLOAD_BYTES)}


# --- Azure through the fault proxy -------------------------------------------------------------------------


@pytest.fixture
def azure_behind_proxy(azure_container, azurite_server, fault_proxy_factory, payload, settings):
    location = Location(scheme="azure", container=azure_container, key="models/model.zip")
    tier_for(location).upload(location, payload[0])
    proxy = fault_proxy_factory(azurite_server.blob_endpoint)
    settings.AZURE_CONNECTION_STRING = azurite_server.connection_string_via(f"{proxy.url}/devstoreaccount1")
    settings.MODEL_FETCH_RETRIES = 3
    tiers_reset()
    return location, proxy


def test_azure_retries_a_503_within_the_deadline(azure_behind_proxy, payload, tmp_path):
    location, proxy = azure_behind_proxy
    proxy.fail_next(1, status=503)

    assert download(location, tmp_path / "copy", seconds=30) == (payload[1], PAYLOAD_BYTES)
    assert proxy.count(method="GET", path_contains="model.zip") >= 1 + 1  # the failure, then the stream


def test_azure_persistent_500_fails_within_the_deadline(azure_behind_proxy, tmp_path):
    location, proxy = azure_behind_proxy
    proxy.always_fail(500)
    started = time.monotonic()

    with pytest.raises(TierError) as raised:
        download(location, tmp_path / "copy", seconds=6)

    assert time.monotonic() - started < 6 + SLACK_SECONDS
    assert not isinstance(raised.value, ObjectMissing)
    assert proxy.count() >= 2


def test_azure_truncated_body_is_retried_or_refused_never_short(azure_behind_proxy, payload, tmp_path):
    location, proxy = azure_behind_proxy
    proxy.truncate_next(1, after_bytes=MiB)

    try:
        result = download(location, tmp_path / "copy", seconds=30)
    except TierError:
        return
    assert result == (payload[1], PAYLOAD_BYTES)


def test_azure_delay_beyond_deadline_raises_on_time(azure_behind_proxy, tmp_path):
    location, proxy = azure_behind_proxy
    proxy.delay_next(100, 30)
    started = time.monotonic()

    with pytest.raises(TierError):
        download(location, tmp_path / "copy", seconds=2)

    assert time.monotonic() - started < 2 + SLACK_SECONDS


# --- HTTPS origin --------------------------------------------------------------------------------------------


@pytest.fixture
def http_origin(payload, tmp_path):
    """A plain static file server on loopback holding the payload at /models/model.zip."""
    root = tmp_path / "www"
    (root / "models").mkdir(parents=True)
    os.link(payload[0], root / "models" / "model.zip")
    handler = partial(SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *args: None
    server = QuietHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_https_tier_downloads_and_is_read_only(http_origin, payload, tmp_path):
    location = Location.parse(f"http://{http_origin}/models/model.zip")
    tier = tier_for(location)

    assert tier.size(location) == PAYLOAD_BYTES
    assert download(location, tmp_path / "copy") == (payload[1], PAYLOAD_BYTES)
    with pytest.raises(ObjectMissing):
        download(location.child("missing"), tmp_path / "missing")
    with pytest.raises(TierError):
        tier.upload(location, payload[0])
    with pytest.raises(TierError):
        tier.delete(location)


def test_https_truncated_body_raises(http_origin, fault_proxy_factory, tmp_path):
    proxy = fault_proxy_factory(f"http://{http_origin}")
    proxy.truncate_next(1, after_bytes=MiB)
    location = Location.parse(f"{proxy.url}/models/model.zip")

    with pytest.raises(TierError):
        download(location, tmp_path / "copy")
