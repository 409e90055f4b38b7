"""The instance configurations shipped in ``karet_defs/instance/`` and the one setting that picks them."""

import importlib
from importlib import resources
from pathlib import Path

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config

from karet_api.cli import main
from karet_api.cli.environment import install_instance_yaml, instance_yaml
from karet_defs.settings import INSTANCE_ENV

DEPLOYMENTS = ("embedded", "production", "distributed")
FAKE_ENV = {
    "KARET_POSTGRES_URL": "postgresql+psycopg2://karet:secret@db.internal:5432/dagster",
    "KARET_COMPUTE_LOGS_BUCKET": "karet-compute-logs",
    "KARET_CELERY_BROKER_URL": "redis://redis.internal:6379/0",
    "KARET_CELERY_BACKEND_URL": "redis://redis.internal:6379/1",
}
# Where each configurable class of an instance yaml lives, when the yaml names it by a shorthand.
_SHORTHANDS = {("storage", "postgres"): ("dagster_postgres", "DagsterPostgresStorage")}


def _load(deployment: str) -> dict:
    return yaml.safe_load(instance_yaml(deployment))


def _configured_classes(config: dict) -> list[tuple[str, str, dict]]:
    classes = [
        (config[key]["module"], config[key]["class"], config[key].get("config") or {})
        for key in ("run_coordinator", "run_launcher", "compute_logs")
        if key in config
    ]
    for kind, value in config.get("storage", {}).items():
        module, name = _SHORTHANDS[("storage", kind)]
        classes.append((module, name, value))
    return classes


@pytest.fixture
def instance_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in FAKE_ENV.items():
        monkeypatch.setenv(name, value)


def test_embedded_is_sqlite_with_the_default_launcher():
    assert "storage" not in _load("embedded") and "run_launcher" not in _load("embedded")


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_every_instance_queues_one_run_per_pipeline(deployment):
    config = _load(deployment)

    assert config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_coordinator"]["config"]["dequeue_interval_seconds"] == 1
    assert config["concurrency"]["runs"]["tag_concurrency_limits"] == [
        {"key": "karet/pipeline", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
    ]
    # Runs whose worker died are failed within seconds, not minutes (issue 22).
    assert config["run_monitoring"]["enabled"] is True
    assert config["run_monitoring"]["poll_interval_seconds"] <= 5


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_every_instance_keeps_the_ui_quiet_and_private(deployment, instance_env, tmp_path):
    (tmp_path / "dagster.yaml").write_bytes(instance_yaml(deployment))
    config, _ = dagster_instance_config(str(tmp_path))
    assert config["nux"] == {"enabled": False}  # no "join the community" pop-up on a first visit
    assert config["telemetry"] == {"enabled": False}


@pytest.mark.parametrize("deployment", DEPLOYMENTS)
def test_every_instance_is_valid_dagster_config(deployment, instance_env, tmp_path):
    (tmp_path / "dagster.yaml").write_bytes(instance_yaml(deployment))
    dagster_instance_config(str(tmp_path))
    for module, name, config in _configured_classes(_load(deployment)):
        klass = getattr(importlib.import_module(module), name)
        result = process_config(klass.config_type(), config)
        assert result.success, (name, [e.message for e in result.errors or []])


def test_production_and_distributed_read_their_services_from_the_environment(instance_env):
    production, distributed = _load("production"), _load("distributed")

    assert production["storage"] == {"postgres": {"postgres_url": {"env": "KARET_POSTGRES_URL"}}}
    assert production["compute_logs"]["class"] == "S3ComputeLogManager"
    assert production["compute_logs"]["config"]["bucket"] == {"env": "KARET_COMPUTE_LOGS_BUCKET"}
    assert {k: v for k, v in distributed.items() if k != "run_launcher"} == production
    assert distributed["run_launcher"]["class"] == "CeleryRunLauncher"
    assert {k: distributed["run_launcher"]["config"][k] for k in ("broker", "backend")} == {
        "broker": {"env": "KARET_CELERY_BROKER_URL"},
        "backend": {"env": "KARET_CELERY_BACKEND_URL"},
    }
    named = {v["env"] for v in _env_references(distributed)}
    assert named == set(INSTANCE_ENV["distributed"]) == set(FAKE_ENV)


def _env_references(node: object) -> list[dict]:
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return [node]
        return [ref for value in node.values() for ref in _env_references(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _env_references(value)]
    return []


def test_instance_yaml_prints_the_selected_deployment(monkeypatch, capsysbinary):
    monkeypatch.setenv("KARET_DEPLOYMENT", "distributed")

    assert main(["instance-yaml"]) == 0
    assert capsysbinary.readouterr().out == instance_yaml("distributed")
    assert main(["instance-yaml", "--deployment", "production"]) == 0
    assert capsysbinary.readouterr().out == instance_yaml("production")


def test_instance_yaml_write_installs_it_in_dagster_home(monkeypatch, tmp_path):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KARET_DEPLOYMENT", "production")

    assert main(["instance-yaml", "--write"]) == 0

    assert (tmp_path / "home" / "dagster.yaml").read_bytes() == instance_yaml("production")


def test_a_changed_deployment_replaces_a_shipped_file_but_never_an_edited_one(tmp_path: Path, capsys):
    target = tmp_path / "dagster.yaml"
    assert install_instance_yaml(tmp_path, "embedded")
    assert target.read_bytes() == instance_yaml("embedded")

    assert install_instance_yaml(tmp_path, "distributed")
    assert target.read_bytes() == instance_yaml("distributed")

    target.write_text("telemetry:\n  enabled: false\n")
    assert not install_instance_yaml(tmp_path, "production")
    assert target.read_text() == "telemetry:\n  enabled: false\n"
    assert "edited by hand" in capsys.readouterr().err


def test_api_refuses_to_start_a_deployment_without_its_variables(monkeypatch, tmp_path):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KARET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KARET_DEPLOYMENT", "distributed")
    for name in FAKE_ENV:
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(
        SystemExit, match="KARET_POSTGRES_URL, KARET_COMPUTE_LOGS_BUCKET, KARET_CELERY_BROKER_URL"
    ):
        main(["api"])


def test_package_data_ships_every_instance():
    shipped = {p.name for p in (resources.files("karet_defs") / "instance").iterdir()}
    assert {f"{d}.yaml" for d in DEPLOYMENTS} <= shipped
