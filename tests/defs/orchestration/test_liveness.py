"""Runs whose process died are failed at once and give their pool slot back; live or foreign ones are left."""

import subprocess
import sys
from collections.abc import Iterator

import dagster as dg
import pytest

from karet_defs.orchestration.jobs import TAG_PIPELINE, TAG_PROCESS
from karet_defs.orchestration.launch import failure_message
from karet_defs.orchestration.liveness import (
    ProcessIdentity,
    _start_time,
    fail_dead_runs,
    this_process,
)

POOL = "karet_p"  # the pool of pipeline ``p``


@pytest.fixture
def child() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def _identity_of(proc: subprocess.Popen[bytes]) -> ProcessIdentity:
    me = this_process()
    return ProcessIdentity(me.host, me.boot, proc.pid, _start_time(proc.pid) or "")


def _running_run(instance: dg.DagsterInstance, identity: ProcessIdentity, slug: str = "p") -> str:
    run = instance.add_run(
        dg.DagsterRun(
            job_name="p",
            status=dg.DagsterRunStatus.STARTED,
            tags={TAG_PIPELINE: slug, TAG_PROCESS: identity.to_tag()},
        )
    )
    pool = f"karet_{slug}"
    instance.event_log_storage.set_concurrency_slots(pool, 1)
    claim = instance.event_log_storage.claim_concurrency_slot(pool, run.run_id, f"run_{slug}")
    assert claim.is_claimed
    return run.run_id


def test_a_run_whose_process_was_killed_is_failed_and_frees_its_slot(dagster_instance, child):
    run_id = _running_run(dagster_instance, _identity_of(child))
    assert fail_dead_runs(dagster_instance, "p") == []  # alive: left alone

    child.kill()
    child.wait()

    assert fail_dead_runs(dagster_instance, "p") == [run_id]
    run = dagster_instance.get_run_by_id(run_id)
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert failure_message(dagster_instance, run_id) == (
        f"the process running this job died (host {this_process().host}, pid {child.pid})"
    )
    assert dagster_instance.event_log_storage.get_concurrency_info(POOL).active_slot_count == 0
    assert fail_dead_runs(dagster_instance) == []  # failed once


def test_a_reused_pid_is_not_mistaken_for_the_run_process(dagster_instance, child):
    reused = ProcessIdentity(**{**_identity_of(child).__dict__, "started": "1"})
    run_id = _running_run(dagster_instance, reused)

    assert fail_dead_runs(dagster_instance) == [run_id]


def test_a_process_on_another_host_or_another_pipeline_is_not_judged(dagster_instance, child):
    gone = _identity_of(child)
    child.kill()
    child.wait()
    foreign = _running_run(dagster_instance, ProcessIdentity("elsewhere", gone.boot, gone.pid, gone.started))
    other_pipeline = _running_run(dagster_instance, gone, slug="q")

    assert fail_dead_runs(dagster_instance, "p") == []
    assert dagster_instance.get_run_by_id(foreign).status == dg.DagsterRunStatus.STARTED
    assert fail_dead_runs(dagster_instance) == [other_pipeline]


def test_a_run_from_before_a_reboot_is_dead(dagster_instance):
    me = this_process()
    run_id = _running_run(dagster_instance, ProcessIdentity(me.host, "another-boot", me.pid, me.started))

    assert fail_dead_runs(dagster_instance) == [run_id]
