"""The benchmark's world: a fresh PORTAL_DATA_DIR, Django in this process, and real servers on loopback.

Servers are started with tests.servers' helpers (free_port, server_start, FaultProxy); ``server_start`` reports a
server that cannot start with ``pytest.skip``, which we turn into ``ServerUnavailable``.
"""

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import requests

from bench.common import PYTHON, REPO_ROOT, VAR_BENCH

NODE = "bench-node"
ACCESS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_S3_REGION_NAME": "us-east-1"}


class ServerUnavailable(Exception):
    pass


def make_run_dir() -> Path:
    run_dir = VAR_BENCH / f"run-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir.mkdir(parents=True, exist_ok=False)
    return run_dir


def base_env(run_dir: Path, **extra) -> dict:
    """The environment of every portal process of this run (this one, gunicorn, children)."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        PORTAL_DATA_DIR=str(run_dir),
        PORTAL_NODE_NAME=NODE,
        MODEL_SHARED_URI="",
        LOG_LEVEL="WARNING",
        PYTHONPATH=str(REPO_ROOT),
        **ACCESS,
    )
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    # The benchmarks drive one token far past a person's rate: they measure serving, not the API throttle.
    env["API_THROTTLE_USER"] = ""
    env.update({k: str(v) for k, v in extra.items()})
    return env


def django_setup(run_dir: Path) -> None:
    os.environ.update(base_env(run_dir))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def staff_token() -> str:
    from django.contrib.auth import get_user_model
    from rest_framework.authtoken.models import Token

    User = get_user_model()
    user, _ = User.objects.get_or_create(username="bench", defaults={"is_staff": True, "is_superuser": True})
    return Token.objects.get_or_create(user=user)[0].key


# --- servers -----------------------------------------------------------------------------------------------


def _start_server(command, *, log_path, ready_url, what):
    import pytest

    from tests.servers import server_start

    try:
        return server_start(command, log_path=log_path, ready_url=ready_url, what=what, install_hint="")
    except pytest.skip.Exception as error:
        raise ServerUnavailable(str(error)) from None


def stop(server) -> None:
    from tests.servers import server_stop

    process, log = server
    server_stop(process, log)


def start_moto(run_dir: Path):
    from tests.servers import LOOPBACK, free_port

    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    server = _start_server(
        [str(Path(PYTHON).parent / "moto_server"), "-H", LOOPBACK, "-p", str(port)],
        log_path=run_dir / f"moto-{port}.log", ready_url=url, what="moto_server",
    )
    return server, url


def start_azurite(run_dir: Path):
    from tests.servers import AZURITE_ACCOUNT, LOOPBACK, AzuriteServer, free_port

    port = free_port()
    location = run_dir / f"azurite-{port}"
    location.mkdir()
    server = _start_server(
        [str(REPO_ROOT / "node_modules/.bin/azurite-blob"), "--silent", "--location", str(location),
         "--blobHost", LOOPBACK, "--blobPort", str(port), "--skipApiVersionCheck", "--loose"],
        log_path=location / "azurite.log", ready_url=f"http://{LOOPBACK}:{port}/", what="azurite-blob",
    )
    return server, AzuriteServer(blob_endpoint=f"http://{LOOPBACK}:{port}/{AZURITE_ACCOUNT}").connection_string


def s3_client(endpoint_url: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def point_s3_at(endpoint_url: str) -> None:
    """Settings of this process's S3 tier -> ``endpoint_url``; fresh clients."""
    from django.conf import settings

    from cache_app.services import runtime

    settings.AWS_S3_ENDPOINT_URL = endpoint_url
    settings.AWS_ACCESS_KEY_ID = "testing"
    settings.AWS_SECRET_ACCESS_KEY = "testing"
    runtime.reset()


def point_azure_at(connection_string: str) -> None:
    from django.conf import settings

    from cache_app.services import runtime

    settings.AZURE_CONNECTION_STRING = connection_string
    runtime.reset()


# --- gunicorn ----------------------------------------------------------------------------------------------


class Gunicorn:
    """gunicorn on a free loopback port; ``app`` is portal.wsgi (with portal/gunicorn.conf.py) or bench.bare_app."""

    def __init__(self, run_dir: Path, *, workers: int, app: str = "portal", env_extra: dict | None = None,
                 threads: int = 4):
        from tests.servers import LOOPBACK, free_port

        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        env = base_env(run_dir, PORTAL_BIND=f"{LOOPBACK}:{self.port}", WEB_CONCURRENCY=workers, PORTAL_THREADS=threads,
                       **(env_extra or {}))
        gunicorn = str(Path(PYTHON).parent / "gunicorn")
        if app == "portal":
            command = [gunicorn, "-c", "portal/gunicorn.conf.py", "portal.wsgi"]
        else:
            # The same server settings as portal/gunicorn.conf.py (workers, threads, preload, access log).
            command = [gunicorn, "-b", f"{LOOPBACK}:{self.port}", "-w", str(workers), "--threads", str(threads),
                       "--preload", "--access-logfile", "-", "--timeout", "600", app]
        self.log_path = run_dir / f"gunicorn-{app.replace(':', '_')}-{self.port}.log"
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def wait_ready(self, path: str, headers: dict | None = None, timeout: float = 120) -> None:
        give_up = time.monotonic() + timeout
        while time.monotonic() < give_up:
            if self.process.poll() is not None:
                raise ServerUnavailable(f"gunicorn exited; see {self.log_path}")
            try:
                if requests.get(self.url + path, headers=headers, timeout=5).status_code < 500:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise ServerUnavailable(f"gunicorn not ready after {timeout}s; see {self.log_path}")

    def worker_pids(self) -> list[int]:
        import psutil

        return [child.pid for child in psutil.Process(self.process.pid).children()]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def run_child(module: str, args: list[str], env: dict, timeout: float = 900) -> dict:
    """Run ``python -m module args``; its last stdout line is JSON."""
    import json

    done = subprocess.run([PYTHON, "-m", module, *args], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{module} failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


__all__ = ["sys"]
