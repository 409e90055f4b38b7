"""The distributed deployment on real services, as test helpers: processes, database, instance, API client.

A ``Stack`` is a fresh Postgres database, a code server, webserver, daemon and ``karet worker`` processes,
each in its own process group so teardown reaches everything they start.
"""

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import boto3
import dagster as dg
import httpx
import psycopg2
import pytest
import redis
import yaml
from dagster._grpc.client import DagsterGrpcClient
from fastapi.testclient import TestClient

from karet_api.main import create_app
from karet_defs.settings import Settings
from karet_defs.store.factory import build_stores
from karet_defs.templates import install_template

POSTGRES = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)
PIPELINES = [f"scale-{i:02d}" for i in range(20)]
VICTIM = "victim"
VICTIM_ROWS = 600_000
API_KEY = "scaleout-api-key"
# Short enough for a test to wait for: a run on a vanished worker is failed after this long.
MAX_RUNTIME_SECONDS = 30
START_TIMEOUT = 120.0
LOCATION = "karet"
WORKERS = ["w1", "w2"]


def port_open(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_services() -> None:
    missing = [
        f"{name} on {host}:{port}"
        for name, (host, port) in {"PostgreSQL": POSTGRES, "Redis": REDIS}.items()
        if not port_open((host, port))
    ]
    if missing:
        verb = "does" if len(missing) == 1 else "do"
        pytest.skip(f"scale-out tests need {' and '.join(missing)}, which {verb} not answer")


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def terminate(self) -> None:
        if self.popen.poll() is None:
            _signal_group(self.popen.pid, signal.SIGTERM)

    def kill(self, wait_until: float) -> None:
        """Wait for the leader until ``wait_until``, then SIGKILL the whole group and reap the leader."""
        try:
            self.popen.wait(timeout=max(0.0, wait_until - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        # Its children (gRPC servers, Celery pool processes) share the group even when the leader is gone.
        _signal_group(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


@dataclass
class Stack:
    root: Path
    home: Path
    data_dir: Path
    env: dict[str, str]
    dagster_url: str
    instance: dg.DagsterInstance
    processes: dict[str, Process] = field(default_factory=dict)

    def spawn(self, name: str, args: list[str]) -> Process:
        log = self.root / f"{name}.log"
        with log.open("ab") as out:
            popen = subprocess.Popen(
                args,
                cwd=self.root,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(name, popen, log)
        self.processes[name] = process
        return process

    def start_worker(self, name: str) -> Process:
        return self.spawn(
            name,
            [sys.executable, "-m", "karet_api.cli", "worker", "--name", f"{name}@%h", "--concurrency", "1"],
        )

    def wait_for_workers(self, names: list[str], timeout: float = START_TIMEOUT) -> None:
        app = self.instance.run_launcher.celery
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answered = {host.split("@")[0] for reply in app.control.ping(timeout=1.0) for host in reply}
            if set(names) <= answered:
                return
            self.check_alive()
        raise RuntimeError(f"Celery workers {names} did not answer within {timeout:.0f} s")

    def settings(self) -> Settings:
        """The API's settings on this stack: the same local store, runs submitted to its webserver."""
        return Settings(
            data_dir=self.data_dir,
            s3_bucket="",
            s3_bucket_lake="",
            s3_bucket_warehouse="",
            deployment="distributed",
            dagster_url=self.dagster_url,
            api_key=API_KEY,
        )

    def client(self) -> TestClient:
        client = TestClient(create_app(self.settings(), self.instance))
        client.headers["X-API-Key"] = API_KEY
        return client

    def check_alive(self) -> None:
        for process in self.processes.values():
            if not process.alive():
                raise RuntimeError(f"{process.name} exited: {process.log.read_text()[-3000:]}")

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM every process group, SIGKILL what is left after ``grace``: nothing outlives the tests."""
        for process in self.processes.values():
            process.terminate()
        deadline = time.monotonic() + grace
        for process in self.processes.values():
            process.kill(deadline)


def _admin(statement: str) -> None:
    """One statement outside a transaction (CREATE/DROP DATABASE refuse to run inside one)."""
    conn = psycopg2.connect(host=POSTGRES[0], port=POSTGRES[1], user="postgres", dbname="postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(statement)
    finally:
        conn.close()


def create_database(name: str) -> None:
    _admin(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    # FORCE: a worker killed by a test may have left a connection the server has not noticed yet.
    _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drop_broker_keys(key_prefix: str) -> None:
    """Remove the stack's queue (db 0) and task results (db 1) from Redis."""
    for db in (0, 1):
        client = redis.Redis(host=REDIS[0], port=REDIS[1], db=db)
        try:
            keys = list(client.scan_iter(match=f"{key_prefix}*"))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


def instance_yaml_for_tests(key_prefix: str) -> str:
    """The shipped distributed instance, with run monitoring quick enough to watch in a test."""
    config = yaml.safe_load((resources.files("karet_defs") / "instance" / "distributed.yaml").read_text())
    config["run_monitoring"].update(
        poll_interval_seconds=2,
        start_timeout_seconds=90,
        max_runtime_seconds=MAX_RUNTIME_SECONDS,
        free_slots_after_run_end_seconds=2,
    )
    # Keys of its own on the shared Redis: another session's queue is never ours, and teardown finds ours.
    celery = config["run_launcher"]["config"]["config_source"]
    celery["broker_transport_options"] = {"global_keyprefix": key_prefix}
    celery["result_backend_transport_options"] = {"global_keyprefix": key_prefix}
    return yaml.safe_dump(config, sort_keys=False)


def install_pipelines(data_dir: Path) -> None:
    stores = build_stores(
        Settings(data_dir=data_dir, s3_bucket="", s3_bucket_lake="", s3_bucket_warehouse="")
    )
    for slug in PIPELINES:
        install_template(stores, slug, "spending")
    # A pipeline with a larger input, so a run lasts long enough to be killed halfway.
    install_template(stores, VICTIM, "spending")
    header, *rows = (
        (resources.files("karet_defs") / "templates" / "spending" / "transactions" / "seed.csv")
        .read_text()
        .splitlines()
    )
    big = "\n".join([header, *(rows[i % len(rows)] for i in range(VICTIM_ROWS))]) + "\n"
    stores.lake.put(f"pipelines/{VICTIM}/transactions/big.csv", big.encode())


def wait_for_code_server(stack: Stack, port: int) -> None:
    client = DagsterGrpcClient(port=port, host="127.0.0.1")
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if port_open(("127.0.0.1", port)) and client.health_check_query() == "SERVING":
            return
        stack.check_alive()
        time.sleep(0.5)
    raise RuntimeError("the code server did not start")


def wait_for_webserver(stack: Stack) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{stack.dagster_url}/server_info", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        stack.check_alive()
        time.sleep(0.5)
    raise RuntimeError("the webserver did not start")


def _graphql(stack: Stack, query: str, variables: dict | None = None) -> dict:
    response = httpx.post(
        f"{stack.dagster_url}/graphql", json={"query": query, "variables": variables or {}}, timeout=60
    )
    response.raise_for_status()
    return response.json()["data"]


_AUTOMATIONS = """
query ($selector: RepositorySelector!) {
  sensorsOrError(repositorySelector: $selector) {
    ... on Sensors { results { name sensorState { id selectorId } } }
  }
  schedulesOrError(repositorySelector: $selector) {
    ... on Schedules { results { name scheduleState { id selectorId } } }
  }
}"""
_STOP_SENSOR = """
mutation ($originId: String!, $selectorId: String!) {
  stopSensor(jobOriginId: $originId, jobSelectorId: $selectorId) { __typename }
}"""
_STOP_SCHEDULE = """
mutation ($originId: String!, $selectorId: String!) {
  stopRunningSchedule(scheduleOriginId: $originId, scheduleSelectorId: $selectorId) { __typename }
}"""


def stop_automations(stack: Stack) -> None:
    """These tests count only their own runs: the raw-files sensors would add a run per new pipeline, and
    the daily maintenance schedules (02:00-04:59 UTC) a maintenance run tagged with its pipeline."""
    selector = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__"}
    found = _graphql(stack, _AUTOMATIONS, {"selector": selector})
    sensors = found["sensorsOrError"]["results"]
    schedules = found["schedulesOrError"]["results"]
    # One of each per pipeline: the burst's pipelines and the victim.
    assert len(sensors) == len(schedules) == len(PIPELINES) + 1
    for mutation, items, state in (
        (_STOP_SENSOR, sensors, "sensorState"),
        (_STOP_SCHEDULE, schedules, "scheduleState"),
    ):
        for item in items:
            ids = item[state]
            stopped = _graphql(stack, mutation, {"originId": ids["id"], "selectorId": ids["selectorId"]})
            assert "Error" not in next(iter(stopped.values()))["__typename"], stopped


@contextmanager
def running_stack(root: Path, s3_endpoint: str) -> Iterator[Stack]:
    """Start the distributed deployment under ``root``; stop it and drop its database and queue on exit."""
    home, data_dir = root / "dagster-home", root / "data"
    home.mkdir()
    database = f"karet_test_{uuid.uuid4().hex[:12]}"
    key_prefix = f"karet-test-{uuid.uuid4().hex[:8]}:"
    logs_bucket = f"karet-logs-{uuid.uuid4().hex[:8]}"
    web_port, code_port = free_port(), free_port()
    stack_env = {
        "KARET_DEPLOYMENT": "distributed",
        "KARET_POSTGRES_URL": f"postgresql+psycopg2://postgres@{POSTGRES[0]}:{POSTGRES[1]}/{database}",
        "KARET_COMPUTE_LOGS_BUCKET": logs_bucket,
        "KARET_CELERY_BROKER_URL": f"redis://{REDIS[0]}:{REDIS[1]}/0",
        "KARET_CELERY_BACKEND_URL": f"redis://{REDIS[0]}:{REDIS[1]}/1",
        "DAGSTER_HOME": str(home),
        "KARET_DATA_DIR": str(data_dir),
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POLARS_MAX_THREADS": "1",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "KARET_", "AWS_", "DAGSTER_"))}
    env.update(stack_env)
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=logs_bucket)
    (home / "dagster.yaml").write_text(instance_yaml_for_tests(key_prefix))
    workspace = home / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {code_port}\n"
        f"      location_name: {LOCATION}\n"
    )
    install_pipelines(data_dir)
    create_database(database)
    bin_dir = Path(sys.executable).parent
    # The API under test runs in this process and loads the same instance, so it needs the same variables.
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name, value in stack_env.items():
            monkeypatch.setenv(name, value)
        instance = dg.DagsterInstance.from_config(str(home))
        stack = Stack(root, home, data_dir, env, f"http://127.0.0.1:{web_port}", instance)
        try:
            stack.spawn(
                "code-server",
                [
                    str(bin_dir / "dagster"),
                    *("code-server", "start", "-m", "karet_defs.definitions", "-h", "127.0.0.1"),
                    *("-p", str(code_port), "--location-name", LOCATION),
                ],
            )
            wait_for_code_server(stack, code_port)
            stack.spawn(
                "webserver",
                [
                    str(bin_dir / "dagster-webserver"),
                    "-w",
                    str(workspace),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(web_port),
                ],
            )
            wait_for_webserver(stack)
            stop_automations(stack)
            stack.spawn("daemon", [str(bin_dir / "dagster-daemon"), "run", "-w", str(workspace)])
            for name in WORKERS:
                stack.start_worker(name)
            stack.wait_for_workers(WORKERS)
            yield stack
        finally:
            stack.stop()
            instance.dispose()
            drop_database(database)
            drop_broker_keys(key_prefix)
