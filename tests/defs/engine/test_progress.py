"""Run progress: the tracker's throttle and estimate, and what a real engine run reports through it."""

import pytest

from karet_defs.engine.progress import Progress, ProgressTracker
from karet_defs.engine.run import run_pipeline
from tests.factories import col, make_pipeline, put_config, put_raw


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_at_most_one_report_per_interval_and_the_end_always():
    clock, sent = Clock(), []
    tracker = ProgressTracker(sent.append, interval=0.5, clock=clock)

    tracker.phase("listing")
    tracker.plan(files=4, size=400)
    for step in range(4):
        clock.now += 0.2
        tracker.file(f"raw/{step}.csv")
        tracker.done(1, 100)
    tracker.finish()

    assert [p.phase for p in sent] == ["listing", "listing", "done"]
    assert [round(p.elapsed_seconds, 1) for p in sent] == [0.0, 0.6, 0.8]
    assert sent[-1] == Progress(
        phase="done",
        table=None,
        files_done=4,
        files_total=4,
        rows_read=0,
        rows_written=0,
        bytes_done=400,
        bytes_total=400,
        current_file=None,
        elapsed_seconds=pytest.approx(0.8),
        eta_seconds=0.0,
    )


@pytest.mark.parametrize(
    ("done", "total", "files_done", "files_total", "eta"),
    [
        (100, 400, 1, 4, 6.0),  # a quarter of the bytes in 2 s: 6 s left
        (0, 0, 1, 4, 6.0),  # raw files without bytes: counted in files
        (0, 400, 0, 4, None),  # nothing done yet: no estimate
    ],
)
def test_eta_from_bytes_else_files(done, total, files_done, files_total, eta):
    clock = Clock()
    tracker = ProgressTracker(clock=clock)
    tracker.plan(files=files_total, size=total)
    tracker.done(files_done, done)
    clock.now += 2.0

    assert tracker.snapshot().eta_seconds == eta


def test_a_run_reports_its_phases_counts_and_rows(local_stores):
    config = make_pipeline(
        source_columns=[("id", "string"), ("n", "int64")],
        columns=[("id", col("id")), ("n", col("n"))],
        table_schema=[{"name": "id", "type": "string"}, {"name": "n", "type": "int64"}],
    )
    put_config(local_stores, "p", config)
    put_raw(local_stores, "pipelines/p/raw/a.csv", "id,n\na,1\nb,2\n")
    put_raw(local_stores, "pipelines/p/raw/b.csv", "id,n\nc,3\n")
    sent: list[Progress] = []
    tracker = ProgressTracker(sent.append, interval=0)

    run_pipeline(local_stores, "p", progress=tracker)

    phases = [p.phase for p in sent]
    assert phases[0] == "listing"
    assert [p for i, p in enumerate(phases) if i == 0 or phases[i - 1] != p] == [
        "listing",
        "parsing",
        "transforming",
        "checks",
        "writing",
        "committing",
    ]
    last = sent[-1]
    assert (last.table, last.files_done, last.files_total, last.rows_read, last.rows_written) == (
        "t",
        2,
        2,
        3,
        3,
    )
    assert last.bytes_done == last.bytes_total > 0


def test_rows_of_a_failed_mapping_are_taken_back(local_stores):
    config = make_pipeline(
        source_columns=[("id", "string")],
        columns=[("id", col("id"))],
        table_schema=[{"name": "id", "type": "string", "assertions": {"unique": True}}],
    )
    put_config(local_stores, "p", config)
    put_raw(local_stores, "pipelines/p/raw/a.csv", "id\na\na\n")
    tracker = ProgressTracker()

    report = run_pipeline(local_stores, "p", progress=tracker)

    assert report.tables["t"].mappings_failed == ["m"]
    assert (tracker.files_done, tracker.rows_read, tracker.rows_written) == (1, 0, 0)
