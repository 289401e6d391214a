"""A fleet on one machine: two real gunicorn nodes and a real Celery worker sharing the test database,
Redis, an S3 shared tier and an S3 origin (moto behind a counting proxy). No mocks.

Redis comes from ``REDIS_URL`` or redis://127.0.0.1:6379/15; without it these tests skip (CI fails them).
"""

import io
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from threading import Barrier

import psutil
import pytest
import requests
from django.db import OperationalError, connection
from rest_framework.authtoken.models import Token

from cache_app.models import FetchRecord, Tier
from cache_app.services import runtime
from predictions import demo
from predictions.jobs import dispatch
from predictions.jobs import selectors as job_selectors
from predictions.models import BatchChunk, BatchJob
from tests.fleet_node import (
    node_start,
    node_wait_ready,
    redis_unreachable,
    redis_url_for_tests,
    worker_pool_children,
    worker_start,
    worker_wait_ready,
)
from tests.processes import child_env

HOUSE_ROW = {"sqft": 1850.5, "bedrooms": 3, "age_years": 12, "city": "boston"}
REQUESTS_PER_NODE = 16

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_url(settings):
    url = redis_url_for_tests()
    problem = redis_unreachable(url)
    if problem:
        pytest.skip(f"Redis is not reachable at {url} ({problem}); start redis-server or set REDIS_URL")
    settings.REDIS_URL = url
    runtime.reset()
    yield url
    runtime.reset()


@pytest.fixture
def admin_token(django_user_model):
    admin = django_user_model.objects.create_superuser("ops", email="ops@example.com", password="pw-ops-123")
    return Token.objects.create(user=admin).key


@pytest.fixture
def children():
    started = []
    yield started
    for child in reversed(started):
        child.stop()


def _bucket(endpoint_url: str) -> str:
    import boto3

    name = f"shared-{uuid.uuid4().hex[:12]}"
    boto3.client(
        "s3", endpoint_url=endpoint_url, aws_access_key_id="testing", aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=name)
    return name


def test_two_nodes_fetch_once_per_fleet_and_obey_each_others_clears(
    redis_url, s3_bucket, moto_server, fault_proxy_factory, house_predictor_dir, admin_token, children, settings, tmp_path
):
    from cache_app.services.tiers import tiers_reset
    from predictions.services import model_publish

    origin_bucket = s3_bucket
    shared_bucket = _bucket(moto_server.endpoint_url)
    proxy = fault_proxy_factory(moto_server.endpoint_url)
    settings.AWS_S3_ENDPOINT_URL = proxy.url  # both remote tiers behind the counting proxy
    settings.MODEL_ORIGIN_URI = f"s3://{origin_bucket}/origin"
    settings.MODEL_SHARED_URI = f"s3://{shared_bucket}/shared"
    tiers_reset()
    version = model_publish(predictor_dir=house_predictor_dir, name="house-prices")
    model_id = version.model_id

    base_env = child_env(settings)
    base_env.update(PORTAL_PRELOAD_AUTOGLUON="1", PORTAL_DATA_DIR=str(tmp_path / "data"))
    nodes = {}
    for name in ("node-a", "node-b"):
        nodes[name] = node_start(
            name, env={**base_env, "MODEL_CACHE_DIR": str(tmp_path / name)}, log_dir=tmp_path, threads=REQUESTS_PER_NODE
        )
        children.append(nodes[name])
    for node in nodes.values():
        node_wait_ready(node)
    proxy.reset()
    auth = {"Authorization": f"Bearer {admin_token}"}

    # (a) 2 nodes x 16 concurrent cold requests: one origin download for the whole fleet.
    barrier = Barrier(2 * REQUESTS_PER_NODE)

    def predict(node_name: str) -> tuple[str, int, dict]:
        barrier.wait()
        response = requests.post(
            f"{nodes[node_name].url}/api/models/{model_id}/predict", json={"features": HOUSE_ROW}, headers=auth, timeout=180
        )
        return node_name, response.status_code, response.json()

    with ThreadPoolExecutor(2 * REQUESTS_PER_NODE) as pool:
        answers = list(pool.map(predict, ["node-a", "node-b"] * REQUESTS_PER_NODE))
    assert all(status == 200 for _, status, _ in answers), answers
    assert len({body["prediction"] for _, _, body in answers}) == 1
    tiers = {name: Counter(body["served_from"] for node, _, body in answers if node == name) for name in nodes}
    assert proxy.count("GET", path_contains=f"/{origin_bucket}/") == 1, tiers
    first = {name: next(t for t in ("origin", "shared", "disk") if counts[t]) for name, counts in tiers.items()}
    fetcher = next(name for name, tier in first.items() if tier == "origin")
    follower = next(name for name in nodes if name != fetcher)
    # The follower waited on the Redis lock, then read what the fetcher wrote through to the shared tier.
    assert first[follower] in ("shared", "disk"), tiers
    assert tiers[fetcher] == Counter({"origin": 1, "memory": REQUESTS_PER_NODE - 1}), tiers
    assert tiers[follower][Tier.MEMORY] == REQUESTS_PER_NODE - 1, tiers
    origin_fetch = FetchRecord.objects.get(tier=Tier.ORIGIN, error="")
    assert origin_fetch.node == fetcher
    follower_fetch = FetchRecord.objects.filter(node=follower, error="").exclude(tier=Tier.ORIGIN).first()
    if follower_fetch is not None:  # a disk hit records no fetch
        assert follower_fetch.created_at >= origin_fetch.created_at

    # (b) A clear on one node reaches the other's memory tier at once (Redis pub/sub), with no request there.
    def memory_models(node_name: str) -> int:
        stats = requests.get(f"{nodes[node_name].url}/api/models/cache/stats", headers=auth, timeout=30).json()["cache_stats"]
        assert stats["redis"]["reachable"] is True, stats["redis"]
        return stats["tiers"]["memory"]["models"]

    assert memory_models("node-b") == 1
    cleared = requests.delete(f"{nodes['node-a'].url}/api/models/cache?model_id={model_id}", headers=auth, timeout=30)
    assert cleared.status_code == 200, cleared.text
    give_up = time.monotonic() + 5.0
    while memory_models("node-b") != 0:
        assert time.monotonic() < give_up, "node-b kept the cleared model in memory:\n" + nodes["node-b"].log()[-3000:]
        time.sleep(0.1)
    again = requests.post(
        f"{nodes['node-b'].url}/api/models/{model_id}/predict", json={"features": HOUSE_ROW}, headers=auth, timeout=120
    )
    assert again.status_code == 200
    assert again.json()["served_from"] in ("shared", "disk")  # not memory: dropped by pub/sub and generation
    assert proxy.count("GET", path_contains=f"/{origin_bucket}/") == 1  # the shared copy was kept


def _wait_quiet(frozen):
    """Return once a process sent SIGSTOP has stopped and nothing it sent is still running on the database.

    A frozen client sends nothing more, but a database server finishes what it already received: a COMMIT
    sent just before the freeze lands after it. Reading the chunk before then would see it unstored.
    """
    give_up = time.monotonic() + 10
    while frozen.status() != psutil.STATUS_STOPPED:
        assert time.monotonic() < give_up, frozen.status()
        time.sleep(0.005)
    if connection.vendor != "postgresql":  # SQLite commits inside the client: stopped means settled
        return
    db_port = int(connection.settings_dict["PORT"] or 5432)
    ports = [c.laddr.port for c in frozen.net_connections(kind="tcp") if c.raddr and c.raddr.port == db_port]
    assert ports, "a worker holding a chunk has no database connection"
    with connection.cursor() as cursor:
        while True:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE client_port = ANY(%s) AND state = 'active'", [ports]
            )
            if cursor.fetchone()[0] == 0:
                return
            assert time.monotonic() < give_up, "a frozen worker's statement never finished"
            time.sleep(0.005)


def test_a_worker_killed_mid_job_loses_and_duplicates_no_row(
    redis_url, house_predictor_dir, django_user_model, children, settings, tmp_path
):
    import pandas as pd

    from predictions.services import model_publish

    settings.PREDICT_JOB_CHUNK_ROWS = 20_000
    settings.PREDICT_JOB_QUEUE = f"test-jobs-{uuid.uuid4().hex[:12]}"  # runs sharing this Redis stay apart
    version = model_publish(predictor_dir=house_predictor_dir, name="house-prices")
    user = django_user_model.objects.create_user("analyst")
    worker = worker_start(
        "worker-1", env=child_env(settings), log_dir=tmp_path, queue=settings.PREDICT_JOB_QUEUE, concurrency=2
    )
    children.append(worker)
    worker_wait_ready(worker)
    pool = worker_pool_children(worker)
    assert len(pool) == 2, pool

    frame = demo.house_prices(200_000, seed=11)
    frame.insert(0, "price_seen", frame.pop("price"))  # any column order works; the label is echoed back
    frame = frame.rename(columns={"price_seen": "price"})
    data = frame.to_csv(index=False).encode()
    job = dispatch.job_submit(version=version, data=data, filename="big.csv", user=user)
    assert (job.rows_total, job.chunks_total) == (200_000, 10)

    # Midway: once a chunk is stored, kill (SIGKILL, by pid) a pool process that is busy predicting the next.
    give_up = time.monotonic() + 120
    while not BatchChunk.objects.filter(job=job, done=True).exists():
        assert time.monotonic() < give_up, worker.log()[-4000:]
        job.refresh_from_db()
        assert job.status != BatchJob.Status.FAILED, job.error
        time.sleep(0.05)
    # Each attempt records "node:pid". Freeze a pool process (SIGSTOP) and look: if a chunk it started is not
    # stored, it is killed holding that chunk; otherwise it stored it in the meantime, so let it go and look again.
    pids = {p.pid: p for p in pool}
    victim = held = None
    while victim is None:
        assert time.monotonic() < give_up, "no chunk in flight: " + worker.log()[-4000:]
        job.refresh_from_db()
        assert job.status == BatchJob.Status.RUNNING, (job.status, "finished before a process could be killed")
        for chunk in BatchChunk.objects.filter(job=job, done=False, attempts=1).exclude(worker=""):
            candidate = pids.get(int(chunk.worker.rsplit(":", 1)[1]))
            if candidate is None:
                continue
            candidate.suspend()
            try:
                _wait_quiet(candidate)
                chunk.refresh_from_db()
            except OperationalError:  # frozen while committing, holding SQLite's write lock: try again
                candidate.resume()
                continue
            if not chunk.done:
                victim, held = candidate, chunk
                break
            candidate.resume()
        time.sleep(0.02)
    victim.kill()
    victim.wait(timeout=10)

    job = dispatch.job_wait(job=job, timeout=180)
    assert job.status == BatchJob.Status.SUCCEEDED, (job.error, worker.log()[-4000:])
    assert (job.rows_done, job.chunks_done) == (200_000, 10)
    # The process died holding a chunk (not between two): Celery saw the task lost and put it back.
    assert "WorkerLostError" in worker.log(), worker.log()[-4000:]

    result = pd.read_csv(io.StringIO("".join(job_selectors.job_result_lines(job=job))), dtype=str, keep_default_na=False)
    expected = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)
    assert len(result) == 200_000
    assert list(result.columns) == [*expected.columns, "prediction", "warnings"]
    # Every input row exactly once, in the input's order: the input columns round-trip unchanged.
    pd.testing.assert_frame_equal(result[list(expected.columns)], expected)
    assert result["prediction"].astype(float).notna().all()
    held.refresh_from_db()
    assert held.attempts == 2 and held.done, (held.attempts, held.worker)  # delivered again, stored once
    assert int(held.worker.rsplit(":", 1)[1]) != victim.pid
    assert set(BatchChunk.objects.filter(job=job).exclude(pk=held.pk).values_list("attempts", flat=True)) == {1}


def test_a_celery_chunk_is_retried_while_the_model_is_unavailable_then_succeeds(
    redis_url, house_predictor_dir, django_user_model, children, settings, tmp_path
):
    import shutil
    from pathlib import Path

    from cache_app.services.tiers.base import Location
    from predictions.services import model_publish

    settings.PREDICT_JOB_QUEUE = f"test-jobs-{uuid.uuid4().hex[:12]}"
    version = model_publish(predictor_dir=house_predictor_dir, name="house-prices")
    archive = Path(Location.parse(version.artifact.source_uri).key)
    aside = tmp_path / "aside.zip"
    shutil.move(archive, aside)  # the origin is briefly without the model
    worker = worker_start(
        "worker-1",
        env=child_env(settings, PREDICT_JOB_RETRIES="8", PREDICT_JOB_RETRY_SECONDS="0.5",
                      MODEL_FETCH_FAILURE_MEMORY_SECONDS="0"),
        log_dir=tmp_path, queue=settings.PREDICT_JOB_QUEUE, concurrency=1,
    )
    children.append(worker)
    worker_wait_ready(worker)
    data = demo.house_prices(30, seed=2).to_csv(index=False).encode()
    job = dispatch.job_submit(version=version, data=data, user=django_user_model.objects.create_user("analyst"))

    give_up = time.monotonic() + 120
    while BatchChunk.objects.get(job=job).attempts < 2:
        assert time.monotonic() < give_up, worker.log()[-4000:]
        time.sleep(0.05)
    shutil.move(aside, archive)
    job = dispatch.job_wait(job=job, timeout=120)
    assert job.status == BatchJob.Status.SUCCEEDED, (job.error, worker.log()[-4000:])
    assert BatchChunk.objects.get(job=job).attempts >= 2 and job.rows_done == 30  # the first attempt failed
