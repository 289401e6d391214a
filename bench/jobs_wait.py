"""Running a job to its end and timing its two halves, for the fleet benchmark."""

import time

from predictions.jobs import dispatch
from predictions.models import ModelVersion


def job_run_and_wait(*, version: ModelVersion, data, filename: str = "", user=None, timeout: float = 3600.0) -> dict:
    """Create a job, run it (Celery workers when ``REDIS_URL`` is set, else this process) and wait for it.

    For ``bench/``: returns the finished job and the seconds spent validating and storing ("create") and
    predicting ("run"), so throughput with 1 and 2 workers can be compared.
    """
    began = time.monotonic()
    job = dispatch.job_submit(version=version, data=data, filename=filename, user=user)
    created = time.monotonic()
    job = dispatch.job_wait(job=job, timeout=timeout)
    finished = time.monotonic()
    return {"job": job, "create_seconds": created - began, "run_seconds": finished - created, "rows": job.rows_total}
