"""UPLOADS: worker memory under 8 concurrent maximum uploads to the predict API, gunicorn 2 workers x 4 threads.

(a) 8 concurrent bodies of 400 MB each: refused with a 413 from their Content-Length, before a byte is read.
(b) 8 concurrent largest accepted uploads: a multipart CSV of ``PREDICT_MAX_ROWS`` rows padded to just under
    ``PREDICT_MAX_UPLOAD_BYTES`` (the label column, echoed unvalidated, carries the padding), each predicted.

Measured: each worker's resident memory before, and its peak (``VmHWM``) after; the bound to compare with is
what a request may hold: its body (spooled to a temporary file, not memory) plus its parsed rows and result.
"""

import socket
import threading
import time
from pathlib import Path

import requests

from bench.p1_memory import sample_features
from bench.rows import row
from bench.runtime import Gunicorn

CONCURRENT = 8
REFUSED_BYTES = 400 * 1024**2


def _worker_pids(master_pid: int) -> list[int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def _max_upload(max_rows: int, max_bytes: int) -> bytes:
    features = sample_features()
    header = ",".join([*features, "price"]) + "\n"
    base = ",".join(str(v) for v in features.values()) + ","
    room = (max_bytes - 64 * 1024 - len(header)) // max_rows - len(base) - 1  # the multipart envelope aside
    line = base + "x" * max(1, room) + "\n"
    return (header + line * max_rows).encode()


def _announce_huge(url: str, token: str) -> int:
    """Send headers for a 400 MB CSV and a few kB of it; the answer comes before the rest would be read."""
    host, port = url.split("//")[1].split(":")
    path = "/" + port.split("/", 1)[1]
    port = int(port.split("/")[0])
    with socket.create_connection((host, port), timeout=30) as conn:
        conn.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: text/csv\r\nContent-Length: {REFUSED_BYTES}\r\n\r\n".encode() + b"sqft\n1\n" * 1000
        )
        answer = conn.recv(4096).decode(errors="replace")
    return int(answer.split()[1])


def run(ctx) -> list[dict]:
    from django.conf import settings

    version = ctx.versions["demo"]
    auth = {"Authorization": f"Bearer {ctx.token}"}
    server = Gunicorn(ctx.run_dir, workers=2)
    try:
        server.wait_ready("/api/models/", headers=auth)
        url = f"{server.url}/api/models/{version.model_id}/predict"
        for _ in range(8):  # both workers load the model into memory first
            requests.post(url, json={"features": sample_features()}, headers={**auth, "Connection": "close"}).raise_for_status()
        pids = _worker_pids(server.process.pid)
        before = {pid: _status_kb(pid, "VmRSS") for pid in pids}

        statuses = []
        threads = [threading.Thread(target=lambda: statuses.append(_announce_huge(url, ctx.token))) for _ in range(CONCURRENT)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        after_refused = {pid: _status_kb(pid, "VmHWM") for pid in pids}

        body = _max_upload(settings.PREDICT_MAX_ROWS, settings.PREDICT_MAX_UPLOAD_BYTES)
        answers, began = [], time.monotonic()

        def upload():
            response = requests.post(url, files={"file": ("max.csv", body, "text/csv")},
                                     headers={**auth, "Connection": "close"}, timeout=600)
            answers.append((response.status_code, len(response.json().get("predictions", []))))

        threads = [threading.Thread(target=upload) for _ in range(CONCURRENT)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.monotonic() - began
        peak = {pid: _status_kb(pid, "VmHWM") for pid in pids}
    finally:
        server.stop()
    mb = lambda kb: round(kb / 1024, 1)  # noqa: E731
    worst = max(peak.values())
    details = {
        "body_mb": round(len(body) / 1e6, 1), "rows_per_upload": settings.PREDICT_MAX_ROWS,
        "answers": sorted(set(answers)), "refused_statuses": sorted(set(statuses)),
        "rss_before_mb": {p: mb(v) for p, v in before.items()},
        "peak_after_refused_400mb_mb": {p: mb(v) for p, v in after_refused.items()},
        "peak_after_max_uploads_mb": {p: mb(v) for p, v in peak.items()},
        "uploads_seconds": round(seconds, 1),
    }
    growth_per_request = (worst - before[max(peak, key=peak.get)]) / (CONCURRENT / len(pids))
    details["peak_growth_per_concurrent_request_mb"] = mb(growth_per_request)
    return [
        row(f"UPLOADS (a) {CONCURRENT} concurrent 400 MB bodies: worst worker peak RSS (MB)",
            mb(max(after_refused.values())), mb(max(before.values())), "the same worker before", "MB",
            target="413 before reading; no growth", met=set(statuses) == {413}
            and max(after_refused.values()) - max(before.values()) < 20 * 1024, reps=1, details=details),
        row(f"UPLOADS (b) {CONCURRENT} concurrent maximum uploads ({details['body_mb']} MB, "
            f"{settings.PREDICT_MAX_ROWS:,} rows each): worst worker peak RSS (MB)",
            mb(worst), mb(max(before.values())), "the same worker before", "MB",
            target="bounded: all answered 200", met=all(code == 200 for code, _ in answers), reps=1, details=details),
    ]
