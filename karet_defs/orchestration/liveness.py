"""Runs whose process died: found at once and failed, so their pipeline is free again (issue 22).

A run executed in a process on this host (by the API on its threads, or by the daemon's run launcher in a
subprocess) carries a ``karet/process`` tag naming that process: host, boot, pid and the pid's start time,
so a pid reused after a crash or a reboot is not mistaken for the run's. A run still queued-to-execute or
running whose process is gone is failed with a clear message and its pool slot is freed, instead of holding
its pipeline until the orphan rule or Dagster's run monitoring notices minutes later. A process on another
host is never judged here: Dagster's run monitoring (on in every instance file) owns those.
"""

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import dagster as dg

from karet_defs.orchestration.jobs import TAG_PIPELINE, TAG_PROCESS
from karet_defs.settings import Settings

DIED_MESSAGE = "the process running this job died (host {host}, pid {pid})"
_EXECUTING = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessIdentity:
    host: str
    boot: str
    pid: int
    started: str

    def to_tag(self) -> str:
        return f"{self.host}/{self.boot}/{self.pid}/{self.started}"

    @classmethod
    def from_tag(cls, tag: str) -> "ProcessIdentity | None":
        parts = tag.split("/")
        if len(parts) != 4 or not parts[2].isdigit():
            return None
        host, boot, pid, started = parts
        return cls(host, boot, int(pid), started)


def this_process() -> ProcessIdentity:
    pid = os.getpid()
    return ProcessIdentity(socket.gethostname(), _boot_id(), pid, _start_time(pid) or "")


def process_tag() -> dict[str, str]:
    """The tag a run gets when this process starts executing it."""
    return {TAG_PROCESS: this_process().to_tag()}


def is_gone(identity: ProcessIdentity) -> bool:
    """Whether the process is known to be dead: same host, and another boot or no such (pid, start) now."""
    if identity.host != socket.gethostname():
        return False
    if identity.boot != _boot_id():
        return True
    started = _start_time(identity.pid)
    if started is None:
        return not _pid_exists(identity.pid)
    return started != identity.started


@contextmanager
def executing(
    context: dg.AssetExecutionContext | dg.OpExecutionContext, settings: Settings, slug: str
) -> Iterator[None]:
    """Name this process on the run, then hold the pipeline's write lock on this host while the body runs.

    Dagster's pool (one slot per pipeline) is not enough on the embedded SQLite instance: its slot claims are
    not atomic across processes, so a run executed by the API and one launched from the UI could both get
    the slot. ``flock`` is, and the kernel releases it when its process dies, even by ``kill -9``. Across
    hosts, runs come from Dagster's queue, whose tag limit allows one per pipeline.
    """
    context.instance.add_run_tags(context.run_id, process_tag())
    folder = settings.run_lock_dir
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{slug}.lock", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            context.log.info("another run of %s is writing; waiting for it to end", slug)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def dead_process(run: dg.DagsterRun) -> ProcessIdentity | None:
    """The dead process a run was executing in, if the run says where it ran and that process is gone."""
    identity = ProcessIdentity.from_tag(run.tags.get(TAG_PROCESS, ""))
    return identity if identity is not None and is_gone(identity) else None


def fail_dead_runs(instance: dg.DagsterInstance, slug: str | None = None) -> list[str]:
    """Fail every executing run (of ``slug``, or of every pipeline) whose process on this host died, free
    its pool slots, and return their ids."""
    tags = {TAG_PIPELINE: slug} if slug is not None else None
    records = instance.get_run_records(dg.RunsFilter(statuses=_EXECUTING, tags=tags))
    failed = []
    for record in records:
        run = record.dagster_run
        process = dead_process(run)
        if process is None:
            continue
        instance.report_run_failed(run, DIED_MESSAGE.format(host=process.host, pid=process.pid))
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        failed.append(run.run_id)
    return failed


def orphaned_not_started(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    """Runs recorded by a process that died before it began executing them (waiting for their turn)."""
    records = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.NOT_STARTED]))
    return [r.dagster_run for r in records if dead_process(r.dagster_run) is not None]


@cache
def _boot_id() -> str:
    try:
        return (_PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return "unknown"


def _start_time(pid: int) -> str | None:
    """The pid's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), None if unknown."""
    try:
        stat = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing one.
    return stat.rpartition(")")[2].split()[19]


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
