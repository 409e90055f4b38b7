"""Scratch files and folders named after the process that owns them (``karet-<kind>-<host>-<pid>-…``).

A run or request killed mid-way (SIGKILL, OOM, a lost host process) never cleans up after itself; its
scratch can be gigabytes (downloaded inputs, staged partitions). Because the owner's host and PID are in the
name, a later process removes exactly the leftovers of processes that are gone, never the scratch of a live
one, nor that of another host or container sharing the folder (its PIDs mean nothing here).
"""

import hashlib
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_OWNED = re.compile(r"^karet-[a-z]+-([0-9a-f]{8})-(\d+)-")


def scratch_prefix(kind: str) -> str:
    return f"karet-{kind}-{_HOST}-{os.getpid()}-"


def scratch_dir(kind: str) -> tempfile.TemporaryDirectory[str]:
    """A temporary directory in the system's temp folder that ``reap_orphans`` can attribute."""
    return tempfile.TemporaryDirectory(prefix=scratch_prefix(kind))


def reap_orphans(folder: Path | None = None) -> int:
    """Remove the scratch that processes no longer alive left in ``folder`` (the temp folder by default)."""
    folder = Path(tempfile.gettempdir()) if folder is None else folder
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        owner = _OWNED.match(entry.name)
        if owner is None or owner.group(1) != _HOST or _alive(int(owner.group(2))):
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed += 1
        except OSError:
            continue  # removed by another process meanwhile, or not ours to remove
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    return True
