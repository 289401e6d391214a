"""Every CSV the portal writes is safe to open in a spreadsheet: formula-leading text is neutralised, numbers
stay numbers. The label column is echoed unvalidated, so it carries what a hostile uploader would send."""

import csv
import io

import pytest
from django.urls import reverse

from predictions.jobs import selectors as job_selectors
from predictions.jobs import services as job_services
from predictions.models import MLModel
from tests.predictions.test_web import upload

HOSTILE = ['=HYPERLINK("http://x")', "@SUM(1+1)", "+cmd", "-cmd", "\tinvisible", "\rreturn"]


def _csv(rows: list[list]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


TEXT = _csv(
    [["sqft", "bedrooms", "age_years", "city", "price"]]
    + [[1200, 2, 30, city, value] for city, value in zip(["austin", "=cmd", "boston"] * 2, HOSTILE)]
    + [[-1200, 2, 30, "austin", -5]]
)


def rows_of(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def check(rows: list[dict]) -> None:
    assert [row["price"] for row in rows] == ["'" + value for value in HOSTILE] + ["-5"]
    assert rows[1]["city"] == "'=cmd" and rows[-1]["sqft"] == "-1200"  # a negative number stays a number
    assert all(float(row["prediction"]) for row in rows)


@pytest.fixture
def lenient_house(house_version):
    """Unseen categories accepted with a warning, so a formula can reach a categorical column too."""
    MLModel.objects.filter(pk=house_version.model_id).update(unseen_categories=MLModel.UnseenCategories.WARN)
    house_version.model.refresh_from_db()
    return house_version


def test_api_csv_output(api, lenient_house):
    response = api.post(f"/api/models/{lenient_house.model_id}/predict?format=csv", TEXT, content_type="text/csv",
                        HTTP_ACCEPT="text/csv")
    assert response.status_code == 200, response.content
    check(rows_of(response.content.decode()))


def test_web_download(signed_in, lenient_house):
    signed_in.post(reverse("web:model-predict-csv", kwargs={"name": "house-prices"}), {"file": upload("h.csv", TEXT)})
    download = signed_in.get(reverse("web:model-predict-csv-download", kwargs={"name": "house-prices"}))
    check(rows_of(download.getvalue().decode()))


def test_job_result(lenient_house):
    job = job_services.job_create(version=lenient_house, data=TEXT.encode())
    for chunk in job.chunks.all():
        job_services.chunk_run(chunk_id=chunk.pk)
    job.refresh_from_db()
    check(rows_of("".join(job_selectors.job_result_lines(job=job))))
