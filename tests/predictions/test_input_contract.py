"""The input contract: what a model saw in training, recorded at publish and checked on every path."""

import csv
import io

import pytest
from django.core.management import call_command

from predictions import demo
from predictions.jobs import services as job_services
from predictions.models import MLModel, ModelVersion
from tests.predictions.conftest import HOUSE
from tests.predictions.test_web import predict_url, sections, upload


def predict(api, version, body):
    return api.post(f"/api/models/{version.model_id}/predict", body, format="json")


def test_publish_records_the_training_data_ranges_and_gaps(house_version):
    trained_on = demo.house_prices(600)  # what tests/models.py trains the house model on
    contract = house_version.input_contract
    assert contract["source"] == "training data" and contract["rows"] == len(trained_on)
    for name in ("sqft", "bedrooms", "age_years"):
        described = contract["features"][name]
        assert (described["min"], described["max"]) == (trained_on[name].min(), trained_on[name].max())
        assert described["missing_rate"] == 0.0
    assert [f["categories"] for f in house_version.features if f["name"] == "city"] == [demo.CITIES]


def test_a_reference_csv_describes_the_inputs_instead(db, house_predictor_dir, tmp_path):
    reference = demo.house_prices(50, seed=5)
    reference.loc[:9, "sqft"] = None
    path = tmp_path / "reference.csv"
    reference.to_csv(path, index=False)
    call_command("publish_model", str(house_predictor_dir), "--name", "referenced", "--reference-csv", str(path))
    contract = ModelVersion.objects.get(model__name="referenced").input_contract
    assert contract["source"] == "reference CSV reference.csv" and contract["rows"] == 50
    assert contract["features"]["sqft"]["missing_rate"] == 0.2
    assert contract["features"]["sqft"]["max"] == reference["sqft"].max()


def test_a_reference_csv_without_the_features_is_refused(db, house_predictor_dir, tmp_path):
    from django.core.management.base import CommandError

    path = tmp_path / "reference.csv"
    path.write_text("sqft,city\n1,austin\n")
    with pytest.raises(CommandError, match="bedrooms"):
        call_command("publish_model", str(house_predictor_dir), "--name", "badref", "--reference-csv", str(path))
    assert not MLModel.objects.filter(name="badref").exists()


@pytest.mark.parametrize(("city", "hint"), [("Boston", "did you mean 'boston'?"), ("miami", "known: 'austin'")])
def test_an_unseen_category_is_refused_naming_field_value_and_closest(api, house_version, city, hint):
    response = predict(api, house_version, {"features": {**HOUSE, "city": city}})
    assert response.status_code == 400
    message = response.json()["errors"]["features.city"]
    assert repr(city) in message and hint in message


def test_under_the_warn_policy_an_unseen_category_is_predicted_as_missing_with_a_warning(api, house_version):
    MLModel.objects.filter(pk=house_version.model_id).update(unseen_categories=MLModel.UnseenCategories.WARN)
    body = predict(api, house_version, {"features": {**HOUSE, "city": "Boston"}}).json()
    (warning,) = body["warnings"]
    assert (warning["row"], warning["field"], warning["value"]) == (0, "city", "Boston")
    assert "did you mean 'boston'" in warning["message"] and "missing" in warning["message"]
    as_missing = predict(api, house_version, {"features": {**HOUSE, "city": None}}).json()
    assert body["prediction"] == as_missing["prediction"]


def test_the_policy_is_editable_in_the_admin(admin_client, house_version):
    url = f"/admin/predictions/mlmodel/{house_version.model_id}/change/"
    page = admin_client.get(url)
    assert b'name="unseen_categories"' in page.content
    response = admin_client.post(url, {"name": "house-prices", "description": "", "unseen_categories": "warn",
                                       "versions-TOTAL_FORMS": "0", "versions-INITIAL_FORMS": "0"})
    assert response.status_code == 302, response.content[:2000]
    assert MLModel.objects.get(pk=house_version.model_id).unseen_categories == "warn"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("sqft", -5, "below the smallest value seen in training (5"), ("age_years", 1e9, "above the largest value")],
)
def test_a_number_out_of_the_training_range_is_a_warning(api, house_version, field, value, message):
    response = predict(api, house_version, {"features": {**HOUSE, field: value}})
    assert response.status_code == 200
    (warning,) = response.json()["warnings"]
    assert (warning["row"], warning["field"], warning["value"]) == (0, field, value)
    assert message in warning["message"]


def test_a_fraction_for_an_integer_column_is_a_400(api, house_version):
    response = predict(api, house_version, {"features": {**HOUSE, "bedrooms": 2.5}})
    assert response.status_code == 400
    assert "whole number" in response.json()["errors"]["features.bedrooms"]
    assert predict(api, house_version, {"features": {**HOUSE, "bedrooms": 3.0}}).status_code == 200


def test_missing_features_are_named_and_an_all_missing_row_is_flagged(api, house_version):
    one = predict(api, house_version, {"features": {**HOUSE, "city": None}}).json()
    assert one["missing_features"] == ["city"] and one["warnings"] == []
    blank = predict(api, house_version, {"features": dict.fromkeys(HOUSE)}).json()
    assert blank["missing_features"] == list(HOUSE)
    assert blank["warnings"][0]["field"] is None and "every feature is missing" in blank["warnings"][0]["message"]
    many = predict(api, house_version, {"instances": [HOUSE, {**HOUSE, "sqft": None}]}).json()
    assert many["missing_features"] == [[], ["sqft"]]


def test_csv_warnings_name_the_file_row_and_come_back_in_a_column(api, house_version):
    text = "sqft,bedrooms,age_years,city\n1200,2,30,austin\n\n-5,2,30,denver\n,,,\n"
    response = api.post(f"/api/models/{house_version.model_id}/predict", text, content_type="text/csv")
    body = response.json()
    assert len(body["predictions"]) == 3  # the empty line is no record; ",,," is a row of missing values
    assert [(w["row"], w["field"]) for w in body["warnings"]] == [(3, "sqft"), (4, None)]
    out = api.post(f"/api/models/{house_version.model_id}/predict?format=csv", text, content_type="text/csv",
                   HTTP_ACCEPT="text/csv")
    rows = list(csv.DictReader(io.StringIO(out.content.decode())))
    assert rows[0]["warnings"] == "" and rows[1]["warnings"].startswith("sqft: is below")
    assert [row["sqft"] for row in rows] == ["1200", "-5", ""]  # as sent: integers stay integers


def test_warnings_are_capped_with_a_count(api, house_version):
    body = predict(api, house_version, {"instances": [{**HOUSE, "sqft": -5}] * 130}).json()
    assert len(body["warnings"]) == 100 and body["warnings_omitted"] == 30


def test_the_web_form_shows_warnings_and_filled_in_fields_beside_them(signed_in, house_version):
    row = {"sqft": "-5", "bedrooms": "3", "age_years": "", "city": "boston"}
    response = signed_in.post(predict_url("house-prices"), row)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'class="field-warning" data-field="sqft"' in page and "below the smallest value" in page
    assert 'class="field-note" data-field="age_years"' in page
    blank = signed_in.post(predict_url("house-prices"), dict.fromkeys(row, ""))
    assert blank.status_code == 200 and "all-missing" in sections(blank).text


def test_the_web_csv_preview_marks_warned_rows(signed_in, house_version):
    from django.urls import reverse

    text = "sqft,bedrooms,age_years,city\n1200,2,30,austin\n99999,2,30,denver\n"
    response = signed_in.post(reverse("web:model-predict-csv", kwargs={"name": "house-prices"}), {"file": upload("w.csv", text)})
    assert response.status_code == 200
    rows = [attrs for tag, attrs in sections(response).tags["results-table"] if tag == "tr"][1:]
    assert [row.get("class") for row in rows] == [None, "warned"]
    assert "row 2" in " ".join(sections(response).text["csv-warnings"])


def test_a_job_refuses_an_unseen_category_naming_the_file_row(house_version):
    from predictions.inputs import InvalidInput

    text = "sqft,bedrooms,age_years,city\n" + "1200,2,30,austin\n" * 5 + "1200,2,30,Austin\n"
    with pytest.raises(InvalidInput) as refused:
        job_services.job_create(version=house_version, data=text.encode())
    assert "did you mean 'austin'" in refused.value.errors["row 6, column city"]
