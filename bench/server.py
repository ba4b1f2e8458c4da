"""The portal under gunicorn on loopback, as deployed: gthread workers (one by default)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from bench.databases import INSTANCE, OUT, ROOT


class Server:
    """``with Server(url, port) as server:`` runs gunicorn on ``url`` until the block ends."""

    def __init__(self, database_url: str, port: int, threads: int = 4, workers: int = 1):
        self.database_url = database_url
        self.port = port
        self.threads = threads
        self.workers = workers
        self.base = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen | None = None
        self.log_path = OUT / f"gunicorn-{port}.log"

    def __enter__(self) -> Server:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                raise SystemExit(f"Port {self.port} is already in use; choose another with --port.")
        env = dict(os.environ)
        env["PORTAL_INSTANCE_PATH"] = str(INSTANCE)
        env["PORTAL_DATABASE_URL"] = self.database_url
        env["PYTHONUNBUFFERED"] = "1"
        command = [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.workers),
            "--worker-class",
            "gthread",
            "--threads",
            str(self.threads),
            "--log-level",
            "warning",
            "wsgi:app",
        ]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("w")
        self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=log)
        self._wait_until_healthy()
        return self

    def _wait_until_healthy(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited; see {self.log_path}")
            try:
                if requests.get(self.base + "/healthz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise SystemExit(f"gunicorn did not become healthy in {timeout} s; see {self.log_path}")

    def worker_pids(self) -> list[int]:
        """The worker processes (children of the gunicorn master we started)."""
        pid = self.process.pid
        children = Path(f"/proc/{pid}/task/{pid}/children")
        try:
            return [int(value) for value in children.read_text().split()]
        except OSError:
            return []

    def peak_memory_kib(self) -> int | None:
        """Largest VmHWM (peak resident set) among the workers, in KiB."""
        peaks = [value for pid in self.worker_pids() if (value := vm_hwm_kib(pid)) is not None]
        return max(peaks) if peaks else None

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def vm_hwm_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None
