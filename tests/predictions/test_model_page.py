"""The model page as a registry: versions with date, publisher, score and size; aliases and their moves; the
leaderboard saved at publish; importance; what training looked like; a schema diff; snippets that work."""

import json
import re
from html import unescape

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from predictions import aliases
from predictions.model_page import schema_diff
from predictions.models import ModelVersion


@pytest.fixture
def registry_model(house_version, house_predictor_dir, user):
    """house-prices v1 and v2 (current); staging -> v1; v2 published by the signed-in user with importance."""
    from predictions.services import model_publish

    second = model_publish(
        predictor_dir=house_predictor_dir, name="house-prices", user=user, via="api",
        feature_importance={"source": "fi.csv", "features": [{"feature": "sqft", "importance": 0.8},
                                                             {"feature": "city", "importance": 0.2}]},
    )
    aliases.alias_move(model=second.model, version=house_version, name="staging", user=user)
    return house_version, second


def _section(html: str, section_id: str) -> str:
    match = re.search(rf'<section class="card[^"]*" id="{section_id}">(.*?)</section>', html, re.S)
    assert match, f"no section {section_id}"
    return match.group(1)


def test_the_model_page_lists_versions_with_date_publisher_score_size_and_aliases(signed_in, registry_model):
    v1, v2 = registry_model
    html = signed_in.get("/models/house-prices/").content.decode()

    versions = _section(html, "versions")
    row2 = re.search(r'<tr data-version="2".*?</tr>', versions, re.S).group(0)
    assert "current" in row2 and "scientist" in row2 and v2.created_at.strftime("%Y-%m-%d") in row2
    score = [row for row in v2.leaderboard if row["best"]][0]["score_val"]
    assert f"{score:.4f}" in row2
    row1 = re.search(r'<tr data-version="1".*?</tr>', versions, re.S).group(0)
    assert "staging" in row1
    assert 'data-alias="staging"' in _section(html, "aliases") and "v1" in _section(html, "aliases")


def test_the_leaderboard_importance_and_training_ranges_are_shown(signed_in, registry_model):
    _, v2 = registry_model
    html = signed_in.get("/models/house-prices/").content.decode()

    board = _section(html, "leaderboard")
    for row in v2.leaderboard:
        assert row["model"] in board
    importance = _section(html, "feature-importance")
    assert importance.index("sqft") < importance.index("city")
    training = _section(html, "training")
    contract = v2.input_contract
    assert f"{contract['rows']} rows" in training
    sqft = contract["features"]["sqft"]
    assert f"{sqft['min']:.3f}".rstrip("0").rstrip(".") in training
    assert "boston" in training


def test_the_schema_diff_names_what_changed(house_version):
    newer = ModelVersion(
        label="price", problem_type="regression", class_labels=[],
        features=[{"name": "sqft", "dtype": "int"}, {"name": "bedrooms", "dtype": "int"},
                  {"name": "city", "dtype": "object", "categories": ["austin", "boston", "miami"]},
                  {"name": "garage", "dtype": "int"}],
    )
    diff = schema_diff(old=house_version, new=newer)
    assert diff["added"] == ["garage"] and diff["removed"] == ["age_years"]
    notes = {change["name"]: change["notes"] for change in diff["changed"]}
    assert notes["sqft"] == ["type float -> int"]
    assert notes["city"] == ["new categories: miami", "categories no longer known: chicago, denver"]
    assert not diff["same"]


def test_versions_of_one_predictor_show_no_schema_change(signed_in, registry_model):
    section = _section(signed_in.get("/models/house-prices/").content.decode(), "schema-diff")
    assert "Changes since v1" in section and "need no change" in section


def test_the_curl_and_python_snippets_predict_as_shown(signed_in, registry_model, user):
    html = signed_in.get("/models/house-prices/").content.decode()
    curl = unescape(re.search(r'<pre id="snippet-curl">(.*?)</pre>', html, re.S).group(1))
    python = unescape(re.search(r'<pre id="snippet-python">(.*?)</pre>', html, re.S).group(1))
    body = json.loads(re.search(r"-d '(.*)'", curl).group(1))
    assert "Bearer $PORTAL_TOKEN" in curl and "/api/models/house-prices/predict" in curl

    # The same body through the API answers (the snippet's example values are valid inputs).
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {Token.objects.create(user=user).key}")
    answer = client.post("/api/models/house-prices/predict", body, format="json")
    assert answer.status_code == 200, answer.json()
    assert "requests.post(" in python and "PORTAL_TOKEN" in python
    compile(python, "snippet", "exec")  # it is Python
