"""The `karet` command for scripts: validate a file, run a pipeline as a Dagster run, migrate tables."""

import json
from unittest.mock import ANY

import dagster as dg
import polars as pl
import pytest

from karet_api.cli import main
from karet_defs.store import keys
from karet_defs.templates import install_template, template_files
from tests.factories import read_table, table_version, write_legacy_table


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


def test_run_prints_the_summary_of_a_real_run(home, local_settings, local_stores, capsys, monkeypatch):
    install_template(local_stores, "spending", "spending")

    assert main(["run", "spending", "--clean", "--data-dir", str(local_settings.data_dir)]) == 0

    summary = json.loads(capsys.readouterr().out)
    assert {k: summary[k] for k in ("status", "partitions_written", "files_processed", "errors")} == {
        "status": "completed",
        "partitions_written": 2,
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
        {"pipeline": "spending", "table": "transactions", "status": "converted", "version": 0},
    ]
    assert table_version(local_stores, "spending", "transactions") == 0
    assert read_table(local_stores, "spending", "transactions").height == 2

    local_stores.pipelines.delete(keys.config_key("broken"))
    assert main(["migrate", "--data-dir", str(local_settings.data_dir)]) == 0
    statuses = [t["status"] for t in json.loads(capsys.readouterr().out)["tables"]]
    assert statuses == ["unchanged", "unchanged"]
