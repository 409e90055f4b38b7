"""The `karet` command: validate a file, run a pipeline as a Dagster run, migrate tables, and `karet dev`
refusing busy ports and running beside another `karet dev` on one host without either seeing the other."""

import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import ANY

import dagster as dg
import httpx
import polars as pl
import pytest

from karet_api.cli import main
from karet_api.cli.supervisor import HOME_LOCK
from karet_defs.orchestration.jobs import dagster_name
from karet_defs.settings import Settings
from karet_defs.store import keys
from karet_defs.store.factory import build_stores
from karet_defs.templates import install_template, template_files
from tests.conftest import _free_port
from tests.factories import read_table, table_version, write_legacy_table

KARET = str(Path(sys.executable).parent / "karet")
API_KEY = "cli-test-key"
DEV_START_TIMEOUT = 120.0
DEV_STOP_TIMEOUT = 20.0


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster-home"))
    monkeypatch.delenv("S3_BUCKET", raising=False)
    # `karet` pins the store in the environment for its child processes; restore it after each test.
    monkeypatch.setenv("KARET_DATA_DIR", str(tmp_path / "unused"))
    return tmp_path / "dagster-home"


def test_validate_ok_and_invalid(tmp_path, capsys):
    good = tmp_path / "good.json"
    good.write_bytes(template_files("spending")["pipeline.json"])
    assert main(["validate", str(good)]) == 0
    assert json.loads(capsys.readouterr().out) == {"ok": True}

    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 1, "source_containers": []}')
    assert main(["validate", str(bad)]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "schema"


def test_invalid_settings_end_a_command_with_their_message(tmp_path, monkeypatch):
    monkeypatch.setenv("KARET_DEFAULT_OWNER", "nobody")

    with pytest.raises(SystemExit, match="^invalid settings: KARET_DEFAULT_OWNER: .* must be an email"):
        main(["migrate", "--data-dir", str(tmp_path)])


def test_run_prints_the_summary_of_a_real_run(home, local_settings, local_stores, capsys, monkeypatch):
    install_template(local_stores, "spending", "spending")

    assert main(["run", "spending", "--clean", "--data-dir", str(local_settings.data_dir)]) == 0

    summary = json.loads(capsys.readouterr().out)
    assert {k: summary[k] for k in ("status", "partitions_written", "files_processed", "errors")} == {
        "status": "completed",
        "partitions_written": 3,  # two months, and the rollup's year
        "files_processed": 1,
        "errors": [],
    }
    assert (home / "dagster.yaml").exists()
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(summary["job_id"])
        assert run.tags["karet/clean_run"] == "true" and run.tags["karet/trigger"] == "manual"


def test_run_of_missing_pipeline_fails_with_the_code(home, local_settings, capsys):
    assert main(["run", "ghost", "--data-dir", str(local_settings.data_dir)]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "pipeline_config_not_found"


def test_migrate_converts_every_legacy_table_once(home, local_settings, local_stores, capsys, tmp_path):
    install_template(local_stores, "spending", "spending")
    install_template(local_stores, "fresh", "spending")
    frame = pl.DataFrame({"amount": [4.5, 40.0], "year": [2026, 2026], "month": [4, 5]})
    write_legacy_table(local_stores, "spending", "transactions", {"m": frame}, ["year", "month"], tmp_path)
    local_stores.pipelines.put(keys.config_key("broken"), b"{not json")

    assert main(["migrate", "--data-dir", str(local_settings.data_dir)]) == 1

    assert json.loads(capsys.readouterr().out)["tables"] == [
        {"pipeline": "broken", "status": "failed", "error": "schema", "message": ANY},
        {"pipeline": "fresh", "table": "transactions", "status": "unchanged"},
        {"pipeline": "fresh", "table": "monthly_spend", "status": "unchanged"},
        {"pipeline": "spending", "table": "transactions", "status": "converted", "version": 0},
        {"pipeline": "spending", "table": "monthly_spend", "status": "unchanged"},
    ]
    assert table_version(local_stores, "spending", "transactions") == 0
    assert read_table(local_stores, "spending", "transactions").height == 2

    local_stores.pipelines.delete(keys.config_key("broken"))
    assert main(["migrate", "--data-dir", str(local_settings.data_dir)]) == 0
    statuses = [t["status"] for t in json.loads(capsys.readouterr().out)["tables"]]
    assert statuses == ["unchanged"] * 4


def _dev_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "KARET_", "AWS_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), KARET_API_KEY=API_KEY, POLARS_MAX_THREADS="1")
    return env


@pytest.mark.parametrize("flag", ["--api-port", "--dagster-port", "--code-server-port"])
def test_dev_refuses_a_busy_port_at_once(tmp_path, flag):
    ports = {"--api-port": _free_port(), "--dagster-port": _free_port()}
    with socket.socket() as busy:
        # As gRPC servers do: a second code server binding the port anyway would silently share it.
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports[flag] = busy.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run(
            [KARET, "dev", "--data-dir", str(tmp_path / "data")]
            + [arg for flag_and_port in ports.items() for arg in map(str, flag_and_port)],
            env=_dev_env(tmp_path / "dagster-home"),
            capture_output=True,
            timeout=60,
        )

    assert time.monotonic() - started < 10
    assert result.returncode != 0
    assert result.stderr.decode().strip() == (
        f"port {ports[flag]} is in use (another karet dev?): pass {flag} <free port>"
    )
    assert not (tmp_path / "data").exists() and not (tmp_path / "dagster-home").exists()


def test_dev_refuses_a_dagster_home_in_use(tmp_path):
    home = tmp_path / "dagster-home"
    home.mkdir()
    with (home / HOME_LOCK).open("wb") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = subprocess.run(
            [KARET, "dev", "--data-dir", str(tmp_path / "data")]
            + ["--api-port", str(_free_port()), "--dagster-port", str(_free_port())],
            env=_dev_env(home),
            capture_output=True,
            timeout=60,
        )

    assert result.returncode != 0
    assert "is in use by another karet dev: set DAGSTER_HOME" in result.stderr.decode()
    assert not (tmp_path / "data").exists()


@dataclass
class DevInstance:
    """One `karet dev` started by a test, in a process group of its own."""

    home: Path
    api: str
    ui: str
    log: Path
    proc: subprocess.Popen[bytes]

    def wait_for_urls(self) -> None:
        """Wait for the URL lines, then check both servers answer at that very moment."""
        deadline = time.monotonic() + DEV_START_TIMEOUT
        while f"Karet API:  {self.api}" not in self.log.read_text(errors="replace"):
            assert self.proc.poll() is None, f"karet dev exited: {self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"karet dev printed no URLs: {self.log.read_text()[-3000:]}"
            time.sleep(0.2)
        assert f"Dagster UI: {self.ui}" in self.log.read_text()
        assert httpx.get(f"{self.api}/health", timeout=5).status_code == 200
        assert httpx.get(f"{self.ui}/server_info", timeout=5).status_code == 200

    def get(self, path: str) -> httpx.Response:
        return httpx.get(self.api + path, headers={"X-API-Key": API_KEY}, timeout=30)

    def graphql(self, query: str) -> dict:
        response = httpx.post(f"{self.ui}/graphql", json={"query": query}, timeout=30)
        response.raise_for_status()
        return response.json()["data"]

    def processes(self) -> list[int]:
        """Every live process of this instance: they all inherit its DAGSTER_HOME, even once orphaned."""
        marker = f"DAGSTER_HOME={self.home}".encode()
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if marker in environ.split(b"\0"):
                pids.append(int(entry.name))
        return pids


@pytest.fixture
def start_dev(tmp_path: Path) -> Iterator[Callable[[str], DevInstance]]:
    """Start `karet dev` over a data directory holding one pipeline; all it started dies at teardown."""
    started: list[DevInstance] = []

    def start(slug: str) -> DevInstance:
        root = tmp_path / slug
        home, data = (root / "dagster-home").resolve(), root / "data"
        settings = Settings(data_dir=data, s3_bucket="", s3_bucket_lake="", s3_bucket_warehouse="")
        install_template(build_stores(settings), slug, "spending")
        api_port, ui_port = _free_port(), _free_port()
        log = root / "karet-dev.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [KARET, "dev", "--data-dir", str(data), "--api-port", str(api_port)]
                + ["--dagster-port", str(ui_port)],
                cwd=root,
                env=_dev_env(home),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        instance = DevInstance(home, f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{ui_port}", log, proc)
        started.append(instance)
        return instance

    yield start
    for instance in started:
        if instance.proc.poll() is None:
            os.killpg(instance.proc.pid, signal.SIGTERM)
    for instance in started:
        try:
            instance.proc.wait(timeout=DEV_STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        # A karet dev that hung or died leaves its children in their own sessions: reach them by home.
        while pids := instance.processes():
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)
        instance.proc.wait()


_WORKSPACE = """{
  repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } }
  assetNodes { assetKey { path } }
}"""
_RUNS = "{ runsOrError { ... on Runs { results { jobName tags { key value } } } } }"


def _jobs_and_assets(instance: DevInstance) -> tuple[set[str], set[str]]:
    data = instance.graphql(_WORKSPACE)
    jobs = {job["name"] for repo in data["repositoriesOrError"]["nodes"] for job in repo["jobs"]}
    return jobs, {node["assetKey"]["path"][0] for node in data["assetNodes"]}


def _recorded_runs(instance: DevInstance) -> list[tuple[str, str | None]]:
    """(job, `karet/pipeline` tag) of every run in the instance's storage, as its webserver reports them."""
    runs = instance.graphql(_RUNS)["runsOrError"]["results"]
    return [
        (run["jobName"], {t["key"]: t["value"] for t in run["tags"]}.get("karet/pipeline")) for run in runs
    ]


def _wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def _assert_sees_only(instance: DevInstance, slugs: set[str], other: str) -> None:
    """The instance's API lists ``slugs`` alone, and its webserver shows their jobs and assets alone."""
    assert instance.get("/api/pipelines").json() == {"pipelines": sorted(slugs)}
    jobs, asset_owners = _jobs_and_assets(instance)
    assert asset_owners == slugs
    assert {dagster_name(slug) for slug in slugs} <= jobs
    assert not any(job.startswith(dagster_name(other)) for job in jobs)


def test_two_dev_instances_on_one_host_never_see_each_other(start_dev):
    instances = {"alpha": start_dev("alpha"), "beta": start_dev("beta")}
    others = {"alpha": "beta", "beta": "alpha"}
    for instance in instances.values():
        instance.wait_for_urls()
    for slug, instance in instances.items():
        _assert_sees_only(instance, {slug}, others[slug])

    # A change of structure through one API reloads that instance's webserver alone.
    response = httpx.post(
        f"{instances['alpha'].api}/api/pipelines",
        json={"slug": "gamma", "template": "spending"},
        headers={"X-API-Key": API_KEY},
        timeout=30,
    )
    assert response.status_code == 200, response.text
    _wait_for(lambda: "gamma" in _jobs_and_assets(instances["alpha"])[1], "alpha's reload")
    owned = {"alpha": {"alpha", "gamma"}, "beta": {"beta"}}
    for slug, instance in instances.items():
        _assert_sees_only(instance, owned[slug], others[slug])

    # Each daemon's sensor asks for a run of the seed file of the pipeline its own code server serves.
    for slug, instance in instances.items():
        _wait_for(lambda instance=instance: _recorded_runs(instance), f"a run of {slug}")
    for slug, instance in instances.items():
        runs = _recorded_runs(instance)
        assert {pipeline for _, pipeline in runs} <= owned[slug]
        assert {job for job, _ in runs} <= {dagster_name(s) for s in owned[slug]}
        assert {job["pipeline"] for job in instance.get(f"/api/p/{slug}/jobs").json()["jobs"]} == {slug}
        assert instance.get(f"/api/p/{others[slug]}/jobs").json() == {"jobs": []}

    # SIGTERM, as a service manager sends it, stops every process of an instance, in other sessions too.
    for instance in instances.values():
        os.killpg(instance.proc.pid, signal.SIGTERM)
    for instance in instances.values():
        assert instance.proc.wait(timeout=DEV_STOP_TIMEOUT) == 0
        _wait_for(lambda instance=instance: not instance.processes(), "the instance's processes to end", 10)
