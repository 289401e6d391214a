"""CSV batch jobs in the embedded mode (no broker: a thread of the server process runs the chunks), through
the API and the web UI, against real AutoGluon predictors. Celery workers are exercised in tests/test_fleet.py."""

import csv
import io
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from predictions import demo, inputs, services
from predictions.jobs import dispatch
from predictions.jobs import selectors as job_selectors
from predictions.jobs import services as job_services
from predictions.models import BatchChunk, BatchJob
from predictions.result_files import result_file_save, result_file_text
from tests.servers import free_port

CHUNK_ROWS = 60


@pytest.fixture(autouse=True)
def in_process_jobs(settings):
    settings.REDIS_URL = ""  # the embedded mode, whatever the environment says
    settings.PREDICT_JOB_CHUNK_ROWS = CHUNK_ROWS


def csv_bytes(frame) -> bytes:
    return frame.to_csv(index=False).encode()


def read_csv(content: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(content.decode())))


def result_bytes(response) -> bytes:
    return b"".join(response.streaming_content)


def submit(api, model, data: bytes, name="rows.csv", **extra):
    upload = SimpleUploadedFile(name, data, content_type="text/csv")
    return api.post("/api/jobs/", {"file": upload, "model": model, **extra}, format="multipart")


def wait_done(api, job_id, timeout=120.0) -> dict:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        body = api.get(f"/api/jobs/{job_id}").json()
        if body["status"] in ("succeeded", "failed"):
            return body
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} not finished after {timeout}s: {body}")


CASES = {
    "house": ("house_version", demo.house_prices, []),
    "churn": ("churn_version", demo.customer_churn, ["probability_no", "probability_yes"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.django_db(transaction=True)
def test_job_through_the_api_runs_every_row_in_order(case, api, request):
    fixture, make_frame, probability_columns = CASES[case]
    version = request.getfixturevalue(fixture)
    frame = make_frame(250, seed=7)  # the label column comes along: allowed, echoed, not used
    response = submit(api, version.model.name, csv_bytes(frame))
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["status"] in ("queued", "running", "succeeded")
    assert created["rows_total"] == 250 and created["chunks_total"] == 5  # 4 x 60 + 10

    body = wait_done(api, created["id"])
    assert body["status"] == "succeeded", body
    assert body["progress"] == 1.0 and body["rows_done"] == 250 and body["chunks_done"] == 5
    assert body["error"] is None

    download = api.get(body["result_url"])
    assert download.status_code == 200
    assert download["Content-Type"].startswith("text/csv")
    rows = read_csv(result_bytes(download))
    assert len(rows) == 250
    assert list(rows[0]) == [*frame.columns, "prediction", *probability_columns, "warnings"]
    # Input order and values round-trip exactly, chunk boundaries included.
    expected = frame.astype(str).to_dict(orient="records")
    assert [{k: row[k] for k in frame.columns} for row in rows] == expected
    # The predictions are the ones a synchronous request gives for the same rows.
    direct = services.prediction_run(
        version=version, frame=inputs.rows_from_csv(version=version, data=csv_bytes(frame)).features
    )
    got = [row["prediction"] for row in rows]
    if probability_columns:
        assert got == [str(p) for p in direct.predictions]
        for row in rows:
            assert abs(sum(float(row[c]) for c in probability_columns) - 1.0) < 1e-4
    else:
        assert [float(p) for p in got] == pytest.approx(direct.predictions, rel=1e-5)
    assert BatchChunk.objects.filter(job_id=created["id"], done=True).count() == 5


@pytest.mark.django_db
def test_malformed_csv_is_a_400_naming_row_and_column(api, house_version):
    frame = demo.house_prices(200, seed=3)
    frame["sqft"] = frame["sqft"].astype(object)
    frame.loc[129, "sqft"] = "big"  # row 130 of the file: in the third chunk
    response = submit(api, "house-prices", csv_bytes(frame))
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert "row 130, column sqft" in errors, errors
    assert "must be a number" in errors["row 130, column sqft"]
    assert BatchJob.objects.count() == 0 and BatchChunk.objects.count() == 0

    bad_header = submit(api, "house-prices", b"sqft,sqft\n1,2\n")
    assert bad_header.status_code == 400 and "header" in bad_header.json()["errors"]
    not_utf8 = submit(api, "house-prices", b"sqft,bedrooms,age_years,city\n1,2,3,\xff\xfe\n")
    assert not_utf8.status_code == 400
    empty = submit(api, "house-prices", b"")
    assert empty.status_code == 400
    no_file = api.post("/api/jobs/", {"model": "house-prices"}, format="multipart")
    assert no_file.status_code == 400
    unknown = submit(api, "no-such-model", csv_bytes(frame.head(3)))
    assert unknown.status_code == 404


@pytest.mark.django_db
def test_anonymous_gets_401(house_version):
    client = APIClient()
    upload = SimpleUploadedFile("rows.csv", b"sqft\n1\n", content_type="text/csv")
    assert client.post("/api/jobs/", {"file": upload, "model": "house-prices"}, format="multipart").status_code == 401
    assert client.get("/api/jobs/").status_code == 401
    assert client.get("/api/jobs/1").status_code == 401
    assert client.get("/api/jobs/1/result").status_code == 401


@pytest.mark.django_db
def test_progress_is_reported_chunk_by_chunk_and_a_redelivered_chunk_counts_once(api, user, house_version):
    frame = demo.house_prices(150, seed=5)
    job = job_services.job_create(version=house_version, data=csv_bytes(frame), filename="rows.csv", user=user)
    chunk_ids = list(job.chunks.order_by("index").values_list("pk", flat=True))
    assert len(chunk_ids) == 3

    body = api.get(f"/api/jobs/{job.pk}").json()
    assert (body["status"], body["progress"], body["rows_done"], body["rows_total"]) == ("queued", 0.0, 0, 150)
    assert api.get(f"/api/jobs/{job.pk}/result").status_code == 409

    assert job_services.chunk_run(chunk_id=chunk_ids[0]) is True
    assert job_services.chunk_run(chunk_id=chunk_ids[0]) is False  # delivered again: stored and counted once
    body = api.get(f"/api/jobs/{job.pk}").json()
    assert (body["status"], body["progress"], body["rows_done"], body["chunks_done"]) == ("running", 0.4, 60, 1)

    # Chunks may finish in any order; the result is still in input order.
    assert job_services.chunk_run(chunk_id=chunk_ids[2]) is True
    body = api.get(f"/api/jobs/{job.pk}").json()
    assert (body["progress"], body["rows_done"]) == (0.6, 90)  # 60 + the last 30
    assert job_services.chunk_run(chunk_id=chunk_ids[1]) is True
    body = api.get(f"/api/jobs/{job.pk}").json()
    assert (body["status"], body["progress"], body["rows_done"]) == ("succeeded", 1.0, 150)
    rows = read_csv(result_bytes(api.get(f"/api/jobs/{job.pk}/result")))
    assert [row["sqft"] for row in rows] == frame["sqft"].astype(str).tolist()


@pytest.mark.django_db
def test_a_chunk_that_turns_out_invalid_fails_the_job_with_row_and_column(api, user, house_version):
    frame = demo.house_prices(130, seed=9)
    job = job_services.job_create(version=house_version, data=csv_bytes(frame), user=user)
    second = job.chunks.get(index=1)
    lines = result_file_text(second.input_name).splitlines(keepends=True)
    cells = lines[4].split(",")
    cells[2] = "old"  # age_years of file row 65 (chunk 1 starts after 60 records)
    lines[4] = ",".join(cells)
    tampered = result_file_save(folder="jobs", stem="tampered", text="".join(lines))
    BatchChunk.objects.filter(pk=second.pk).update(input_name=tampered)

    job_services.chunk_run(chunk_id=job.chunks.get(index=0).pk)
    job_services.chunk_run(chunk_id=second.pk)
    assert job_services.chunk_run(chunk_id=job.chunks.get(index=2).pk) is False  # a failed job runs no more chunks
    body = api.get(f"/api/jobs/{job.pk}").json()
    assert body["status"] == "failed"
    assert (body["error"]["row"], body["error"]["column"]) == (65, "age_years")
    assert "row 65, column age_years" in body["error"]["errors"]
    assert api.get(f"/api/jobs/{job.pk}/result").status_code == 409


@pytest.mark.django_db
def test_jobs_are_private_to_their_owner(api, user, django_user_model, house_version):
    job = job_services.job_create(version=house_version, data=csv_bytes(demo.house_prices(5)), user=user)
    other = APIClient()
    other.credentials(
        HTTP_AUTHORIZATION=f"Bearer {Token.objects.create(user=django_user_model.objects.create_user('eve')).key}"
    )
    assert other.get(f"/api/jobs/{job.pk}").status_code == 404
    assert other.get(f"/api/jobs/{job.pk}/result").status_code == 404
    assert other.get("/api/jobs/").json() == []
    assert [j["id"] for j in api.get("/api/jobs/").json()] == [job.pk]


@pytest.mark.django_db(transaction=True)
def test_web_upload_page_and_live_detail_page(client, user, house_version):
    client.force_login(user)
    page = client.get("/jobs/")
    assert page.status_code == 200 and b'id="job-upload"' in page.content

    bad = client.post(
        "/jobs/", {"model": "house-prices", "file": SimpleUploadedFile("bad.csv", b"sqft,bedrooms,age_years,city\nx,1,2,boston\n")}
    )
    assert bad.status_code == 400 and b"row 1, column sqft" in bad.content

    data = csv_bytes(demo.house_prices(80, seed=2))
    response = client.post("/jobs/", {"model": "house-prices", "file": SimpleUploadedFile("good.csv", data)})
    assert response.status_code == 302
    detail = client.get(response["Location"])
    assert detail.status_code == 200
    for marker in (b'id="job-progress"', b"portal/jobs.js", b'data-api-url="/api/jobs/'):
        assert marker in detail.content
    job = BatchJob.objects.get()
    job = dispatch.job_wait(job=job, timeout=120)
    assert job.status == "succeeded"
    # The page's script polls the API with the session cookie.
    assert client.get(f"/api/jobs/{job.pk}").json()["progress"] == 1.0
    assert b"good.csv" in client.get("/jobs/").content


@pytest.mark.django_db(transaction=True)
def test_a_job_the_broker_cannot_take_is_a_503_and_is_failed_with_the_reason(api, client, user, house_version, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # a loopback port nothing listens on
    data = csv_bytes(demo.house_prices(2 * CHUNK_ROWS, seed=5))

    response = submit(api, "house-prices", data)
    assert response.status_code == 503
    assert response.json()["code"] == "job_queue_unavailable"
    assert "cannot be reached" in response.json()["detail"]
    refused = BatchJob.objects.get()
    # Failed with the reason at once, not left queued until the stall timeout.
    assert refused.status == "failed"
    assert "job queue" in refused.error["message"] and "submit it again" in refused.error["message"]
    assert api.get(f"/api/jobs/{refused.pk}").json()["status"] == "failed"

    client.force_login(user)
    page = client.post("/jobs/", {"model": "house-prices", "file": SimpleUploadedFile("rows.csv", data)})
    assert page.status_code == 503
    assert b"cannot be reached" in page.content and b"Submit the file again" in page.content
    assert list(BatchJob.objects.values_list("status", flat=True)) == ["failed", "failed"]


@pytest.mark.django_db(transaction=True)
def test_a_job_a_restart_interrupted_is_resumed_once(house_version, settings, tmp_path):
    settings.DATA_DIR = tmp_path
    data = csv_bytes(demo.house_prices(5 * CHUNK_ROWS, seed=4).drop(columns=["price"]))
    # The server died after two chunks: the job is left running with three to do, and no runner.
    job = job_services.job_create(version=house_version, data=data, filename="rows.csv")
    for chunk in BatchChunk.objects.filter(job=job).order_by("index")[:2]:
        job_services.chunk_run(chunk_id=chunk.pk)
    assert BatchJob.objects.get(pk=job.pk).status == BatchJob.Status.RUNNING

    # Two worker processes start and both look for interrupted jobs: one takes it, the other leaves it.
    runner = dispatch._in_process_runner(job)
    runner.acquire(timeout=0)  # as if another worker process had taken the job first
    try:
        assert dispatch.jobs_resume_interrupted() == []
    finally:
        runner.release()
    assert dispatch.jobs_resume_interrupted() == [job.pk]

    job = dispatch.job_wait(job=job, timeout=120)
    assert job.status == BatchJob.Status.SUCCEEDED and job.rows_done == 5 * CHUNK_ROWS
    assert sorted(BatchChunk.objects.filter(job=job).values_list("attempts", flat=True)) == [1, 1, 1, 1, 1]
    result = list(csv.reader(io.StringIO("".join(job_selectors.job_result_lines(job=job)))))
    assert len(result) == 1 + 5 * CHUNK_ROWS
    assert dispatch.jobs_resume_interrupted() == []  # finished jobs are left alone
