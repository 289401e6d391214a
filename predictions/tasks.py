"""Celery tasks: one per chunk of a CSV batch job. The work is ``predictions.jobs.chunk_run``.

``acks_late`` + ``reject_on_worker_lost`` (set app-wide in portal/celery.py, repeated here so the task is
safe whatever the app config says): a chunk whose worker dies is delivered again, and ``chunk_run``
stores a chunk once however often it runs.
"""

from celery import shared_task

from predictions import jobs

UNAVAILABLE_RETRIES = 3
UNAVAILABLE_RETRY_SECONDS = 5


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, ignore_result=True, max_retries=UNAVAILABLE_RETRIES)
def predict_chunk(self, chunk_id: int) -> bool:
    try:
        return jobs.chunk_run(chunk_id=chunk_id)
    except jobs.ChunkUnavailable as error:
        # The origin or the cache may come back (a restart, a full disk freed): retry a few times first.
        if self.request.retries < UNAVAILABLE_RETRIES:
            raise self.retry(exc=error, countdown=UNAVAILABLE_RETRY_SECONDS * (self.request.retries + 1)) from error
        chunk = jobs.BatchChunk.objects.filter(pk=chunk_id).values_list("job_id", flat=True).first()
        if chunk is not None:
            jobs.job_fail(job_id=chunk, message=str(error))
        return False
