"""P4's worker process: THREADS threads fetch one cold artifact at a signal; prints per-thread timings.

Usage: python -m bench.p4_worker ARTIFACT_ID THREADS GO_FILE [WARM_ARTIFACT_ID]; exits when its stdin closes.

The process is made a *started, warm* worker before it prints "ready": django.setup, the database
connection, and (with WARM_ARTIFACT_ID) one cold fetch of a different small artifact, so the S3 client,
the tier objects, the counters and the lazy imports of the fetch path exist, as in a long-lived gunicorn
or Celery worker; the counters it buffered are written then. Its THREADS threads are started then too, as
a server's pool is, and wait for the signal. Then it waits for GO_FILE and the measured part starts. Both
sides of P4 (32 requests over 4 processes, and one request in 1 process) run this same script, so spawn,
setup, thread start and warm-up, and the exit after the results, are excluded on both sides alike.

Each thread's timings are recorded by wrapping (in this process only) ``fetch.single_flight`` and
``fetch._disk_hit``: lock wait (entering single_flight -> holding it), the post-lock disk-hit check, the
time holding the lock, and the end. Times are ``time.time()`` so the parent can compare them across
processes with its own go time.
"""

import json
import os
import sys
import threading
import time
from contextlib import contextmanager


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.db import connection

    from cache_app.models import Artifact
    from cache_app.services import fetch

    artifact_id, threads, go_file = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    warm_id = int(sys.argv[4]) if len(sys.argv) > 4 else None
    if warm_id is not None:
        fetch.artifact_fetch(artifact=Artifact.objects.get(pk=warm_id))
    # A long-lived worker writes its buffered hit/miss counts every few seconds, whichever request comes by;
    # written now, that periodic write does not fall into the measured second on either side.
    from cache_app.services.stats import counters

    counters().flush()
    artifacts = [Artifact.objects.get(pk=artifact_id) for _ in range(threads)]

    local = threading.local()
    real_single_flight, real_disk_hit = fetch.single_flight, fetch._disk_hit

    @contextmanager
    def timed_single_flight(key, **kwargs):
        local.entered = time.time()
        with real_single_flight(key, **kwargs) as must_fetch:
            local.acquired = time.time()
            try:
                yield must_fetch
            finally:
                local.released = time.time()

    def timed_disk_hit(artifact, **kwargs):
        began = time.time()
        try:
            return real_disk_hit(artifact, **kwargs)
        finally:
            if getattr(local, "acquired", None) is not None:  # the hit recorded after waiting for the lock
                local.locked_check = time.time() - began

    fetch.single_flight, fetch._disk_hit = timed_single_flight, timed_disk_hit
    results: list[dict] = []
    go = threading.Event()

    def ask(artifact) -> None:
        go.wait()
        local.entered = local.acquired = local.released = local.locked_check = None
        began = time.time()
        try:
            tier = fetch.artifact_fetch(artifact=artifact).tier
        except Exception as error:
            tier = f"error: {error!r}"
        end = time.time()
        connection.close()
        results.append({"tier": tier, "began": began, "end": end, "entered": local.entered,
                        "acquired": local.acquired, "released": local.released, "locked_check": local.locked_check})

    workers = [threading.Thread(target=ask, args=(a,)) for a in artifacts]
    for worker in workers:
        worker.start()
    print("ready", flush=True)
    while not os.path.exists(go_file):
        time.sleep(0.001)
    go.set()
    for worker in workers:
        worker.join()
    print(json.dumps({"tiers": [r["tier"] for r in results], "end": max(r["end"] for r in results),
                      "threads": results}), flush=True)
    # Stay up until the parent has every process's results (it closes our stdin then), as a server's workers
    # outlive their requests: a process exiting (interpreter teardown, its counters' last write) while the
    # others still answer would load the machine on the 32-request side only.
    sys.stdin.read()


if __name__ == "__main__":
    main()
