"""Celery tasks: one per chunk of a CSV batch job. The work is ``predictions.jobs.services.chunk_run``.

``acks_late`` + ``reject_on_worker_lost`` (set app-wide in portal/celery.py, repeated here so the task is
safe whatever the app config says): a chunk whose worker dies is delivered again, and ``chunk_run``
stores a chunk once however often it runs.
"""

from celery import shared_task
from django.conf import settings

from predictions.jobs import services as job_services
from predictions.models import BatchChunk


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def predict_chunk(self, chunk_id: int) -> bool:
    try:
        return job_services.chunk_run(chunk_id=chunk_id)
    except job_services.RETRYABLE as error:
        retries = settings.PREDICT_JOB_RETRIES
        if self.request.retries < retries:
            raise self.retry(exc=error, countdown=job_services.retry_delay(self.request.retries), max_retries=retries) from error
        _fail_job_of(chunk_id, f"gave up after {retries + 1} attempts: {error}")
        return False
    except Exception as error:
        # Not worth retrying, and Celery would only log it: the job says what happened instead of running on.
        _fail_job_of(chunk_id, f"internal error: {error}")
        raise


def _fail_job_of(chunk_id: int, message: str) -> None:
    job_id = BatchChunk.objects.filter(pk=chunk_id).values_list("job_id", flat=True).first()
    if job_id is not None:
        job_services.job_fail(job_id=job_id, message=message)
