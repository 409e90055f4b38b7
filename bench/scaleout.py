"""Run throughput and launch latency: SQLite + Dagster's default launcher vs Postgres + Celery (2 workers).

The same workload, the same machine, one invocation: for each deployment this starts a code server,
webserver and daemon (and, for ``distributed``, two ``karet worker`` processes) on the instance shipped in
``karet_defs/instance/``, with a fresh store of ``--pipelines`` Spending Tracker pipelines, then
- ``single``: ``--single`` runs one after another on an idle system (the launch latency proper);
- ``burst``: ``--runs`` runs of every pipeline submitted at once (throughput; latency includes queueing).
Runs are submitted as the API does outside the embedded default (``submit_pipeline_run``: GraphQL to the
webserver's queue). Latency is submit → ``STARTED`` and submit → ``SUCCESS`` from run storage.
Needs PostgreSQL on 127.0.0.1:5432 (trust) and Redis on 127.0.0.1:6379; prints one JSON document.
Usage: ``python -m bench.scaleout [--pipelines 20] [--runs 3] [--single 10]``.
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

import boto3
import dagster as dg
import httpx
import psycopg2
import redis
import yaml

from karet_defs.orchestration.launch import submit_pipeline_run
from karet_defs.settings import Settings
from karet_defs.store.factory import build_stores
from karet_defs.templates import install_template

POSTGRES = "postgresql+psycopg2://postgres@127.0.0.1:5432/{db}"
REDIS = "redis://127.0.0.1:6379/{db}"
BIN = Path(sys.executable).parent
TIMEOUT = 900.0
_COMPARED = ("runs_per_minute", "started_p50", "started_p95", "success_p50", "success_p95")
_SENSORS = """query ($s: RepositorySelector!) { sensorsOrError(repositorySelector: $s) {
  ... on Sensors { results { sensorState { id selectorId } } } } }"""
_STOP = """mutation ($o: String!, $s: String!) {
  stopSensor(jobOriginId: $o, jobSelectorId: $s) { __typename } }"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(check, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (OSError, httpx.HTTPError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not come up within {timeout:.0f} s")


def _admin(statement: str) -> None:
    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(statement)
    finally:
        conn.close()


@contextmanager
def _moto() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait(lambda: socket.create_connection(("127.0.0.1", port), timeout=1).close() is None, "moto")
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@contextmanager
def deployment_stack(deployment: str, root: Path, pipelines: list[str], s3: str) -> Iterator[str]:
    """Start the Dagster processes of a deployment; yield the webserver URL; stop everything on exit."""
    home, data = root / "home", root / "data"
    home.mkdir(parents=True)
    database = f"karet_bench_{uuid.uuid4().hex[:10]}"
    prefix = f"karet-bench-{uuid.uuid4().hex[:8]}:"
    config = yaml.safe_load((resources.files("karet_defs") / "instance" / f"{deployment}.yaml").read_text())
    if deployment == "distributed":
        # Our own keys on the shared Redis.
        celery = config["run_launcher"]["config"]["config_source"]
        celery["broker_transport_options"] = {"global_keyprefix": prefix}
        celery["result_backend_transport_options"] = {"global_keyprefix": prefix}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    stores = build_stores(Settings(data_dir=data, s3_bucket="", s3_bucket_lake="", s3_bucket_warehouse=""))
    for slug in pipelines:
        install_template(stores, slug, "spending")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "KARET_", "AWS_", "DAGSTER_"))}
    env.update(
        KARET_DEPLOYMENT=deployment,
        DAGSTER_HOME=str(home),
        KARET_DATA_DIR=str(data),
        POLARS_MAX_THREADS="1",
        KARET_POSTGRES_URL=POSTGRES.format(db=database),
        KARET_COMPUTE_LOGS_BUCKET=f"bench-logs-{uuid.uuid4().hex[:8]}",
        KARET_CELERY_BROKER_URL=REDIS.format(db=0),
        KARET_CELERY_BACKEND_URL=REDIS.format(db=1),
        AWS_ENDPOINT_URL_S3=s3,
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_DEFAULT_REGION="us-east-1",
    )
    if deployment != "embedded":
        _admin(f'CREATE DATABASE "{database}"')
        boto3.client(
            "s3",
            endpoint_url=s3,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        ).create_bucket(Bucket=env["KARET_COMPUTE_LOGS_BUCKET"])
    os.environ.update({k: env[k] for k in env if k.startswith(("KARET_", "AWS_", "DAGSTER_"))})
    web, code = _free_port(), _free_port()
    workspace = home / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
        f"      port: {code}\n      location_name: karet\n"
    )
    url = f"http://127.0.0.1:{web}"
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(name: str, args: list[str]) -> None:
        with (root / f"{name}.log").open("ab") as log:
            procs.append(
                subprocess.Popen(args, env=env, cwd=root, stdout=log, stderr=log, start_new_session=True)
            )

    try:
        # Create the storage once, before three processes race on its migrations.
        dg.DagsterInstance.from_config(str(home)).dispose()
        spawn(
            "code-server",
            [
                str(BIN / "dagster"),
                "code-server",
                "start",
                "-m",
                "karet_defs.definitions",
                "-h",
                "127.0.0.1",
                "-p",
                str(code),
                "--location-name",
                "karet",
            ],
        )
        _wait(lambda: socket.create_connection(("127.0.0.1", code), timeout=1).close() is None, "code server")
        spawn(
            "webserver",
            [str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1", "-p", str(web)],
        )
        _wait(lambda: httpx.get(f"{url}/server_info", timeout=2).status_code == 200, "webserver")
        _stop_sensors(url)
        spawn("daemon", [str(BIN / "dagster-daemon"), "run", "-w", str(workspace)])
        if deployment == "distributed":
            for name in ("w1", "w2"):
                spawn(name, [sys.executable, "-m", "karet_api.cli", "worker", "--name", f"{name}@%h"])
        yield url
    finally:
        for proc in procs:
            _signal(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            _signal(proc.pid, signal.SIGKILL)
            proc.wait()
        if deployment != "embedded":
            _admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            for db in (0, 1):
                client = redis.Redis(host="127.0.0.1", port=6379, db=db)
                stale = list(client.scan_iter(match=f"{prefix}*"))
                if stale:
                    client.delete(*stale)
                client.close()


def _signal(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _graphql(url: str, query: str, variables: dict) -> dict:
    response = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=60)
    response.raise_for_status()
    return response.json()["data"]


def _stop_sensors(url: str) -> None:
    """The raw-files sensors would start a run per new pipeline; only the benchmark's runs may run."""
    selector = {"repositoryLocationName": "karet", "repositoryName": "__repository__"}
    for sensor in _graphql(url, _SENSORS, {"s": selector})["sensorsOrError"]["results"]:
        state = sensor["sensorState"]
        _graphql(url, _STOP, {"o": state["id"], "s": state["selectorId"]})


def _submit(url: str, slug: str) -> tuple[str, float]:
    submitted = time.time()
    return submit_pipeline_run(url, slug, trigger="api"), submitted


def _wait_finished(instance: dg.DagsterInstance, run_ids: list[str]) -> list[dg.RunRecord]:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        records = instance.get_run_records(dg.RunsFilter(run_ids=run_ids))
        if len(records) == len(run_ids) and all(r.dagster_run.is_finished for r in records):
            return list(records)
        time.sleep(0.25)
    raise RuntimeError("runs did not finish")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)


def _summary(records: list[dg.RunRecord], submitted: dict[str, float]) -> dict:
    ok = [r for r in records if r.dagster_run.status == dg.DagsterRunStatus.SUCCESS]
    started = [r.start_time - submitted[r.dagster_run.run_id] for r in ok if r.start_time]
    done = [r.end_time - submitted[r.dagster_run.run_id] for r in ok if r.end_time]
    span = max(r.end_time or 0 for r in records) - min(submitted.values())
    return {
        "runs": len(records),
        "failed": len(records) - len(ok),
        "seconds": round(span, 1),
        "runs_per_minute": round(len(ok) / span * 60, 1),
        "started_p50": _percentile(started, 0.5),
        "started_p95": _percentile(started, 0.95),
        "success_p50": _percentile(done, 0.5),
        "success_p95": _percentile(done, 0.95),
        "success_mean": round(statistics.fmean(done), 2),
    }


def measure(deployment: str, pipelines: list[str], runs: int, single: int, s3: str) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"karet-bench-{deployment}-") as tmp:
        with deployment_stack(deployment, Path(tmp), pipelines, s3) as url:
            instance = dg.DagsterInstance.from_config(os.environ["DAGSTER_HOME"])
            try:
                # Warm-up (code loaded in every process that will run work): not measured.
                warm = dict(_submit(url, slug) for slug in pipelines[:2])
                _wait_finished(instance, list(warm))
                sequential: dict[str, float] = {}
                for slug in (pipelines * single)[:single]:
                    run_id, at = _submit(url, slug)
                    sequential[run_id] = at
                    _wait_finished(instance, [run_id])
                single_records = _wait_finished(instance, list(sequential))
                slugs = [slug for slug in pipelines for _ in range(runs)]
                with ThreadPoolExecutor(max_workers=8) as pool:
                    burst = dict(pool.map(lambda slug: _submit(url, slug), slugs))
                burst_records = _wait_finished(instance, list(burst))
            finally:
                instance.dispose()
    return {"single": _summary(single_records, sequential), "burst": _summary(burst_records, burst)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3, help="runs per pipeline in the burst")
    parser.add_argument("--single", type=int, default=10, help="sequential runs on an idle system")
    args = parser.parse_args()
    pipelines = [f"bench-{i:02d}" for i in range(args.pipelines)]
    results: dict[str, object] = {"cpus": os.cpu_count(), "workload": vars(args)}
    with _moto() as s3:
        for deployment, label in (
            ("embedded", "sqlite_default_launcher"),
            ("distributed", "postgres_celery_2"),
        ):
            before = os.getloadavg()[0]
            results[label] = measure(deployment, pipelines, args.runs, args.single, s3)
            # Other work on the machine skews a comparison: keep the load next to the figures.
            results[label]["loadavg_1m"] = {"before": round(before, 2), "after": round(os.getloadavg()[0], 2)}
            sys.stderr.write(f"{label}: {json.dumps(results[label])}\n")
    base, scaled = results["sqlite_default_launcher"], results["postgres_celery_2"]
    results["ratio_postgres_celery_over_sqlite"] = {
        mode: {key: round(scaled[mode][key] / base[mode][key], 2) for key in _COMPARED if base[mode][key]}
        for mode in ("single", "burst")
    }
    sys.stdout.write(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
