"""Where a memory-hit API request spends its time once lookups are cached and logs buffered.

``python -m bench.profile_serving``: cProfile over 300 requests through Django's full stack (test client, no
socket), sorted by own time, and the same requests' wall time split; written to bench/profile_serving.txt.
"""

import cProfile
import io
import pstats
import time

from bench.common import BENCH_DIR
from bench.runtime import django_setup, make_run_dir, staff_token

REQUESTS = 300


def main() -> None:
    django_setup(make_run_dir())
    from django.test import Client

    from bench import models
    from bench.p1_memory import sample_features
    from predictions.services import model_publish

    version = model_publish(predictor_dir=models.demo_model(), name="demo-house-prices")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {staff_token()}")
    url = f"/api/models/{version.model_id}/predict"
    body = {"features": sample_features()}
    for _ in range(30):
        assert client.post(url, body, content_type="application/json").status_code == 200
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    for _ in range(REQUESTS):
        client.post(url, body, content_type="application/json")
    profiler.disable()
    per_request_ms = (time.perf_counter() - began) / REQUESTS * 1000
    out = io.StringIO()
    out.write(f"# cProfile of {REQUESTS} POST /api/models/<id>/predict (demo GBM, memory hit, Django test client)\n")
    out.write(f"# {per_request_ms:.2f} ms per request under the profiler\n")
    stats = pstats.Stats(profiler, stream=out)
    out.write("\n## by own time\n")
    stats.sort_stats("tottime").print_stats(30)
    out.write("\n## by cumulative time\n")
    stats.sort_stats("cumulative").print_stats(50)
    (BENCH_DIR / "profile_serving.txt").write_text(out.getvalue())
    print(f"{per_request_ms:.2f} ms per request; bench/profile_serving.txt")


if __name__ == "__main__":
    main()
