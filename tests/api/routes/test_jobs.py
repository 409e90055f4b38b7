"""Jobs through the API: Dagster runs in Karet's record shape, started at once, newest first."""

import threading
import time

import dagster as dg

from karet_defs.engine import delta
from karet_defs.orchestration.launch import execute_pipeline_run
from karet_defs.templates import install_template
from tests.factories import SMALL_ROWS, put_small_pipeline


def _wait_done(client, slug, job_id, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/p/{slug}/jobs/{job_id}").json()["job"]
        if job["status"] in ("completed", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['status']}")


def test_start_returns_running_then_completes_with_counters(api_client, local_stores, dagster_instance):
    install_template(local_stores, "spending", "spending")

    response = api_client.post("/api/p/spending/jobs")

    assert response.status_code == 200
    job = response.json()["job"]
    assert job["status"] == "running"
    assert job["pipeline"] == "spending" and job["trigger"] == "manual"
    done = _wait_done(api_client, "spending", job["id"])
    assert done["status"] == "completed"
    # Two months of transactions, and the year of the monthly rollup.
    assert (done["partitions_written"], done["files_processed"], done["errors"]) == (3, 1, [])
    assert done["completedAt"].endswith("Z") and done["startedAt"] <= done["completedAt"]
    run = dagster_instance.get_run_by_id(job["id"])
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["karet/pipeline"] == "spending" and run.tags["karet/clean_run"] == "false"


def test_clean_true_is_tagged_and_history_is_newest_first(api_client, local_stores, dagster_instance):
    install_template(local_stores, "spending", "spending")
    first = execute_pipeline_run(dagster_instance, "spending", trigger="api")

    job = api_client.post("/api/p/spending/jobs?clean=true").json()["job"]
    _wait_done(api_client, "spending", job["id"])

    jobs = api_client.get("/api/p/spending/jobs").json()["jobs"]
    assert [j["id"] for j in jobs] == [job["id"], first.run_id]
    assert [j["trigger"] for j in jobs] == ["manual", "api"]
    assert dagster_instance.get_run_by_id(job["id"]).tags["karet/clean_run"] == "true"


def test_clean_is_a_boolean_and_a_loose_value_is_refused(api_client, local_stores, dagster_instance):
    install_template(local_stores, "spending", "spending")

    response = api_client.post("/api/p/spending/jobs?clean=maybe")

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"
    assert response.json()["message"] == (
        "clean: must be a boolean (true, false, 1, 0, yes, no, on, off), not 'maybe'"
    )
    assert response.json()["details"][0]["path"] == "/query/clean"
    assert dagster_instance.get_runs() == []


def test_completed_with_file_errors_carries_the_summary(api_client, local_stores):
    install_template(local_stores, "spending", "spending")
    local_stores.lake.put("pipelines/spending/transactions/bad.csv", b"date,amount\n2026-04-01,1\n")

    job = _wait_done(api_client, "spending", api_client.post("/api/p/spending/jobs").json()["job"]["id"])

    assert job["status"] == "completed"
    assert job["errors"] == [
        'file pipelines/spending/transactions/bad.csv: missing required columns: ["description", "account"]'
    ]
    assert job["error"] == "3 partitions written, 1 error(s): " + job["errors"][0]


def test_failed_run_shows_failed_with_the_cause(api_client, local_stores):
    install_template(local_stores, "spending", "spending")
    job = api_client.post("/api/p/spending/jobs").json()["job"]
    _wait_done(api_client, "spending", job["id"])
    local_stores.pipelines.put("pipelines/spending/pipeline.json", b'{"version": 1}')

    response = api_client.post("/api/p/spending/jobs")

    assert response.status_code == 400
    assert response.json()["error"] == "config_parse_failed"
    assert {d["path"] for d in response.json()["details"]} == {
        "/source_containers",
        "/lookup_mappings",
        "/mappings",
        "/analytic_tables",
    }


def test_progress_shows_while_a_run_works_and_after_it_ends(api_client, local_stores, monkeypatch):
    put_small_pipeline(local_stores, "sales")
    committing, release = threading.Event(), threading.Event()
    commit = delta.commit

    def held_commit(*args, **kwargs):
        committing.set()
        release.wait(30)
        return commit(*args, **kwargs)

    monkeypatch.setattr(delta, "commit", held_commit)
    job_id = api_client.post("/api/p/sales/jobs").json()["job"]["id"]
    assert committing.wait(30)

    during = api_client.get(f"/api/p/sales/jobs/{job_id}").json()["job"]
    release.set()
    after = _wait_done(api_client, "sales", job_id)

    assert during["status"] == "running"
    assert during["progress"]["phase"] != "done"
    assert after["progress"]["phase"] == "done" and after["progress"]["eta_seconds"] == 0
    assert (after["progress"]["files_done"], after["progress"]["rows_written"]) == (1, SMALL_ROWS)
    assert after["progress"]["table"] == "t" and after["progress"]["elapsed_seconds"] > 0


def test_missing_pipeline_is_404_and_unknown_job_is_404(api_client):
    assert api_client.post("/api/p/ghost/jobs").json()["error"] == "pipeline_config_not_found"
    assert api_client.get("/api/p/ghost/jobs").json() == {"jobs": []}
    assert api_client.get("/api/p/ghost/jobs/nope").status_code == 404


def test_stuck_running_run_is_shown_failed_as_orphan(make_client, local_settings, dagster_instance):
    client = make_client(local_settings.model_copy(update={"orphan_after_seconds": 120}))
    run = dagster_instance.add_run(
        dg.DagsterRun(
            job_name="spending",
            tags={"karet/pipeline": "spending", "karet/trigger": "manual"},
            status=dg.DagsterRunStatus.STARTED,
        )
    )
    # The run's last event is three minutes old, so it is silent past the limit without the test waiting.
    dagster_instance.store_event(
        dg.EventLogEntry(
            error_info=None, level="INFO", user_message="", run_id=run.run_id, timestamp=time.time() - 180
        )
    )

    jobs = client.get("/api/p/spending/jobs").json()["jobs"]

    assert [(j["id"], j["status"], j["error"]) for j in jobs] == [
        (run.run_id, "failed", "job abandoned (stuck in running for > 2 min)")
    ]


def test_jobs_need_authentication(make_client, local_settings):
    client = make_client(local_settings, authenticated=False)
    assert client.get("/api/p/spending/jobs").status_code == 401


def test_a_statement_with_us_dates_is_quarantined_and_the_rest_published(
    api_client, local_stores, dagster_instance
):
    install_template(local_stores, "spending", "spending")
    bad = "pipelines/spending/transactions/june.csv"
    local_stores.lake.put(
        bad,
        b"date,description,amount,account\n2026-06-01,PAYROLL DEPOSIT,10,chk\n"
        b"07/15/2026,GROCERY STORE,-2,chk\n",
    )

    job = _wait_done(api_client, "spending", api_client.post("/api/p/spending/jobs").json()["job"]["id"])

    assert job["status"] == "completed"
    assert job["errors"] == [
        f'file {bad} line 3: date "07/15/2026" does not match %Y-%m-%d; date must have a value (not_null); '
        "the file is held back until it is fixed"
    ]
    assert {(e["file"], e["line"], e["column"], e["value"]) for e in job["file_errors"]} >= {
        (bad, 3, "date", "07/15/2026")
    }
    rows = api_client.get("/api/p/spending/tables/transactions/rows").json()["rows"]
    assert rows and all(r["date"] != "2026-06-01" for r in rows)  # june.csv held back whole
    checks = {
        (e.asset_check_key.name, e.passed, e.severity)
        for e in _check_evaluations(dagster_instance, job["id"])
    }
    assert ("no_quarantined_files", False, dg.AssetCheckSeverity.WARN) in checks
    assert dagster_instance.get_run_by_id(job["id"]).status == dg.DagsterRunStatus.SUCCESS


def _check_evaluations(instance: dg.DagsterInstance, run_id: str):
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    return [r.event_log_entry.dagster_event.event_specific_data for r in records]
