"""The Karet API served by uvicorn in a child process on a loopback port, as it runs in production.

The server is built by ``create_app()`` from the environment (store directory, ``DAGSTER_HOME``, API key),
so the benchmark measures the real app and the real HTTP stack, and the server's memory is its own.
"""

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.measure import REPO, child_env

API_KEY = "bench-api-key"
_START_TIMEOUT = 60.0


@dataclass(frozen=True)
class Server:
    pid: int
    url: str

    def client(self, timeout: float | None = 30.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": API_KEY}, timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_api(
    data_dir: Path, dagster_home: Path, *, log: Path, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """Start the API on ``data_dir`` and ``dagster_home``, stderr into ``log``; stop it on exit.

    ``env`` overrides the defaults, e.g. ``S3_BUCKET`` and its credentials to serve an S3 store.
    """
    port = free_port()
    defaults = {
        "KARET_DATA_DIR": str(data_dir),
        "DAGSTER_HOME": str(dagster_home),
        "KARET_API_KEY": API_KEY,
        "S3_BUCKET": "",
        "KARET_DEPLOYMENT": "embedded",
        "KARET_DAGSTER_URL": "",
    }
    env = child_env(**{**defaults, **(env or {})})
    args = ["-m", "uvicorn", "karet_api.main:create_app", "--factory", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--log-level", "warning", "--no-access-log"]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as stderr:
        child = subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stderr=stderr)
    try:
        server = Server(child.pid, f"http://127.0.0.1:{port}")
        _wait_until_up(server, child)
        yield server
    finally:
        child.terminate()
        try:
            child.wait(timeout=15)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _wait_until_up(server: Server, child: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    with server.client(timeout=2.0) as client:
        while True:
            if child.poll() is not None:
                raise RuntimeError(f"the API server exited with {child.returncode} before answering")
            try:
                if client.get("/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the API server did not answer on {server.url}")
            time.sleep(0.1)
