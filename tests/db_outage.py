"""A real database outage for a child server, without touching the database other tests and engineers use.

PostgreSQL: the child connects through a TCP relay on loopback; cutting it closes every open connection and
refuses new ones, as a database restart or a network partition would. SQLite: the child opens the file
through a symbolic link to its folder; removing the link makes every new connection fail ("unable to open
database file") while the file itself, and this test process's connection, stay untouched.
"""

import os
import socket
import threading
from pathlib import Path

from tests.processes import database_url
from tests.servers import LOOPBACK, free_port


class TcpRelay:
    """Forwards a loopback port to ``upstream``; ``cut()`` drops every connection and refuses new ones."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.port = free_port()
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None

    def start(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((LOOPBACK, self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        if listener is not None:
            # Closing alone leaves an accept() already waiting in the relay's thread free to take one more
            # connection; shutting the listener down first wakes it with an error.
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets.update((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


class DatabaseOutage:
    """The test database as a child server should reach it (``url``), with ``begin()`` and ``end()``."""

    def __init__(self, connection, tmp_path: Path):
        settings = connection.settings_dict
        self.vendor = connection.vendor
        if self.vendor == "sqlite":
            real = Path(settings["NAME"]).resolve()
            self._link = tmp_path / "database-folder"
            self._target = real.parent
            os.symlink(self._target, self._link)
            self.url = f"sqlite:///{self._link / real.name}"
            self._relay = None
        else:
            self._relay = TcpRelay((settings["HOST"] or LOOPBACK, int(settings["PORT"] or 5432)))
            self._relay.start()
            self.url = database_url().replace(
                f"@{settings['HOST'] or LOOPBACK}:{settings['PORT'] or 5432}/", f"@{LOOPBACK}:{self._relay.port}/"
            )

    def begin(self) -> None:
        if self._relay is not None:
            self._relay.cut()
        else:
            self._link.unlink()

    def end(self) -> None:
        if self._relay is not None:
            self._relay.start()
        else:
            os.symlink(self._target, self._link)
