"""P7: micro-batching. 32 concurrent clients sending one-row requests (memory hits, demo model) against the
bare Django view, same gunicorn settings; and one client's p50 with batching on vs off."""

import json
import statistics
import time

import requests

from bench.common import summary
from bench.p1_memory import sample_features
from bench.p5_throughput import _threads, generator, load
from bench.rows import row
from bench.runtime import Gunicorn

CLIENTS = 32
WORKERS = 2
# Enough threads per worker that all 32 requests are inside the two workers at once (gthread queues the rest).
THREADS = 16
UNBATCHED = {"PREDICT_BATCH_MAX_ROWS": "1"}


def run(ctx) -> list[dict]:
    from cache_app.services.fetch import artifact_fetch
    from predictions.loaders import predictor_root

    version = ctx.versions["demo"]
    folder = predictor_root(artifact_fetch(artifact=version.artifact).path)
    seconds = 3 if ctx.quick else 8
    reps = 1 if ctx.quick else 3
    body = json.dumps({"features": sample_features()})
    auth = {"Authorization": f"Bearer {ctx.token}"}
    scratch = ctx.run_dir / "p7"
    scratch.mkdir(exist_ok=True)

    servers = {
        "ours": Gunicorn(ctx.run_dir, workers=WORKERS, threads=THREADS),
        "ours unbatched": Gunicorn(ctx.run_dir, workers=WORKERS, threads=THREADS, env_extra=UNBATCHED),
        "bare": Gunicorn(ctx.run_dir, workers=WORKERS, threads=THREADS, app="bench.bare_app:application",
                         env_extra={"BENCH_MODEL_DIR": folder}),
    }
    try:
        targets = {}
        for name, server in servers.items():
            if name == "bare":
                server.wait_ready("/predict")
                targets[name] = (f"{server.url}/predict", {})
            else:
                server.wait_ready("/api/models/", headers=auth)
                targets[name] = (f"{server.url}/api/models/{version.model_id}/predict", auth)
            url, headers = targets[name]
            _threads(url, body, headers, 2, connections=CLIENTS)  # every worker loads the model
        results = {name: [] for name in servers}
        for i in range(reps):
            order = list(servers) if i % 2 == 0 else list(reversed(servers))
            for name in order:
                url, headers = targets[name]
                results[name].append(load(url, body, headers, seconds, scratch, connections=CLIENTS))
    finally:
        for server in servers.values():
            server.stop()
    rates = {name: statistics.median(values) for name, values in results.items()}

    latency = _one_client(ctx, version, body, auth)
    o, b = rates["ours"], rates["bare"]
    ours_p50, unbatched_p50 = latency["batched"]["p50_ms"], latency["unbatched"]["p50_ms"]
    return [
        row(f"P7 batching: {CLIENTS} concurrent clients, one-row requests, predictions/s, gunicorn {WORKERS} workers x "
            f"{THREADS} threads (demo model)", round(o, 1), round(b, 1),
            "bare Django view + same persisted predictor, same gunicorn settings", "req/s", target="≥ 2x",
            met=o / b >= 2, reps=reps,
            details={"runs_req_per_s": results, "ours_unbatched_req_per_s": round(rates["ours unbatched"], 1),
                     "generator": f"{generator()}, 1 thread, {CLIENTS} connections, one per request, {seconds}s per run"}),
        row("P7 batching: one client, one-row requests over HTTP, p50 (batching on vs off)", ours_p50, unbatched_p50,
            "the same portal with PREDICT_BATCH_MAX_ROWS=1 (no batching), 1 worker", "ms", target="≤ +1 ms",
            met=ours_p50 - unbatched_p50 <= 1.0, reps=latency["batched"]["n"], details=latency),
    ]


def _one_client(ctx, version, body: str, auth: dict) -> dict:
    """Sequential requests on one keep-alive connection per server, interleaved in blocks."""
    n = 60 if ctx.quick else 300
    block = 20
    servers = {"batched": Gunicorn(ctx.run_dir, workers=1), "unbatched": Gunicorn(ctx.run_dir, workers=1,
                                                                                   env_extra=UNBATCHED)}
    samples = {name: [] for name in servers}
    try:
        sessions = {}
        for name, server in servers.items():
            server.wait_ready("/api/models/", headers=auth)
            session = requests.Session()
            session.headers.update({**auth, "Content-Type": "application/json"})
            url = f"{server.url}/api/models/{version.model_id}/predict"
            for _ in range(10):  # load the model, warm the connection
                session.post(url, data=body).raise_for_status()
            sessions[name] = (session, url)
        for _ in range(n // block):
            for name, (session, url) in sessions.items():
                for _ in range(block):
                    began = time.perf_counter()
                    session.post(url, data=body).raise_for_status()
                    samples[name].append(time.perf_counter() - began)
    finally:
        for server in servers.values():
            server.stop()
    return {name: summary(values) for name, values in samples.items()}
