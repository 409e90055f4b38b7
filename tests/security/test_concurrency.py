"""Concurrency guarantees beyond the ones tested with their routes.

Already covered elsewhere: 50 concurrent config PUTs with one ETag (`tests/api/routes/test_config.py`), 20
concurrent creates of one slug (`tests/api/routes/test_pipelines.py`), 20 racing conditional puts per store
(`tests/defs/store/test_store.py`). Here: two runs of one pipeline never execute its engine step at the same
time, whether both start in the API process or one starts in another process; and renaming or deleting a
pipeline while one of its runs is queued or running is refused with `409 pipeline_busy`.
"""

import json
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from karet_defs.orchestration import assets
from karet_defs.orchestration.jobs import TAG_PIPELINE
from karet_defs.orchestration.launch import start_pipeline_run
from karet_defs.settings import Settings
from karet_defs.store import keys
from karet_defs.store.base import Stores
from karet_defs.store.factory import build_stores
from karet_defs.templates import install_template
from tests.factories import put_raw, table_partitions, table_version

SLUG = "spending"
# What every shipped instance (karet_defs/instance/*.yaml) configures: a pool per pipeline, one slot each.
POOLS = {"concurrency": {"pools": {"default_limit": 1}}}
RUN_TIMEOUT = 120.0
# A child process that records a run, waits for the go file, then executes it (so both start at once), with
# its engine windows recorded as in this process.
CHILD = """
import json, pathlib, sys, time
import dagster as dg
from karet_defs.orchestration.launch import create_pipeline_run, execute_prepared_run
from tests.security.test_concurrency import record_engine_windows
slug, ready, go = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
windows = record_engine_windows()
instance = dg.DagsterInstance.get()
prepared = create_pipeline_run(instance, slug, trigger="api")
ready.write_text(prepared.run_id)
while not go.exists():
    time.sleep(0.01)
success = execute_prepared_run(instance, prepared).success
ready.with_suffix(".windows").write_text(json.dumps(windows))
sys.exit(0 if success else 1)
"""


def record_engine_windows() -> list[tuple[float, float]]:
    """Wrap the asset body's engine call; the list returned fills with its (start, end) times: its writes."""
    windows: list[tuple[float, float]] = []
    engine = assets.run_pipeline

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.time()
        try:
            return engine(*args, **kwargs)
        finally:
            windows.append((start, time.time()))

    assets.run_pipeline = timed
    return windows


@pytest.fixture
def pooled_instance(pipeline_env: Settings) -> dg.DagsterInstance:
    with dg.instance_for_test(overrides=POOLS) as instance:
        yield instance


def _seed(stores: Stores, rows: int = 30_000) -> None:
    """The Spending Tracker plus a bigger file, so that one run's engine step lasts a noticeable while."""
    install_template(stores, SLUG, "spending")
    lines = ["date,description,amount,account"]
    lines += [f"2026-0{1 + i % 6}-{1 + i % 28:02d},SHOP {i} STARBUCKS,{i % 97}.25,visa" for i in range(rows)]
    put_raw(stores, f"{keys.pipeline_prefix(SLUG)}transactions/big.csv", "\n".join(lines) + "\n")


def _assert_one_after_the_other(windows: list[tuple[float, float]]) -> None:
    assert len(windows) == 2, windows
    (start_a, end_a), (start_b, end_b) = sorted(windows)
    assert end_a <= start_b, f"engine runs overlapped: {start_a:.3f}-{end_a:.3f}, {start_b:.3f}-{end_b:.3f}"


def test_two_runs_started_in_one_process_take_turns(pipeline_env, pooled_instance, monkeypatch):
    stores = build_stores(pipeline_env)
    _seed(stores)
    monkeypatch.setattr(assets, "run_pipeline", assets.run_pipeline)  # restored after the test
    windows = record_engine_windows()

    started = [start_pipeline_run(pooled_instance, SLUG, trigger="api") for _ in range(2)]
    for _, worker in started:
        worker.join(RUN_TIMEOUT)
        assert not worker.is_alive(), "a run never ended (deadlock?)"

    _assert_one_after_the_other(windows)
    for prepared, _ in started:
        assert pooled_instance.get_run_by_id(prepared.run_id).status == dg.DagsterRunStatus.SUCCESS
    assert table_partitions(stores, SLUG, "transactions") == [f"year=2026/month={m}" for m in range(1, 7)]
    # The second run found nothing new: one version, no duplicate rows.
    assert table_version(stores, SLUG, "transactions") == 0


def test_runs_of_two_processes_take_turns_through_the_pipeline_pool(pipeline_env, pooled_instance, tmp_path):
    _seed(build_stores(pipeline_env))
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(2)]
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, SLUG, str(marker), str(go)], cwd=Path.cwd())
        for marker in ready
    ]
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        while not all(m.exists() for m in ready) and time.monotonic() < deadline:
            time.sleep(0.05)
        go.touch()
        codes = [child.wait(timeout=RUN_TIMEOUT) for child in children]
    finally:
        for child in children:
            child.kill()
    assert codes == [0, 0]

    _assert_one_after_the_other([w for m in ready for w in json.loads(m.with_suffix(".windows").read_text())])


def _fake_run(instance: dg.DagsterInstance, slug: str, status: dg.DagsterRunStatus) -> dg.DagsterRun:
    run = dg.DagsterRun(job_name=slug, run_id=str(uuid.uuid4()), status=status, tags={TAG_PIPELINE: slug})
    return instance.add_run(run)


def _objects(stores: Stores) -> dict[str, str]:
    return {i.key: i.etag for i in stores.pipelines.list("")}


# QUEUED is refused the same way; a run record in that state needs a code location origin to be built.
@pytest.mark.parametrize(
    "status",
    [
        dg.DagsterRunStatus.NOT_STARTED,
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    ],
)
def test_rename_or_delete_while_a_run_is_active_is_refused(
    api_client, local_stores, dagster_instance, status
):
    install_template(local_stores, SLUG, "spending")
    run = _fake_run(dagster_instance, SLUG, status)
    before = _objects(local_stores)

    renamed = api_client.patch(f"/api/pipelines/{SLUG}", json={"newSlug": "moved"})
    deleted = api_client.delete(f"/api/pipelines/{SLUG}")

    for response in (renamed, deleted):
        assert (response.status_code, response.json()["error"]) == (409, "pipeline_busy")
        assert response.json()["pipeline"] == SLUG and run.run_id in response.json()["message"]
    assert _objects(local_stores) == before

    dagster_instance.report_run_canceled(run)
    assert api_client.patch(f"/api/pipelines/{SLUG}", json={"newSlug": "moved"}).status_code == 200


def test_a_real_run_blocks_a_rename_until_it_ends(api_client, local_stores, dagster_instance):
    install_template(local_stores, SLUG, "spending")

    job = api_client.post(f"/api/p/{SLUG}/jobs").json()["job"]
    busy = api_client.patch(f"/api/pipelines/{SLUG}", json={"newSlug": "moved"})

    assert (busy.status_code, busy.json()["error"]) == (409, "pipeline_busy")
    runner = next(t for t in threading.enumerate() if t.name == f"karet-run-{job['id']}")
    runner.join(RUN_TIMEOUT)
    assert api_client.get(f"/api/p/{SLUG}/jobs/{job['id']}").json()["job"]["status"] == "completed"
    assert api_client.patch(f"/api/pipelines/{SLUG}", json={"newSlug": "moved"}).status_code == 200
    # Everything the run wrote moved with the pipeline; nothing was written under the old slug afterwards.
    assert [k for k in _objects(local_stores) if k.startswith(keys.pipeline_prefix(SLUG))] == []
    assert len(table_partitions(local_stores, "moved", "transactions")) == 2
