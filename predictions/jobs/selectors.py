"""Reads of batch jobs: lists, one job, its progress and error, its result streamed from storage."""

import codecs
import itertools
import re
from collections.abc import Iterator

from django.db.models import Q

from predictions import result_files
from predictions.models import BatchChunk, BatchJob

class JobNotFinished(Exception):
    pass

class JobExpired(JobNotFinished):
    """The job's files were deleted after ``PREDICT_RESULTS_TTL_HOURS``."""

def job_list(*, user, limit: int = 100):
    jobs = BatchJob.objects.select_related("version__model").order_by("-created_at", "-pk")
    if not user.is_staff:
        jobs = jobs.filter(user=user)
    return jobs[:limit]


def job_get(*, user, job_id: int) -> BatchJob | None:
    """A job its owner (or staff) may see; None for anyone else, so ids reveal nothing."""
    found = BatchJob.objects.select_related("version__model").filter(pk=job_id)
    if not user.is_staff:
        found = found.filter(Q(user=user))
    return found.first()


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
    # The first file is opened now: a results storage that is down fails the request (a 503) before any
    # header is sent. One that fails later cuts the download short, which the client sees as an error.
    first = [result_files.result_file_chunks(names[0])] if names else []
    later = (result_files.result_file_chunks(name) for name in names[1:])
    return _result_text(job.result_header, itertools.chain(first, later))

def _result_text(header: str, files: Iterator[Iterator[bytes]]) -> Iterator[str]:
    yield header
    for pieces in files:
        decoder = codecs.getincrementaldecoder("utf-8")()  # a character may straddle two pieces
        for piece in pieces:
            yield decoder.decode(piece)
        yield decoder.decode(b"", final=True)
