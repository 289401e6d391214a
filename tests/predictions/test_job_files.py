"""Inputs and results live in the results storage (a folder, or S3 on moto), expire, and jobs never hang."""

import csv
import io
import shutil
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.storage import storages
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from cache_app.services.tiers.base import Location
from predictions import demo, result_files
from predictions.jobs import dispatch
from predictions.jobs import selectors as job_selectors
from predictions.jobs import services as job_services
from predictions.models import BatchChunk, BatchJob
from tests.predictions.test_web import upload

HOUSES = "sqft,bedrooms,age_years,city\n1200,2,30,austin\n2400,4,5,boston\n"


def stored_names(folder: str = "") -> list[str]:
    storage = storages["results"]
    dirs, files = storage.listdir(folder)
    names = [f"{folder}/{f}".lstrip("/") for f in files]
    for sub in dirs:
        names += stored_names(f"{folder}/{sub}".lstrip("/"))
    return names


def run_all(job):
    for chunk_id in job.chunks.order_by("index").values_list("pk", flat=True):
        job_services.chunk_run(chunk_id=chunk_id)
    job.refresh_from_db()
    return job


def test_web_results_are_a_file_and_the_session_holds_only_its_name(signed_in, house_version):
    url = reverse("web:model-predict-csv", kwargs={"name": "house-prices"})
    signed_in.post(url, {"file": upload("h.csv", HOUSES)})
    kept = signed_in.session["predictions:last-batch:house-prices"]
    assert set(kept) == {"version", "filename", "name"} and stored_names("web") == [kept["name"]]
    download = signed_in.get(reverse("web:model-predict-csv-download", kwargs={"name": "house-prices"}))
    assert download.streaming and len(list(csv.DictReader(io.StringIO(download.getvalue().decode())))) == 2
    # A new upload replaces the previous result: one file per user and model, not one per upload.
    signed_in.post(url, {"file": upload("h.csv", HOUSES)})
    assert stored_names("web") == [signed_in.session["predictions:last-batch:house-prices"]["name"]]


def test_job_chunks_are_files_not_rows(house_version, settings):
    settings.PREDICT_JOB_CHUNK_ROWS = 2
    data = demo.house_prices(5, seed=4).to_csv(index=False).encode()
    job = run_all(job_services.job_create(version=house_version, data=data))
    chunks = list(BatchChunk.objects.filter(job=job).values_list("input_name", "result_name"))
    assert len(chunks) == 3 and all(name.startswith(f"jobs/{job.pk}-") for pair in chunks for name in pair)
    assert sorted(stored_names("jobs")) == sorted(name for pair in chunks for name in pair)
    assert len(list(csv.DictReader(io.StringIO("".join(job_selectors.job_result_lines(job=job)))))) == 5


def test_a_refused_upload_leaves_no_file(house_version, settings):
    from predictions.inputs import InvalidInput

    settings.PREDICT_JOB_CHUNK_ROWS = 2
    with pytest.raises(InvalidInput):
        job_services.job_create(version=house_version, data=(HOUSES * 3 + "x,2,3,austin\n").encode())
    assert stored_names() == [] and not BatchJob.objects.exists()


def test_results_in_s3_on_moto(api, user, house_version, settings, s3_bucket):
    settings.STORAGES = {**settings.STORAGES, "results": {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {"bucket_name": s3_bucket, "location": "portal-results", "file_overwrite": False},
    }}
    job = run_all(job_services.job_create(version=house_version, data=HOUSES.encode(), user=user))
    assert job.status == "succeeded"
    assert all(name.startswith("jobs/") for name in stored_names()) and len(stored_names()) == 2
    download = api.get(f"/api/jobs/{job.pk}/result")
    assert download.status_code == 200
    assert [row["city"] for row in csv.DictReader(io.StringIO(download.getvalue().decode()))] == ["austin", "boston"]


def test_results_clean_expires_old_results_and_keeps_the_rest(api, user, signed_in, house_version):
    signed_in.post(reverse("web:model-predict-csv", kwargs={"name": "house-prices"}), {"file": upload("h.csv", HOUSES)})
    old = run_all(job_services.job_create(version=house_version, data=HOUSES.encode(), user=user))
    BatchJob.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(hours=200))
    recent = run_all(job_services.job_create(version=house_version, data=HOUSES.encode(), user=user))
    running = job_services.job_create(version=house_version, data=HOUSES.encode(), user=user)

    call_command("results_clean", "--hours", "100")
    assert stored_names("web") != []  # written just now
    assert api.get(f"/api/jobs/{old.pk}/result").status_code == 410
    assert api.get(f"/api/jobs/{old.pk}").json()["status"] == "succeeded"  # the record stays
    assert api.get(f"/api/jobs/{recent.pk}/result").status_code == 200
    assert all(not name.startswith(result_files.job_folder(old)) for name in stored_names("jobs"))
    assert BatchChunk.objects.filter(job=running).count() == 1 and running.chunks.get().input_name in stored_names("jobs")

    call_command("results_clean", "--hours", "0")
    assert stored_names("web") == []
    download = signed_in.get(reverse("web:model-predict-csv-download", kwargs={"name": "house-prices"}))
    assert download.status_code == 404


def test_a_stalled_job_is_failed_with_a_message(api, user, house_version, settings):
    settings.PREDICT_JOB_STALL_SECONDS = 60
    job = job_services.job_create(version=house_version, data=HOUSES.encode(), user=user)
    assert api.get(f"/api/jobs/{job.pk}").json()["status"] == "queued"
    BatchJob.objects.filter(pk=job.pk).update(status="running", progressed_at=timezone.now() - timedelta(seconds=61))
    body = api.get(f"/api/jobs/{job.pk}").json()
    assert body["status"] == "failed" and "no progress for 60 s" in body["error"]["message"]


def _origin_archive(version) -> Path:
    return Path(Location.parse(version.artifact.source_uri).key)


def _wait(job, *, until, timeout=60.0):
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        job.refresh_from_db()
        if until(job):
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job.pk} is {job.status}; chunk attempts {[c.attempts for c in job.chunks.all()]}")


@pytest.mark.django_db(transaction=True)
def test_an_unavailable_model_is_retried_until_it_comes_back(house_version, settings, tmp_path):
    settings.REDIS_URL = ""  # chunks run in a thread of this process (Celery's retries: tests/test_fleet.py)
    settings.PREDICT_JOB_RETRIES = 8
    settings.PREDICT_JOB_RETRY_SECONDS = 0.2
    settings.MODEL_FETCH_FAILURE_MEMORY_SECONDS = 0
    archive = _origin_archive(house_version)
    aside = tmp_path / "aside.zip"
    shutil.move(archive, aside)  # the origin is briefly without the model
    job = dispatch.job_submit(version=house_version, data=HOUSES.encode())
    _wait(job, until=lambda j: j.chunks.get().attempts >= 2)
    shutil.move(aside, archive)
    job = _wait(job, until=lambda j: j.status in ("succeeded", "failed"))
    assert job.status == "succeeded" and job.rows_done == 2


@pytest.mark.django_db(transaction=True)
def test_a_model_that_stays_unavailable_fails_the_job_with_the_reason(house_version, settings):
    settings.REDIS_URL = ""
    settings.PREDICT_JOB_RETRIES = 2
    settings.PREDICT_JOB_RETRY_SECONDS = 0.05
    settings.MODEL_FETCH_FAILURE_MEMORY_SECONDS = 0
    _origin_archive(house_version).unlink()
    job = _wait(dispatch.job_submit(version=house_version, data=HOUSES.encode()),
                until=lambda j: j.status in ("succeeded", "failed"))
    assert job.status == "failed" and job.chunks.get().attempts == 3
    assert job.error["message"].startswith("gave up after 3 attempts: model house-prices v1 unavailable")
