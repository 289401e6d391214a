"""The Celery app: CSV batch chunks run on workers (``make worker``) against the broker at ``REDIS_URL``.

Without ``REDIS_URL`` nothing here is used: ``predictions.jobs.dispatch`` runs jobs in the server process instead, so
the embedded default needs no broker.

Reliability: a chunk's message is acknowledged only after the chunk is stored (``acks_late``), and a
worker child killed mid-chunk has its message put back (``task_reject_on_worker_lost``), so another child
predicts it; the chunk is stored idempotently, so a redelivery never duplicates rows. One message at a
time per child (prefetch 1) keeps chunks spread over every child instead of queued behind a busy one.
"""

import os

from celery import Celery
from celery.signals import worker_process_init, worker_process_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")


def _defaults() -> dict:
    # Read lazily (on first use of the config), so importing this module never loads Django settings.
    from django.conf import settings

    return {
        "broker_url": settings.REDIS_URL or "memory://",
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # Where chunks go and workers listen (``PREDICT_JOB_QUEUE``): fleets sharing one Redis keep apart.
        "task_default_queue": settings.PREDICT_JOB_QUEUE,
        "broker_connection_retry_on_startup": True,
        # A message a dead worker held unacknowledged comes back after this long (the whole worker gone;
        # a dead child alone is requeued at once). Longer than any chunk may take.
        "broker_transport_options": {"visibility_timeout": 3600},
        "worker_hijack_root_logger": False,
    }


app.add_defaults(_defaults)
# CELERY_* settings, where the lead adds any, override the defaults above.
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["predictions"])


@worker_process_init.connect
def _runtime_start(**kwargs):
    # Each prefork child has its own memory tier, so each listens for clears itself; it answers no web
    # request, so promotions do not wait for it.
    from cache_app.services import runtime

    runtime.start(serving=False)


@worker_process_shutdown.connect
def _runtime_stop(**kwargs):
    from cache_app.services import runtime

    runtime.stop()
