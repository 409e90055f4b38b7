"""The progress bar of `karet run`: the fields of a snapshot, and a bar drawn over a real run."""

import io

from rich.console import Console

from karet_api.run_progress import bar_fields, watch_run
from karet_defs.engine.progress import Progress
from karet_defs.orchestration.launch import outcome_of_run, start_pipeline_run
from tests.factories import put_small_pipeline


def _progress(**changes) -> Progress:
    base = {
        "phase": "transforming",
        "table": "t",
        "files_done": 3,
        "files_total": 12,
        "rows_read": 1234567,
        "rows_written": 1200000,
        "bytes_done": 300,
        "bytes_total": 1200,
        "current_file": "raw/3.csv",
        "elapsed_seconds": 10.0,
        "eta_seconds": 75.0,
    }
    return Progress(**{**base, **changes})


def test_the_bar_follows_bytes_and_names_files_rows_and_eta():
    assert bar_fields(_progress()) == {
        "description": "transforming t",
        "completed": 300,
        "total": 1200,
        "files": "3/12",
        "rows": "1,234,567",
        "eta": "1:15",
    }


def test_without_bytes_the_bar_counts_files_and_an_unknown_eta_is_a_dash():
    fields = bar_fields(_progress(bytes_done=0, bytes_total=0, eta_seconds=None, table=None, phase="listing"))

    assert (fields["description"], fields["completed"], fields["total"], fields["eta"]) == (
        "listing",
        3,
        12,
        "–",
    )


def test_a_bar_is_drawn_while_a_real_run_works(pipeline_env, local_stores, dagster_instance):
    put_small_pipeline(local_stores, "sales")
    screen = io.StringIO()

    prepared, worker = start_pipeline_run(dagster_instance, "sales", trigger="manual")
    watch_run(dagster_instance, prepared.run_id, worker, Console(file=screen, force_terminal=True, width=120))

    assert not worker.is_alive() and outcome_of_run(dagster_instance, prepared.run_id).success
    assert "files" in screen.getvalue() and "ETA" in screen.getvalue()
