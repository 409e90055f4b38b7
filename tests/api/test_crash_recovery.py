"""A real `karet api` killed with SIGKILL in the middle of a clean run: readers keep the last good version,
the dead run is failed at the restart with a clear message, the run waiting behind it is taken up, and the
next run starts at once and converges.

The API is the real command in its own process group (as a service manager starts it), with its own Dagster
home, over the local store or the moto S3 server.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from karet_defs.settings import Settings
from karet_defs.store.factory import build_stores
from tests.conftest import _free_port
from tests.factories import col, make_pipeline, put_config, put_raw, read_table, table_version

SLUG = "crashy"
API_KEY = "crash-test-key"
FILES, ROWS_PER_FILE = 24, 40_000
CONFIG = make_pipeline(
    source_columns=[("month", "int64"), ("id", "int64"), ("note", "string")],
    columns=[("month", col("month")), ("id", col("id")), ("note", col("note"))],
    table_schema=[
        {"name": "month", "type": "int64"},
        {"name": "id", "type": "int64"},
        {"name": "note", "type": "string"},
    ],
    partition_keys=["month"],
)
START_TIMEOUT = 90.0


def _csv(index: int) -> str:
    lines = (
        f"{1 + i % 12},{index * ROWS_PER_FILE + i},statement line {i} of file {index}"
        for i in range(ROWS_PER_FILE)
    )
    return "month,id,note\n" + "\n".join(lines) + "\n"


class Api:
    """`karet api` in a process group of its own, started and killed at will, over one store and home."""

    def __init__(self, env: dict[str, str], data_dir: Path) -> None:
        self.env, self.data_dir = env, data_dir
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> float:
        """Start and wait for `/health`; return the moment it first answered."""
        karet = Path(sys.executable).parent / "karet"
        self.proc = subprocess.Popen(
            [str(karet), "api", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert self.proc.poll() is None, "karet api exited"
            assert time.monotonic() < deadline, "karet api did not answer /health"
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return time.monotonic()
            except httpx.HTTPError:
                time.sleep(0.05)

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.base + path, headers={"X-API-Key": API_KEY}, timeout=30)

    def post(self, path: str) -> httpx.Response:
        return httpx.post(self.base + path, headers={"X-API-Key": API_KEY}, timeout=30)

    def run(self, *, clean_run: bool, timeout: float = 120) -> httpx.Response:
        body = {"pipeline_prefix": f"pipelines/{SLUG}/", "clean_run": clean_run}
        return httpx.post(f"{self.base}/jobs/run", json=body, timeout=timeout)


@pytest.fixture(params=["local", "s3"])
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Api, Settings]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "KARET_", "AWS_"))}
    home = tmp_path / "dagster-home"
    home.mkdir()
    env.update(DAGSTER_HOME=str(home), KARET_API_KEY=API_KEY, KARET_LOCK_DIR=str(tmp_path / "locks"))
    if request.param == "s3":
        settings = request.getfixturevalue("s3_settings")
        env.update(
            S3_BUCKET=settings.s3_bucket,
            S3_ENDPOINT=settings.s3_endpoint,
            AWS_ACCESS_KEY_ID=settings.aws_access_key_id,
            AWS_SECRET_ACCESS_KEY=settings.aws_secret_access_key,
            AWS_REGION=settings.aws_region,
        )
    else:
        settings = Settings(data_dir=tmp_path / "data", s3_bucket="")
    server = Api(env, tmp_path / "data")
    yield server, settings
    if server.proc is not None:
        server.kill()


def test_sigkill_during_a_clean_run_keeps_the_table_and_frees_the_pipeline(api):
    server, settings = api
    stores = build_stores(settings)
    put_config(stores, SLUG, CONFIG)
    for index in range(FILES):
        put_raw(stores, f"pipelines/{SLUG}/raw/{index:02d}.csv", _csv(index))
    server.start()
    first = server.run(clean_run=False)
    assert first.status_code == 200, first.text
    good = read_table(stores, SLUG, "t").sort("id")
    assert good.height == FILES * ROWS_PER_FILE
    good_version = table_version(stores, SLUG, "t")

    threading.Thread(target=lambda: _ignore_errors(server.run, clean_run=True), daemon=True).start()
    dead_job = _wait_for_running_job(server)
    waiting = server.post(f"/api/p/{SLUG}/jobs")  # recorded, waits for its turn behind the clean run
    assert waiting.status_code == 200, waiting.text
    waiting_job = waiting.json()["job"]["id"]
    server.kill()

    # Readers see the last good version at once, complete.
    assert table_version(stores, SLUG, "t") == good_version
    assert read_table(stores, SLUG, "t").sort("id").equals(good)

    answered_health = server.start()
    jobs = {j["id"]: j for j in server.get(f"/api/p/{SLUG}/jobs").json()["jobs"]}
    assert jobs[dead_job]["status"] == "failed"
    assert jobs[dead_job]["error"].startswith("the process running this job died (host ")

    again = server.run(clean_run=True, timeout=60)
    started_within = _job_started_at(server, again.json()["job_id"]) - answered_health
    assert again.status_code == 200, again.text
    assert again.json()["errors"] == []
    assert started_within < 5.0  # the dead run holds neither the pipeline lock nor its pool slot
    assert read_table(stores, SLUG, "t").sort("id").equals(good)
    assert table_version(stores, SLUG, "t") == good_version + 1
    # The run that was waiting when the API died was taken up after the restart, not lost.
    assert server.get(f"/api/p/{SLUG}/jobs/{waiting_job}").json()["job"]["status"] == "completed"


def _wait_for_running_job(server: Api) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for job in server.get(f"/api/p/{SLUG}/jobs").json()["jobs"]:
            if job["status"] == "running":
                return job["id"]
        time.sleep(0.05)
    raise AssertionError("the clean run never showed as running")


def _job_started_at(server: Api, run_id: str) -> float:
    """The monotonic moment the run started, from its ISO start time (both clocks read here)."""
    started = datetime.fromisoformat(server.get(f"/api/p/{SLUG}/jobs/{run_id}").json()["job"]["startedAt"])
    return time.monotonic() - (time.time() - started.timestamp())


def _ignore_errors(call, **kwargs) -> None:
    try:
        call(**kwargs)
    except httpx.HTTPError:
        pass  # the server dies under it, as intended
