"""Promotion without a cold start, shown on a real gunicorn with two worker processes: after an alias moves,
the first request each worker answers comes from its memory."""

import re
import time

import psutil
import pytest
import requests
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token

from predictions.models import ServingProcess
from tests.fleet_node import node_start, node_wait_ready
from tests.predictions.conftest import HOUSE
from tests.processes import child_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# gunicorn's access log with the worker's pid and the request's User-Agent, which names each probe.
ACCESS_LOG = "--access-logformat 'served %(p)s %(a)s %(s)s'"


def _workers_polling(node, *, count: int) -> set[int]:
    """The worker pids, once each has registered as a serving process (its poller runs)."""
    give_up = time.monotonic() + 90
    while time.monotonic() < give_up:
        workers = {child.pid for child in psutil.Process(node.process.pid).children()}
        polling = set(ServingProcess.objects.filter(node="node-a").values_list("pid", flat=True))
        if len(workers) == count and workers <= polling:
            return workers
        time.sleep(0.2)
    raise AssertionError(f"workers did not register:\n{node.log()[-3000:]}")


def test_after_a_promotion_the_first_request_in_every_worker_is_a_memory_hit(
    house_predictor_dir, django_user_model, settings, tmp_path
):
    from predictions.services import model_publish

    model_publish(predictor_dir=house_predictor_dir, name="house-prices")
    model_publish(predictor_dir=house_predictor_dir, name="house-prices", format="tar.gz")
    user = django_user_model.objects.create_user("release-manager")
    user.user_permissions.add(Permission.objects.get(codename="promote_model"))
    headers = {"Authorization": f"Bearer {Token.objects.create(user=user).key}"}
    env = child_env(settings, MODEL_CACHE_DIR=str(tmp_path / "cache"), PORTAL_DATA_DIR=str(tmp_path / "data"),
                    PROMOTION_POLL_SECONDS="0.2", GUNICORN_CMD_ARGS=ACCESS_LOG)
    node = node_start("node-a", env=env, log_dir=tmp_path, threads=2, workers=2)
    try:
        node_wait_ready(node)
        workers = _workers_polling(node, count=2)

        moved = requests.put(f"{node.url}/api/models/house-prices/aliases/production", json={"version": 1},
                             headers=headers, timeout=300)
        assert moved.status_code == 200, (moved.text, node.log()[-3000:])
        progress = moved.json()["progress"]
        assert {row["process"] for row in progress["processes"] if row["state"] == "ok"} >= {
            f"node-a:{pid}" for pid in workers}

        answers = {}
        for probe in range(200):
            # A new connection per request, so either worker may take it.
            response = requests.post(f"{node.url}/api/models/house-prices/predict?alias=production",
                                     json={"features": HOUSE}, timeout=120,
                                     headers={**headers, "User-Agent": f"probe-{probe}", "Connection": "close"})
            assert response.status_code == 200, response.text
            answers[f"probe-{probe}"] = response.json()
            served = {probe: pid for pid, probe in re.findall(r"served <?(\d+)>? (probe-\d+) 200", node.log())}
            if {int(pid) for pid in served.values()} >= workers and len(served) == len(answers):
                break
    finally:
        node.stop()

    served = re.findall(r"served <?(\d+)>? (probe-\d+) 200", node.log())
    first = {}
    for pid, probe in sorted(served, key=lambda pair: int(pair[1].split("-")[1])):
        first.setdefault(int(pid), probe)
    assert set(first) == workers, "both workers answered"
    for pid, probe in first.items():
        assert answers[probe]["version"] == 1
        assert (pid, answers[probe]["served_from"]) == (pid, "memory")
