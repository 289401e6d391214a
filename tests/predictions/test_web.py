"""The web UI through Django's test client, against real AutoGluon predictors published to a per-test origin."""

import csv
import io
from html.parser import HTMLParser

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from predictions.models import PredictionLog

HOUSE_ROW = {"sqft": "1850.5", "bedrooms": "3", "age_years": "12", "city": "boston"}
CHURN_ROW = {"tenure_months": "14", "monthly_spend": "59.9", "support_calls": "2", "plan": "plus"}


class _Sections(HTMLParser):
    """Text and tags of the elements with the given ids (the stdlib parser: no extra dependency)."""

    VOID = {"input", "br", "img", "meta", "link", "hr", "col", "source", "wbr", "area", "base"}

    def __init__(self):
        super().__init__()
        self.stack: list[tuple[str, str | None]] = []
        self.text: dict[str, list[str]] = {}
        self.tags: dict[str, list[tuple[str, dict]]] = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for open_id in self._open_ids():
            self.tags[open_id].append((tag, attrs))
        if tag in self.VOID:
            if attrs.get("id"):
                self.tags.setdefault(attrs["id"], []).append((tag, attrs))
            return
        element_id = attrs.get("id")
        if element_id:
            self.text.setdefault(element_id, [])
            self.tags.setdefault(element_id, [(tag, attrs)])
        self.stack.append((tag, element_id))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        while self.stack:
            open_tag, _ = self.stack.pop()
            if open_tag == tag:
                break

    def handle_data(self, data):
        for open_id in self._open_ids():
            self.text[open_id].append(data)

    def _open_ids(self):
        return [element_id for _, element_id in self.stack if element_id]


def sections(response) -> _Sections:
    parser = _Sections()
    parser.feed(response.content.decode())
    return parser


def text_of(response, element_id: str) -> str:
    found = sections(response).text.get(element_id)
    assert found is not None, f"no element #{element_id} in the page"
    return " ".join(" ".join(found).split())


def errors_text(response) -> str:
    """The error summaries of both forms ("sqft: This field is required." ...), as text."""
    parser = sections(response)
    found = [parser.text[i] for i in ("form-errors", "csv-errors") if i in parser.text]
    assert found, "the page shows no form error"
    return " ".join(" ".join("".join(pieces) for pieces in found).split())


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user(username="ada", password="pw-ada-123")


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


def detail_url(name):
    return reverse("web:model-detail", kwargs={"name": name})


def predict_url(name):
    return reverse("web:model-predict", kwargs={"name": name})


def csv_url(name):
    return reverse("web:model-predict-csv", kwargs={"name": name})


def upload(name: str, text: str | bytes) -> SimpleUploadedFile:
    data = text.encode() if isinstance(text, str) else text
    return SimpleUploadedFile(name, data, content_type="text/csv")


# --- access -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/models/house-prices/", "/models/house-prices/csv/download/"])
def test_anonymous_is_sent_to_login(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("web:login") + "?next=")


@pytest.mark.django_db
def test_anonymous_post_is_sent_to_login(client):
    response = client.post("/models/house-prices/predict/", HOUSE_ROW)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("web:login"))


@pytest.mark.django_db
def test_login_page_signs_in_and_logout_is_a_post(client, user):
    page = client.get(reverse("web:login"))
    assert page.status_code == 200
    assert b'name="username"' in page.content and b'name="password"' in page.content
    response = client.post(reverse("web:login"), {"username": "ada", "password": "pw-ada-123"})
    assert response.status_code == 302 and response["Location"] == reverse("web:catalog")
    catalog = client.get("/")
    assert b"ada" in catalog.content
    assert f'action="{reverse("web:logout")}"'.encode() in catalog.content
    assert client.post(reverse("web:logout")).status_code == 302
    assert client.get("/").status_code == 302


@pytest.mark.django_db
def test_wrong_password_stays_on_login_page(client, user):
    response = client.post(reverse("web:login"), {"username": "ada", "password": "nope"})
    assert response.status_code == 200
    assert b"alert-error" in response.content


@pytest.mark.django_db
def test_unknown_model_is_404(signed_in):
    assert signed_in.get("/models/no-such-model/").status_code == 404
    assert signed_in.post("/models/no-such-model/predict/", HOUSE_ROW).status_code == 404
    assert signed_in.post("/models/no-such-model/csv/", {"file": upload("x.csv", "a\n1\n")}).status_code == 404
    assert signed_in.get("/models/no-such-model/csv/download/").status_code == 404


def test_staff_see_admin_and_dashboard_links(signed_in, user, django_user_model, client):
    html = signed_in.get("/").content.decode()
    assert 'href="/admin/"' not in html and "/admin/cache/dashboard/" not in html
    staff = django_user_model.objects.create_user(username="ops", password="x", is_staff=True)
    client.force_login(staff)
    html = client.get("/").content.decode()
    assert 'href="/admin/"' in html and 'href="/admin/cache/dashboard/"' in html
    assert "Model Cache Portal" in html and "ops" in html


# --- catalog and model page ---------------------------------------------------------------------------------


def test_catalog_lists_models_with_tier_badges(signed_in, house_version, churn_version):
    response = signed_in.get("/")
    assert response.status_code == 200
    catalog = text_of(response, "catalog")
    assert "house-prices" in catalog and "customer-churn" in catalog
    assert "regression" in catalog and "binary classification" in catalog
    assert "v1" in catalog
    html = response.content.decode()
    assert f'href="{detail_url("house-prices")}"' in html
    # Nothing fetched yet: neither model is cached anywhere.
    assert catalog.count("not cached") == 2
    assert 'data-tier="memory"' not in html

    # After a prediction the house model sits in memory and on disk; the churn model is still nowhere.
    assert signed_in.post(predict_url("house-prices"), HOUSE_ROW).status_code == 200
    response = signed_in.get("/")
    parser = sections(response)
    rows = {}
    for tag, attrs in parser.tags["catalog"]:
        if tag == "tr" and "data-model" in attrs:
            current = attrs["data-model"]
            rows[current] = []
        elif tag == "span" and "data-tier" in attrs:
            rows[current].append(attrs["data-tier"])
    assert rows == {"customer-churn": [], "house-prices": ["memory", "disk"]}


def test_catalog_shows_archive_size(signed_in, house_version):
    from django.template.defaultfilters import filesizeformat

    catalog = text_of(signed_in.get("/"), "catalog")
    assert " ".join(str(filesizeformat(house_version.artifact.size_bytes)).split()) in catalog


def test_model_page_renders_an_input_per_feature_type(signed_in, house_version):
    response = signed_in.get(detail_url("house-prices"))
    assert response.status_code == 200
    parser = sections(response)
    fields = {attrs.get("name"): (tag, attrs) for tag, attrs in parser.tags["predict-form"] if attrs.get("name")}
    for name in ("sqft", "bedrooms", "age_years"):
        tag, attrs = fields[name]
        assert tag == "input" and attrs["type"] == "number" and attrs["step"] == "any", name
    assert fields["city"][0] == "select"
    html = response.content.decode()
    for city in ("austin", "boston", "chicago", "denver"):
        assert f'<option value="{city}">{city}</option>' in html
    schema = text_of(response, "schema")
    for feature in house_version.features:
        assert feature["name"] in schema and feature["dtype"] in schema
    assert "not cached" in text_of(response, "model-tiers")
    assert "sqft,bedrooms,age_years,city" in html  # the CSV header hint
    assert 'enctype="multipart/form-data"' in html


def test_bool_and_datetime_features_get_fitting_widgets(signed_in, house_version):
    """The form is generated from the schema: a bool becomes a true/false select, a datetime a picker."""
    from predictions.forms import feature_form_class

    house_version.features = [
        *house_version.features,
        {"name": "has_pool", "dtype": "bool"},
        {"name": "listed_at", "dtype": "datetime"},
        {"name": "street", "dtype": "object"},
    ]
    form = feature_form_class(house_version)()
    html = str(form["has_pool"])
    assert "<select" in html and 'value="true"' in html and 'value="false"' in html
    assert 'type="datetime-local"' in str(form["listed_at"])
    assert 'type="text"' in str(form["street"])
    bound = feature_form_class(house_version)(
        {**HOUSE_ROW, "has_pool": "false", "listed_at": "2024-01-02T03:04", "street": "Main St"}
    )
    assert bound.is_valid(), bound.errors
    assert bound.row() == {
        "sqft": 1850.5, "bedrooms": 3, "age_years": 12, "city": "boston",
        "has_pool": False, "listed_at": "2024-01-02T03:04", "street": "Main St",
    }


# --- predictions from the form ------------------------------------------------------------------------------


def test_form_prediction_shows_value_tier_and_timings(signed_in, house_version):
    response = signed_in.post(predict_url("house-prices"), HOUSE_ROW)
    assert response.status_code == 200
    result = text_of(response, "result")
    value = float(text_of(response, "prediction-value"))
    assert value > 0
    assert "price" in result
    # First prediction: fetched from origin (the only remote tier configured in tests).
    assert 'data-served-from="origin"' in response.content.decode()
    for step in ("fetch", "load", "predict", "total"):
        assert step in result
    assert result.count(" ms") == 4
    # The typed values stay in the form.
    assert 'value="1850.5"' in response.content.decode()

    again = signed_in.post(predict_url("house-prices"), HOUSE_ROW)
    assert again.status_code == 200
    assert 'data-served-from="memory"' in again.content.decode()
    assert "memory" in text_of(again, "result")
    assert float(text_of(again, "prediction-value")) == value
    assert text_of(again, "model-tiers").split()[:1] == ["memory"]

    logs = list(PredictionLog.objects.order_by("pk").values_list("channel", "served_from", "rows"))
    assert logs == [("web", "origin", 1), ("web", "memory", 1)]


def test_classifier_shows_class_probabilities(signed_in, churn_version):
    response = signed_in.post(predict_url("customer-churn"), CHURN_ROW)
    assert response.status_code == 200
    probabilities = text_of(response, "probabilities")
    predicted = text_of(response, "prediction-value")
    labels = [str(label) for label in churn_version.class_labels]
    assert predicted in labels
    for label in labels:
        assert label in probabilities
    # The most probable class is listed first and is the prediction.
    assert probabilities.split()[2] == predicted  # "class probability <top label> ..."


def test_get_on_a_form_target_goes_back_to_the_model_page(signed_in, house_version):
    response = signed_in.get(predict_url("house-prices"))
    assert response.status_code == 302 and response["Location"] == detail_url("house-prices")


# --- bad input from the form: 400 with the field named ------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"sqft": "lots"}, "sqft", "Enter a number"),
        ({"sqft": "nan"}, "sqft", "finite"),
        ({"age_years": "inf"}, "age_years", "finite"),
        ({"sqft": "1e39"}, "sqft", "out of range"),
        ({"sqft": "1_800"}, "sqft", "Enter a number"),
        ({"bedrooms": "٣"}, "bedrooms", "Enter a number"),
        ({"bedrooms": "1e19"}, "bedrooms", "out of range for an integer feature"),
        ({"city": "paris"}, "city", "Select a valid choice"),
    ],
)
def test_bad_form_input_is_a_400_naming_the_field(signed_in, house_version, changes, field, message):
    row = {**HOUSE_ROW, **changes}
    row = {name: value for name, value in row.items() if value is not None}
    response = signed_in.post(predict_url("house-prices"), row)
    assert response.status_code == 400
    errors = errors_text(response)
    assert f"{field}:" in errors and message in errors
    html = response.content.decode()
    assert f'<p class="field-error" data-field="{field}">' in html
    assert 'id="result"' not in html
    assert not PredictionLog.objects.exists()


@pytest.mark.parametrize("changes", [{"sqft": ""}, {"city": ""}, {"bedrooms": None}])
def test_a_blank_field_is_predicted_as_a_missing_value(signed_in, house_version, changes):
    from predictions import inputs
    from predictions.services import prediction_run

    row = {name: value for name, value in {**HOUSE_ROW, **changes}.items() if value is not None}
    response = signed_in.post(predict_url("house-prices"), row)
    assert response.status_code == 200, errors_text(response)
    assert PredictionLog.objects.filter(channel="web", rows=1).count() == 1
    # The same row with null for the blank field, as the API takes it, gives the same prediction.
    (blank,) = changes
    as_json = {"sqft": 1850.5, "bedrooms": 3, "age_years": 12, "city": "boston", blank: None}
    features = inputs.rows_from_json(version=house_version, rows=[as_json]).features
    expected = prediction_run(version=house_version, frame=features).predictions[0]
    assert float(text_of(response, "prediction-value")) == pytest.approx(float(expected), rel=1e-6)


# --- CSV batches ----------------------------------------------------------------------------------------------


HOUSE_CSV = "sqft,bedrooms,age_years,city\n1200,2,30,austin\n2400.5,4,5,boston\n900,1,60,denver\n"


def test_csv_upload_shows_a_table_and_downloads_csv(signed_in, house_version):
    response = signed_in.post(csv_url("house-prices"), {"file": upload("houses.csv", HOUSE_CSV)})
    assert response.status_code == 200
    parser = sections(response)
    body_rows = [attrs for tag, attrs in parser.tags["results-table"] if tag == "tr"]
    assert len(body_rows) == 1 + 3  # header + one per input row
    table = text_of(response, "results-table")
    assert "prediction" in table and "austin" in table and "2400.5" in table
    results = text_of(response, "csv-results")
    assert "houses.csv" in results and "3 rows" in results
    assert 'data-served-from="origin"' in response.content.decode()
    assert "total" in results

    download = signed_in.get(reverse("web:model-predict-csv-download", kwargs={"name": "house-prices"}))
    assert download.status_code == 200
    assert download["Content-Type"].startswith("text/csv")
    assert 'attachment; filename="house-prices-v1-predictions.csv"' == download["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(download.getvalue().decode())))
    assert [row["city"] for row in rows] == ["austin", "boston", "denver"]
    assert all(float(row["prediction"]) > 0 for row in rows)
    assert list(rows[0]) == ["sqft", "bedrooms", "age_years", "city", "prediction", "warnings"]
    # Cells come back as they were sent, not as the floats the frame holds.
    assert [(row["sqft"], row["bedrooms"]) for row in rows] == [("1200", "2"), ("2400.5", "4"), ("900", "1")]
    assert PredictionLog.objects.get().rows == 3


def test_csv_upload_for_a_classifier_has_probability_columns(signed_in, churn_version):
    data = "tenure_months,monthly_spend,support_calls,plan\n3,80,6,basic\n40,20.5,0,premium\n"
    response = signed_in.post(csv_url("customer-churn"), {"file": upload("c.csv", data)})
    assert response.status_code == 200
    download = signed_in.get(reverse("web:model-predict-csv-download", kwargs={"name": "customer-churn"}))
    rows = list(csv.DictReader(io.StringIO(download.getvalue().decode())))
    assert len(rows) == 2
    labels = [str(label) for label in churn_version.class_labels]
    for row in rows:
        assert row["prediction"] in labels
        assert abs(sum(float(row[f"probability_{label}"]) for label in labels) - 1) < 1e-3


def test_download_without_an_upload_is_404(signed_in, house_version):
    assert signed_in.get(reverse("web:model-predict-csv-download", kwargs={"name": "house-prices"})).status_code == 404


@pytest.mark.parametrize(
    ("data", "named", "message"),
    [
        (b"", "file", "is empty"),
        (b"sqft,bedrooms,age_years,city\n", "file", "no data rows"),
        (b"sqft,bedrooms,age_years,city\n1200,2,30\n", "row 1", "has 3 cells"),
        (b"sqft,bedrooms,age_years\n1200,2,30\n", "column city", "is missing from the header"),
        (b"sqft,bedrooms,age_years,city\n1200,2,30,austin\nbig,2,30,austin\n", "row 2, column sqft", "must be a number"),
        (b"sqft,bedrooms,age_years,city\nnan,2,30,austin\n", "row 1, column sqft", "finite"),
        (b"sqft,sqft,age_years,city\n1,2,3,austin\n", "header", "duplicate"),
        (b"\xff\xfe\x00garbage", "header", "not UTF-8"),
        (b'sqft,bedrooms,age_years,city\n"1200,2,30,austin\n', "row 1", "quote that is never closed"),
    ],
)
def test_bad_csv_is_a_400_naming_the_row(signed_in, house_version, data, named, message):
    response = signed_in.post(csv_url("house-prices"), {"file": upload("bad.csv", data)})
    assert response.status_code == 400
    errors = errors_text(response)
    assert named in errors and message in errors, errors
    assert 'id="csv-results"' not in response.content.decode()
    assert not PredictionLog.objects.exists()


def test_too_many_csv_rows_is_a_400(signed_in, house_version, settings):
    settings.PREDICT_MAX_ROWS = 2
    response = signed_in.post(csv_url("house-prices"), {"file": upload("many.csv", HOUSE_CSV)})
    assert response.status_code == 400
    errors = errors_text(response)
    assert "file:" in errors and "more than 2 rows" in errors


def test_csv_post_without_a_file_is_a_400(signed_in, house_version):
    response = signed_in.post(csv_url("house-prices"), {})
    assert response.status_code == 400
    assert "file:" in errors_text(response) and "required" in errors_text(response)


def test_a_model_that_cannot_be_fetched_is_an_error_on_the_page(signed_in, house_version):
    """The origin lost the archive: the page says so with a 503, not a 500."""
    from pathlib import Path
    from urllib.parse import urlparse

    Path(urlparse(house_version.artifact.source_uri).path).unlink()
    response = signed_in.post(predict_url("house-prices"), HOUSE_ROW)
    assert response.status_code == 503
    assert "could not be served" in text_of(response, "unavailable")
    response = signed_in.post(csv_url("house-prices"), {"file": upload("houses.csv", HOUSE_CSV)})
    assert response.status_code == 503
    assert 'id="unavailable"' in response.content.decode()
