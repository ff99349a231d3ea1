"""Helpers of the `cprs serve` and adapter tests: a real `cprs serve` subprocess on a free
loopback port (`ServerProcess`), and the environment it runs in.

Each server is `python -m cprs_cli serve ...`, exactly what a user runs; tests talk to it over
HTTP. `ServerProcess` starts one, waits until `/liveness` answers and stops it with SIGTERM (a
graceful shutdown, as a supervisor would).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180  # importing torch and loading the critic, on a busy 2-core machine
MAX_BODY_MB = 8


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cprs_env(cache_dir: Path, **extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["CPRS_CACHE_DIR"] = str(cache_dir)
    env.pop("CPRS_API_KEY", None)
    env.pop("CPRS_DEBUG", None)
    env.update(extra)
    return env


class ServerProcess:
    """One `cprs serve` subprocess; its stderr goes to a file (read it with `log()`)."""

    def __init__(self, model: Path, cache_dir: Path, log_path: Path, *args: str, port: int | None = None,
                 env: dict | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.cmd = [sys.executable, "-m", "cprs_cli", "serve", "--model", str(model), "--device", "cpu",
                    "--port", str(self.port), *args]
        self.env = env or cprs_env(cache_dir)
        self.proc: subprocess.Popen | None = None
        self.headers: dict = {}

    def start(self) -> ServerProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(self.cmd, cwd=REPO, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=self._log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"cprs serve exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/liveness", headers=self.headers, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"cprs serve did not start in {START_TIMEOUT_S} s:\n{self.log()}")

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=300, headers=self.headers, **kwargs)
