"""Runs through the API on Postgres + Celery: a burst of 60, one run per pipeline at a time, lost workers.

The API submits to the webserver's queue (``KARET_DEPLOYMENT=distributed``); the daemon dequeues under the
``karet/pipeline`` limit and hands runs to two Celery workers; history and metadata come back through the
API from Postgres. Killing a worker must end its run as failed (dagster-celery 0.29.27 cannot resume it),
never leave it running or holding its pipeline's slot.
"""

import asyncio
import itertools
import os
import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dagster as dg
import pytest
from fastapi.testclient import TestClient

from karet_api.services.runs import run_pipeline_to_end
from karet_defs.store.factory import build_stores
from tests.scaleout.stack import MAX_RUNTIME_SECONDS, PIPELINES, VICTIM, Stack

RUNS_PER_PIPELINE = 3
BURST_TIMEOUT = 360.0  # a hang guard: the suite runs beside it on the other worker
_STEP_EVENTS = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
}


@dataclass(frozen=True)
class Burst:
    client: TestClient
    instance: dg.DagsterInstance
    run_ids: dict[str, list[str]]

    def runs(self) -> list[dg.DagsterRun]:
        ids = [run_id for ids in self.run_ids.values() for run_id in ids]
        return list(self.instance.get_runs(dg.RunsFilter(run_ids=ids)))


@pytest.fixture(scope="module")
def client(stack: Stack) -> Iterator[TestClient]:
    with stack.client() as client:
        yield client


def wait_finished(instance: dg.DagsterInstance, run_ids: list[str], timeout: float) -> list[dg.DagsterRun]:
    deadline = time.monotonic() + timeout
    while True:
        runs = list(instance.get_runs(dg.RunsFilter(run_ids=run_ids)))
        if len(runs) == len(run_ids) and all(run.is_finished for run in runs):
            return runs
        if time.monotonic() > deadline:
            pending = {run.run_id: run.status.value for run in runs if not run.is_finished}
            raise AssertionError(f"runs still unfinished after {timeout:.0f} s: {pending}")
        time.sleep(0.5)


def step_windows(instance: dg.DagsterInstance, run_id: str) -> list[tuple[float, float]]:
    """Each step's [STEP_START, STEP_SUCCESS/FAILURE] interval: the time the run was writing."""
    starts: dict[str, float] = {}
    windows = []
    for record in instance.get_records_for_run(run_id, of_type=_STEP_EVENTS, limit=1000).records:
        event = record.event_log_entry
        if event.dagster_event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = event.timestamp
        else:
            windows.append((starts.pop(event.step_key), event.timestamp))
    return windows


def run_process_pids(instance: dg.DagsterInstance, run_id: str) -> list[int]:
    """The pids of the processes that executed a run ("Started process for run" engine events)."""
    records = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=1000
    ).records
    pids = []
    for record in records:
        event = record.event_log_entry.dagster_event
        if event and event.message and event.message.startswith("Started process for run"):
            pids.append(int(event.engine_event_data.metadata["pid"].value))
    return pids


@pytest.fixture(scope="module")
def burst(stack: Stack, client: TestClient) -> Burst:
    """20 pipelines × 3 runs, all submitted at once through the API, waited for to the end."""
    slugs = [slug for slug in PIPELINES for _ in range(RUNS_PER_PIPELINE)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        responses = list(pool.map(lambda slug: client.post(f"/api/p/{slug}/jobs"), slugs))
    run_ids: dict[str, list[str]] = defaultdict(list)
    for slug, response in zip(slugs, responses, strict=True):
        assert response.status_code == 200, response.text
        job = response.json()["job"]
        assert (job["pipeline"], job["status"], job["trigger"]) == (slug, "running", "manual")
        run_ids[slug].append(job["id"])
    wait_finished(stack.instance, [i for ids in run_ids.values() for i in ids], BURST_TIMEOUT)
    return Burst(client, stack.instance, dict(run_ids))


def test_every_run_of_the_burst_succeeds(burst: Burst):
    runs = burst.runs()

    assert len(runs) == len(PIPELINES) * RUNS_PER_PIPELINE
    assert {run.status for run in runs} == {dg.DagsterRunStatus.SUCCESS}


def test_no_pipeline_ever_has_two_runs_writing_at_once(burst: Burst):
    for slug, run_ids in burst.run_ids.items():
        windows = sorted(w for run_id in run_ids for w in step_windows(burst.instance, run_id))
        assert len(windows) == RUNS_PER_PIPELINE
        overlaps = [(a, b) for a, b in itertools.pairwise(windows) if b[0] < a[1]]
        assert overlaps == [], f"{slug}: runs wrote at the same time"


def test_runs_were_shared_by_both_warm_workers(burst: Burst):
    pids = {pid for run in burst.runs() for pid in run_process_pids(burst.instance, run.run_id)}

    # One long-lived pool process per worker (concurrency 1) executed every run: no process per run.
    assert len(pids) == 2


def test_history_and_metadata_through_the_api(burst: Burst):
    for slug, run_ids in burst.run_ids.items():
        jobs = burst.client.get(f"/api/p/{slug}/jobs").json()["jobs"]
        assert sorted(j["id"] for j in jobs) == sorted(run_ids)
        assert [(j["status"], j["trigger"], j["errors"]) for j in jobs] == [("completed", "manual", [])] * 3
        # The first run writes both partitions; the next two find nothing new and commit nothing.
        assert sorted(j["partitions_written"] for j in jobs) == [0, 0, 3], jobs
        assert all(j["files_processed"] == 1 for j in jobs), jobs
        assert all(j["completedAt"] >= j["startedAt"] for j in jobs)

        tables = burst.client.get(f"/api/p/{slug}/tables").json()["tables"]
        assert [(t["id"], t["rowCount"], t["lastRunId"] in run_ids) for t in tables] == [
            ("transactions", 35, True),
            ("monthly_spend", 18, True),  # the template's rollup: one row per category and month
        ]


def test_synchronous_run_goes_through_the_queue_and_waits_for_the_end(stack: Stack):
    settings = stack.settings()
    stores = build_stores(settings)

    outcome = asyncio.run(
        run_pipeline_to_end(
            stores, stack.instance, PIPELINES[0], trigger="api", clean_run=True, settings=settings
        )
    )

    # Two months of transactions, and the year of the monthly rollup.
    assert (outcome.success, outcome.partitions_written, outcome.files_processed, outcome.errors) == (
        True,
        3,
        1,
        [],
    )
    run = stack.instance.get_run_by_id(outcome.run_id)
    assert run.tags["karet/trigger"] == "api" and run.tags["karet/clean_run"] == "true"
    # Executed by a Celery worker, not by this process.
    assert os.getpid() not in run_process_pids(stack.instance, outcome.run_id)


def start_victim_mid_step(client: TestClient, instance: dg.DagsterInstance) -> tuple[str, int]:
    """Submit a run of the large pipeline and return (run id, pid of its process) once its step runs."""
    for _ in range(3):
        run_id = client.post(f"/api/p/{VICTIM}/jobs").json()["job"]["id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            records = instance.get_records_for_run(
                run_id, of_type=dg.DagsterEventType.STEP_START, limit=1
            ).records
            if records:
                break
            time.sleep(0.02)
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            return run_id, run_process_pids(instance, run_id)[-1]
        # The step ended before the kill could land; the cache makes the next try no slower to catch.
    raise AssertionError("the victim run never stayed in its step long enough to be killed")


def assert_pipeline_runs_again(client: TestClient, instance: dg.DagsterInstance) -> None:
    """The killed run no longer holds the pipeline's slot: the next run gets through."""
    run_id = client.post(f"/api/p/{VICTIM}/jobs").json()["job"]["id"]
    [run] = wait_finished(instance, [run_id], timeout=120)
    assert run.status == dg.DagsterRunStatus.SUCCESS


def test_killed_run_process_leaves_a_failed_run(stack: Stack, client: TestClient):
    run_id, pid = start_victim_mid_step(client, stack.instance)

    # The pool process dies as under the OOM killer; its Celery worker survives and reports the loss.
    os.kill(pid, signal.SIGKILL)

    [run] = wait_finished(stack.instance, [run_id], timeout=60)
    assert run.status == dg.DagsterRunStatus.FAILURE
    messages = [e.message for e in stack.instance.all_logs(run_id)]
    assert any("Detected run worker status FAILED" in (m or "") for m in messages)
    job = client.get(f"/api/p/{VICTIM}/jobs/{run_id}").json()["job"]
    assert job["status"] == "failed"
    assert_pipeline_runs_again(client, stack.instance)


def test_run_on_a_vanished_worker_is_failed_not_stuck(stack: Stack, client: TestClient):
    run_id, pid = start_victim_mid_step(client, stack.instance)
    worker = next(p for p in stack.processes.values() if p.popen.pid == os.getpgid(pid))

    # The whole worker (main process and pool) disappears at once, as with a lost host: nothing reports.
    os.killpg(worker.popen.pid, signal.SIGKILL)
    worker.popen.wait(timeout=10)

    [run] = wait_finished(stack.instance, [run_id], timeout=MAX_RUNTIME_SECONDS + 60)
    assert run.status == dg.DagsterRunStatus.FAILURE
    job = client.get(f"/api/p/{VICTIM}/jobs/{run_id}").json()["job"]
    assert job["status"] == "failed"
    assert_pipeline_runs_again(client, stack.instance)
