"""A real server restart: gunicorn stopped and started again on the same cache folder serves the model from
disk, never from the origin again, and the start-up reconcile keeps the copy."""

import pytest
import requests
from rest_framework.authtoken.models import Token

from tests.fleet_node import node_start, node_wait_ready
from tests.processes import child_env

HOUSE_ROW = {"sqft": 1850.5, "bedrooms": 3, "age_years": 12, "city": "boston"}

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_after_a_server_restart_the_model_comes_from_disk(house_predictor_dir, django_user_model, settings, tmp_path):
    from predictions.services import model_publish

    version = model_publish(predictor_dir=house_predictor_dir, name="house-prices")
    token = Token.objects.create(user=django_user_model.objects.create_user("analyst")).key
    env = child_env(settings, MODEL_CACHE_DIR=str(tmp_path / "cache"), PORTAL_DATA_DIR=str(tmp_path / "data"))

    answers = []
    for run in ("first", "restarted"):
        log_dir = tmp_path / run
        log_dir.mkdir()
        node = node_start("node-a", env=env, log_dir=log_dir, threads=2)
        try:
            node_wait_ready(node)
            for _ in range(2):
                response = requests.post(
                    f"{node.url}/api/models/{version.model_id}/predict",
                    json={"features": HOUSE_ROW},
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=120,
                )
                assert response.status_code == 200, (response.text, node.log()[-3000:])
                body = response.json()
                answers.append((body["served_from"], body["from_cache"], body["prediction"]))
        finally:
            node.stop()

    tiers = [(served_from, from_cache) for served_from, from_cache, _ in answers]
    assert tiers == [("origin", False), ("memory", True), ("disk", True), ("memory", True)]
    assert len({prediction for *_, prediction in answers}) == 1  # the same model answered every time
