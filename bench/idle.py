"""Idle CPU of the whole stack as ``karet dev`` starts it (code server, Dagster webserver, daemon, API).

A temp data directory holds ``--pipelines`` Spending Tracker pipelines, each with its seed CSV and two more
small CSVs under its source folder; a temp ``DAGSTER_HOME`` holds the embedded default instance. The files
count as already processed: each pipeline's webhook coverage record (``karet/coverage/webhook/<slug>``) is
written before the stack starts, as an upload's run writes it, so the first tick of every sensor finds
nothing to run (running 200 pipelines through the daemon first would take many minutes and is not what
idle costs). Then ``karet dev`` runs as a child; once every sensor has ticked at least once (read from
Dagster's instance) and ``--settle`` seconds more have passed, the CPU time (utime + stime from
``/proc/<pid>/stat``, plus what exited children handed to their parents) of every process in its tree is
summed over ``--seconds``, sampled every second. Reports % of one core, per process, and the machine's
load; stops the stack with SIGINT (DAGSTER-NOTES pitfall 1: leftovers killed by PID after a bounded wait).
Writes ``bench/data/idle.json``. Every sensor ticks first during the warm-up, so ticks come in rounds one
sensor interval (``SENSOR_INTERVAL_SECONDS``) apart: keep the window a multiple of that interval.

Usage: ``python -m bench.idle [--pipelines 200] [--seconds 120] [--settle 10]``.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import dagster as dg
import httpx
from dagster._core.scheduler.instigation import InstigatorType

from bench.api_server import API_KEY, free_port
from bench.measure import REPO, child_env
from bench.stores import dagster_home, local_stores
from karet_defs.catalog import read_pipeline
from karet_defs.orchestration.run_coverage import WEBHOOK, write_coverage
from karet_defs.orchestration.sensors import SENSOR_INTERVAL_SECONDS, raw_files_watch
from karet_defs.store.changes import ChangeCursor, list_watched
from karet_defs.templates import install_template

OUT = REPO / "bench" / "data" / "idle.json"
LOG = REPO / "bench" / "data" / "logs" / "idle-karet-dev.log"
EXTRA_FILES = 2
START_TIMEOUT = 600.0
STOP_GRACE = 30.0
_TICK = os.sysconf("SC_CLK_TCK")


def seed(data_dir: Path, home: Path, pipelines: int) -> None:
    """The pipelines, their files, and the webhook coverage of those files."""
    stores = local_stores(data_dir)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for i in range(pipelines):
            slug = f"idle-{i:03d}"
            install_template(stores, slug, "spending")
            for j in range(EXTRA_FILES):
                body = f"date,description,amount,account\n2026-05-0{j + 1},SHOP {i} {j},4.50,visa\n"
                stores.lake.put(f"pipelines/{slug}/transactions/extra-{j}.csv", body.encode())
            watch = raw_files_watch(read_pipeline(stores, slug), slug)
            write_coverage(instance, WEBHOOK, slug, ChangeCursor().advance(list_watched(stores.lake, watch)))


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(ppid, own CPU s, reaped children's CPU s) of a process, None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the name in parentheses may hold spaces
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return int(fields[1]), (utime + stime) / _TICK, (cutime + cstime) / _TICK


def tree(root: int) -> list[int]:
    """``root`` and every live descendant."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            children.setdefault(stat[0], []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def label(pid: int) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except FileNotFoundError:
        return f"pid {pid}"
    line = " ".join(Path(a).name if i == 0 or a.startswith("/") else a for i, a in enumerate(args) if a)
    for needle, name in (
        ("code-server start", "code server (proxy)"),
        ("api grpc", "code server (gRPC, definitions)"),
        ("dagster-webserver", "Dagster webserver"),
        ("dagster-daemon", "Dagster daemon"),
        ("karet_api.cli dev", "karet dev (API, uvicorn)"),
    ):
        if needle in line:
            return name
    return line[:80]


@dataclass
class _Seen:
    label: str
    first_own: float
    first_reaped: float
    last_own: float
    last_reaped: float


def measure_cpu(root: int, seconds: float) -> dict:
    """CPU seconds of ``root``'s tree over ``seconds``, per process, sampled every second."""
    seen: dict[int, _Seen] = {}
    machine_start = _machine_busy()

    def sample(first: bool) -> None:
        for pid in tree(root):
            stat = _stat(pid)
            if stat is None:
                continue
            if pid not in seen:
                # Born inside the window: all of its CPU is idle cost of the window.
                own, reaped = (stat[1], stat[2]) if first else (0.0, 0.0)
                seen[pid] = _Seen(label(pid), own, reaped, stat[1], stat[2])
            seen[pid].last_own, seen[pid].last_reaped = stat[1], stat[2]

    start = time.monotonic()
    sample(first=True)
    while (left := start + seconds - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        sample(first=False)
    wall = time.monotonic() - start
    machine_busy, machine_total = (b - a for a, b in zip(machine_start, _machine_busy(), strict=True))
    processes = [
        {
            "pid": pid,
            "process": s.label,
            "cpu_s": round(s.last_own - s.first_own, 2),
            "children_cpu_s": round(s.last_reaped - s.first_reaped, 2),
        }
        for pid, s in seen.items()
    ]
    total = sum(p["cpu_s"] + p["children_cpu_s"] for p in processes)
    for p in processes:
        p["percent_of_core"] = round(100 * (p["cpu_s"] + p["children_cpu_s"]) / wall, 2)
    return {
        "window_s": round(wall, 1),
        "cpu_s": round(total, 2),
        "percent_of_core": round(100 * total / wall, 2),
        "machine_busy_percent_of_all_cores": round(100 * machine_busy / machine_total, 1),
        "processes": sorted(processes, key=lambda p: -p["percent_of_core"]),
    }


def _machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def wait_for_first_ticks(home: Path, pipelines: int, api: str, dev: subprocess.Popen[bytes]) -> float:
    """Block until the API answers and every sensor has ticked once; the seconds that took."""
    start = time.monotonic()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        while True:
            if dev.poll() is not None:
                raise RuntimeError(f"karet dev exited with {dev.returncode}; see {LOG}")
            if time.monotonic() - start > START_TIMEOUT:
                raise RuntimeError(f"not every sensor ticked within {START_TIMEOUT:.0f} s; see {LOG}")
            ticked = sum(
                bool(instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1))
                for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR)
            )
            if ticked >= pipelines and _answers(api):
                return time.monotonic() - start
            time.sleep(5)


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def stop(dev: subprocess.Popen[bytes]) -> list[str]:
    """SIGINT to ``karet dev`` (it stops its children), then SIGKILL to whatever of its tree is left."""
    pids = tree(dev.pid)
    os.killpg(dev.pid, signal.SIGINT)
    try:
        dev.wait(timeout=STOP_GRACE)
    except subprocess.TimeoutExpired:
        pass
    leftovers = []
    for pid in pids:
        if _stat(pid) is not None:
            leftovers.append(label(pid))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    dev.wait()
    return leftovers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipelines", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--settle", type=float, default=10.0, help="seconds to wait after the first ticks")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-idle-") as tmp:
        data, home = Path(tmp) / "data", dagster_home(Path(tmp) / "home")
        seed(data, home, args.pipelines)
        api_port = free_port()
        command = [sys.executable, "-m", "karet_api.cli", "dev", "--data-dir", str(data)]
        command += ["--api-port", str(api_port), "--dagster-port", str(free_port())]
        command += ["--code-server-port", str(free_port())]
        env = child_env(
            DAGSTER_HOME=str(home), S3_BUCKET="", KARET_DEPLOYMENT="embedded", KARET_API_KEY=API_KEY
        )
        LOG.parent.mkdir(parents=True, exist_ok=True)
        with LOG.open("wb") as log:
            # Its own session, so the SIGINT of the stop reaches it as Ctrl-C would.
            dev = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log, start_new_session=True)
        try:
            warmup = wait_for_first_ticks(home, args.pipelines, f"http://127.0.0.1:{api_port}", dev)
            time.sleep(args.settle)
            load_before = Path("/proc/loadavg").read_text().split()[:3]
            cpu = measure_cpu(dev.pid, args.seconds)
            load_after = Path("/proc/loadavg").read_text().split()[:3]
        finally:
            leftovers = stop(dev)
    report = {
        "measured_at": datetime.now().isoformat(timespec="seconds"),
        "pipelines": args.pipelines,
        "sensor_interval_s": SENSOR_INTERVAL_SECONDS,
        "warmup_s": round(warmup, 1),
        "loadavg_before": load_before,
        "loadavg_after": load_after,
        "leftovers_killed": leftovers,
        **cpu,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=2))
    lines = [
        f"{args.pipelines} pipelines, sensors every {SENSOR_INTERVAL_SECONDS} s, {cpu['window_s']} s window"
        f" after {warmup:.0f} s of warm-up:",
        f"  whole stack: {cpu['cpu_s']} CPU s = {cpu['percent_of_core']} % of one core",
    ]
    for p in cpu["processes"]:
        children = f" (+{p['children_cpu_s']} s of exited children)" if p["children_cpu_s"] else ""
        lines.append(
            f"  {p['percent_of_core']:6.2f} %  {p['cpu_s']:7.2f} s{children}  {p['process']} [{p['pid']}]"
        )
    lines += [
        f"  machine: {cpu['machine_busy_percent_of_all_cores']} % of all cores busy; load average "
        f"{' '.join(load_before)} before, {' '.join(load_after)} after",
        f"  leftovers killed after SIGINT: {', '.join(leftovers) or 'none'}",
        f"JSON: {OUT}",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
