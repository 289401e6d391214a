"""Concurrent requests for one cold artifact cause one remote GET: threads, worker processes, and nodes."""

import json
import subprocess
import sys
from collections import Counter

import pytest

from cache_app.models import Artifact, Tier
from cache_app.services import runtime
from cache_app.services.fetch import artifact_fetch
from tests.processes import REPO_ROOT, child_env, in_threads


def run_fetchers(artifact, *, processes: int, threads: int, env: dict) -> list[str]:
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.cache_app.fetch_worker", str(artifact.pk), str(threads)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    tiers = []
    for child in children:
        out, err = child.communicate(timeout=300)
        assert child.returncode == 0, err
        tiers += json.loads(out.strip().splitlines()[-1])
    return tiers


@pytest.fixture
def proxied_origin(s3_bucket, moto_server, fault_proxy_factory, settings):
    proxy = fault_proxy_factory(moto_server.endpoint_url)
    settings.AWS_S3_ENDPOINT_URL = proxy.url
    runtime.reset()
    return s3_bucket, proxy


@pytest.mark.django_db(transaction=True)
def test_32_threads_cause_one_remote_get(make_artifact, proxied_origin):
    bucket, proxy = proxied_origin
    artifact = make_artifact(origin=f"s3://{bucket}/origin", size=1024 * 1024)
    proxy.reset()
    proxy.delay_next(1, 0.5, method="GET")  # keep the first download in flight while the others arrive
    tiers = in_threads(32, lambda: artifact_fetch(artifact=Artifact.objects.get(pk=artifact.pk)).tier)
    assert Counter(tiers) == {Tier.ORIGIN: 1, Tier.DISK: 31}
    assert proxy.count("GET", path_contains=artifact.sha256) == 1


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_4_processes_of_8_threads_cause_one_remote_get(make_artifact, proxied_origin, settings):
    bucket, proxy = proxied_origin
    artifact = make_artifact(origin=f"s3://{bucket}/origin", size=1024 * 1024)
    proxy.reset()
    proxy.delay_next(1, 1.0, method="GET")
    tiers = run_fetchers(artifact, processes=4, threads=8, env=child_env(settings))
    assert Counter(tiers) == {Tier.ORIGIN: 1, Tier.DISK: 31}, tiers
    assert proxy.count("GET", path_contains=artifact.sha256) == 1
