"""Slow clients: behind the nginx of deploy/, 20 connections trickling their headers (one line a second)
do not hold up a good request, because nginx reads requests whole before gunicorn's threads see them.

Run against real processes on loopback: a gunicorn node (4 threads, fewer than the slow clients) and nginx.
"""

import socket
import threading
import time

import pytest
import requests
from rest_framework.authtoken.models import Token

from tests.fleet_node import node_start, node_wait_ready
from tests.nginx_proxy import INSTALL_HINT, nginx_executable, nginx_start
from tests.processes import child_env

SLOW_CLIENTS = 20
# Each slow client sends one more header line this often and never ends its headers.
TRICKLE_SECONDS = 1.0

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class Tricklers:
    """``count`` connections, each sending a request line then one header line per ``every`` seconds."""

    def __init__(self, url: str, count: int, every: float):
        host, port = url.split("://", 1)[1].split(":")
        self.sockets = [socket.create_connection((host, int(port)), timeout=5) for _ in range(count)]
        for sock in self.sockets:
            # Blocking mode: recv(MSG_DONTWAIT) below then answers at once instead of waiting out a timeout.
            sock.settimeout(None)
            sock.sendall(b"GET /api/models/ HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        self.lines_sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while not self._stop.wait(every):
            for index, sock in enumerate(self.sockets):
                try:
                    sock.sendall(f"X-Slow-{self.lines_sent}: {index}\r\n".encode())
                except OSError:
                    pass  # counted as closed by still_open()
            self.lines_sent += 1

    def still_open(self) -> int:
        """How many connections are open with nothing answered: their requests are still being read."""
        open_count = 0
        for sock in self.sockets:
            try:
                data = sock.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK)
            except BlockingIOError:
                open_count += 1  # nothing to read and not closed
                continue
            except OSError:
                continue
            assert data == b"", "a slow client got an answer before it finished its request"
        return open_count

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def test_slow_clients_do_not_delay_a_good_request_behind_nginx(django_user_model, settings, tmp_path):
    if nginx_executable() is None:
        pytest.skip(f"nginx not found; {INSTALL_HINT}")
    token = Token.objects.create(user=django_user_model.objects.create_user("analyst")).key
    env = child_env(settings, MODEL_CACHE_DIR=str(tmp_path / "cache"), PORTAL_DATA_DIR=str(tmp_path / "data"),
                    PORTAL_PROXY_COUNT="1")
    node = node_start("node-a", env=env, log_dir=tmp_path, threads=4)
    proxy = None
    tricklers = None
    try:
        node_wait_ready(node)
        proxy = nginx_start(upstream=node.url.split("://", 1)[1], folder=tmp_path / "nginx")
        headers = {"Authorization": f"Bearer {token}"}
        assert requests.get(f"{proxy.url}/api/models/", headers=headers, timeout=30).status_code == 200  # warm

        tricklers = Tricklers(proxy.url, SLOW_CLIENTS, TRICKLE_SECONDS)
        time.sleep(2.5 * TRICKLE_SECONDS)  # every slow client is connected and has trickled twice
        assert tricklers.lines_sent >= 2 and tricklers.still_open() == SLOW_CLIENTS

        started = time.monotonic()
        response = requests.get(f"{proxy.url}/api/models/", headers=headers, timeout=30)
        elapsed = time.monotonic() - started

        assert response.status_code == 200, response.text
        # The good request finished while every slow client was still sending its headers...
        assert tricklers.still_open() == SLOW_CLIENTS
        # ...and was not held up: a functional bound (seconds, where gunicorn alone waits for the tricklers).
        assert elapsed < 1.0, f"a good request took {elapsed:.2f} s behind nginx with {SLOW_CLIENTS} slow clients"
    finally:
        if tricklers is not None:
            tricklers.close()
        if proxy is not None:
            proxy.stop()
        node.stop()


def _interim_answer(proxy_url: str, path: str, body_bytes: int) -> str:
    """nginx's first answer to a request announcing ``body_bytes`` and asking to continue: "100" to go on,
    "413" when the body is over the location's limit. nginx answers either itself, before any byte is sent."""
    host, port = proxy_url.split("://", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/csv\r\n"
                     f"Content-Length: {body_bytes}\r\nExpect: 100-continue\r\n\r\n".encode())
        return sock.recv(64).split(b" ", 2)[1].decode()


def test_nginx_takes_model_archives_to_the_publish_limit_and_other_bodies_to_the_job_limit(tmp_path):
    if nginx_executable() is None:
        pytest.skip(f"nginx not found; {INSTALL_HINT}")
    proxy = nginx_start(upstream="127.0.0.1:9", folder=tmp_path / "nginx")  # nothing is sent upstream
    gib = 1024**3
    try:
        for path in ("/api/models/churn/versions", "/admin/predictions/mlmodel/upload/"):
            assert _interim_answer(proxy.url, path, 10 * gib) == "100", path
            assert _interim_answer(proxy.url, path, 11 * gib) == "413", path
        for path in ("/api/jobs/", "/api/models/churn/predict", "/api/models/churn/versions/x"):
            assert _interim_answer(proxy.url, path, 256 * 1024**2) == "100", path
            assert _interim_answer(proxy.url, path, gib) == "413", path
    finally:
        proxy.stop()
