"""Where a job's chunks run: Celery workers when ``REDIS_URL`` is set, else a thread of this server.

- On Celery (``predictions.tasks.predict_chunk``): one task per chunk, in parallel, each worker serving the
  model through its own cache tiers; late acknowledgement redelivers the chunks of a worker that died.
- In process (the embedded default): a background thread runs the chunks in order, so no broker is needed;
  after a restart, a worker process of the node takes up what was left (``jobs_resume_interrupted``).
"""

import logging
import os
import threading
import time
from pathlib import Path

import filelock
from django.conf import settings
from django.db import connection, transaction
from kombu.exceptions import OperationalError as BrokerError

from predictions.jobs import services
from predictions.jobs.services import RETRYABLE, TERMINAL, job_fail, jobs_fail_stalled, retry_delay
from predictions.models import BatchJob, ModelVersion

logger = logging.getLogger(__name__)


class JobQueueUnavailable(Exception):
    """The broker at ``REDIS_URL`` cannot take the job's chunks: a fault to wait out, not of the request."""

    code = "job_queue_unavailable"


def job_submit(*, version: ModelVersion, data, filename: str = "", user=None) -> BatchJob:
    """Create a job (``services.job_create``: validated whole, or nothing) and start it once it is committed.

    Raises ``JobQueueUnavailable`` when the broker refuses it; the job is then failed with that reason, so
    it neither waits for chunks that were never queued nor hides that it was refused.
    """
    with transaction.atomic():
        job = services.job_create(version=version, data=data, filename=filename, user=user)
        transaction.on_commit(lambda: _job_start_or_fail(job))
    return job


def _job_start_or_fail(job: BatchJob) -> None:
    try:
        job_start(job=job)
    except JobQueueUnavailable as error:
        # Chunks queued before the broker failed are skipped by workers: a failed job runs nothing more.
        job_fail(job_id=job.pk, message=f"{error}; submit it again")
        raise


def uses_celery() -> bool:
    """Celery workers when a broker is configured; the server process otherwise."""
    return bool(settings.REDIS_URL)

def job_queue_setting() -> str:
    """The Celery queue chunks go to (workers consume it: ``celery -A portal worker -Q <name>``)."""
    return settings.PREDICT_JOB_QUEUE

def job_start(*, job: BatchJob) -> bool:
    """Hand the job's unfinished chunks to Celery, or to a thread of this process without a broker.

    Returns False when another process of this node is already running the job in process.
    """
    chunk_ids = list(job.chunks.filter(done=False).order_by("index").values_list("pk", flat=True))
    if uses_celery():
        from predictions.tasks import predict_chunk

        # An explicit connection to the broker configured now (settings may change at runtime, in tests).
        queue = job_queue_setting()
        try:
            with predict_chunk.app.connection_for_write(settings.REDIS_URL) as conn:
                for chunk_id in chunk_ids:
                    predict_chunk.apply_async((chunk_id,), connection=conn, queue=queue)
        except BrokerError as error:
            raise JobQueueUnavailable(f"the job queue (Redis) cannot be reached: {str(error).rstrip('.')}") from error
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
                    services.chunk_run(chunk_id=chunk_id)
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
