"""Load: 200 concurrent API clients for 15 s against a real uvicorn server on loopback, with 0 errors.

The server runs in a child process on a free 127.0.0.1 port over a local store with the Spending Tracker and
its own Dagster instance. The clients read (pipelines, config, tables, rows, jobs, dashboards) and a few of
them submit jobs, which the server executes while it answers. Latency percentiles go to stdout (shown with
``-s``); the server's peak resident memory is asserted against a generous cap.
"""

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import API_KEY

CLIENTS = 200
SECONDS = 15.0
SUBMITTERS = 4  # of the clients, these also start a run every few seconds
RSS_CAP_BYTES = 1536 * 1024 * 1024
SERVER = """
import sys
import dagster as dg
import uvicorn
from karet_api.main import create_app
from karet_defs.settings import Settings
from karet_defs.store.factory import build_stores
from karet_defs.templates import install_template

data_dir, port, api_key = sys.argv[1], int(sys.argv[2]), sys.argv[3]
settings = Settings(data_dir=data_dir, s3_bucket="", api_key=api_key)
install_template(build_stores(settings), "spending", "spending")
app = create_app(settings, dg.DagsterInstance.get())
uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", backlog=1024)
"""
READS = [
    "/health",
    "/api/pipelines",
    "/api/p/spending/config",
    "/api/p/spending/tables",
    "/api/p/spending/tables/transactions/rows?limit=20",
    "/api/p/spending/jobs?limit=10",
    "/api/p/spending/dashboards",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


async def _client(
    number: int, client: httpx.AsyncClient, until: float, latencies: list[float], errors: list[str]
) -> None:
    step = number
    next_submit = time.monotonic() + number  # submitters start a second apart
    while time.monotonic() < until:
        if number < SUBMITTERS and time.monotonic() >= next_submit:
            method, path, next_submit = "POST", "/api/p/spending/jobs", time.monotonic() + 5
        else:
            method, path = "GET", READS[step % len(READS)]
            step += 1
        started = time.monotonic()
        try:
            response = await client.request(method, path)
        except httpx.HTTPError as exc:
            errors.append(f"{method} {path}: {exc!r}")
            continue
        latencies.append(time.monotonic() - started)
        if response.status_code != 200:
            errors.append(f"{method} {path}: {response.status_code} {response.text[:200]}")


async def _load(base: str) -> tuple[list[float], list[str]]:
    latencies: list[float] = []
    errors: list[str] = []
    # One connection per client, in one pool: 200 httpx clients would each build a TLS context first. Idle
    # connections are dropped before uvicorn's 5 s keep-alive ends, so no request races the server's close.
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS, keepalive_expiry=2.0)
    headers = {"X-API-Key": API_KEY}
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as client:
        until = time.monotonic() + SECONDS
        await asyncio.gather(*(_client(n, client, until, latencies, errors) for n in range(CLIENTS)))
    return latencies, errors


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def test_200_clients_for_15_seconds_get_no_error_and_the_server_stays_bounded(tmp_path):
    port = _free_port()
    home = tmp_path / "dagster-home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "KARET_DATA_DIR": str(tmp_path / "data")}
    for name in ("S3_BUCKET", "S3_BUCKET_LAKE", "S3_BUCKET_WAREHOUSE", "KARET_WORKER_TOKEN"):
        env.pop(name, None)
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(tmp_path / "data"), str(port), API_KEY],
        env=env,
        cwd=Path.cwd(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None and time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        first = httpx.post(f"{base}/api/p/spending/jobs", headers={"X-API-Key": API_KEY}, timeout=30)
        assert first.status_code == 200

        peak = [_rss(server.pid)]

        async def watched() -> tuple[list[float], list[str]]:
            async def watch() -> None:
                while True:
                    peak.append(_rss(server.pid))
                    await asyncio.sleep(0.2)

            watcher = asyncio.create_task(watch())
            try:
                return await _load(base)
            finally:
                watcher.cancel()

        started = time.monotonic()
        latencies, errors = asyncio.run(watched())
        elapsed = time.monotonic() - started
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

    report = {
        "clients": CLIENTS,
        "seconds": round(elapsed, 1),
        "requests": len(latencies),
        "requests_per_second": round(len(latencies) / elapsed),
        "errors": len(errors),
        "p50_ms": round(_percentile(latencies, 0.50) * 1000),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000),
        "max_ms": round(max(latencies) * 1000),
        "server_peak_rss_mb": round(max(peak) / 2**20),
    }
    sys.stdout.write(f"load: {json.dumps(report)}\n")
    assert errors == [], errors[:10]
    assert len(latencies) >= CLIENTS
    assert max(peak) < RSS_CAP_BYTES, report
