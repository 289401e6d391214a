"""Per-request overhead: cached token and model lookups (and how changes reach them), buffered prediction logs."""

import threading

import pandas as pd
import pytest
from django.db.models import F
from rest_framework.authtoken.models import Token

from cache_app.models import Artifact
from cache_app.services.maintenance import artifact_clear
from cache_app.services.stats import counters
from predictions import lookups, prediction_logs
from predictions.models import PredictionLog
from predictions.services import model_publish, prediction_run
from tests.predictions.conftest import HOUSE
from tests.processes import in_threads


def predict(api, model_ref, features=HOUSE):
    return api.post(f"/api/models/{model_ref}/predict", {"features": features}, format="json")


@pytest.fixture
def buffered(settings):
    settings.PREDICTION_LOG_BUFFER = True
    settings.PREDICTION_LOG_FLUSH_SECONDS = 3600  # the tests flush when they mean to
    prediction_logs.prediction_logs_flush()
    yield
    prediction_logs.prediction_logs_flush()


def test_a_memory_hit_with_a_known_token_and_model_runs_no_query(
    api, house_version, buffered, django_assert_num_queries
):
    assert predict(api, "house-prices").status_code == 200  # fetch, load, and remember token and model
    counters().flush()  # so the counters' own periodic write does not fall into the measured request
    with django_assert_num_queries(0):
        response = predict(api, "house-prices")
    assert response.status_code == 200 and response.json()["served_from"] == "memory"
    assert prediction_logs.prediction_logs_flush() == 2
    assert PredictionLog.objects.count() == 2


def test_a_deleted_token_stops_working_at_once(api, house_version, user):
    assert predict(api, "house-prices").status_code == 200
    Token.objects.filter(user=user).delete()
    assert predict(api, "house-prices").status_code == 401


def test_a_deactivated_user_is_refused_at_once(api, house_version, user):
    assert predict(api, "house-prices").status_code == 200
    user.is_active = False
    user.save()
    assert predict(api, "house-prices").status_code == 401


def test_a_new_current_version_answers_at_once(api, house_version, house_predictor_dir):
    assert predict(api, "house-prices").json()["version"] == 1
    model_publish(predictor_dir=house_predictor_dir, name="house-prices")
    assert predict(api, "house-prices").json()["version"] == 2


def test_a_clear_here_is_seen_by_the_next_request(api, house_version):
    assert predict(api, "house-prices").json()["served_from"] == "origin"
    assert predict(api, "house-prices").json()["served_from"] == "memory"
    artifact_clear(artifact=Artifact.objects.get(pk=house_version.artifact_id))
    # The cached version still names the old generation: it must be re-read, not served from a stale key.
    assert predict(api, "house-prices").json()["served_from"] == "origin"


def test_changes_made_elsewhere_are_seen_within_the_ttl(api, house_version, user, settings):
    """Another worker or node changes rows without this process hearing of it (no signal, no Redis)."""
    import time

    settings.PREDICT_LOOKUP_CACHE_SECONDS = 0.2
    assert predict(api, "house-prices").status_code == 200
    assert predict(api, "house-prices").json()["served_from"] == "memory"
    # As another node's clear without Redis: only the database knows. The memory copy still answers the old
    # generation until the cached model is read again.
    Artifact.objects.filter(pk=house_version.artifact_id).update(generation=F("generation") + 1)
    Token.objects.filter(user=user).update(key="f" * 40)  # a rotation elsewhere: the old key is gone
    time.sleep(0.3)
    assert predict(api, "house-prices").status_code == 401
    api.credentials(HTTP_AUTHORIZATION="Bearer " + "f" * 40)
    assert predict(api, "house-prices").json()["served_from"] == "origin"  # the new generation, fetched anew


def test_an_unknown_model_is_still_a_404(api, house_version):
    assert predict(api, "no-such-model").status_code == 404
    assert predict(api, "house-prices").status_code == 200


def test_logs_from_many_threads_are_all_written_once(house_version, buffered, transactional_db):
    frame = pd.DataFrame([HOUSE])
    prediction_run(version=house_version, frame=frame)
    in_threads(16, lambda: [prediction_run(version=house_version, frame=frame) for _ in range(10)])
    assert prediction_logs.prediction_logs_pending() == 161
    assert prediction_logs.prediction_logs_flush() == 161
    assert PredictionLog.objects.count() == 161
    assert prediction_logs.prediction_logs_flush() == 0


def test_the_buffer_is_bounded_and_keeps_the_newest(house_version, buffered, settings):
    settings.PREDICTION_LOG_BUFFER_MAX = 5
    dropped = prediction_logs.prediction_logs_dropped()
    frame = pd.DataFrame([HOUSE] * 3)
    for _ in range(4):
        prediction_run(version=house_version, frame=frame, channel="api")
    prediction_run(version=house_version, frame=pd.DataFrame([HOUSE]), channel="web")
    assert prediction_logs.prediction_logs_pending() == 5
    assert prediction_logs.prediction_logs_dropped() - dropped == 0
    for _ in range(3):
        prediction_run(version=house_version, frame=frame)
    assert prediction_logs.prediction_logs_dropped() - dropped == 3
    assert prediction_logs.prediction_logs_flush() == 5
    assert list(PredictionLog.objects.order_by("pk").values_list("channel", flat=True)) == ["api", "web", "api", "api", "api"]


def test_a_log_whose_user_was_deleted_meanwhile_is_still_written(transactional_db, house_version, buffered, user):
    prediction_run(version=house_version, frame=pd.DataFrame([HOUSE]), user=user)
    prediction_run(version=house_version, frame=pd.DataFrame([HOUSE]))
    user.delete()
    assert prediction_logs.prediction_logs_flush() == 2
    assert list(PredictionLog.objects.values_list("user", flat=True)) == [None, None]


def test_an_expired_entry_is_read_again_by_one_thread_while_the_others_answer_with_it(settings):
    settings.PREDICT_LOOKUP_CACHE_SECONDS = 0.0  # every entry is expired at once
    cache = lookups.LookupCache("test")
    cache.put("key", "old")
    loading, release = threading.Event(), threading.Event()
    loads = []

    def slow_load():
        loads.append(1)
        loading.set()
        assert release.wait(30)
        return "new"

    refresher = threading.Thread(target=lambda: loads.append(cache.get("key", slow_load)))
    refresher.start()
    try:
        assert loading.wait(30)
        # While the one re-read is under way, everyone else answers with the entry, without a query.
        assert [cache.get("key", lambda: pytest.fail("a second re-read")) for _ in range(5)] == ["old"] * 5
    finally:
        release.set()
        refresher.join(30)
    assert loads == [1, "new"]
    assert cache.get("key", lambda: "newer") == "newer"  # the next expiry is re-read again
