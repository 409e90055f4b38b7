"""Auto-run latency: a new raw file → its rows readable through ``GET /api/p/<slug>/tables/<table>/rows``.

The API runs as the user runs it (uvicorn in a child process, ``bench.api_server``) on the embedded default
instance (SQLite under a temp ``DAGSTER_HOME``, runs executed in the API process), with the Spending
Tracker template as pipeline ``bench``, on two stores:
- ``local``: a temp directory; the file arrives by ``PUT /api/p/<slug>/files/<path>`` (signed in);
- ``s3``: a moto server in this process (``ThreadedMotoServer``) on a loopback port; the file is put into
  the bucket with boto3, then an ``ObjectCreated:Put`` record is posted to ``POST /api/events/s3`` with
  the webhook secret, as a bucket notification would.
Each upload is a one-row CSV with a unique description; the rows endpoint is polled every 50 ms until that
row appears. The next upload waits until the run has ended, so every sample starts from an idle pipeline.
One unmeasured upload first warms the API process (its first run imports the engine and runs the template's
seed file). Per sample it records: the upload acknowledged (the webhook run is created before the answer),
the run started and ended (``GET /api/p/<slug>/jobs``, millisecond stamps of the same clock) and the row
readable. Prints a table; writes ``bench/data/autorun.json``.

Usage: ``python -m bench.autorun [--uploads 20] [--stores local,s3]``.
"""

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import httpx
from moto.server import ThreadedMotoServer

from bench.api_server import Server, free_port, serve_api
from bench.measure import REPO
from bench.spending import SLUG, TABLE
from bench.stores import dagster_home, local_stores
from karet_defs.settings import Settings
from karet_defs.store.factory import build_stores
from karet_defs.store.s3 import make_s3_client
from karet_defs.templates import install_template

OUT = REPO / "bench" / "data" / "autorun.json"
LOGS = REPO / "bench" / "data" / "logs"
POLL_SECONDS = 0.05
TIMEOUT_SECONDS = 120.0
WEBHOOK_SECRET = "bench-webhook-secret"
SOURCE_FOLDER = "transactions"  # the template's source prefix under pipelines/<slug>/
PHASES = ("acknowledged", "run_started", "run_ended", "rows_readable")

Upload = Callable[[httpx.Client, str, bytes], None]


def _csv(description: str) -> bytes:
    return f"date,description,amount,account\n2026-05-01,{description},4.50,visa\n".encode()


def _epoch_seconds(iso_text: str | None) -> float | None:
    return datetime.fromisoformat(iso_text).timestamp() if iso_text else None


@contextmanager
def _local_api(root: Path) -> Iterator[tuple[Server, Upload]]:
    install_template(local_stores(root / "data"), SLUG, "spending")

    def upload(client: httpx.Client, name: str, body: bytes) -> None:
        client.put(f"/api/p/{SLUG}/files/{SOURCE_FOLDER}/{name}", content=body).raise_for_status()

    with serve_api(root / "data", dagster_home(root / "home"), log=LOGS / "autorun-local.log") as server:
        yield server, upload


@contextmanager
def _s3_api(root: Path) -> Iterator[tuple[Server, Upload]]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log would bury the table
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        settings = Settings(
            s3_bucket=f"karet-autorun-{uuid.uuid4().hex[:8]}",
            s3_endpoint=f"http://{host}:{port}",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        s3 = make_s3_client(settings)
        s3.create_bucket(Bucket=settings.s3_bucket)
        install_template(build_stores(settings), SLUG, "spending")
        env = {
            "S3_BUCKET": settings.s3_bucket,
            "S3_ENDPOINT": settings.s3_endpoint,
            "AWS_ACCESS_KEY_ID": settings.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": settings.aws_secret_access_key,
            "KARET_WEBHOOK_SECRET": WEBHOOK_SECRET,
        }

        def upload(client: httpx.Client, name: str, body: bytes) -> None:
            key = f"pipelines/{SLUG}/{SOURCE_FOLDER}/{name}"
            s3.put_object(Bucket=settings.s3_bucket, Key=key, Body=body)
            record = {
                "eventName": "s3:ObjectCreated:Put",
                "s3": {"bucket": {"name": settings.s3_bucket}, "object": {"key": key}},
            }
            response = client.post(
                "/api/events/s3", json={"Records": [record]}, headers={"X-Webhook-Secret": WEBHOOK_SECRET}
            )
            response.raise_for_status()
            if response.json()["scheduled"] != [SLUG]:
                raise RuntimeError(f"the event for {key} scheduled no run: {response.text}")

        home = dagster_home(root / "home")
        try:
            with serve_api(root / "data", home, log=LOGS / "autorun-s3.log", env=env) as server:
                yield server, upload
        finally:
            s3.close()
    finally:
        moto.stop()


def _poll(check: Callable[[], object], what: str) -> object:
    deadline = time.monotonic() + TIMEOUT_SECONDS
    while not (result := check()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(POLL_SECONDS)
    return result


def _rows_have(client: httpx.Client, description: str) -> bool:
    response = client.get(f"/api/p/{SLUG}/tables/{TABLE}/rows")
    # 404 until the first run has published the table.
    return response.status_code == 200 and any(
        r["description"] == description for r in response.json()["rows"]
    )


def _ended_job(client: httpx.Client, since: float) -> dict | None:
    """The newest job created after ``since``, once no job of the pipeline is running any more."""
    jobs = client.get(f"/api/p/{SLUG}/jobs", params={"limit": 5}).json()["jobs"]
    if not jobs or any(job["status"] in ("scheduled", "running") for job in jobs):
        return None
    newest = jobs[0]
    return newest if (_epoch_seconds(newest["startedAt"]) or 0) >= since - 1 else None


def _sample(client: httpx.Client, upload: Upload, tag: str) -> dict:
    description = f"AUTORUN {tag}".upper()  # the template upper-cases descriptions
    t0 = time.time()
    upload(client, f"{tag}.csv", _csv(description))
    acknowledged = time.time() - t0
    _poll(lambda: _rows_have(client, description), f"row {description!r}")
    readable = time.time() - t0
    job = _poll(lambda: _ended_job(client, t0), "the run's end")
    assert isinstance(job, dict)
    if job["status"] != "completed":
        raise RuntimeError(f"run {job['id']} ended {job['status']}: {job.get('error')}")
    started, ended = _epoch_seconds(job["startedAt"]), _epoch_seconds(job["completedAt"])
    return {
        "acknowledged": acknowledged,
        "run_started": started - t0 if started else None,
        "run_ended": ended - t0 if ended else None,
        "rows_readable": readable,
        "trigger": job["trigger"],
    }


def _percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


def measure(store: str, uploads: int) -> dict:
    api = {"local": _local_api, "s3": _s3_api}[store]
    with tempfile.TemporaryDirectory(prefix=f"bench-autorun-{store}-") as tmp, api(Path(tmp)) as (server, up):
        with server.client() as client:
            first = _sample(client, up, "warmup")
            samples = [_sample(client, up, f"u{i:03d}") for i in range(uploads)]
    summary = {}
    for phase in PHASES:
        values = [s[phase] for s in samples if s[phase] is not None]
        summary[phase] = {"p50": _percentile(values, 50), "p95": _percentile(values, 95)}
    return {"store": store, "uploads": uploads, "first": first, "summary": summary, "samples": samples}


def _table(results: list[dict]) -> str:
    lines = [
        "| store | phase (from upload) | p50 | p95 | first upload |",
        "|---|---|---|---|---|",
    ]
    for result in results:
        for phase in PHASES:
            s, first = result["summary"][phase], result["first"][phase]
            first_text = f"{first:.2f} s" if first is not None else "-"
            lines.append(
                f"| {result['store']} | {phase} | {s['p50']:.2f} s | {s['p95']:.2f} s | {first_text} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--stores", default="local,s3")
    args = parser.parse_args()
    started = time.time()
    results = [measure(store, args.uploads) for store in args.stores.split(",")]
    report = {
        "measured_at": datetime.fromtimestamp(started).isoformat(timespec="seconds"),
        "loadavg_after": Path("/proc/loadavg").read_text().split()[:3],
        "results": results,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    load = " ".join(report["loadavg_after"])
    sys.stdout.write(f"{_table(results)}\nload average (1, 5, 15 min) after: {load}; JSON: {OUT}\n")


if __name__ == "__main__":
    main()
