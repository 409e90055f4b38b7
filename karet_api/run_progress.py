"""The progress bar of ``karet run``: the run's latest progress (``orchestration.progress``), read from the
Dagster event log while the run executes on another thread, drawn with rich (Dagster's own dependency) on
stderr, so stdout keeps only the JSON summary. Off a terminal rich draws nothing."""

import threading
from typing import Any

import dagster as dg
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from karet_defs.engine.progress import Progress as RunProgress
from karet_defs.orchestration.progress import latest_progress

POLL_SECONDS = 0.5


def bar_fields(progress: RunProgress) -> dict[str, Any]:
    """What the bar shows of one snapshot: bytes (or files when they hold none) as the bar's extent."""
    by_bytes = progress.bytes_total > 0
    eta = progress.eta_seconds
    return {
        "description": f"{progress.phase} {progress.table or ''}".strip(),
        "completed": progress.bytes_done if by_bytes else progress.files_done,
        "total": (progress.bytes_total if by_bytes else progress.files_total) or None,
        "files": f"{progress.files_done}/{progress.files_total}",
        "rows": f"{progress.rows_read:,}",
        "eta": "–" if eta is None else f"{int(eta) // 60}:{int(eta) % 60:02d}",
    }


def watch_run(
    instance: dg.DagsterInstance, run_id: str, worker: threading.Thread, console: Console | None = None
) -> None:
    """Draw the run's progress until ``worker`` (the thread executing it) ends."""
    columns = (
        TextColumn("{task.description:<24}"),
        BarColumn(),
        TextColumn("files {task.fields[files]}"),
        TextColumn("rows {task.fields[rows]}"),
        TextColumn("ETA {task.fields[eta]}"),
    )
    with Progress(*columns, console=console or Console(stderr=True), transient=True) as bar:
        task = bar.add_task("queued", total=None, files="0/0", rows="0", eta="–")
        while worker.is_alive():
            worker.join(POLL_SECONDS)
            progress = latest_progress(instance, run_id)
            if progress is not None:
                bar.update(task, **bar_fields(progress))
