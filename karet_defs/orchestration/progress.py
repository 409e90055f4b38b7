"""Run progress as Dagster events: each snapshot of the engine's ``ProgressTracker`` becomes an
``AssetObservation`` of the table at hand, its words in the description and its numbers in metadata.

An observation rather than a log line or an engine event: Dagster mirrors asset events into the event log's
cross-run index on every storage it ships (SQLite's per-run shards included), so progress gets a storage id
in the same sequence as run status changes and materializations, and the API's feed reads them in order.
The Dagster UI shows it in the run's log.
"""

from collections.abc import Mapping

import dagster as dg

from karet_defs.engine.progress import Progress, ProgressTracker

PROGRESS_METADATA = "karet/progress"
# A pipeline run observes only its tables' progress; a few more let a stray observation not hide it.
_LOOKBACK = 5


def build_progress_tracker(
    context: dg.AssetExecutionContext, table_keys: Mapping[str, dg.AssetKey]
) -> ProgressTracker:
    """A tracker writing its snapshots into the run's event log, on the asset of the table at hand
    (``table_keys``: table id → asset key, the run's selection; before the first table, its first)."""
    first = table_keys[min(table_keys)]

    def emit(progress: Progress) -> None:
        key = table_keys.get(progress.table, first) if progress.table else first
        context.log_event(
            dg.AssetObservation(
                asset_key=key,
                description=describe_progress(progress),
                metadata={PROGRESS_METADATA: dg.MetadataValue.json(progress.to_dict())},
            )
        )

    return ProgressTracker(emit)


def describe_progress(progress: Progress) -> str:
    """One line for a person: ``transforming transactions: 12/40 files, 1,234 rows read, ETA 31 s``."""
    where = f" {progress.table}" if progress.table and progress.phase != "done" else ""
    text = (
        f"{progress.phase}{where}: {progress.files_done}/{progress.files_total} files, "
        f"{progress.rows_read:,} rows read, {progress.rows_written:,} written"
    )
    if progress.eta_seconds is not None and progress.phase != "done":
        text += f", ETA {progress.eta_seconds:.0f} s"
    return text


def progress_of(entry: dg.EventLogEntry) -> Progress | None:
    """The progress an event carries, if it is a progress observation."""
    observation = entry.asset_observation
    value = observation.metadata.get(PROGRESS_METADATA) if observation is not None else None
    if not isinstance(value, dg.JsonMetadataValue) or not isinstance(value.data, dict):
        return None
    return Progress.from_dict(value.data)


def latest_progress(instance: dg.DagsterInstance, run_id: str) -> Progress | None:
    """The last progress a run reported, or None before its first."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION, ascending=False, limit=_LOOKBACK
    ).records
    for record in records:
        progress = progress_of(record.event_log_entry)
        if progress is not None:
            return progress
    return None
