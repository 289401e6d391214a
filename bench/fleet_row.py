"""Fleet throughput: a CSV batch job of 1M rows (quick: 100k) with 1 and 2 Celery workers, speedup
reported.

``bench.jobs_wait.job_run_and_wait`` is called in a fresh child process
(bench/fleet_child.py) so the job runs the engine code and models as they are *now*; the workers are
``celery -A portal worker --pool prefork -c N -Q <a queue of this run>`` against the local Redis (a
database of the bench's own, ``BENCH_REDIS_DB``, default 14) and this run's SQLite. Before any of it,
``manage.py migrate`` runs in a fresh process on this run's data dir, so the schema matches the current
migrations even when they changed since the bench started (the last full run failed with ``no such
column: predictions_batchchunk.worker`` for that reason).

Timing: ``run_seconds`` = job created (validated + stored as chunks) -> job succeeded, polled by the
child. Worker start-up (``celery ... ready.``) and a small warm-up job (2 chunks of 200 rows per worker
child: the child's autogluon import and model load, 2-3 s each) are before it, for 1 and 2 workers alike.
Without Redis, only the in-process runner (1 worker) can be measured.
"""

import json
import os
import subprocess
import time
import uuid
from pathlib import Path

from bench.common import PYTHON, REPO_ROOT
from bench.rows import not_measured, row
from bench.runtime import base_env

REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "14"))
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
NAME = "Fleet throughput: CSV batch job"
TARGET = "speedup reported"


def _redis_up() -> bool:
    try:
        import redis

        return bool(redis.Redis.from_url(REDIS_URL, socket_timeout=1).ping())
    except Exception:
        return False


def _env(ctx, queue: str, chunk_rows: int, *, broker: bool = True) -> dict:
    extra = {"PREDICT_JOB_QUEUE": queue, "PREDICT_JOB_CHUNK_ROWS": chunk_rows,
             "PREDICT_MAX_ROWS": max(chunk_rows, 100_000), "PREDICT_JOB_MAX_UPLOAD_BYTES": 1024**3,
             "PORTAL_PRELOAD_AUTOGLUON": "1"}
    if broker:
        extra["REDIS_URL"] = REDIS_URL
    return base_env(ctx.run_dir, **extra)


def _migrate(env: dict) -> None:
    done = subprocess.run([PYTHON, "manage.py", "migrate", "--noinput"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"manage.py migrate failed: {done.stderr[-1500:]}")


def _worker(ctx, env: dict, queue: str, concurrency: int):
    log = ctx.run_dir / f"celery-{queue}-c{concurrency}.log"
    handle = open(log, "wb")
    process = subprocess.Popen(
        [str(Path(PYTHON).parent / "celery"), "-A", "portal", "worker", "--pool", "prefork",
         "--concurrency", str(concurrency), "-Q", queue, "--loglevel", "INFO",
         "-n", f"bench-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=REPO_ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT)
    give_up = time.monotonic() + 120
    while b" ready." not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > give_up:
            _stop((process, handle, log))
            raise RuntimeError(f"celery worker did not start; see {log}")
        time.sleep(0.3)
    return process, handle, log


def _stop(worker) -> None:
    process, handle, _ = worker
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    handle.close()


def _submit(env: dict, version_id: int, csv_path: Path, timeout: float, warm_chunks: int = 0) -> dict:
    done = subprocess.run([PYTHON, "-m", "bench.fleet_child", str(version_id), str(csv_path), str(timeout),
                           str(warm_chunks)],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout + 300)
    if done.returncode != 0:
        raise RuntimeError(f"bench.fleet_child failed: {done.stderr[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _log_error(log: Path) -> str:
    lines = [line for line in log.read_text(errors="replace").splitlines() if "Error" in line]
    return lines[-1][-300:] if lines else "nothing"


def run(ctx) -> list[dict]:
    from predictions.demo import house_prices

    rows_n = 100_000 if ctx.quick else 1_000_000
    chunk_rows = 10_000 if ctx.quick else 50_000
    timeout = 300 if ctx.quick else 600
    version = ctx.versions["demo"]
    csv_path = ctx.run_dir / f"fleet-{rows_n}.csv"
    house_prices(rows_n, seed=5).drop(columns=["price"]).to_csv(csv_path, index=False)
    queue = f"bench-fleet-{uuid.uuid4().hex[:8]}"
    _migrate(_env(ctx, queue, chunk_rows))  # always: the current migrations on this run's database

    if not _redis_up():
        result = _submit(_env(ctx, queue, chunk_rows, broker=False), version.pk, csv_path, timeout)
        if result["status"] != "succeeded":
            return [not_measured(NAME, f"in-process job ended {result['status']}: {result.get('error')}", TARGET)]
        return [row(f"Fleet: {rows_n:,} CSV rows, in-process runner (1 worker), run seconds",
                    result["run_seconds"], None, "", "s", reps=1, details=result),
                not_measured("Fleet: 2 workers", f"no Redis at {REDIS_URL} for Celery workers", TARGET)]

    rows = []
    # As deployed (the model's OpenMP threads default to every core, so one worker child already uses both
    # cores), and with OMP_NUM_THREADS=1 per worker child (one core per child: what the workers add).
    for variant, extra in (("default threads", {}), ("OMP_NUM_THREADS=1 per worker", {"OMP_NUM_THREADS": "1"})):
        measured = {}
        try:
            for workers in (1, 2):
                env = {**_env(ctx, queue, chunk_rows), **extra}
                worker = _worker(ctx, env, queue, workers)
                try:
                    # Warm-up job: 2 small chunks per worker child, so every child has imported autogluon and
                    # loaded the model (2-3 s per child here) before the timed job, as long-running workers have.
                    result = _submit(env, version.pk, csv_path, timeout, warm_chunks=2 * workers)
                finally:
                    _stop(worker)
                if result["status"] != "succeeded":
                    reason = result.get("error") or result["status"]
                    measured = None
                    rows.append(not_measured(f"{NAME} ({variant})", f"{workers} worker(s): job {result['status']}: "
                                             f"{reason}; the Celery worker logged: {_log_error(worker[2])}", TARGET))
                    break
                measured[workers] = result
        except Exception as error:  # noqa: BLE001 - one variant failing still reports the other
            measured = None
            rows.append(not_measured(f"{NAME} ({variant})", f"{type(error).__name__}: {error}", TARGET))
        if measured:
            rows.append(_row(rows_n, variant, measured))
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_timeout=2).delete(queue)
    except Exception:
        pass
    csv_path.unlink(missing_ok=True)
    return rows


def _row(rows_n: int, variant: str, measured: dict) -> dict:
    one, two = measured[1]["run_seconds"], measured[2]["run_seconds"]
    speedup = one / two
    note = (f"speedup {speedup:.2f}x = time(1 worker) / time(2 workers); {measured[1]['chunks']} chunks of "
            f"{measured[1]['chunk_rows']:,} rows; `celery --pool prefork -c 1` vs `-c 2` on a 2-core machine "
            "shared with the job submitter, Redis and SQLite; run time = job stored -> job succeeded "
            f"(job creation, validate + store, excluded: {measured[1]['create_seconds']:.1f} s / "
            f"{measured[2]['create_seconds']:.1f} s); worker start-up and each child's first model load excluded "
            f"(a small warm-up job first, {measured[1]['warm_up']['run_seconds']:.1f} s / "
            f"{measured[2]['warm_up']['run_seconds']:.1f} s)")
    return row(f"Fleet: {rows_n:,} CSV rows, 2 Celery workers vs 1, {variant} (job run seconds)", round(two, 2),
               round(one, 2), "same job, 1 worker", "s", target=TARGET, met=None, reps=1,
               details={"speedup": round(speedup, 3), "rows_per_s_1": round(rows_n / one, 1),
                        "rows_per_s_2": round(rows_n / two, 1), "measured": measured, "redis": REDIS_URL},
               note=note)
