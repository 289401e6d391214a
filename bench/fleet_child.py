"""The fleet row's job submitter, in a fresh process (so it runs the engine code and models as they are
now, not as they were when the bench process started).

Usage: python -m bench.fleet_child VERSION_ID CSV_PATH TIMEOUT_S [WARM_CHUNKS]

With WARM_CHUNKS, a small untimed job of WARM_CHUNKS chunks of 200 rows runs first, so each worker child has
imported autogluon and loaded the model before the timed job (as a long-running worker has); the
chunks-per-child of that job is reported, to show every child got one.
Environment: the run's (PORTAL_DATA_DIR, REDIS_URL, PREDICT_JOB_QUEUE, PREDICT_JOB_CHUNK_ROWS, PREDICT_MAX_ROWS).
Prints one JSON line: create/run seconds, rows, status, chunk rows, and which worker ran each chunk.
"""

import json
import os
import sys
from collections import Counter


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from bench.jobs_wait import job_run_and_wait
    from predictions.jobs import dispatch, services
    from predictions.models import BatchChunk
    from predictions.models import ModelVersion

    from django.conf import settings

    version_id, csv_path, timeout = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    warm_chunks = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    version = ModelVersion.objects.get(pk=version_id)
    user = get_user_model().objects.filter(username="bench").first()
    warm = None
    if warm_chunks:
        with open(csv_path, "rb") as f:
            head = b"".join(f.readline() for _ in range(200 * warm_chunks + 1))
        chunk_rows = settings.PREDICT_JOB_CHUNK_ROWS
        settings.PREDICT_JOB_CHUNK_ROWS = 200
        try:
            w = job_run_and_wait(version=version, data=head, filename="warm-up.csv", user=user, timeout=300)
        finally:
            settings.PREDICT_JOB_CHUNK_ROWS = chunk_rows
        warm = {"status": w["job"].status, "run_seconds": round(w["run_seconds"], 3),
                "chunks_per_worker_process": dict(Counter(w["job"].chunks.values_list("worker", flat=True)))}
    with open(csv_path, "rb") as data:
        try:
            result = job_run_and_wait(version=version, data=data, filename="bench.csv", user=user,
                                           timeout=timeout)
        except TimeoutError as error:
            print(json.dumps({"status": "timeout", "error": str(error)}))
            return
    job = result["job"]
    workers = Counter(job.chunks.values_list("worker", flat=True)) if hasattr(BatchChunk, "worker") else {}
    print(json.dumps({
        "status": job.status,
        "error": job.error if job.status != "succeeded" else None,
        "create_seconds": round(result["create_seconds"], 3),
        "run_seconds": round(result["run_seconds"], 3),
        "rows": result["rows"],
        "chunks": job.chunks_total,
        "chunk_rows": services.chunk_rows_setting(),
        "chunks_per_worker_process": dict(workers),
        "queue": dispatch.job_queue_setting(),
        "warm_up": warm,
    }, default=str))


if __name__ == "__main__":
    main()
