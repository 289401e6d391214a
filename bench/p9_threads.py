"""P9: threads per worker. 1,000-row requests from 8 concurrent clients to gunicorn (2 workers x 4 threads,
demo GBM in memory): OpenMP teams sized from the cores free at each prediction (PREDICT_THREADS_PER_WORKER=0)
against every worker's large predictions using every core (the OpenMP default, oversubscribed N times)."""

import json
import os
import statistics

from bench.p1_memory import sample_features
from bench.p5_throughput import _threads, generator, load
from bench.rows import row
from bench.runtime import Gunicorn

ROWS = 1000
CLIENTS = 8
WORKERS = 2


def run(ctx) -> list[dict]:
    version = ctx.versions["demo"]
    cores = len(os.sched_getaffinity(0))
    seconds = 4 if ctx.quick else 10
    reps = 1 if ctx.quick else 3
    body = json.dumps({"instances": [sample_features(seed) for seed in range(ROWS)]})
    auth = {"Authorization": f"Bearer {ctx.token}"}
    scratch = ctx.run_dir / "p9"
    scratch.mkdir(exist_ok=True)
    servers = {
        "per worker": Gunicorn(ctx.run_dir, workers=WORKERS),
        "all cores": Gunicorn(ctx.run_dir, workers=WORKERS, env_extra={"PREDICT_THREADS_PER_WORKER": cores}),
    }
    results = {name: [] for name in servers}
    try:
        urls = {}
        for name, server in servers.items():
            server.wait_ready("/api/models/", headers=auth)
            urls[name] = f"{server.url}/api/models/{version.model_id}/predict"
            _threads(urls[name], body, auth, 2, connections=CLIENTS)
        for i in range(reps):
            for name in (list(servers) if i % 2 == 0 else list(reversed(servers))):
                results[name].append(load(urls[name], body, auth, seconds, scratch, connections=CLIENTS))
    finally:
        for server in servers.values():
            server.stop()
    ours, theirs = statistics.median(results["per worker"]), statistics.median(results["all cores"])
    return [row(f"P9 threads: {ROWS:,}-row requests/s, {CLIENTS} concurrent clients, gunicorn {WORKERS} workers x 4 "
                "threads, OpenMP teams of the cores no other prediction holds", round(ours, 2),
                round(theirs, 2), f"every worker's predictions on all {cores} cores (PREDICT_THREADS_PER_WORKER={cores})",
                "req/s", target="≥ 1.0x (no oversubscription loss)", met=ours >= theirs, reps=reps,
                details={"runs_req_per_s": results, "cores": cores, "rows_per_request": ROWS,
                         "generator": f"{generator()}, {CLIENTS} connections, one per request, {seconds}s per run"})]
