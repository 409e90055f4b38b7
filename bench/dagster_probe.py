"""Dagster-side measurements, run as a child process on the instance of ``DAGSTER_HOME`` and the store of
``KARET_DATA_DIR``; prints one JSON line.

``seed-runs`` fills run storage with finished runs of a pipeline cheaply (``add_run``, no execution), for
the jobs-list latency. ``launch`` executes real runs through ``execute_pipeline_run`` (what the API does)
and splits each into Dagster's overhead and the engine's work, using the run's event log: submit → run
recorded → ``STEP_START`` → first log line of the asset body (the engine has started) → the table's
``ASSET_MATERIALIZATION`` (the engine is done) → ``RUN_SUCCESS`` → the call returns.
Usage: ``python -m bench.dagster_probe seed-runs SLUG COUNT`` or ``... launch SLUG REPEAT``.
"""

import argparse
import json
import statistics
import sys
import time

import dagster as dg

from karet_defs.orchestration.jobs import (
    TAG_ERRORS,
    TAG_FILES_PROCESSED,
    TAG_PARTITIONS_WRITTEN,
    dagster_name,
    run_tags,
)
from karet_defs.orchestration.launch import execute_pipeline_run

_MILESTONES = ("recorded", "step_start", "engine_start", "engine_end", "run_success", "returned")


def seed_runs(instance: dg.DagsterInstance, slug: str, count: int) -> dict:
    start = time.perf_counter()
    tags = {
        **run_tags(slug, trigger="sensor"),
        TAG_PARTITIONS_WRITTEN: "2",
        TAG_FILES_PROCESSED: "1",
        TAG_ERRORS: "[]",
    }
    for _ in range(count):
        instance.add_run(
            dg.DagsterRun(job_name=dagster_name(slug), tags=tags, status=dg.DagsterRunStatus.SUCCESS)
        )
    return {"seeded": count, "seconds": time.perf_counter() - start}


def _milestones(instance: dg.DagsterInstance, run_id: str, submitted: float, returned: float) -> dict:
    """Seconds from submission to each milestone of one run."""
    record = instance.get_run_records(dg.RunsFilter(run_ids=[run_id]))[0]
    seen: dict[str, float] = {"recorded": record.create_timestamp.timestamp()}
    step_started = False
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        kind = event.event_type if event else None
        if kind == dg.DagsterEventType.STEP_START:
            step_started = True
            seen.setdefault("step_start", entry.timestamp)
        elif kind is None and step_started:
            # The asset body's first own log line: Dagster has handed over to the engine.
            seen.setdefault("engine_start", entry.timestamp)
        elif kind == dg.DagsterEventType.ASSET_MATERIALIZATION:
            seen.setdefault("engine_end", entry.timestamp)
        elif kind == dg.DagsterEventType.RUN_SUCCESS:
            seen["run_success"] = entry.timestamp
    seen["returned"] = returned
    return {name: seen[name] - submitted for name in _MILESTONES if name in seen}


def launch(instance: dg.DagsterInstance, slug: str, repeat: int) -> dict:
    runs = []
    for _ in range(repeat):
        submitted = time.time()
        outcome = execute_pipeline_run(instance, slug, trigger="manual")
        returned = time.time()
        if not outcome.success or outcome.errors:
            raise RuntimeError(f"run {outcome.run_id} failed: {outcome.failure or outcome.errors}")
        runs.append(_milestones(instance, outcome.run_id, submitted, returned))
    warm = runs[1:] or runs
    return {
        "cold": runs[0],
        "warm_median": {m: statistics.median(r[m] for r in warm) for m in _MILESTONES if m in warm[0]},
        "runs": runs,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["seed-runs", "launch"])
    parser.add_argument("slug")
    parser.add_argument("count", type=int)
    args = parser.parse_args()
    with dg.DagsterInstance.get() as instance:
        if args.command == "seed-runs":
            result = seed_runs(instance, args.slug, args.count)
        else:
            result = launch(instance, args.slug, args.count)
    sys.stdout.write(json.dumps(result) + "\n")
