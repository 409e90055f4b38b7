"""Karet's events read from the Dagster event log of real runs: jobs, runs, tables and raw files."""

from datetime import UTC, datetime

import dagster as dg

from karet_defs.orchestration.feed import JOBS, FeedReader
from karet_defs.orchestration.launch import create_pipeline_run, execute_pipeline_run
from karet_defs.orchestration.progress import PROGRESS_METADATA, latest_progress
from karet_defs.orchestration.sensors import SourceFiles
from karet_defs.store.base import ObjectInfo
from tests.factories import SMALL_ROWS, put_small_pipeline

MOMENT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def _all(reader: FeedReader, page: int = 1000):
    events, after = [], 0
    while True:
        more, read_to = reader.read(after, page)
        events += more
        if read_to == after:
            return events
        after = read_to


def test_a_run_is_queued_started_in_progress_completed_and_versions_its_table(
    pipeline_env, local_stores, dagster_instance
):
    put_small_pipeline(local_stores, "sales")

    outcome = execute_pipeline_run(dagster_instance, "sales", trigger="manual")

    events = _all(FeedReader(dagster_instance))
    jobs = [e.kind for e in events if e.topic == JOBS]
    assert jobs[:2] == ["queued", "started"] and jobs[-1] == "completed"
    assert set(jobs[2:-1]) == {"progress"}
    assert [(e.topic, e.kind) for e in events if e.topic != JOBS] == [
        ("runs", "started"),
        ("tables", "version"),
        ("runs", "ended"),
    ]
    assert [e.offset for e in events] == sorted(e.offset for e in events)
    ended = next(e for e in events if e.topic == "runs" and e.kind == "ended")
    assert ended.pipeline == "sales"
    assert ended.payload == {
        "job_id": outcome.run_id,
        "pipeline": "sales",
        "trigger": "manual",
        "status": "completed",
        "partitions_written": 1,
        "files_processed": 1,
        "errors": [],
        "error": None,
    }
    table = next(e for e in events if e.topic == "tables")
    assert table.payload == {
        "pipeline": "sales",
        "table": "t",
        "version": 0,
        "rows_added": SMALL_ROWS,
        "rows_removed": 0,
        "row_count": SMALL_ROWS,
        "job_id": outcome.run_id,
    }
    last = next(e for e in reversed(events) if e.kind == "progress").payload["progress"]
    assert (last["phase"], last["files_done"], last["files_total"], last["rows_written"]) == (
        "done",
        1,
        1,
        SMALL_ROWS,
    )


def test_progress_is_in_the_runs_own_event_log(pipeline_env, local_stores, dagster_instance):
    put_small_pipeline(local_stores, "sales")

    outcome = execute_pipeline_run(dagster_instance, "sales", trigger="manual")

    records = dagster_instance.get_records_for_run(
        outcome.run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION
    ).records
    observations = [r.event_log_entry.asset_observation for r in records]
    assert observations and all(PROGRESS_METADATA in o.metadata for o in observations)
    assert {o.asset_key for o in observations} == {dg.AssetKey(["sales", "t"])}
    assert observations[-1].description == "done: 1/1 files, 3 rows read, 3 written"
    progress = latest_progress(dagster_instance, outcome.run_id)
    assert progress is not None and progress.phase == "done" and progress.rows_read == SMALL_ROWS


def test_a_run_that_publishes_nothing_fails_with_its_cause(pipeline_env, local_stores, dagster_instance):
    put_small_pipeline(local_stores, "sales")
    local_stores.lake.delete("pipelines/sales/raw/a.csv")
    local_stores.lake.put("pipelines/sales/raw/bad.csv", b"id\na\n")

    outcome = execute_pipeline_run(dagster_instance, "sales", trigger="api")

    events = _all(FeedReader(dagster_instance))
    failed = [e for e in events if e.kind == "failed"]
    assert [e.topic for e in failed] == [JOBS]
    assert failed[0].payload["error"] == outcome.failure
    assert "missing required columns" in failed[0].payload["error"]
    assert not [e for e in events if e.topic == "tables"]
    assert [e.payload["status"] for e in events if e.topic == "runs" and e.kind == "ended"] == ["failed"]


def test_a_run_not_yet_started_is_queued_once(pipeline_env, local_stores, dagster_instance):
    put_small_pipeline(local_stores, "sales")

    prepared = create_pipeline_run(dagster_instance, "sales", trigger="webhook")

    events = _all(FeedReader(dagster_instance))
    assert [(e.topic, e.kind, e.payload["job_id"]) for e in events] == [(JOBS, "queued", prepared.run_id)]
    assert events[0].payload["status"] == "scheduled" and events[0].payload["trigger"] == "webhook"


def test_a_source_observation_is_a_files_event(dagster_instance):
    files = SourceFiles()
    files.add(ObjectInfo(key="pipelines/p/raw/a.csv", size=10, etag="e1", last_modified=MOMENT))

    dagster_instance.report_runless_asset_event(files.observation(dg.AssetKey(["p", "raw", "src"])))

    [event] = _all(FeedReader(dagster_instance))
    assert (event.topic, event.kind, event.pipeline) == ("files", "changed", "p")
    assert event.payload == {
        "pipeline": "p",
        "source": "src",
        "file_count": 1,
        "total_bytes": 10,
        "newest_file": "pipelines/p/raw/a.csv",
        "last_modified": MOMENT.timestamp(),
    }


def test_pages_read_the_same_events_as_one_read(pipeline_env, local_stores, dagster_instance):
    put_small_pipeline(local_stores, "sales")
    execute_pipeline_run(dagster_instance, "sales", trigger="manual")
    reader = FeedReader(dagster_instance)

    assert _all(reader, page=3) == _all(reader)
    assert reader.latest() == max(e.offset for e in _all(reader))


def test_a_reader_that_waits_for_commits_stops_short_of_young_events(
    pipeline_env, local_stores, dagster_instance
):
    put_small_pipeline(local_stores, "sales")
    execute_pipeline_run(dagster_instance, "sales", trigger="manual")
    reader = FeedReader(dagster_instance)
    assert reader.settle == 0  # SQLite: one writer at a time, ids become visible in order

    reader.settle = 3600.0  # as on Postgres, with every event younger than that

    assert reader.read(0) == ([], 0)
