"""CSV batch prediction jobs: services (create, run a chunk, fail, wait) and selectors (list, get, result).

A job's CSV is validated whole when it is created (a malformed file is a 400 naming row and column, and
no job), then stored in the database as chunks of ``PREDICT_JOB_CHUNK_ROWS`` rows: the database is the one
store every node and worker shares. Chunks run

- on Celery workers (``REDIS_URL`` set): one task per chunk, in parallel, each worker serving the model
  through its own cache tiers (``predictions.services.prediction_run``);
- in the server process otherwise (the embedded default): a background thread runs the chunks in order,
  so no broker is needed; after a restart, a worker process of the node takes up what was left.

A chunk is finished with one conditional update (``done=False -> True``) in the same transaction that
adds its rows to the job's progress, so a chunk delivered twice (a worker killed after predicting, before
acknowledging) is stored and counted once. The result is the chunks' rows concatenated by index: the
input's rows in the input's order, each exactly once.
"""

import codecs
import csv
import io
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import filelock
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, Q
from django.http import Http404
from django.utils import timezone

from cache_app.services.errors import ArtifactUnavailable
from predictions import inputs, result_files, results, services
from predictions.models import BatchChunk, BatchJob, ModelVersion

logger = logging.getLogger(__name__)

TERMINAL = (BatchJob.Status.SUCCEEDED, BatchJob.Status.FAILED)


class JobNotFinished(Exception):
    pass


class JobExpired(JobNotFinished):
    """The job's files were deleted after ``PREDICT_RESULTS_TTL_HOURS``."""


class ChunkUnavailable(Exception):
    """The model could not be served for a chunk right now (fetch failed, cache full...): worth a retry."""


# What a chunk is tried again for, in process and on Celery: the model, the storage or the database may
# come back (a restart, a full disk freed, a failover). Anything else fails the job at once, with its reason.
RETRYABLE = (ChunkUnavailable, DatabaseError, OSError)


def retry_delay(attempt: int) -> float:
    return settings.PREDICT_JOB_RETRY_SECONDS * (attempt + 1)


# --- Settings -----------------------------------------------------------------------------------------------


def chunk_rows_setting() -> int:
    rows = int(settings.PREDICT_JOB_CHUNK_ROWS)
    # A chunk is predicted as one request would be, so it obeys the per-request row limit.
    return max(1, min(rows, settings.PREDICT_MAX_ROWS))


def max_upload_bytes_setting() -> int:
    return int(settings.PREDICT_JOB_MAX_UPLOAD_BYTES)


def job_queue_setting() -> str:
    """The Celery queue chunks go to (workers consume it: ``celery -A portal worker -Q <name>``)."""
    return settings.PREDICT_JOB_QUEUE


def uses_celery() -> bool:
    """Celery workers when a broker is configured; the server process otherwise."""
    return bool(settings.REDIS_URL)


# --- Creating a job -----------------------------------------------------------------------------------------


def _csv_line(values: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(values)  # "\r\n", so a carriage return in a name is quoted
    return out.getvalue()


def _split(version: ModelVersion, data, chunk_rows: int) -> Iterator[tuple[str, list]]:
    """Yield ("header", header) once, then ("chunk", [first_record, rows, text]) per chunk, validated.

    The file is read strictly (``inputs.CSVRecords``) and each chunk validated with the file's own record
    numbers, so an error names the row of the uploaded file. A chunk's text keeps an empty line for each
    skipped empty record: read again from ``first_record``, its records get the same numbers.
    """
    records = inputs.CSVRecords(inputs.csv_text_stream(data, limit=max_upload_bytes_setting(), what="a job"))
    yield "header", records.header
    first_record = previous = 0
    chunk: list[tuple[int, list[str]]] = []
    for number, values in records:
        chunk.append((number, values))
        if len(chunk) >= chunk_rows:
            yield "chunk", [first_record, len(chunk), _chunk_text(version, records.header, chunk, previous)]
            first_record = previous = number
            chunk = []
    if chunk:
        yield "chunk", [first_record, len(chunk), _chunk_text(version, records.header, chunk, previous)]


def _chunk_text(version: ModelVersion, header: list[str], chunk: list[tuple[int, list[str]]], previous: int) -> str:
    inputs.rows_from_records(version=version, header=header, records=chunk)
    out = io.StringIO()
    writer = csv.writer(out)  # "\r\n": a carriage return inside a cell is quoted, so the row reads back whole
    for number, values in chunk:
        out.write("\n" * (number - previous - 1))
        writer.writerow(values)
        previous = number
    return out.getvalue()


def job_create(*, version: ModelVersion, data, filename: str = "", user=None, start: bool = True) -> BatchJob:
    """Validate the whole CSV (``bytes``, an upload or a binary file), store it as chunks and start it.

    Raises ``inputs.InvalidInput`` (rows and columns at fault, file-relative) and stores nothing then.
    ``start=False`` leaves the job queued (for callers that run chunks themselves).
    """
    chunk_rows = chunk_rows_setting()
    batch: list[BatchChunk] = []
    saved: list[str] = []
    try:
        with transaction.atomic():
            job = None
            index = 0
            rows_total = 0
            for kind, payload in _split(version, data, chunk_rows):
                if kind == "header":
                    job = BatchJob.objects.create(
                        user=user if user is not None and user.is_authenticated else None,
                        version=version,
                        filename=filename[:255],
                        input_header=_csv_line(payload),
                        node=settings.NODE_NAME,
                        progressed_at=timezone.now(),
                    )
                    continue
                first_record, rows, text = payload
                name = result_files.result_file_save(
                    folder=result_files.job_folder(job), stem=f"input-{index:05d}", text=text
                )
                saved.append(name)
                batch.append(BatchChunk(job=job, index=index, first_record=first_record, rows=rows, input_name=name))
                index += 1
                rows_total += rows
                if len(batch) >= 20:
                    BatchChunk.objects.bulk_create(batch)
                    batch = []
            if rows_total == 0:
                raise inputs.InvalidInput({"file": "has a header but no data rows"})
            BatchChunk.objects.bulk_create(batch)
            BatchJob.objects.filter(pk=job.pk).update(rows_total=rows_total, chunks_total=index)
            job.rows_total, job.chunks_total = rows_total, index
            if start:
                transaction.on_commit(lambda: job_start(job=job))
    except BaseException:
        # Nothing of a refused or failed upload stays behind: its rows rolled back, its files go too.
        result_files.result_files_delete(saved)
        raise
    logger.info("job %s: %s rows in %s chunks of %s for %s", job.pk, rows_total, index, chunk_rows, version)
    return job


def job_start(*, job: BatchJob) -> bool:
    """Hand the job's unfinished chunks to Celery, or to a thread of this process without a broker.

    Returns False when another process of this node is already running the job in process.
    """
    chunk_ids = list(job.chunks.filter(done=False).order_by("index").values_list("pk", flat=True))
    if uses_celery():
        from portal.celery import app
        from predictions.tasks import predict_chunk

        # An explicit connection to the broker configured now (settings may change at runtime, in tests).
        queue = job_queue_setting()
        with app.connection_for_write(settings.REDIS_URL) as conn:
            for chunk_id in chunk_ids:
                predict_chunk.apply_async((chunk_id,), connection=conn, queue=queue)
        return True
    runner = _in_process_runner(job)
    try:
        runner.acquire(timeout=0)
    except filelock.Timeout:
        return False
    thread = threading.Thread(
        target=_run_in_process, args=(job.pk, chunk_ids, runner), name=f"job-{job.pk}", daemon=True
    )
    thread.start()
    return True


def jobs_resume_interrupted() -> list[int]:
    """Run the rest of this node's in-process jobs that a restart interrupted; return their ids.

    Without a broker a job lives in a server thread, so a restart leaves it queued or running with chunks
    to do. Every worker process calls this when it starts; the job's runner lock lets one of them take it.
    (With Celery nothing is needed: unacknowledged chunks are delivered again.)
    """
    jobs_fail_stalled()
    if uses_celery():
        return []
    resumed = []
    unfinished = BatchJob.objects.filter(
        node=settings.NODE_NAME, status__in=[BatchJob.Status.QUEUED, BatchJob.Status.RUNNING]
    )
    for job in unfinished.order_by("pk"):
        if job_start(job=job):
            logger.info("job %s: resumed in process %s", job.pk, os.getpid())
            resumed.append(job.pk)
    connection.close()
    return resumed


def _in_process_runner(job: BatchJob) -> filelock.FileLock:
    """Held by the process running a job in process. Named by id and creation time: ids repeat when a
    database is reset, a running job's lock must not."""
    folder = Path(settings.DATA_DIR) / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    stamp = int(job.created_at.timestamp() * 1_000_000)
    # Not thread-local: the thread that runs the job releases what the starting thread acquired.
    return filelock.FileLock(folder / f"{job.pk}-{stamp}.lock", thread_local=False)


def _run_in_process(job_id: int, chunk_ids: list[int], runner: filelock.FileLock) -> None:
    try:
        for chunk_id in chunk_ids:
            for attempt in range(settings.PREDICT_JOB_RETRIES + 1):
                try:
                    chunk_run(chunk_id=chunk_id)
                    break
                except RETRYABLE as error:
                    if attempt == settings.PREDICT_JOB_RETRIES:
                        job_fail(job_id=job_id, message=f"gave up after {attempt + 1} attempts: {error}")
                        return
                    logger.warning("job %s chunk %s: %s; trying again", job_id, chunk_id, error)
                    time.sleep(retry_delay(attempt))
            if BatchJob.objects.filter(pk=job_id, status=BatchJob.Status.FAILED).exists():
                return
    except Exception as error:  # noqa: BLE001 - a thread has no one to raise to: record it on the job
        logger.exception("job %s failed in process", job_id)
        job_fail(job_id=job_id, message=f"internal error: {error}")
    finally:
        runner.release()
        Path(runner.lock_file).unlink(missing_ok=True)
        connection.close()


# --- Running a chunk ----------------------------------------------------------------------------------------


def chunk_run(*, chunk_id: int) -> bool:
    """Predict one chunk and store it, once. Returns False when there was nothing to do.

    Safe to call twice for one chunk, concurrently or not: the second store is a no-op. Raises
    ``ChunkUnavailable`` when the model cannot be served (the caller decides whether to retry); a chunk
    whose rows are invalid fails the job with the rows and columns at fault.
    """

    chunk = BatchChunk.objects.select_related("job__version__artifact", "job__version__model", "job__user").filter(
        pk=chunk_id
    ).first()
    if chunk is None or chunk.done:
        return False
    job = chunk.job
    if job.status in TERMINAL:
        return False
    BatchChunk.objects.filter(pk=chunk.pk).update(
        attempts=F("attempts") + 1, worker=f"{settings.NODE_NAME}:{os.getpid()}"
    )
    if job.status == BatchJob.Status.QUEUED:
        BatchJob.objects.filter(pk=job.pk, status=BatchJob.Status.QUEUED).update(
            status=BatchJob.Status.RUNNING, started_at=timezone.now()
        )
    version = job.version
    data = (job.input_header + result_files.result_file_text(chunk.input_name)).encode()
    try:
        # The file was validated at creation; this guards against anything stored since (and costs little).
        rows = inputs.rows_from_csv(version=version, data=data, first_row=chunk.first_record)
    except inputs.InvalidInput as error:
        job_fail(job_id=job.pk, message="invalid input", errors=error.errors)
        return False
    try:
        result = services.prediction_run(version=version, frame=rows.frame, user=job.user, channel="job")
    except ArtifactUnavailable as error:
        raise ChunkUnavailable(f"model {version} unavailable: {error}") from error

    header, table = results.result_table(rows, result)
    result_header = "".join(results.csv_lines([header]))
    result_name = result_files.result_file_save(
        folder=result_files.job_folder(job), stem=f"result-{chunk.index:05d}", text="".join(results.csv_lines(table))
    )

    with transaction.atomic():
        stored = BatchChunk.objects.filter(pk=chunk.pk, done=False).update(
            done=True, result_name=result_name, node=settings.NODE_NAME, finished_at=timezone.now()
        )
        if stored:
            BatchJob.objects.filter(pk=job.pk).update(
                rows_done=F("rows_done") + chunk.rows, chunks_done=F("chunks_done") + 1, progressed_at=timezone.now()
            )
            BatchJob.objects.filter(pk=job.pk, result_header="").update(result_header=result_header)
    if not stored:
        # Another attempt stored this chunk first: its file is the one recorded, this one is nobody's.
        result_files.result_files_delete([result_name])
        return False
    # After the commit, so of two chunks finishing together the later one sees both done.
    if not BatchChunk.objects.filter(job_id=job.pk, done=False).exists():
        BatchJob.objects.filter(pk=job.pk, status__in=[BatchJob.Status.QUEUED, BatchJob.Status.RUNNING]).update(
            status=BatchJob.Status.SUCCEEDED, finished_at=timezone.now()
        )
    return True


def jobs_fail_stalled() -> int:
    """Fail the jobs that have not moved for ``PREDICT_JOB_STALL_SECONDS``; returns how many.

    Workers retry what can be retried; this bounds what cannot be seen from a worker (a broker that lost
    the chunks, every worker gone), so no job shows "running" forever. Called wherever jobs are shown.
    """
    stall = settings.PREDICT_JOB_STALL_SECONDS
    cutoff = timezone.now() - timedelta(seconds=stall)
    stalled = BatchJob.objects.filter(status__in=[BatchJob.Status.QUEUED, BatchJob.Status.RUNNING]).filter(
        Q(progressed_at__lt=cutoff) | Q(progressed_at__isnull=True, created_at__lt=cutoff)
    )
    message = f"no progress for {stall} s: the job was stopped; submit it again"
    count = stalled.update(status=BatchJob.Status.FAILED, error={"message": message, "errors": {}},
                           finished_at=timezone.now())
    if count:
        logger.warning("%s stalled job(s) failed: %s", count, message)
    return count


def jobs_expire(*, cutoff) -> int:
    """Delete the files of jobs that finished before ``cutoff`` and mark them expired; returns how many.

    The rows stay: who ran what, when, and how it ended remain listed; only the data goes.
    """
    finished = BatchJob.objects.filter(status__in=TERMINAL, finished_at__lt=cutoff, expired_at__isnull=True)
    count = 0
    for job in finished.iterator():
        names = BatchChunk.objects.filter(job=job).values_list("input_name", "result_name")
        result_files.result_files_delete(name for pair in names for name in pair)
        count += BatchJob.objects.filter(pk=job.pk, expired_at__isnull=True).update(expired_at=timezone.now())
    return count


def job_fail(*, job_id: int, message: str, errors: dict | None = None) -> None:
    """Mark a job failed (first failure wins); its remaining chunks are skipped."""
    BatchJob.objects.filter(pk=job_id).exclude(status__in=TERMINAL).update(
        status=BatchJob.Status.FAILED, error={"message": message, "errors": errors or {}}, finished_at=timezone.now()
    )
    logger.warning("job %s failed: %s %s", job_id, message, errors or "")


# --- Waiting (benchmarks, scripts) --------------------------------------------------------------------------


def job_wait(*, job: BatchJob, timeout: float = 3600.0, poll_seconds: float = 0.2) -> BatchJob:
    """Poll until the job succeeds or fails; raise ``TimeoutError`` after ``timeout`` seconds."""
    give_up = time.monotonic() + timeout
    while True:
        job.refresh_from_db()
        if job.status in TERMINAL:
            return job
        if time.monotonic() > give_up:
            raise TimeoutError(f"job {job.pk} still {job.status} after {timeout:.0f}s ({job.rows_done}/{job.rows_total} rows)")
        time.sleep(poll_seconds)


def job_run_and_wait(*, version: ModelVersion, data, filename: str = "", user=None, timeout: float = 3600.0) -> dict:
    """Create a job, run it (Celery workers when ``REDIS_URL`` is set, else this process) and wait for it.

    For ``bench/``: returns the finished job and the seconds spent validating and storing ("create") and
    predicting ("run"), so throughput with 1 and 2 workers can be compared.
    """
    began = time.monotonic()
    job = job_create(version=version, data=data, filename=filename, user=user)
    created = time.monotonic()
    job = job_wait(job=job, timeout=timeout)
    finished = time.monotonic()
    return {"job": job, "create_seconds": created - began, "run_seconds": finished - created, "rows": job.rows_total}


# --- Selectors ----------------------------------------------------------------------------------------------


def job_list(*, user, limit: int = 100):
    jobs = BatchJob.objects.select_related("version__model").order_by("-created_at", "-pk")
    if not user.is_staff:
        jobs = jobs.filter(user=user)
    return jobs[:limit]


def job_get(*, user, job_id: int) -> BatchJob:
    """A job its owner (or staff) may see; 404 for anyone else, so ids reveal nothing."""
    found = BatchJob.objects.select_related("version__model").filter(pk=job_id)
    if not user.is_staff:
        found = found.filter(Q(user=user))
    job = found.first()
    if job is None:
        raise Http404(f"no job {job_id}")
    return job


def job_progress(job: BatchJob) -> float:
    if job.status == BatchJob.Status.SUCCEEDED:
        return 1.0
    return round(job.rows_done / job.rows_total, 4) if job.rows_total else 0.0


def job_error(job: BatchJob) -> dict | None:
    """The failure with the first row and column at fault pulled out, or None."""
    if job.status != BatchJob.Status.FAILED:
        return None
    errors = (job.error or {}).get("errors") or {}
    row = column = None
    for key in errors:
        match = re.match(r"^row (\d+)(?:, column (.+))?$", key)
        if match:
            row, column = int(match.group(1)), match.group(2)
            break
    return {"message": (job.error or {}).get("message", ""), "row": row, "column": column, "errors": errors}


def job_result_lines(*, job: BatchJob) -> Iterator[str]:
    """The result CSV, streamed: header, then every chunk's file by chunk index (the input's order).

    Read a piece at a time from the ``results`` storage, so a million-row result never sits in memory.
    """
    if job.expired_at is not None:
        raise JobExpired(f"job {job.pk}'s files were deleted on {job.expired_at:%Y-%m-%d %H:%M} UTC (results expire)")
    if job.status != BatchJob.Status.SUCCEEDED:
        raise JobNotFinished(f"job {job.pk} is {job.status}; its result exists once it has succeeded")
    names = list(BatchChunk.objects.filter(job=job).order_by("index").values_list("result_name", flat=True))
    return _result_text(job.result_header, names)


def _result_text(header: str, names: list[str]) -> Iterator[str]:
    yield header
    for name in names:
        decoder = codecs.getincrementaldecoder("utf-8")()  # a character may straddle two pieces
        for piece in result_files.result_file_chunks(name):
            yield decoder.decode(piece)
        yield decoder.decode(b"", final=True)
