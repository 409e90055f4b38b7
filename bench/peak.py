"""Run a module as ``__main__`` and, when it exits, write this process's peak RSS to a file.

Why not ``ru_maxrss`` from ``wait4``: Linux carries the spawning process's high-water mark across the
child's ``exec``, so every child of a driver that has grown to 1 GB reports at least 1 GB. ``VmHWM`` in
``/proc/self/status`` belongs to the address space ``exec`` created, so it is the program's own peak.
Usage: ``BENCH_PEAK_RSS_FILE=PATH python -m bench.peak MODULE [ARGS...]``; the file receives bytes.
"""

import atexit
import os
import runpy
import sys
from pathlib import Path

PEAK_FILE_ENV = "BENCH_PEAK_RSS_FILE"


def peak_rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _record() -> None:
    Path(os.environ[PEAK_FILE_ENV]).write_text(str(peak_rss_bytes()))


if __name__ == "__main__":
    atexit.register(_record)
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)
