"""``Settings``: the requirements of each deployment, refused with the variables they name."""

import re

import pytest

from karet_defs.settings import INSTANCE_ENV, Settings


@pytest.fixture(autouse=True)
def _no_instance_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in {name for names in INSTANCE_ENV.values() for name in names} | {"KARET_DAGSTER_URL"}:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("deployment", "missing"),
    [
        ("production", "KARET_POSTGRES_URL, KARET_COMPUTE_LOGS_BUCKET"),
        (
            "distributed",
            "KARET_POSTGRES_URL, KARET_COMPUTE_LOGS_BUCKET, KARET_CELERY_BROKER_URL, "
            "KARET_CELERY_BACKEND_URL",
        ),
    ],
)
def test_a_deployment_names_the_instance_variables_it_misses(deployment, missing):
    message = f"KARET_DEPLOYMENT={deployment} needs these environment variables: {missing}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Settings(deployment=deployment).require_instance_env()


def test_instance_variables_are_read_from_the_environment(monkeypatch):
    Settings().require_instance_env()  # embedded reads none
    monkeypatch.setenv("KARET_POSTGRES_URL", "postgresql+psycopg2://karet:secret@db:5432/dagster")
    with pytest.raises(ValueError, match=r"variables: KARET_COMPUTE_LOGS_BUCKET$"):
        Settings(deployment="production").require_instance_env()
    monkeypatch.setenv("KARET_COMPUTE_LOGS_BUCKET", "karet-logs")
    Settings(deployment="production").require_instance_env()


def test_only_a_queued_deployment_needs_the_webserver_url():
    Settings().require_dagster_url()
    Settings(deployment="production", dagster_url="http://dagster:80").require_dagster_url()
    with pytest.raises(ValueError, match="KARET_DEPLOYMENT=production submits runs to Dagster's queue"):
        Settings(deployment="production").require_dagster_url()


def test_an_empty_dagster_home_is_the_default(monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", "")
    assert str(Settings().dagster_home) == ".dagster-home"
