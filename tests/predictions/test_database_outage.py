"""A model already in memory keeps answering through a database outage, and no prediction log is lost.

A real gunicorn node on the test database (SQLite, or PostgreSQL when DATABASE_URL names it) loses its
database for 35 s (tests/db_outage.py: a cut TCP relay, or a removed link to the SQLite folder). Requests
for the model in memory still get its answer; those that need the database get a 503 naming it, never a
500; the logs of every prediction are written once the database is back, and on a graceful stop.
"""

import time

import pytest
import requests
from django.db import connection
from rest_framework.authtoken.models import Token

from predictions.models import PredictionLog
from tests.db_outage import DatabaseOutage
from tests.fleet_node import node_start, node_wait_ready
from tests.predictions.conftest import HOUSE
from tests.processes import child_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = 35


def _node(settings, tmp_path, database_url, **env):
    env = child_env(settings, DATABASE_URL=database_url, PORTAL_DATA_DIR=str(tmp_path / "data"),
                    PREDICT_LOOKUP_CACHE_SECONDS="1", **env)
    log_dir = tmp_path / "logs"
    log_dir.mkdir(exist_ok=True)
    node = node_start("node-a", env=env, log_dir=log_dir, threads=4)
    node_wait_ready(node)
    return node


def _logged(count: int, *, within: float = 60.0) -> int:
    give_up = time.monotonic() + within
    while (found := PredictionLog.objects.count()) < count and time.monotonic() < give_up:
        time.sleep(0.2)
    return found


@pytest.fixture
def published(house_predictor_dir, django_user_model):
    from predictions.services import model_publish

    version = model_publish(predictor_dir=house_predictor_dir, name="house-prices")
    token = Token.objects.create(user=django_user_model.objects.create_user("analyst")).key
    return version, {"Authorization": f"Bearer {token}"}


def test_a_model_in_memory_answers_through_a_database_outage(published, settings, tmp_path):
    version, auth = published
    outage = DatabaseOutage(connection, tmp_path)
    node = _node(settings, tmp_path, outage.url, PREDICTION_LOG_FLUSH_SECONDS="0.2")
    url = f"{node.url}/api/models/{version.model_id}/predict"
    try:
        first = requests.post(url, json={"features": HOUSE}, headers=auth, timeout=120)
        assert first.status_code == 200, node.log()[-3000:]
        expected = first.json()["prediction"]
        assert _logged(1) == 1

        outage.begin()
        answered, refused = 0, []
        ends = time.monotonic() + OUTAGE_SECONDS
        try:
            while time.monotonic() < ends:
                response = requests.post(url, json={"features": HOUSE}, headers=auth, timeout=30)
                assert response.status_code == 200, (response.text, node.log()[-3000:])
                body = response.json()
                assert (body["prediction"], body["served_from"]) == (expected, "memory")
                answered += 1
                # What needs the database is refused with a 503 saying so, never a 500.
                for other in (requests.post(f"{node.url}/api/models/no-such-model/predict", json={"features": HOUSE},
                                            headers=auth, timeout=30),
                              requests.post(url, json={"features": HOUSE}, timeout=30,
                                            headers={"Authorization": "Bearer " + "0" * 40})):
                    refused.append((other.status_code, other.json().get("code")))
                time.sleep(0.3)
            assert PredictionLog.objects.count() == 1  # nothing could be written meanwhile
        finally:
            outage.end()
        assert answered >= 50
        assert set(refused) == {(503, "database_unavailable")}, refused

        # Once it is back, the flusher writes what it kept, each log once.
        assert _logged(1 + answered) == 1 + answered
        assert requests.post(url, json={"features": HOUSE}, headers=auth, timeout=30).status_code == 200
    finally:
        node.stop()
    assert PredictionLog.objects.count() == 2 + answered
    assert set(PredictionLog.objects.values_list("served_from", flat=True)) == {"origin", "memory"}


def test_a_graceful_stop_writes_every_buffered_log(published, settings, tmp_path):
    version, auth = published
    from tests.processes import database_url

    # A flush interval longer than the test: only the worker's exit can write these.
    node = _node(settings, tmp_path, database_url(), PREDICTION_LOG_FLUSH_SECONDS="3600")
    url = f"{node.url}/api/models/{version.model_id}/predict"
    try:
        for _ in range(25):
            assert requests.post(url, json={"features": HOUSE}, headers=auth, timeout=120).status_code == 200
        assert PredictionLog.objects.count() == 0
    finally:
        node.stop()  # SIGTERM: gunicorn's graceful stop
    assert PredictionLog.objects.count() == 25


def _signed_in(node, username: str, password: str) -> requests.Session:
    browser = requests.Session()
    login = f"{node.url}/accounts/login/"
    browser.get(login, timeout=30)
    signed = browser.post(login, timeout=30, data={"username": username, "password": password,
                                                   "csrfmiddlewaretoken": browser.cookies["csrftoken"]})
    assert signed.ok and signed.url == f"{node.url}/", signed.text[-2000:]
    return browser


def test_pages_and_the_admin_answer_a_database_outage_with_a_503_page(published, django_user_model, settings,
                                                                        tmp_path):
    version, _ = published
    django_user_model.objects.create_user("operator", password="outage-pass-1", is_staff=True, is_superuser=True)
    outage = DatabaseOutage(connection, tmp_path)
    node = _node(settings, tmp_path, outage.url)
    pages = ["/", f"/models/{version.model.name}/", "/jobs/", "/profile/", "/accounts/login/", "/admin/",
             "/admin/cache/dashboard/", "/admin/cache_app/artifact/"]
    try:
        browser = _signed_in(node, "operator", "outage-pass-1")
        before = {page: browser.get(f"{node.url}{page}", timeout=30).status_code for page in pages}
        assert set(before.values()) == {200}, before
        outage.begin()
        try:
            for page in pages:
                answer = browser.get(f"{node.url}{page}", timeout=30)
                assert answer.status_code == 503, (page, answer.status_code, node.log()[-3000:])
                assert 'id="database-unavailable"' in answer.text and "the database cannot be reached" in answer.text
            # The session's API calls (the pages' scripts) get the API's JSON, whatever raised.
            api = browser.get(f"{node.url}/api/models/", timeout=30)
            assert (api.status_code, api.json()["code"]) == (503, "database_unavailable")
        finally:
            outage.end()
        assert browser.get(f"{node.url}/", timeout=30).status_code == 200
    finally:
        node.stop()
    assert "Internal Server Error" not in node.log()
