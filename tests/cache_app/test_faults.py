"""Remote failures over real HTTP: a fault proxy in front of moto truncates, delays and fails requests."""

import threading
import time
from pathlib import Path

import pytest

from cache_app.models import CacheEntry, Tier
from cache_app.services import runtime
from cache_app.services.eviction import TEMP_FOLDER
from cache_app.services.fetch import FetchFailed, artifact_fetch
from cache_app.services.serving import artifact_serve
from tests.cache_app.test_fetch import same_tree


@pytest.fixture
def proxied_s3(s3_bucket, moto_server, fault_proxy_factory, settings):
    """S3 reached through a fault proxy: returns (bucket, proxy)."""
    proxy = fault_proxy_factory(moto_server.endpoint_url)
    settings.AWS_S3_ENDPOINT_URL = proxy.url
    settings.MODEL_FETCH_RETRIES = 3
    runtime.reset()
    return s3_bucket, proxy


def test_503_then_success(make_artifact, proxied_s3):
    bucket, proxy = proxied_s3
    artifact = make_artifact(origin=f"s3://{bucket}/origin")
    proxy.reset()
    proxy.fail_next(2, status=503, method="GET")
    fetched = artifact_fetch(artifact=artifact)
    assert fetched.tier == Tier.ORIGIN and same_tree(fetched.path, artifact.source_dir)
    assert proxy.count("GET", path_contains=artifact.sha256) == 3


def test_a_truncated_transfer_never_lands_a_short_copy(make_artifact, proxied_s3):
    bucket, proxy = proxied_s3
    artifact = make_artifact(origin=f"s3://{bucket}/origin", size=2 * 1024 * 1024)
    proxy.reset()
    proxy.truncate_next(1, after_bytes=100_000)
    # boto3 retries a broken body; either way what lands is the whole, verified archive.
    fetched = artifact_fetch(artifact=artifact)
    assert same_tree(fetched.path, artifact.source_dir)
    assert proxy.count("GET", path_contains=artifact.sha256) >= 2


def test_a_persistent_failure_fails_within_the_deadline(make_artifact, proxied_s3, settings):
    bucket, proxy = proxied_s3
    artifact = make_artifact(origin=f"s3://{bucket}/origin")
    settings.MODEL_FETCH_DEADLINE_SECONDS = 4.0
    proxy.always_fail(500)
    began = time.monotonic()
    with pytest.raises(FetchFailed, match="origin: "):
        artifact_fetch(artifact=artifact)
    assert time.monotonic() - began < 4.0 + 3.0
    assert not CacheEntry.objects.filter(artifact=artifact, state=CacheEntry.State.READY).exists()
    # Nothing of the attempts is left: no temporary, no extraction still waiting for bytes.
    assert list((Path(settings.MODEL_CACHE_DIR) / TEMP_FOLDER).iterdir()) == []
    assert not [thread for thread in threading.enumerate() if thread.name == "streamed-extraction"]


def test_a_stalled_origin_is_abandoned_at_the_deadline(make_artifact, proxied_s3, settings):
    bucket, proxy = proxied_s3
    artifact = make_artifact(origin=f"s3://{bucket}/origin")
    settings.MODEL_FETCH_DEADLINE_SECONDS = 2.0
    proxy.reset()
    proxy.delay_next(10, 30.0, method="GET")
    began = time.monotonic()
    with pytest.raises(FetchFailed):
        artifact_fetch(artifact=artifact)
    assert time.monotonic() - began < 2.0 + 3.0


def test_offline_remote_tiers_still_serve_the_verified_cached_copy(make_artifact, proxied_s3):
    bucket, proxy = proxied_s3
    artifact = make_artifact(origin=f"s3://{bucket}/origin")
    artifact_fetch(artifact=artifact)
    proxy.reset()
    proxy.always_fail(503)
    assert artifact_fetch(artifact=artifact).tier == Tier.DISK
    served = artifact_serve(artifact=artifact, loader=lambda path: (sorted(p.name for p in path.iterdir()), 10))
    assert served.tier == Tier.DISK and "part-0.bin" in served.obj
    assert proxy.count() == 0


def test_a_failure_is_counted(make_artifact, proxied_s3, settings):
    from cache_app.selectors import tier_counts
    from cache_app.services.stats import counters

    bucket, proxy = proxied_s3
    artifact = make_artifact(origin=f"s3://{bucket}/origin")
    settings.MODEL_FETCH_DEADLINE_SECONDS = 3.0
    proxy.always_fail(500)
    with pytest.raises(FetchFailed):
        artifact_fetch(artifact=artifact)
    counters().flush()  # counted in this process's buffer first, as every count is
    assert tier_counts(node="test-node")[Tier.ORIGIN]["errors"] == 1
