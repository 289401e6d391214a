"""Batch prediction jobs: creating one, running a chunk, failing, expiring.

A job's CSV is validated whole when it is created (a malformed file is a 400 naming row and column, and no
job), then stored as chunk files of ``PREDICT_JOB_CHUNK_ROWS`` rows in the results storage
(``predictions.result_files``), which every node and worker shares. ``predictions.jobs.dispatch`` hands
the chunks to Celery workers or to a server thread.

A chunk is finished with one conditional update (``done=False -> True``) in the same transaction that
adds its rows to the job's progress, so a chunk delivered twice (a worker killed after predicting, before
acknowledging) is stored and counted once. The result is the chunks' files concatenated by index: the
input's rows in the input's order, each exactly once.
"""

import csv
import io
import logging
import os
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone

from cache_app.services.errors import ArtifactUnavailable
from predictions import inputs, result_files, results, services
from predictions.models import BatchChunk, BatchJob, ModelVersion

logger = logging.getLogger(__name__)

TERMINAL = (BatchJob.Status.SUCCEEDED, BatchJob.Status.FAILED)

class ChunkUnavailable(Exception):
    """The model could not be served for a chunk right now (fetch failed, cache full...): worth a retry."""

# What a chunk is tried again for, in process and on Celery: the model, the storage or the database may
# come back (a restart, a full disk freed, a failover). Anything else fails the job at once, with its reason.
RETRYABLE = (ChunkUnavailable, DatabaseError, OSError, result_files.ResultStorageUnavailable)

def retry_delay(attempt: int) -> float:
    return settings.PREDICT_JOB_RETRY_SECONDS * (attempt + 1)

# --- Settings -----------------------------------------------------------------------------------------------

def chunk_rows_setting() -> int:
    rows = int(settings.PREDICT_JOB_CHUNK_ROWS)
    # A chunk is predicted as one request would be, so it obeys the per-request row limit.
    return max(1, min(rows, settings.PREDICT_MAX_ROWS))

def max_upload_bytes_setting() -> int:
    return int(settings.PREDICT_JOB_MAX_UPLOAD_BYTES)

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
    inputs.records_validate(version=version, header=header, records=chunk)
    out = io.StringIO()
    writer = csv.writer(out)  # "\r\n": a carriage return inside a cell is quoted, so the row reads back whole
    for number, values in chunk:
        out.write("\n" * (number - previous - 1))
        writer.writerow(values)
        previous = number
    return out.getvalue()


def job_create(*, version: ModelVersion, data, filename: str = "", user=None) -> BatchJob:
    """Validate the whole CSV (``bytes``, an upload or a binary file) and store it as chunks.

    Raises ``inputs.InvalidInput`` (rows and columns at fault, file-relative) and stores nothing then.
    The job is left queued: ``dispatch.job_submit`` creates and starts one.
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
    except BaseException:
        # Nothing of a refused or failed upload stays behind: its rows rolled back, its files go too.
        try:
            result_files.result_files_delete(saved)
        except result_files.ResultStorageUnavailable as error:
            # The first error is the answer; these files have no job to expire with, so say where they are.
            logger.warning("a failed upload's %s input file(s) stay in the results storage: %s", len(saved), error)
        raise
    logger.info("job %s: %s rows in %s chunks of %s for %s", job.pk, rows_total, index, chunk_rows, version)
    return job


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
        result = services.prediction_run(version=version, frame=rows.features, user=job.user, channel="job")
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
