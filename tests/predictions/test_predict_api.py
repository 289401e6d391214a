"""POST /api/models/<id>/predict against real AutoGluon predictors, through every cache tier."""

import csv
import io
import json

import pytest
from rest_framework.test import APIClient

from cache_app.services.memory import memory_tier
from predictions.models import PredictionLog
from tests.predictions.conftest import CHURN, HOUSE


def predict(api, version, body, **kwargs):
    return api.post(f"/api/models/{version.model_id}/predict", body, format="json", **kwargs)


def test_one_row_keeps_the_seed_shape_and_tells_the_tier(api, house_version):
    first = predict(api, house_version, {"features": HOUSE})
    assert first.status_code == 200, first.content
    body = first.json()
    assert isinstance(body["prediction"], float) and 200_000 < body["prediction"] < 700_000
    assert body["from_cache"] is False and body["uses_real_model"] is True
    assert body["served_from"] == "origin"
    assert set(body["timings_ms"]) == {"fetch", "load", "predict", "total"}
    assert body["timings_ms"]["fetch"] > 0 and body["timings_ms"]["load"] > 0
    assert (body["model"], body["model_id"], body["version"]) == ("house-prices", house_version.model_id, 1)

    second = predict(api, house_version, {"features": HOUSE}).json()
    assert second["served_from"] == "memory" and second["from_cache"] is True
    assert second["prediction"] == body["prediction"]
    assert second["timings_ms"]["fetch"] == 0 and second["timings_ms"]["load"] == 0

    memory_tier().clear()  # a process restart
    third = predict(api, house_version, {"features": HOUSE}).json()
    assert third["served_from"] == "disk" and third["from_cache"] is True
    assert third["prediction"] == body["prediction"]


def test_the_flat_object_and_the_model_name_work_too(api, house_version):
    response = api.post("/api/models/house-prices/predict", HOUSE, format="json")
    assert response.status_code == 200 and "prediction" in response.json()


def test_many_rows(api, house_version):
    rows = [HOUSE, {**HOUSE, "sqft": 4000.0}, {**HOUSE, "city": "austin"}]
    body = predict(api, house_version, {"instances": rows}).json()
    assert len(body["predictions"]) == 3
    assert body["predictions"][1] > body["predictions"][0]  # a bigger house costs more


def test_a_classifier_answers_a_label_and_probabilities(api, churn_version):
    body = predict(api, churn_version, {"features": CHURN}).json()
    assert body["prediction"] in ("yes", "no")
    assert set(body["probabilities"]) == {"yes", "no"}
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-4
    assert body["prediction"] == max(body["probabilities"], key=body["probabilities"].get)


def test_csv_body_in_csv_out(api, churn_version):
    text = "tenure_months,monthly_spend,support_calls,plan\n3,99.5,7,basic\n60,20,0,premium\n"
    response = api.post(
        f"/api/models/{churn_version.model_id}/predict?format=csv", text, content_type="text/csv",
        HTTP_ACCEPT="text/csv",
    )
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 2 and rows[0]["prediction"] in ("yes", "no")
    assert {"probability_yes", "probability_no"} <= set(rows[0])
    assert rows[1]["plan"] == "premium"


def test_csv_upload_answers_json(api, house_version):
    upload = io.BytesIO(b"sqft,bedrooms,age_years,city\n1200,2,30,denver\n2500,4,5,chicago\n")
    upload.name = "houses.csv"
    response = api.post(f"/api/models/{house_version.model_id}/predict", {"file": upload}, format="multipart")
    assert response.status_code == 200, response.content
    assert len(response.json()["predictions"]) == 2


def test_a_given_version_is_used(api, house_version, house_predictor_dir):
    from predictions.services import model_publish

    model_publish(predictor_dir=house_predictor_dir, name="house-prices")
    body = api.post(f"/api/models/{house_version.model_id}/predict?version=1", {"features": HOUSE}, format="json")
    assert body.json()["version"] == 1
    assert predict(api, house_version, {"features": HOUSE}).json()["version"] == 2


def test_each_prediction_is_logged(api, house_version, user):
    predict(api, house_version, {"features": HOUSE})
    predict(api, house_version, {"instances": [HOUSE, HOUSE]})
    logs = list(PredictionLog.objects.order_by("pk"))
    assert [(log.rows, log.served_from, log.user) for log in logs] == [(1, "origin", user), (2, "memory", user)]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"features": {k: v for k, v in HOUSE.items() if k != "sqft"}}, "features.sqft"),
        ({"features": {**HOUSE, "garage": 1}}, "features.garage"),
        ({"features": {**HOUSE, "sqft": "big"}}, "features.sqft"),
        ({"features": {**HOUSE, "bedrooms": True}}, "features.bedrooms"),
        ({"features": {**HOUSE, "sqft": 1e308}}, "features.sqft"),
        ({"features": {**HOUSE, "city": ["boston"]}}, "features.city"),
        ({"features": "sqft=1800"}, "features"),
        ({"instances": []}, "instances"),
        ({"instances": [HOUSE, {**HOUSE, "age_years": "old"}]}, "instances[1].age_years"),
        ({"instances": [HOUSE, 7]}, "instances[1]"),
    ],
)
def test_bad_json_input_is_a_400_naming_the_field(api, house_version, body, field):
    response = predict(api, house_version, body)
    assert response.status_code == 400, response.content
    assert field in response.json()["errors"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(api, house_version, literal):
    raw = json.dumps({"features": HOUSE}).replace("1800.0", literal)
    response = api.post(f"/api/models/{house_version.model_id}/predict", raw, content_type="application/json")
    assert response.status_code == 400
    assert "features.sqft" in response.json()["errors"]


@pytest.mark.parametrize("raw", ["", "{not json", "[]", "null", "42"])
def test_empty_or_non_json_bodies_are_a_400(api, house_version, raw):
    response = api.post(f"/api/models/{house_version.model_id}/predict", raw, content_type="application/json")
    assert response.status_code == 400, response.content
    assert "detail" in response.json()


@pytest.mark.parametrize(
    "text, where",
    [
        ("", "file"),
        ("sqft,bedrooms,age_years,city\n", "file"),
        ("sqft,bedrooms,age_years,city\n1200,2,30\n", "row 1"),
        ("sqft,bedrooms,age_years,city\n1200,2,30,denver\nabc,2,30,denver\n", "row 2, column sqft"),
        ("sqft,bedrooms,age_years,city\n1200,2,nan,denver\n", "row 1, column age_years"),
        ("sqft,bedrooms,city\n1200,2,denver\n", "column age_years"),
        ("sqft,sqft,bedrooms,age_years,city\n1,1,2,3,denver\n", "header"),
        ("\xff\xfe", "header"),
    ],
)
def test_bad_csv_is_a_400_naming_the_row_and_column(api, house_version, text, where):
    response = api.post(
        f"/api/models/{house_version.model_id}/predict", text.encode("latin-1"), content_type="text/csv"
    )
    assert response.status_code == 400, response.content
    assert where in response.json()["errors"]


def test_too_many_rows_is_a_400(api, house_version, settings):
    settings.PREDICT_MAX_ROWS = 2
    response = predict(api, house_version, {"instances": [HOUSE] * 3})
    assert response.status_code == 400 and "instances" in response.json()["errors"]
    text = "sqft,bedrooms,age_years,city\n" + "1200,2,30,denver\n" * 3
    response = api.post(f"/api/models/{house_version.model_id}/predict", text, content_type="text/csv")
    assert response.status_code == 400 and "file" in response.json()["errors"]


def test_too_many_bytes_is_a_413_before_the_body_is_read(api, house_version, settings):
    settings.PREDICT_MAX_UPLOAD_BYTES = 40
    text = "sqft,bedrooms,age_years,city\n" + "1200,2,30,denver\n" * 3
    response = api.post(f"/api/models/{house_version.model_id}/predict", text, content_type="text/csv")
    assert response.status_code == 413 and response.json()["code"] == "body_too_large"


def test_bad_version_parameter_is_a_400_and_unknown_version_a_404(api, house_version):
    assert api.post(f"/api/models/{house_version.model_id}/predict?version=x", HOUSE, format="json").status_code == 400
    assert api.post(f"/api/models/{house_version.model_id}/predict?version=9", HOUSE, format="json").status_code == 404


def test_unknown_model_is_a_404(api, db):
    assert api.post("/api/models/999/predict", {"features": HOUSE}, format="json").status_code == 404
    assert api.post("/api/models/nope/predict", {"features": HOUSE}, format="json").status_code == 404


def test_anonymous_is_refused(house_version):
    response = APIClient().post(f"/api/models/{house_version.model_id}/predict", HOUSE, format="json")
    assert response.status_code == 401


def test_a_bad_token_is_refused(house_version):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    assert client.post(f"/api/models/{house_version.model_id}/predict", HOUSE, format="json").status_code == 401


def test_nothing_cached_is_lost_by_bad_input(api, house_version):
    predict(api, house_version, {"features": HOUSE})
    predict(api, house_version, {"features": {**HOUSE, "sqft": "x"}})
    assert predict(api, house_version, {"features": HOUSE}).json()["served_from"] == "memory"


def test_an_unreachable_origin_is_a_503_with_the_reason(api, house_version):
    from pathlib import Path

    from cache_app.services.tiers.base import Location

    Path(Location.parse(house_version.artifact.source_uri).key).unlink()
    response = predict(api, house_version, {"features": HOUSE})
    assert response.status_code == 503
    assert response.json()["code"] == "model_fetch_failed" and "origin: no copy" in response.json()["detail"]


def test_an_incompatible_predictor_is_a_503_naming_both_versions(api, db, house_predictor_dir, tmp_path):
    import shutil

    from predictions.services import model_publish

    # A predictor saved by another AutoGluon, published as such (its archive, not a tampered cache copy).
    older = tmp_path / "older"
    shutil.copytree(house_predictor_dir, older)
    metadata = older / "metadata.json"
    metadata.write_text(json.dumps({**json.loads(metadata.read_text()), "version": "0.8.2"}))
    version = model_publish(predictor_dir=older, name="house-prices-old")
    response = predict(api, version, {"features": HOUSE})
    assert response.status_code == 503
    detail = response.json()["detail"]
    assert response.json()["code"] == "model_incompatible" and "0.8.2" in detail and "1.6.3" in detail


def test_list_and_detail_show_schema_and_cache_status(api, house_version, churn_version):
    listed = api.get("/api/models/").json()
    assert [m["name"] for m in listed] == ["customer-churn", "house-prices"]
    predict(api, house_version, {"features": HOUSE})
    detail = api.get(f"/api/models/{house_version.model_id}").json()
    assert detail["current_version"]["label"] == "price"
    assert [f["name"] for f in detail["current_version"]["features"]] == ["sqft", "bedrooms", "age_years", "city"]
    assert detail["cached_in"] == ["memory", "disk"]
    assert detail["current_version"]["sha256"] == house_version.artifact.sha256


def test_pinned_versions_are_warmed_into_memory(api, house_version, churn_version):
    from cache_app.services.maintenance import artifact_pin
    from predictions.services import pinned_versions_warm

    artifact_pin(artifact=house_version.artifact, pinned=True)
    warmed = pinned_versions_warm()
    assert [(version.pk, tier) for version, tier in warmed] == [(house_version.pk, "origin")]
    assert predict(api, house_version, {"features": HOUSE}).json()["served_from"] == "memory"
    assert predict(api, churn_version, {"features": CHURN}).json()["served_from"] == "origin"
