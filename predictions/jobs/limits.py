"""Fairness between users of batch jobs: how many one user may have queued or running at once.

A job's chunks share the workers (or the server's job thread) with everyone's; without a bound, one user's
ten large CSVs queue ahead of everybody else's and slow their predictions.
"""

from django.conf import settings

from predictions.models import BatchJob

ACTIVE = (BatchJob.Status.QUEUED, BatchJob.Status.RUNNING)


class TooManyJobs(Exception):
    """The user already has as many jobs queued or running as ``PREDICT_JOB_MAX_ACTIVE_PER_USER`` allows."""


def job_limit_check(*, user) -> None:
    """Raise ``TooManyJobs`` when ``user`` may not start another job now; call it before ``job_create``.

    Two uploads from one user at the very same moment can both pass (the count and the insert are not one
    transaction): the bound may be exceeded by the user's own concurrent submissions, never by others'.
    """
    limit = settings.PREDICT_JOB_MAX_ACTIVE_PER_USER
    if limit <= 0 or user is None or not user.is_authenticated:
        return
    active = BatchJob.objects.filter(user=user, status__in=ACTIVE).count()
    if active >= limit:
        raise TooManyJobs(
            f"you have {active} batch jobs queued or running and the limit per user is {limit}: "
            f"submit this one when one of them has finished"
        )
