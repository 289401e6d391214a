"""Child processes that share the test run's database, cache folder and servers (workers, nodes, crashers)."""

import os
import threading
from pathlib import Path

from django.db import connection

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def database_url() -> str:
    """The test database as a URL, so child processes share it (SQLite file or PostgreSQL)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _results_uri(settings) -> str:
    """This test's results storage, for children: they read and write the same job files."""
    results = settings.STORAGES["results"]
    if results["BACKEND"].endswith("FileSystemStorage"):
        return Path(results["OPTIONS"]["location"]).as_uri()
    prefix = results["OPTIONS"].get("location", "")
    return f"s3://{results['OPTIONS']['bucket_name']}/{prefix}"


def child_env(settings, **extra) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),
        MODEL_CACHE_DIR=str(settings.MODEL_CACHE_DIR),
        PORTAL_NODE_NAME=settings.NODE_NAME,
        AWS_S3_ENDPOINT_URL=settings.AWS_S3_ENDPOINT_URL or "",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        MODEL_SHARED_URI=settings.MODEL_SHARED_URI,
        REDIS_URL=settings.REDIS_URL,
        PORTAL_PRELOAD_AUTOGLUON="0",
        RESULTS_STORAGE_URI=_results_uri(settings),
    )
    env.update(extra)  # the caller's settings win
    return env


def in_threads(count: int, task) -> list:
    """Run ``task()`` in ``count`` threads released together; return their results (a failure re-raises).

    Each thread has its own database connection, closed at its end, as a server thread would.
    """
    barrier = threading.Barrier(count)
    results: list = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(task())
        except BaseException as error:  # handed to the test below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results
