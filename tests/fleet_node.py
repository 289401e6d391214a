"""Real fleet members for tests: gunicorn nodes and Celery workers as child processes on loopback.

They share the test run's database (``DATABASE_URL`` from ``tests.processes.child_env``) and Redis; each node has its
own cache folder and node name, as separate machines would.
"""

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from tests.servers import LOOPBACK, REPO_ROOT, free_port

BIN = Path(sys.executable).parent
STARTUP_SECONDS = 90.0


def redis_url_for_tests() -> str:
    return os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"


def redis_unreachable(url: str) -> str | None:
    """None when Redis answers at ``url``, else why not."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0).ping()
    except redis.RedisError as error:
        return str(error)
    return None


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    log_path: Path
    url: str = ""
    _log: object = field(default=None, repr=False)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process.poll() is None:
            # Our own child's process group only (started with start_new_session), never by name.
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait()
        if self._log is not None:
            self._log.close()


def _spawn(name: str, command: list[str], *, env: dict, log_dir: Path) -> Child:
    log_path = log_dir / f"{name}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed in Child.stop
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    return Child(name=name, process=process, log_path=log_path, _log=log)


def node_start(name: str, *, env: dict, log_dir: Path, threads: int = 16, workers: int = 1) -> Child:
    """A gunicorn node (``workers`` processes of ``threads`` threads), as ``make run`` starts one. Not yet ready."""
    port = free_port()
    env = {
        **env,
        "PORTAL_NODE_NAME": name,
        "PORTAL_BIND": f"{LOOPBACK}:{port}",
        "WEB_CONCURRENCY": str(workers),
        "PORTAL_THREADS": str(threads),
        "DJANGO_SETTINGS_MODULE": "portal.settings",
    }
    command = [str(BIN / "gunicorn"), "-c", "portal/gunicorn.conf.py", "portal.wsgi"]
    child = _spawn(name, command, env=env, log_dir=log_dir)
    child.url = f"http://{LOOPBACK}:{port}"
    return child


def node_wait_ready(child: Child, *, timeout: float = STARTUP_SECONDS) -> None:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if child.process.poll() is not None:
            raise RuntimeError(f"node {child.name} exited with {child.process.returncode}:\n{child.log()[-4000:]}")
        try:
            requests.get(f"{child.url}/api/models/", timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"node {child.name} not ready after {timeout}s:\n{child.log()[-4000:]}")


def worker_start(name: str, *, env: dict, log_dir: Path, queue: str, concurrency: int = 2) -> Child:
    """A Celery worker (prefork pool) consuming ``queue``, as ``make worker`` starts one."""
    env = {**env, "PORTAL_NODE_NAME": name, "DJANGO_SETTINGS_MODULE": "portal.settings"}
    command = [
        str(BIN / "celery"),
        "-A",
        "portal",
        "worker",
        "--pool",
        "prefork",
        "-c",
        str(concurrency),
        "-Q",
        queue,
        "-n",
        f"{name}@%h",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    return _spawn(name, command, env=env, log_dir=log_dir)


def worker_wait_ready(child: Child, *, timeout: float = STARTUP_SECONDS) -> None:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        if child.process.poll() is not None:
            raise RuntimeError(f"worker {child.name} exited with {child.process.returncode}:\n{child.log()[-4000:]}")
        if " ready." in child.log():
            return
        time.sleep(0.2)
    raise RuntimeError(f"worker {child.name} not ready after {timeout}s:\n{child.log()[-4000:]}")


def worker_pool_children(child: Child) -> list:
    """The pool processes of a worker (psutil.Process objects)."""
    import psutil

    return psutil.Process(child.process.pid).children(recursive=False)
