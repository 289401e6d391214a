"""gunicorn settings for a portal node (``make run``). Every value can be overridden from the environment."""

import contextlib
import gc
import os

bind = os.environ.get("PORTAL_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("PORTAL_THREADS", "4"))
timeout = int(os.environ.get("PORTAL_TIMEOUT", "600"))  # a cold multi-GB fetch can take minutes
# Import Django and AutoGluon once in the master: workers fork with them loaded, so no request pays the
# seconds ``import autogluon.tabular`` costs.
preload_app = True
accesslog = "-"


def on_starting(server):
    """In the master, after the app is preloaded and before any worker forks."""
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    call_command("cache_reconcile")
    # Imported here, before the fork: the count of cores held by large predictions is shared by the workers.
    from predictions.threads import openmp_threads_set

    if settings.MODEL_WARM_PINNED_ON_START:
        from predictions.services import pinned_versions_warm

        # GNU OpenMP is not fork-safe once it has started a thread team: a worker forked from a master that
        # ran one can hang in its first threaded predict. Loading a model may run OpenMP regions, so the
        # master runs them on its own thread only (the setting is per thread; workers set their own). LightGBM
        # is imported first so that its runtime is among those set.
        with contextlib.suppress(ImportError):
            import lightgbm  # noqa: F401
        openmp_threads_set(1)
        for version, tier in pinned_versions_warm():
            server.log.info("warmed pinned %s from %s", version, tier)
    # Workers fork from here: a database connection shared across processes would corrupt both.
    connections.close_all()
    # Everything loaded so far (Django, AutoGluon, the pinned models) is shared copy-on-write with the
    # workers. A collection in a worker writes to every object it examines, copying its pages: frozen objects
    # are never examined again, so the pages stay shared.
    gc.collect()
    gc.freeze()


def post_fork(server, worker):
    import threading

    from cache_app.services import runtime
    from predictions.jobs.dispatch import jobs_resume_interrupted

    # The worker's own background parts: the listener for other nodes' clears, the cache folder's sweeper,
    # the promotion poller (cache_app.services.runtime).
    runtime.start(serving=True)
    # Jobs a restart interrupted go on (without a broker they ran in a server thread); in the background,
    # so the worker serves meanwhile.
    threading.Thread(target=jobs_resume_interrupted, name="jobs-resume", daemon=True).start()


def worker_exit(server, worker):
    """In the worker, on its way out (a graceful stop, a restart, max_requests): nothing counted or logged is
    lost."""
    from cache_app.services import runtime

    runtime.stop()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    from predictions.threads import worker_forget

    worker_forget(worker.pid)  # cores a killed worker held for a prediction are free again

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
