"""Start and stop a real `tailor serve` process for tests (loopback only, bounded waits)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tailor_command() -> list[str]:
    exe = Path(sys.executable).with_name("tailor")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "training.cli"]


class Server:
    """``tailor serve --no-refresh`` as a child process; ``kill`` SIGKILLs it and every worker."""

    def __init__(
        self, home: Path, port: int | None = None, extra_env: dict | None = None, args: tuple = ()
    ):
        self.home, self.port = Path(home), port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "TAILOR_HOME": str(self.home),
            "TAILOR_SERVING_DIR": str(self.home / "serving"),
            "BENTOML_DO_NOT_TRACK": "true",
            "PYTHONPATH": str(REPO),
            **(extra_env or {}),
        }
        if "TAILOR_API_TOKEN" not in (extra_env or {}):
            self.env.pop("TAILOR_API_TOKEN", None)
        self.args = args
        self.proc: subprocess.Popen | None = None
        self.log = self.home / f"server-{self.port}.log"

    def start(self, timeout: float = 90.0, expect_ready: bool = True) -> Server:
        self.home.mkdir(parents=True, exist_ok=True)
        fh = open(self.log, "ab")
        cmd = [*tailor_command(), "serve", "--no-refresh", "--port", str(self.port), *self.args]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=self.env, stdout=fh, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"tailor serve exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            try:
                r = httpx.get(self.url + ("/readyz" if expect_ready else "/healthz"), timeout=2)
                if r.status_code == 200 or (not expect_ready and r.status_code < 500):
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.kill()
        raise TimeoutError(
            f"tailor serve not ready after {timeout} s:\n{self.log.read_text()[-3000:]}"
        )

    def tree(self) -> list[psutil.Process]:
        """The server process and every descendant (circus starts each worker in its own session)."""
        if self.proc is None:
            return []
        try:
            root = psutil.Process(self.proc.pid)
            return [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self) -> None:
        """SIGKILL the server and all its workers at once (by pid), then reap it."""
        procs = self.tree()
        for p in procs:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(procs, timeout=30)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the server (it stops its workers), then SIGKILL anything left."""
        if self.proc is None or self.proc.poll() is not None:
            return
        procs = self.tree()
        self.proc.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs(procs, timeout=timeout)
        for p in alive:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=10)
        self.proc.wait(timeout=10)


def have_wrk() -> bool:
    return shutil.which("wrk") is not None
