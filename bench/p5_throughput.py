"""P5: memory-hit predictions per second under gunicorn (2 workers) vs a bare Django view, same predictor."""

import json
import re
import shutil
import statistics
import subprocess
import threading
import time

import requests

from bench.p1_memory import sample_features
from bench.rows import row
from bench.runtime import Gunicorn

CONNECTIONS = 8  # 2 workers x 4 threads
# Without it, wrk's keep-alive connections stay with whichever gunicorn worker accepted them, and one worker
# often accepts them all: such a run measures one process (half the throughput, on both sides at random).
# A connection per request lets both workers take turns, as behind a load balancer.
CLOSE = {"Connection": "close"}


def _wrk(url: str, body: str, headers: dict, seconds: int, scratch, connections: int = CONNECTIONS) -> float:
    script = scratch / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}",
             'wrk.headers["Content-Type"] = "application/json"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in {**headers, **CLOSE}.items()]
    script.write_text("\n".join(lines) + "\n")
    done = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
                          capture_output=True, text=True, timeout=seconds + 60)
    if "Non-2xx" in done.stdout:
        raise RuntimeError(f"wrk saw errors against {url}: {done.stdout}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))


def _threads(url: str, body: str, headers: dict, seconds: int, connections: int = CONNECTIONS) -> float:
    """Fallback load generator: ``connections`` threads, each with its own requests.Session."""
    stop_at = time.monotonic() + seconds
    counts = [0] * connections

    def loop(i):
        session = requests.Session()
        session.headers.update({**headers, **CLOSE, "Content-Type": "application/json"})
        while time.monotonic() < stop_at:
            session.post(url, data=body).raise_for_status()
            counts[i] += 1

    began = time.monotonic()
    workers = [threading.Thread(target=loop, args=(i,)) for i in range(connections)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(counts) / (time.monotonic() - began)


def generator() -> str:
    return "wrk" if shutil.which("wrk") else "python threads"


def load(url: str, body: str, headers: dict, seconds: int, scratch, connections: int = CONNECTIONS) -> float:
    """Requests per second against ``url`` for ``seconds``: wrk when installed, else Python threads."""
    if generator() == "wrk":
        return _wrk(url, body, headers, seconds, scratch, connections)
    return _threads(url, body, headers, seconds, connections)


def run(ctx) -> list[dict]:
    from cache_app.services.fetch import artifact_fetch
    from predictions.loaders import predictor_root

    version = ctx.versions["demo"]
    folder = predictor_root(artifact_fetch(artifact=version.artifact).path)
    seconds = 3 if ctx.quick else 10
    reps = 1 if ctx.quick else 5  # the bare view swings 2x between runs on this shared machine
    body = json.dumps({"features": sample_features()})
    auth = {"Authorization": f"Bearer {ctx.token}"}
    scratch = ctx.run_dir / "p5"
    scratch.mkdir(exist_ok=True)

    def measure(url, headers):
        return load(url, body, headers, seconds, scratch)

    portal = Gunicorn(ctx.run_dir, workers=2)
    bare = Gunicorn(ctx.run_dir, workers=2, app="bench.bare_app:application", env_extra={"BENCH_MODEL_DIR": folder})
    try:
        portal.wait_ready("/api/models/", headers=auth)
        bare.wait_ready("/predict")
        targets = {"ours": (f"{portal.url}/api/models/{version.model_id}/predict", auth),
                   "bare": (f"{bare.url}/predict", {})}
        for url, headers in targets.values():  # warm both workers of each server (memory tier loads)
            _threads(url, body, headers, 2)
        results = {"ours": [], "bare": []}
        for i in range(reps):
            for name in (["ours", "bare"] if i % 2 == 0 else ["bare", "ours"]):
                results[name].append(measure(*targets[name]))
    finally:
        portal.stop()
        bare.stop()
    o, b = statistics.median(results["ours"]), statistics.median(results["bare"])
    return [row("P5 throughput: memory-hit predictions/s, gunicorn 2 workers x 4 threads (demo model)", round(o, 1),
                round(b, 1), "bare Django view + same persisted predictor, same gunicorn settings", "req/s",
                target="≥ 0.9x", met=o / b >= 0.9, reps=reps,
                details={"runs_req_per_s": results, "generator": f"{generator()}, 1 thread, {CONNECTIONS} connections, one per request,"
                         f" {seconds}s per run, on the same 2 cores as the server", "seconds_per_run": seconds})]
