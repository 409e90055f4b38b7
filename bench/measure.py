"""Measuring child processes: wall time and peak RSS of one run, and the RSS of a server while it works.

Every measured workload runs as its own process, so that its peak RSS (``VmHWM``, see ``bench.peak``) and
its CPU time (from ``os.wait4``) are its own and not the benchmark driver's. Children run from the
repository root with ``POLARS_MAX_THREADS`` pinned (2 unless the caller's environment sets it).
"""

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.peak import PEAK_FILE_ENV

REPO = Path(__file__).resolve().parent.parent


def threads() -> int:
    return int(os.environ.get("POLARS_MAX_THREADS", "2"))


def child_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "POLARS_MAX_THREADS": str(threads()), **extra}


@dataclass(frozen=True)
class Measured:
    wall_s: float
    cpu_s: float  # user + system: on a shared machine, steadier than the wall time
    peak_rss_mb: float  # the child's own VmHWM
    stdout: str

    def json(self) -> dict:
        """The child's last stdout line, parsed."""
        return json.loads(self.stdout.strip().splitlines()[-1])


class ChildFailed(RuntimeError):
    """A measured child process exited with an error; the message ends with its last stderr lines."""


def run_child(
    module: str, args: list[str], *, env: dict[str, str] | None = None, log: Path | None = None
) -> Measured:
    """Run ``python -m MODULE ARGS`` to its end, stderr into ``log`` (else inherited).

    Raises ``ChildFailed`` when it exits with an error. The peak RSS is the child's own ``VmHWM``, which
    ``bench.peak`` records as the child exits (``ru_maxrss`` would include this driver's own peak).
    """
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="bench-peak-") as tmp,
        open(log, "wb") if log is not None else contextlib.nullcontext() as stderr,
    ):
        peak_file = Path(tmp) / "peak"
        command = [sys.executable, "-m", "bench.peak", module, *args]
        env = {**(env or child_env()), PEAK_FILE_ENV: str(peak_file)}
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=stderr)
        assert child.stdout is not None
        # Read to EOF before reaping: the child may block on a full pipe, and wait4 must be what reaps it.
        out = child.stdout.read().decode()
        child.stdout.close()
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log is not None else ""
            command_line = " ".join(["python -m", module, *args])
            raise ChildFailed(f"`{command_line}` exited with {child.returncode}\n{out}{tail}")
        peak = int(peak_file.read_text())
    return Measured(wall, usage.ru_utime + usage.ru_stime, peak / 1e6, out)


def proc_status_mb(pid: int, field: str) -> float:
    """A memory line of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024 / 1e6
    raise KeyError(field)


def process_tree(root: int) -> list[int]:
    """``root`` and its live descendants (``/proc/<pid>/task/<tid>/children``)."""
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                todo += [int(child) for child in (task / "children").read_text().split()]
            except (FileNotFoundError, ProcessLookupError):
                pass  # the thread or the process ended meanwhile
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a live process so far, plus that of the children it has reaped."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    fields = raw[raw.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def _rss_sum_mb(pids: list[int]) -> float:
    """The summed RSS of ``pids`` (pages shared between them count once per process); gone ones count 0."""
    total = 0.0
    for pid in pids:
        try:
            total += proc_status_mb(pid, "VmRSS")
        except (FileNotFoundError, ProcessLookupError, KeyError):
            pass  # exited (a zombie has no VmRSS line)
    return total


class RssSampler:
    """Samples a process's RSS on a thread until stopped; keeps the first and the highest sample.

    With ``tree=True`` each sample is the summed RSS of the process and its descendants; the tree itself is
    listed again every ``_TREE_REFRESH`` samples only, so the sampler costs the measured work little CPU.
    """

    _TREE_REFRESH = 10

    def __init__(self, pid: int, interval: float = 0.02, *, tree: bool = False) -> None:
        self.pid = pid
        self.interval = interval
        self.tree = tree
        self.pids = process_tree(pid) if tree else [pid]
        self.commands: dict[int, str] = {}  # with ``tree=True``: every process seen in the tree
        self._note_commands()
        self.first_mb = self._rss()
        self.peak_mb = self.first_mb
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _note_commands(self) -> None:
        for pid in self.pids:
            if pid not in self.commands:
                try:
                    raw = Path(f"/proc/{pid}/cmdline").read_bytes()
                except (FileNotFoundError, ProcessLookupError):
                    continue
                self.commands[pid] = " ".join(raw.decode(errors="replace").split("\0")).strip()[:200]

    def _rss(self) -> float:
        return _rss_sum_mb(self.pids) if self.tree else proc_status_mb(self.pid, "VmRSS")

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self.tree and self.samples % self._TREE_REFRESH == 0:
                self.pids = process_tree(self.pid)
                self._note_commands()
            self.peak_mb = max(self.peak_mb, self._rss())
            self.samples += 1
