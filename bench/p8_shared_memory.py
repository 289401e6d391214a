"""P8: pinned models shared by forked workers. 4 gunicorn workers serving the large model loaded once in the
master (MODEL_WARM_PINNED_ON_START, gc.freeze before the fork): the sum of the workers' PSS against the PSS of
one worker that loaded the model itself (alone, so its PSS is all its own)."""

import threading

import requests

from bench.p1_memory import sample_features
from bench.rows import row
from bench.runtime import Gunicorn

WORKERS = 4
CLOSE = {"Connection": "close"}  # a connection per request: every worker gets some


def pss_bytes(pid: int) -> int:
    """Proportional set size: each shared page counted as its share among the processes mapping it."""
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no Pss in /proc/{pid}/smaps_rollup")


def _predict_everywhere(url: str, headers: dict, requests_count: int) -> None:
    body = {"instances": [sample_features(seed) for seed in range(50)]}

    def client():
        for _ in range(requests_count // 8):
            requests.post(url, json=body, headers={**headers, **CLOSE}, timeout=600).raise_for_status()

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def run(ctx) -> list[dict]:
    from cache_app.models import Artifact
    from cache_app.services.maintenance import artifact_pin

    version = ctx.versions["large"]
    auth = {"Authorization": f"Bearer {ctx.token}"}
    artifact = Artifact.objects.get(pk=version.artifact_id)
    artifact_pin(artifact=artifact, pinned=True)
    try:
        shared = Gunicorn(ctx.run_dir, workers=WORKERS, env_extra={"MODEL_WARM_PINNED_ON_START": "true"})
        try:
            shared.wait_ready("/api/models/", headers=auth, timeout=900)  # the master fetches and loads first
            url = f"{shared.url}/api/models/{version.model_id}/predict"
            _predict_everywhere(url, auth, 64)
            workers = {pid: pss_bytes(pid) for pid in shared.worker_pids()}
            master = pss_bytes(shared.process.pid)
            served = requests.post(url, json={"features": sample_features()}, headers=auth, timeout=600).json()
        finally:
            shared.stop()
    finally:
        artifact_pin(artifact=artifact, pinned=False)
    alone = Gunicorn(ctx.run_dir, workers=1)
    try:
        alone.wait_ready("/api/models/", headers=auth)
        _predict_everywhere(f"{alone.url}/api/models/{version.model_id}/predict", auth, 16)
        (one_pid,) = alone.worker_pids()
        one = pss_bytes(one_pid)
    finally:
        alone.stop()
    total = sum(workers.values())
    mb = 1024 * 1024
    return [row(f"P8 shared workers: sum of PSS of {WORKERS} gunicorn workers serving the {ctx.model_labels['large']} "
                "(pinned, loaded in the master before the fork)", round(total / mb, 1), round(one / mb, 1),
                "PSS of 1 worker that loaded the same model itself", "MB", target="≤ 1.5x", met=total / one <= 1.5,
                reps=1, details={"workers_pss_mb": [round(v / mb, 1) for v in workers.values()],
                                 "master_pss_mb": round(master / mb, 1), "served_from_after_fork": served.get("served_from"),
                                 "requests": "64 requests of 50 rows over 8 connections, one per request"})]
