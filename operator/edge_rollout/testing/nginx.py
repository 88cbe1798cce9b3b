"""nginx (Debian's nginx-light) serving a store directory on loopback, for tests and the demo.

Runs in the foreground with its own prefix, config, logs and temp paths; `stop()` leaves nothing
behind. Never listens beyond 127.0.0.1.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from edge_rollout.testing.controlplane import free_port, stop_process

NGINX = "/usr/sbin/nginx"

NGINX_CONF = """
{user}
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    default_type application/octet-stream;
    types {{ application/json json; }}
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{ }}
    }}
}}
"""


@dataclass(frozen=True)
class Nginx:
    """A running nginx serving `root` at `url`."""

    root: Path
    url: str
    access_log: Path


class NginxServer:
    """Start nginx serving `root`, with its state under `workdir`; a context manager."""

    def __init__(self, root: Path, workdir: Path) -> None:
        self.root = root
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Nginx:
        if not Path(NGINX).exists():
            raise RuntimeError(f"{NGINX} missing: run `make setup` (Debian package nginx-light)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        user = "user root;" if os.geteuid() == 0 else ""
        conf = self.workdir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(user=user, tmp=self.workdir, port=port, root=self.root))
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(self.workdir), "-c", str(conf), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _wait_listening(port, self.proc, self.workdir / "error.log")
        return Nginx(self.root, f"http://127.0.0.1:{port}", self.workdir / "access.log")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"nginx exited: {log.read_text() if log.exists() else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nginx did not start listening within 10 s")
