"""A whole fleet on this machine (``make fleet``): two portal nodes, one Celery worker, a shared tier and an origin.

    node-1  gunicorn  127.0.0.1:8001 ─┐                     ┌─ PostgreSQL 127.0.0.1:5432/portal_fleet (records)
    node-2  gunicorn  127.0.0.1:8002 ─┼── share ────────────┼─ Redis 127.0.0.1:6379/1 (locks, clears, Celery broker)
    worker-1  celery -A portal worker ┘                     ├─ moto server  s3://portal-shared/models  (shared tier)
                                                            └─ Azurite      azure://portal-origin/models (origin)

Each member has its own cache folder and node name under ``var/fleet/``. PostgreSQL and Redis are this
machine's own (``FLEET_DATABASE_URL``, ``FLEET_REDIS_URL`` to change them; the database is created if
missing); moto and Azurite are started here. Migrates, seeds the demo models (published to the Azurite
origin), prints the URLs and the staff login, and stops everything on Ctrl-C.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

REPO_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LOOPBACK = "127.0.0.1"
DATABASE_URL = os.environ.get("FLEET_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal_fleet")
REDIS_URL = os.environ.get("FLEET_REDIS_URL", "redis://127.0.0.1:6379/1")
NODE_PORTS = [int(p) for p in os.environ.get("FLEET_PORTS", "8001,8002").split(",")]
DATA_ROOT = Path(os.environ.get("FLEET_DATA_DIR", REPO_ROOT / "var" / "fleet")).resolve()
SHARED_BUCKET = "portal-shared"
ORIGIN_CONTAINER = "portal-origin"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

children: list[tuple[str, subprocess.Popen]] = []


def say(message: str) -> None:
    print(f"[fleet] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def wait_port(port: int, what: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited with {process.returncode}; see its log under {DATA_ROOT / 'logs'}")
        with socket.socket() as probe:
            if probe.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"{what} did not listen on {port} within {timeout:.0f}s")


def start(name: str, command: list[str], env: dict | None = None) -> subprocess.Popen:
    log = open(DATA_ROOT / "logs" / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the fleet
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env or dict(os.environ), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: Ctrl-C here stops it through stop_all, in order
    )
    children.append((name, process))
    return process


def stop_all() -> None:
    for name, process in reversed(children):
        if process.poll() is None:
            say(f"stopping {name}")
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
    for name, process in reversed(children):
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def ensure_database() -> None:
    import psycopg

    url = urlparse(DATABASE_URL)
    name = url.path.lstrip("/")
    admin = url._replace(path="/postgres").geturl().replace("postgres://", "postgresql://", 1)
    with psycopg.connect(admin, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
            say(f"created database {name}")


def check_redis() -> None:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        raise SystemExit(f"Redis is not reachable at {REDIS_URL}: {error} (start redis-server or set FLEET_REDIS_URL)")


def start_moto() -> str:
    port = free_port()
    process = start("moto", [str(BIN / "moto_server"), "-H", LOOPBACK, "-p", str(port)])
    wait_port(port, "moto_server", process)
    endpoint = f"http://{LOOPBACK}:{port}"
    import boto3

    boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="fleet", aws_secret_access_key="fleet", region_name="us-east-1"
    ).create_bucket(Bucket=SHARED_BUCKET)
    return endpoint


def start_azurite() -> str:
    executable = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"
    if not executable.exists() or shutil.which("node") is None:
        raise SystemExit("Azurite is missing: run `npm ci` at the repository root (it needs node)")
    port = free_port()
    location = DATA_ROOT / "azurite"
    location.mkdir(parents=True, exist_ok=True)
    command = [
        str(executable), "--silent", "--location", str(location), "--blobHost", LOOPBACK, "--blobPort", str(port),
        "--skipApiVersionCheck", "--loose",
    ]
    process = start("azurite", command)
    wait_port(port, "azurite-blob", process)
    connection_string = (
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://{LOOPBACK}:{port}/devstoreaccount1;"
    )
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    try:
        BlobServiceClient.from_connection_string(connection_string).create_container(ORIGIN_CONTAINER)
    except ResourceExistsError:
        pass
    return connection_string


def member_env(common: dict, name: str, **extra) -> dict:
    data_dir = DATA_ROOT / name
    data_dir.mkdir(parents=True, exist_ok=True)
    return {
        **os.environ,
        **common,
        "PORTAL_NODE_NAME": name,
        "PORTAL_DATA_DIR": str(data_dir),
        "MODEL_CACHE_DIR": str(data_dir / "model_cache"),
        **extra,
    }


def manage(env: dict, *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=env, check=True)


def main() -> None:
    (DATA_ROOT / "logs").mkdir(parents=True, exist_ok=True)
    ensure_database()
    check_redis()
    say("starting moto (shared tier) and Azurite (origin)")
    s3_endpoint = start_moto()
    azure_connection_string = start_azurite()
    common = {
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": REDIS_URL,
        "MODEL_SHARED_URI": f"s3://{SHARED_BUCKET}/models",
        "MODEL_ORIGIN_URI": f"azure://{ORIGIN_CONTAINER}/models",
        "AWS_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "fleet",
        "AWS_SECRET_ACCESS_KEY": "fleet",
        "AZURE_CONNECTION_STRING": azure_connection_string,
        "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "2"),
    }
    # One-off steps with the first node's environment; the records they write are the fleet's.
    setup_env = member_env(common, "node-1", PORTAL_BIND=f"{LOOPBACK}:{NODE_PORTS[0]}")
    say(f"migrating {DATABASE_URL}")
    manage(setup_env, "migrate", "--noinput", "--verbosity", "0")
    manage(setup_env, "collectstatic", "--noinput", "--verbosity", "0")
    say("seeding the demo models (published to the Azurite origin)")
    manage(setup_env, "seed_demo")
    # ensure_staff keeps the generated password in node-1's data folder and prints it.
    manage(setup_env, "ensure_staff")

    urls = []
    for index, port in enumerate(NODE_PORTS, start=1):
        name = f"node-{index}"
        env = member_env(common, name, PORTAL_BIND=f"{LOOPBACK}:{port}")
        process = start(name, [str(BIN / "gunicorn"), "-c", "portal/gunicorn.conf.py", "portal.wsgi"], env)
        urls.append((name, port, process))
    worker_env = member_env(common, "worker-1")
    start("worker-1", [str(BIN / "celery"), "-A", "portal", "worker", "--loglevel", "INFO", "--concurrency", "2",
                       "-n", "worker-1@%h"], worker_env)
    for name, port, process in urls:
        wait_port(port, name, process)

    say("the fleet is up:")
    for name, port, _ in urls:
        say(f"  {name}: http://{LOOPBACK}:{port}/   (jobs: http://{LOOPBACK}:{port}/jobs/)")
    say(f"  worker-1: celery, broker {REDIS_URL}")
    say(f"  shared tier: s3://{SHARED_BUCKET}/models on {s3_endpoint}; origin: azure://{ORIGIN_CONTAINER}/models")
    say(f"  logs: {DATA_ROOT / 'logs'}; Ctrl-C stops everything")
    while True:
        for name, process in children:
            if process.poll() is not None:
                raise SystemExit(f"{name} exited with {process.returncode}; see {DATA_ROOT / 'logs' / (name + '.log')}")
        time.sleep(1)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        main()
    except KeyboardInterrupt:
        pass
    finally:
        stop_all()
