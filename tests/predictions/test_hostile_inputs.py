"""Inputs built to knock a parser over or to lose rows: each is a clear 4xx in JSON, never a 500 or a guess."""

import csv
import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from predictions.jobs import selectors as job_selectors
from predictions.jobs import services as job_services
from predictions.inputs import InvalidInput
from predictions.models import BatchJob, PredictionLog
from tests.predictions.conftest import HOUSE

HEADER = "sqft,bedrooms,age_years,city\n"


def post_raw(api, version, body: bytes, content_type: str, **extra):
    return api.generic("POST", f"/api/models/{version.model_id}/predict", body, content_type=content_type, **extra)


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (HEADER + '1200,2,30,"austin\n1300,2,30,boston\n1400,2,30,denver\n', "row 1", "never closed"),
        (HEADER + '1200,2,30,aus"tin\n', "row 1", "stray quote"),
        (HEADER + '1200,2,30,"austin"x\n', "row 1", "not valid CSV"),
        (HEADER + "1200,2,30,austin\n1300,2,30\n", "row 2", "has 3 cells"),
        (HEADER + "1200,2,30,austin,extra\n", "row 1", "has 5 cells"),
        ('sqft,bed"rooms,age_years,city\n1,2,3,austin\n', "header", "stray quote"),
        ("sqft,bedrooms,age_years,city,,,sqft\n1,2,3,austin,,,1\n", "header", "duplicate column names: '', 'sqft'"),
    ],
)
def test_malformed_csv_is_a_400_naming_the_row_and_nothing_is_predicted(api, house_version, text, where, message):
    response = post_raw(api, house_version, text.encode(), "text/csv")
    assert response.status_code == 400, response.content
    assert message in response.json()["errors"][where]
    assert not PredictionLog.objects.exists()
    with pytest.raises(InvalidInput) as refused:
        job_services.job_create(version=house_version, data=text.encode())
    assert message in refused.value.errors[where]
    assert not BatchJob.objects.exists()


def test_quoted_cells_with_commas_quotes_and_line_breaks_are_data(api, house_version, settings):
    text = HEADER + '1200,2,30,"austin"\n"1,300",2,30,boston\n'
    response = post_raw(api, house_version, text.encode(), "text/csv")
    assert response.status_code == 400 and "must be a number" in response.json()["errors"]["row 2, column sqft"]
    good = HEADER + '"1200",2,30,"austin"\n1300,2,30,boston\n'
    assert len(post_raw(api, house_version, good.encode(), "text/csv").json()["predictions"]) == 2


def test_the_rows_predicted_are_the_records_sent(api, house_version, settings):
    settings.PREDICT_JOB_CHUNK_ROWS = 2
    text = HEADER + "1200,2,30,austin\n\n1300,2,30,boston\n,,,\n1400,3,9,denver\n"
    body = post_raw(api, house_version, text.encode(), "text/csv").json()
    assert len(body["predictions"]) == 4
    job = job_services.job_create(version=house_version, data=text.encode())
    assert job.rows_total == 4
    for chunk in job.chunks.order_by("index"):
        job_services.chunk_run(chunk_id=chunk.pk)
    job.refresh_from_db()
    rows = list(csv.DictReader(io.StringIO("".join(job_selectors.job_result_lines(job=job)))))
    assert [row["sqft"] for row in rows] == ["1200", "1300", "", "1400"]
    assert [float(row["prediction"]) for row in rows] == body["predictions"]


def test_deeply_nested_json_is_a_400(api, house_version):
    body = b'{"features": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    response = post_raw(api, house_version, body, "application/json")
    assert response.status_code == 400 and "nested too deeply" in response.json()["detail"]


@pytest.mark.parametrize("field", ["sqft", "bedrooms", "city"])
def test_an_integer_with_hundreds_of_digits_is_a_400_naming_the_field(api, house_version, field):
    body = json.dumps({"features": {**HOUSE, field: "GIANT"}}).replace('"GIANT"', "9" * 400)
    response = post_raw(api, house_version, body.encode(), "application/json")
    assert response.status_code == 400, response.content
    assert "out of range" in response.json()["errors"][f"features.{field}"]


def test_an_integer_past_the_digit_limit_and_invalid_utf8_are_json_400s(api, house_version):
    huge = post_raw(api, house_version, b'{"features": {"sqft": ' + b"9" * 5000 + b"}}", "application/json")
    assert huge.status_code == 400 and huge["Content-Type"] == "application/json"
    bad = post_raw(api, house_version, b'{"features": {"city": "\xff\xfe"}}', "application/json")
    assert bad.status_code == 400 and "not UTF-8" in bad.json()["detail"]


def test_errors_are_capped_overall_and_per_row_with_a_count(api, house_version):
    row = {**HOUSE, **{f"unknown_{i}": 1 for i in range(300_000)}}
    response = api.post(f"/api/models/{house_version.model_id}/predict", {"features": row}, format="json")
    assert response.status_code == 400
    assert len(response.content) < 5_000
    body = response.json()
    assert len(body["errors"]) == 10 and body["errors_omitted"] == 300_000 - 10
    many = [{"sqft": "x", "bedrooms": "x", "age_years": "x", "city": 1.5}] * 50
    body = api.post(f"/api/models/{house_version.model_id}/predict", {"instances": many}, format="json").json()
    assert len(body["errors"]) == 20 and body["errors_omitted"] == 50 * 4 - 20  # each row: three non-numbers and an unseen category


def test_a_long_field_name_is_cut_in_the_error(api, house_version):
    response = api.post(f"/api/models/{house_version.model_id}/predict", {"features": {**HOUSE, "x" * 100_000: 1}},
                        format="json")
    (key,) = response.json()["errors"]
    assert len(key) < 100 and key.endswith("…")


def test_djangos_own_refusals_answer_json(api, house_version, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    fields = "&".join(f"f{i}=1" for i in range(50))
    response = post_raw(api, house_version, fields.encode(), "application/x-www-form-urlencoded")
    assert response.status_code == 400 and response.json()["code"] == "too_many_fields"
    settings.PREDICT_MAX_UPLOAD_BYTES = 1000
    big = post_raw(api, house_version, b'{"features": {"city": "' + b"a" * 200_000 + b'"}}', "application/json")
    assert big.status_code == 413 and big.json()["code"] == "body_too_large"


def test_a_body_over_the_limit_is_refused_before_it_is_read(api, signed_in, house_version, settings):
    from django.urls import reverse

    settings.PREDICT_MAX_UPLOAD_BYTES = 1_000
    settings.PREDICT_JOB_MAX_UPLOAD_BYTES = 1_000_000
    big = HEADER + "1200,2,30,austin\n" * 10_000  # 170 kB: over 1 kB + the multipart room
    refused = post_raw(api, house_version, big.encode(), "text/csv")
    assert refused.status_code == 413 and refused.json()["code"] == "body_too_large"
    page = signed_in.post(reverse("web:model-predict-csv", kwargs={"name": "house-prices"}),
                          {"file": SimpleUploadedFile("big.csv", big.encode(), content_type="text/csv")})
    assert page.status_code == 413 and b"limit" in page.content
    # Job uploads are bounded by their own, larger limit.
    job = api.post("/api/jobs/", {"model": "house-prices", "file": SimpleUploadedFile("big.csv", big.encode())},
                   format="multipart")
    assert job.status_code == 201, job.content
    assert not PredictionLog.objects.filter(channel="web").exists()


ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
FULLWIDTH = str.maketrans("0123456789", "０１２３４５６７８９")


@pytest.mark.parametrize(
    "spelling",
    [
        lambda id_: "²",  # isdigit() says yes, int() says no
        lambda id_: str(id_).translate(ARABIC_INDIC),  # int() reads these as the model's id
        lambda id_: str(id_).translate(FULLWIDTH),
        lambda id_: f"0{id_}",
        lambda id_: "9" * 19,  # past the id column's range
        lambda id_: "9" * 5000,  # past int()'s digit limit
    ],
    ids=["superscript", "arabic-indic", "fullwidth", "leading-zero", "past-bigint", "past-int-digits"],
)
def test_a_model_ref_that_only_looks_like_an_id_names_no_model(api, house_version, django_user_model, spelling):
    """Only the id as the API writes it is an id; anything else is a name, and no model has these names."""
    from rest_framework.test import APIClient

    ref = spelling(house_version.model_id)
    for response in (api.get(f"/api/models/{ref}"),
                     api.post(f"/api/models/{ref}/predict", {"features": HOUSE}, format="json")):
        assert response.status_code == 404, (ref[:20], response.status_code)
        assert response.json()["code"] == "not_found"
    operator = APIClient()
    operator.force_authenticate(django_user_model.objects.create_superuser("operator", password="x" * 12))
    assert operator.post(f"/api/models/{house_version.model_id}/cache/warm").status_code == 200
    refused = operator.delete(f"/api/models/cache?model_id={ref}")
    assert refused.status_code == 404, refused.content
    assert api.get(f"/api/models/{house_version.model_id}").json()["cached_in"] != []  # nothing was cleared


@pytest.mark.parametrize("sent", [2**63, 2**64 + 1, 1e19, -(2**63) - 1, 3e38])
def test_an_integer_feature_past_int64_is_a_400_not_a_wrapped_value(api, house_version, sent):
    """AutoGluon casts an integer feature to int64, where these wrap round to another number."""
    response = api.post(f"/api/models/{house_version.model_id}/predict",
                        {"features": {**HOUSE, "bedrooms": sent}}, format="json")
    assert response.status_code == 400, response.content
    assert "out of range for an integer feature" in response.json()["errors"]["features.bedrooms"]
    text = f"{HEADER}1200,{int(sent)},30,austin\n"
    refused = post_raw(api, house_version, text.encode(), "text/csv")
    assert refused.status_code == 400 and "out of range" in refused.json()["errors"]["row 1, column bedrooms"]


def test_the_largest_int64_is_predicted_as_autogluon_predicts_it(api, house_version, house_predictor_dir):
    import pandas as pd
    from autogluon.tabular import TabularPredictor

    house_predictor = TabularPredictor.load(str(house_predictor_dir))

    row = {**HOUSE, "bedrooms": 2**63 - 1}
    response = api.post(f"/api/models/{house_version.model_id}/predict", {"features": row}, format="json")
    assert response.status_code == 200, response.content
    frame = pd.DataFrame([row]).astype({"bedrooms": "int64"})
    assert response.json()["prediction"] == pytest.approx(float(house_predictor.predict(frame).iloc[0]))


@pytest.mark.parametrize("cell", ["1_800", "١٨٠٠", "１８００", "0x10", "1800 sq", "1,800"])
def test_numbers_are_read_as_csv_readers_read_them(api, house_version, cell):
    """Python's float() takes underscores and other scripts' digits; no CSV reader takes them for numbers."""
    text = f'{HEADER}"{cell}",2,30,austin\n'
    response = post_raw(api, house_version, text.encode(), "text/csv")
    assert response.status_code == 400, response.content
    assert "must be a number" in response.json()["errors"]["row 1, column sqft"]


def test_a_csv_integer_of_thousands_of_digits_is_out_of_range(api, house_version):
    for column in ("sqft", "bedrooms"):
        cells = {"sqft": "1200", "bedrooms": "2", column: "9" * 5000}
        text = f"{HEADER}{cells['sqft']},{cells['bedrooms']},30,austin\n"
        response = post_raw(api, house_version, text.encode(), "text/csv")
        assert response.status_code == 400, response.content
        assert "out of range" in response.json()["errors"][f"row 1, column {column}"]


@pytest.mark.parametrize("bad_row", [1, 11, 5001])
def test_bytes_that_are_not_utf8_name_their_row_and_column(api, house_version, settings, bad_row):
    settings.PREDICT_MAX_ROWS = 10_000
    rows = [b"1200,2,30,austin\n"] * 6000
    rows[bad_row - 1] = b"1200,2,30,m\xe9xico\n"  # Latin-1
    data = HEADER.encode() + b"".join(rows)
    response = post_raw(api, house_version, data, "text/csv")
    assert response.status_code == 400, response.content
    assert response.json()["errors"] == {f"row {bad_row}": "is not UTF-8 text (column city): save the file as UTF-8"}
    with pytest.raises(InvalidInput) as refused:
        job_services.job_create(version=house_version, data=data)
    assert list(refused.value.errors) == [f"row {bad_row}"]
    header = post_raw(api, house_version, b"sqft,bedrooms,age_years,c\xefty\n1,2,3,austin\n", "text/csv")
    assert header.status_code == 400 and "not UTF-8" in header.json()["errors"]["header"]


def test_a_record_of_many_quoted_cells_is_checked_in_one_pass(api, house_version):
    """Each cell with a quote was once looked for in the whole record: 150,000 of them took a minute."""
    cells = ",".join(f'"q""{i}"' for i in range(150_000))
    response = post_raw(api, house_version, f"{HEADER}{cells}\n".encode(), "text/csv")
    assert response.status_code == 400
    assert response.json()["errors"] == {"row 1": "has 150000 cells; the header has 4 columns"}
    stray = ",".join([*(f'"q""{i}"' for i in range(1000)), 'q"stray'])
    response = post_raw(api, house_version, f"{HEADER}{stray}\n".encode(), "text/csv")
    assert "stray quote in the cell 'q\"stray'" in response.json()["errors"]["row 1"]
