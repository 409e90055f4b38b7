"""deploy/helm/values.yaml carries what Dagster's Helm chart needs to run Karet with the K8sRunLauncher."""

from pathlib import Path

import pytest
import yaml

VALUES = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "values.yaml"
# Top-level keys of the chart's values schema (helm/dagster/schema/.../values.py, Dagster 1.13).
CHART_KEYS = {
    "dagsterWebserver",
    "dagster-user-deployments",
    "postgresql",
    "generatePostgresqlPasswordSecret",
    "generateCeleryConfigSecret",
    "rabbitmq",
    "redis",
    "flower",
    "ingress",
    "imagePullSecrets",
    "computeLogManager",
    "scheduler",
    "runLauncher",
    "pythonLogs",
    "dagsterDaemon",
    "busybox",
    "migrate",
    "telemetry",
    "serviceAccount",
    "global",
    "retention",
    "concurrency",
    "additionalInstanceConfig",
}


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load(VALUES.read_text())


def test_only_keys_the_chart_knows(values):
    assert set(values) <= CHART_KEYS


def test_runs_are_kubernetes_jobs(values):
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert values["runLauncher"]["config"]["k8sRunLauncher"]["loadInclusterConfig"] is True


def test_our_code_location_is_the_user_deployment(values):
    user = values["dagster-user-deployments"]
    assert user["enabled"] is True and user["enableSubchart"] is True
    [deployment] = user["deployments"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "karet_defs.definitions"]
    assert deployment["name"] == "karet" and isinstance(deployment["port"], int)
    assert {"repository", "tag"} <= set(deployment["image"])
    env = {item["name"]: item["value"] for item in deployment["env"]}
    assert env["S3_BUCKET"] and env["AWS_REGION"]
    assert "KARET_DATA_DIR" not in env
    assert [s["name"] for s in deployment["envSecrets"]] == ["karet-aws"]


def test_storage_is_an_external_postgres(values):
    postgresql = values["postgresql"]
    assert postgresql["enabled"] is False
    assert all(postgresql[k] for k in ("postgresqlHost", "postgresqlUsername", "postgresqlDatabase"))
    assert postgresql["postgresqlScheme"] == "postgresql+psycopg2"
    assert postgresql["service"]["port"] == 5432


def test_compute_logs_go_to_s3(values):
    logs = values["computeLogManager"]
    assert logs["type"] == "S3ComputeLogManager"
    assert logs["config"]["s3ComputeLogManager"]["bucket"]


def test_one_run_per_pipeline_as_in_the_shipped_instances(values):
    instance = yaml.safe_load(
        (Path(__file__).resolve().parents[2] / "karet_defs" / "instance" / "production.yaml").read_text()
    )
    runs = values["concurrency"]["runs"]["tagConcurrencyLimits"]
    assert values["concurrency"]["enabled"] is True
    assert runs == instance["concurrency"]["runs"]["tag_concurrency_limits"]
    assert values["concurrency"]["pools"]["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"]
    coordinator = values["dagsterDaemon"]["runCoordinator"]
    assert coordinator["type"] == "QueuedRunCoordinator"
    # The chart refuses tag limits in both places; they live under `concurrency` only.
    assert "tagConcurrencyLimits" not in coordinator["config"]["queuedRunCoordinator"]
    assert coordinator["config"]["queuedRunCoordinator"]["dequeueIntervalSeconds"] == 1
    assert values["dagsterDaemon"]["runMonitoring"]["enabled"] is True
