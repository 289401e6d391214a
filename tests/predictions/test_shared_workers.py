"""Pinned models loaded once in the gunicorn master are served by every worker it forks, and those workers
still predict large batches with OpenMP thread teams without hanging (GNU OpenMP is not fork-safe once the
parent ran a team: the master must load without one)."""

import threading

import psutil
import pytest
import requests
from rest_framework.authtoken.models import Token

from predictions import demo
from tests.fleet_node import BIN, _spawn, node_wait_ready
from tests.processes import child_env
from tests.servers import LOOPBACK, free_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BATCH_ROWS = 2000  # far past threads.SEQUENTIAL_MAX_ROWS: predicted with a thread team
CLIENTS = 6


def _gunicorn(settings, tmp_path, **env):
    port = free_port()
    env = child_env(settings, PORTAL_DATA_DIR=str(tmp_path / "data"), PORTAL_NODE_NAME="node-a",
                    PORTAL_BIND=f"{LOOPBACK}:{port}", DJANGO_SETTINGS_MODULE="portal.settings",
                    PORTAL_PRELOAD_AUTOGLUON="1", **env)
    child = _spawn("gunicorn", [str(BIN / "gunicorn"), "-c", "portal/gunicorn.conf.py", "portal.wsgi"], env=env,
                   log_dir=tmp_path)
    child.url = f"http://{LOOPBACK}:{port}"
    return child


def test_workers_forked_after_a_pinned_warm_share_it_and_predict_large_batches(
    house_predictor_dir, django_user_model, settings, tmp_path
):
    from autogluon.tabular import TabularPredictor

    from cache_app.services.maintenance import artifact_pin
    from predictions.services import model_publish

    version = model_publish(predictor_dir=house_predictor_dir, name="house-prices")
    artifact_pin(artifact=version.artifact, pinned=True)
    auth = {"Authorization": f"Bearer {Token.objects.create(user=django_user_model.objects.create_user('a')).key}",
            "Connection": "close"}  # a connection per request, so both workers take requests
    rows = demo.house_prices(BATCH_ROWS, seed=5).drop(columns=["price"])
    expected = TabularPredictor.load(str(house_predictor_dir), verbosity=0).predict(rows).tolist()
    instances = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in rows.to_dict("records")]

    server = _gunicorn(settings, tmp_path, WEB_CONCURRENCY="2", PORTAL_THREADS="4",
                       MODEL_WARM_PINNED_ON_START="true", PREDICT_THREADS_PER_WORKER="2")
    try:
        node_wait_ready(server)
        assert "warmed pinned house-prices v1" in server.log()
        workers = psutil.Process(server.process.pid).children()
        assert len(workers) == 2
        cpu_before = {w.pid: sum(w.cpu_times()[:2]) for w in workers}

        answers, failures = [], []

        def client():
            try:
                for _ in range(3):
                    response = requests.post(f"{server.url}/api/models/{version.model_id}/predict",
                                             json={"instances": instances}, headers=auth, timeout=120)
                    answers.append((response.status_code, response.json()))
            except Exception as error:  # noqa: BLE001 - a hang shows as a timeout here
                failures.append(error)

        clients = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        assert not failures, (failures, server.log()[-3000:])
        for status, body in answers:
            assert status == 200, body
            assert body["predictions"] == expected
            # No worker loaded the model itself: it came with the fork.
            assert body["served_from"] == "memory"
        assert len(answers) == CLIENTS * 3
        # Both workers predicted (each spent CPU on the batches: an idle worker spends a few hundredths of a
        # second on its background threads), and neither was replaced after a hang.
        spent = [sum(w.cpu_times()[:2]) - cpu_before[w.pid] for w in workers]
        assert min(spent) > 0.1, spent
        assert {w.pid for w in psutil.Process(server.process.pid).children()} == set(cpu_before)
    finally:
        server.stop()
