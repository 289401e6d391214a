"""A results storage (folder, S3, Azure) that fails is a 503 naming it, within seconds, on every path that
uses it: job uploads, web CSV results and downloads, job result downloads, chunks (retried), results_clean.

The faults are real: a folder that is a file, S3 and Azure endpoints on a loopback port nothing listens
on, and a moto bucket whose server is then out of reach."""

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from portal.settings import _results_storage
from predictions import result_files
from predictions.jobs import services as job_services
from predictions.models import BatchJob
from tests.predictions.test_job_files import HOUSES, run_all
from tests.predictions.test_web import upload
from tests.servers import AzuriteServer, free_port


def dead_endpoint() -> str:
    return f"http://127.0.0.1:{free_port()}"


def broken_folder(tmp_path) -> dict:
    occupied = tmp_path / "results-is-a-file"
    occupied.write_text("not a folder")
    return {"BACKEND": "django.core.files.storage.FileSystemStorage", "OPTIONS": {"location": str(occupied)}}


def s3_results(bucket: str, endpoint_url: str) -> dict:
    """The settings' S3 results storage (its timeouts and retries included) at ``endpoint_url``."""
    config = _results_storage(f"s3://{bucket}/portal-results")
    options = {**config["OPTIONS"], "endpoint_url": endpoint_url, "access_key": "testing", "secret_key": "testing"}
    return {**config, "OPTIONS": options}


def azure_results(endpoint_url: str) -> dict:
    config = _results_storage("azure://results/portal-results")
    connection_string = AzuriteServer.connection_string_via(f"{endpoint_url}/devstoreaccount1")
    return {**config, "OPTIONS": {**config["OPTIONS"], "connection_string": connection_string}}


@pytest.fixture(params=["folder", "s3", "azure"])
def results_down(request, settings, tmp_path):
    storage = {
        "folder": lambda: broken_folder(tmp_path),
        "s3": lambda: s3_results("results", dead_endpoint()),
        "azure": lambda: azure_results(dead_endpoint()),
    }[request.param]()
    settings.STORAGES = {**settings.STORAGES, "results": storage}
    return request.param


def assert_names_the_storage(body: dict) -> None:
    assert body["code"] == "results_storage_unavailable"
    assert body["detail"].startswith("the results storage failed while saving jobs/")


def test_uploads_are_a_503_naming_the_storage_and_leave_no_job(results_down, api, signed_in, house_version,
                                                                settings):
    settings.REDIS_URL = ""
    response = api.post("/api/jobs/", {"file": upload("h.csv", HOUSES), "model": "house-prices"}, format="multipart")
    assert response.status_code == 503
    assert_names_the_storage(response.json())
    assert not BatchJob.objects.exists()

    page = signed_in.post("/jobs/", {"model": "house-prices", "file": upload("h.csv", HOUSES)})
    assert page.status_code == 503 and b"the results storage failed while saving" in page.content
    assert not BatchJob.objects.exists()

    # A web CSV prediction shows no rows it cannot also offer for download.
    csv_page = reverse("web:model-predict-csv", kwargs={"name": "house-prices"})
    page = signed_in.post(csv_page, {"file": upload("h.csv", HOUSES)})
    assert page.status_code == 503 and b'id="results-unavailable"' in page.content
    assert b"the results storage failed while saving web/" in page.content
    assert "predictions:last-batch:house-prices" not in signed_in.session


@pytest.fixture
def moto_results(s3_bucket, moto_server, settings):
    """Results kept in a moto bucket; ``.cut()`` puts the same bucket out of reach."""

    class Results:
        @staticmethod
        def cut():
            settings.STORAGES = {**settings.STORAGES, "results": s3_results(s3_bucket, dead_endpoint())}

        @staticmethod
        def restore():
            settings.STORAGES = {**settings.STORAGES, "results": s3_results(s3_bucket, moto_server.endpoint_url)}

    Results.restore()
    return Results


def test_results_that_cannot_be_read_are_a_503_not_a_cut_download(moto_results, api, signed_in, user, house_version):
    job = run_all(job_services.job_create(version=house_version, data=HOUSES.encode(), user=user))
    assert job.status == "succeeded"
    csv_page = reverse("web:model-predict-csv", kwargs={"name": "house-prices"})
    assert signed_in.post(csv_page, {"file": upload("h.csv", HOUSES)}).status_code == 200

    moto_results.cut()
    download = api.get(f"/api/jobs/{job.pk}/result")
    assert download.status_code == 503 and not download.streaming
    assert download.json()["code"] == "results_storage_unavailable"
    assert "failed while opening jobs/" in download.json()["detail"]
    csv_download = reverse("web:model-predict-csv-download", kwargs={"name": "house-prices"})
    web_download = signed_in.get(csv_download)
    assert web_download.status_code == 503
    assert b"the results storage failed while looking for web/" in web_download.content
    # A new web result is refused whole; the one kept before stays the session's download.
    kept = signed_in.session["predictions:last-batch:house-prices"]
    assert signed_in.post(csv_page, {"file": upload("h.csv", HOUSES)}).status_code == 503
    assert signed_in.session["predictions:last-batch:house-prices"] == kept
    with pytest.raises(CommandError, match="the results storage failed while listing web"):
        call_command("results_clean", "--hours", "0")

    moto_results.restore()
    assert api.get(f"/api/jobs/{job.pk}/result").status_code == 200
    assert signed_in.get(csv_download).status_code == 200


def test_a_chunk_whose_files_cannot_be_reached_is_retried_not_failed(moto_results, house_version):
    job = job_services.job_create(version=house_version, data=HOUSES.encode())
    chunk = job.chunks.get()
    moto_results.cut()
    with pytest.raises(result_files.ResultStorageUnavailable) as raised:
        job_services.chunk_run(chunk_id=chunk.pk)
    assert isinstance(raised.value, job_services.RETRYABLE)  # the runners' retry, then "gave up after N: <why>"
    job.refresh_from_db()
    assert job.status != "failed" and job.rows_done == 0

    moto_results.restore()
    assert job_services.chunk_run(chunk_id=chunk.pk)
    job.refresh_from_db()
    assert job.status == "succeeded" and job.rows_done == 2


def test_an_upload_cut_midway_answers_with_the_fault_and_keeps_no_job(
    moto_results, house_version, settings, monkeypatch, caplog
):
    settings.PREDICT_JOB_CHUNK_ROWS = 1  # two chunks: the storage goes away once the first is saved
    real_save = result_files.result_file_save

    def save_then_cut(**kwargs):
        name = real_save(**kwargs)
        moto_results.cut()
        return name

    monkeypatch.setattr(result_files, "result_file_save", save_then_cut)
    # The fault of the save is the answer, not that of the clean-up after it, which fails too.
    with pytest.raises(result_files.ResultStorageUnavailable, match="failed while saving jobs/"):
        job_services.job_create(version=house_version, data=HOUSES.encode())
    assert not BatchJob.objects.exists()
    assert "a failed upload's 1 input file(s) stay in the results storage" in caplog.text
