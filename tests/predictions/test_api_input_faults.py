"""Bad input on any API endpoint is a 4xx naming the field, parameter or content type at fault, never a 500,
and nothing sent is read differently from what it says (ignored parts, a guessed version)."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile

from predictions.apis import CSVRenderer
from predictions.models import MLModel, ModelAlias, PredictionLog
from tests.predictions.conftest import HOUSE

HEADER = "sqft,bedrooms,age_years,city\n"


@pytest.fixture
def promoter(user):
    user.user_permissions.add(Permission.objects.get(codename="promote_model"))
    return user


def predict_url(version, query=""):
    return f"/api/models/{version.model_id}/predict{query}"


def post_json_text(api, url, text: str, method="POST"):
    """``text`` as sent: ``json.dumps`` writes a lone surrogate as its ``\\ud800`` escape, as a prober would."""
    return api.generic(method, url, text.encode(), content_type="application/json")


def rows(count: int, **changed) -> list[dict]:
    return [{**HOUSE, **changed.get(str(index), {})} for index in range(count)]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"features": {**HOUSE, "\ud800": 1}}, "features.\\ud800"),
        ({"features": {**HOUSE, "city": "bos\udfffton"}}, "features.city"),
        ({"\ud800": {}}, "\\ud800"),
        ({"instances": rows(5, **{"3": {"city": "\udc00"}})}, "instances[3].city"),
        ({"instances": rows(2, **{"1": {"\udbff": None}})}, "instances[1].\\udbff"),
    ],
)
@pytest.mark.parametrize("answer", ["json", "csv"])
def test_a_lone_surrogate_in_a_json_body_is_a_400_naming_where(api, house_version, body, where, answer):
    query = "?format=csv" if answer == "csv" else ""
    response = post_json_text(api, predict_url(house_version, query), json.dumps(body))
    assert response.status_code == 400, response.content
    if answer == "csv":
        assert f"{where}," in response.content.decode("utf-8")
    else:
        assert "lone surrogate" in response.json()["errors"][where]
    assert not PredictionLog.objects.exists()


def test_a_lone_surrogate_category_is_refused_under_the_warn_policy_too(api, house_version):
    MLModel.objects.filter(pk=house_version.model_id).update(unseen_categories=MLModel.UnseenCategories.WARN)
    response = post_json_text(api, predict_url(house_version), json.dumps({"features": {**HOUSE, "city": "\ud800"}}))
    assert response.status_code == 400 and "features.city" in response.json()["errors"]


def test_a_surrogate_pair_is_one_character_and_is_echoed_back(api, house_version):
    MLModel.objects.filter(pk=house_version.model_id).update(unseen_categories=MLModel.UnseenCategories.WARN)
    text = json.dumps({"features": {**HOUSE, "city": "\U0001f600"}})
    assert "\\ud83d\\ude00" in text  # sent as a pair of escapes
    response = post_json_text(api, predict_url(house_version), text)
    assert response.status_code == 200, response.content
    (warning,) = response.json()["warnings"]
    assert (warning["field"], warning["value"]) == ("city", "\U0001f600")
    assert response.content.isascii()


def test_a_lone_surrogate_is_refused_on_every_json_endpoint(api, promoter, house_version):
    response = post_json_text(api, "/api/models/house-prices/aliases/staging", '{"\\ud800": {}}', method="PUT")
    assert response.status_code == 400 and "\\ud800" in response.json()["errors"]
    assert not ModelAlias.objects.exists()


def test_no_renderer_fails_on_text_that_is_not_unicode():
    from rest_framework.renderers import JSONRenderer

    data = {"detail": "\ud800", "errors": {"features.\ud800": "\udfff"}}
    assert json.loads(JSONRenderer().render(data)) == data
    assert CSVRenderer().render(data).decode("utf-8") == "field,error\r\nfeatures.\\ud800,\\udfff\r\n"


def test_json_nested_too_deeply_is_a_400_on_every_json_endpoint(api, promoter, house_version):
    body = "[" * 100_000 + "]" * 100_000
    response = post_json_text(api, "/api/models/house-prices/aliases/staging", body, method="PUT")
    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]


@pytest.mark.parametrize(("method", "url"), [("POST", "/api/models/house-prices/predict"), ("GET", "/api/models/")])
def test_an_unsupported_format_is_a_400_naming_format_and_the_formats(api, house_version, method, url):
    response = api.generic(method, f"{url}?format=bogus", json.dumps({"features": HOUSE}),
                           content_type="application/json")
    assert response.status_code == 400, response.content
    (message,) = response.json()["format"]
    assert "'bogus'" in message and "json" in message
    assert ("csv" in message) == ("predict" in url)


@pytest.mark.parametrize(
    ("query", "name", "message"),
    [
        ("?alias=", "alias", "blank"),
        ("?version=", "version", "blank"),
        ("?format=", "format", "blank"),
        ("?foo=1", "foo", "unknown query parameter"),
        ("?version=1&version=2", "version", "more than once"),
        ("?format=csv&format=json", "format", "more than once"),
    ],
)
def test_predict_refuses_unknown_blank_and_repeated_parameters(api, house_version, query, name, message):
    response = api.post(predict_url(house_version, query), {"features": HOUSE}, format="json")
    assert response.status_code == 400, response.content
    assert message in response.json()[name][0]
    assert not PredictionLog.objects.exists()


def test_predict_takes_version_alias_current_and_format(api, house_version):
    assert api.post(predict_url(house_version, "?version=1"), {"features": HOUSE}, format="json").status_code == 200
    by_current = api.post(predict_url(house_version, "?alias=current"), {"features": HOUSE}, format="json")
    assert by_current.status_code == 200 and by_current.json()["version"] == 1
    as_csv = api.post(predict_url(house_version, "?format=csv"), {"features": HOUSE}, format="json")
    assert as_csv.status_code == 200 and as_csv.content.decode().startswith("sqft,")


@pytest.mark.parametrize("name", ["CURRENT", "Current"])
def test_current_in_another_case_is_reserved_not_an_alias(api, promoter, house_version, name):
    moved = api.put(f"/api/models/house-prices/aliases/{name}", {"version": 1}, format="json")
    assert moved.status_code == 400 and "reserved" in moved.json()["name"][0]
    assert not ModelAlias.objects.exists()
    response = api.post(predict_url(house_version, f"?alias={name}"), {"features": HOUSE}, format="json")
    assert response.status_code == 400 and "reserved" in response.json()["alias"][0]


def test_a_form_body_is_a_415_naming_what_the_endpoint_reads(api, house_version):
    response = api.post(predict_url(house_version), {"sqft": "1800", "bedrooms": "3", "age_years": "12",
                                                     "city": "boston"})  # APIClient's default: multipart
    assert response.status_code == 400 and "sqft" in response.json()["errors"]
    form = "&".join(f"{name}={value}" for name, value in HOUSE.items())
    response = api.generic("POST", predict_url(house_version), form, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415, response.content
    detail = response.json()["detail"]
    assert all(media_type in detail for media_type in ("application/json", "text/csv", "multipart/form-data"))


def csv_upload(name="houses.csv"):
    return SimpleUploadedFile(name, (HEADER + "1200,2,30,austin\n").encode(), content_type="text/csv")


@pytest.mark.parametrize(
    ("parts", "where"),
    [
        (lambda: {"file": [csv_upload("a.csv"), csv_upload("b.csv")]}, "file"),
        (lambda: {"file": csv_upload(), "features": "{}"}, "features"),
        (lambda: {"file": csv_upload(), "other": csv_upload()}, "other"),
    ],
    ids=["two files", "a field beside the file", "another file part"],
)
def test_a_multipart_body_holds_one_csv_file_and_nothing_else(api, house_version, parts, where):
    response = api.post(predict_url(house_version), parts(), format="multipart")
    assert response.status_code == 400, response.content
    assert where in response.json()["errors"]
    assert not PredictionLog.objects.exists()


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"instances": [HOUSE], "features": HOUSE}, "features"),
        ({"features": HOUSE, "instances": [HOUSE]}, "features"),
        ({"features": HOUSE, "version": 2}, "version"),
        ({"instances": [HOUSE], "sqft": 1}, "sqft"),
    ],
)
def test_rows_are_sent_one_way_and_nothing_beside_them_is_ignored(api, house_version, body, where):
    response = api.post(predict_url(house_version), body, format="json")
    assert response.status_code == 400, response.content
    assert "is not read beside" in response.json()["errors"][where]
