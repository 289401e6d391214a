"""nginx in front of a portal node, with the site config operators install (deploy/nginx-portal.conf.template).

Only the process-level wrapping is the test's own (foreground, files in a temporary folder, loopback ports);
the server block is the deploy file, rendered as docs/deployment.md says.
"""

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from string import Template

from tests.fleet_node import Child
from tests.servers import LOOPBACK, REPO_ROOT, free_port

TEMPLATE = REPO_ROOT / "deploy" / "nginx-portal.conf.template"
INSTALL_HINT = "`make test` installs it as root (apt-get install nginx)"
STARTUP_SECONDS = 15.0

MAIN_CONFIG = """
daemon off;
worker_processes 1;
pid $folder/nginx.pid;
error_log $folder/error.log warn;
$user
events { worker_connections 1024; }
http {
    access_log $folder/access.log;
    client_body_temp_path $folder/tmp/body;
    proxy_temp_path $folder/tmp/proxy;
    fastcgi_temp_path $folder/tmp/fastcgi;
    uwsgi_temp_path $folder/tmp/uwsgi;
    scgi_temp_path $folder/tmp/scgi;
    include $folder/portal.conf;
}
"""


def nginx_executable() -> str | None:
    """Debian installs nginx in /usr/sbin, which a non-root PATH may lack."""
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


def nginx_start(*, upstream: str, folder: Path) -> Child:
    """nginx on a free loopback port proxying to ``upstream`` (host:port); returns once it accepts."""
    executable = nginx_executable()
    if executable is None:
        raise FileNotFoundError(f"nginx not found; {INSTALL_HINT}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tmp").mkdir(exist_ok=True)
    port = free_port()
    site = Template(TEMPLATE.read_text()).safe_substitute(PORTAL_LISTEN=f"{LOOPBACK}:{port}", PORTAL_UPSTREAM=upstream)
    (folder / "portal.conf").write_text(site)
    # As root, nginx's workers would switch to "nobody", who cannot write into pytest's private folders.
    user = "user root;" if os.geteuid() == 0 else ""
    (folder / "nginx.conf").write_text(Template(MAIN_CONFIG).substitute(folder=folder, user=user))
    log_path = folder / "nginx.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed in Child.stop
    process = subprocess.Popen(
        [executable, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", str(folder / "error.log")],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    child = Child(name="nginx", process=process, log_path=folder / "error.log", url=f"http://{LOOPBACK}:{port}", _log=log)
    give_up = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < give_up:
        if process.poll() is not None:
            child.stop()
            raise RuntimeError(f"nginx exited with {process.returncode}: {child.log()}{log_path.read_text()}")
        try:
            socket.create_connection((LOOPBACK, port), timeout=1).close()
            return child
        except OSError:
            time.sleep(0.05)
    child.stop()
    raise RuntimeError(f"nginx did not listen on {port} within {STARTUP_SECONDS}s: {child.log()}")
