"""Scratch left by killed processes is removed by the next one; a live process's scratch is never touched."""

import subprocess
import sys
import tempfile

import pytest

from karet_defs.engine.run import run_pipeline
from karet_defs.scratch import reap_orphans, scratch_prefix
from karet_defs.store.local import TMP_DIR_NAME, LocalStore
from karet_defs.templates import install_template


@pytest.fixture
def dead() -> str:
    """The scratch prefix a process that has exited (and been waited for) would have used, without kind."""
    command = [sys.executable, "-c", "import os; print(os.getpid())"]
    pid = int(subprocess.run(command, capture_output=True, check=True).stdout)
    host = scratch_prefix("x").split("-")[2]
    return f"{host}-{pid}"


def _mine() -> str:
    return scratch_prefix("x").removeprefix("karet-x-").rstrip("-")


def test_only_the_scratch_of_gone_processes_is_removed(tmp_path, dead):
    orphan_dir = tmp_path / f"karet-run-{dead}-abc"
    (orphan_dir / "inputs").mkdir(parents=True)
    (orphan_dir / "inputs" / "0.csv").write_text("a,b\n")
    orphan_file = tmp_path / f"karet-put-{dead}-xyz.tmp"
    orphan_file.write_text("partial")
    mine = tmp_path / f"karet-run-{_mine()}-def"
    mine.mkdir()
    unrelated = tmp_path / f"other-{dead}-ghi"
    unrelated.mkdir()
    other_host = tmp_path / f"karet-run-0000abcd-{dead.split('-')[1]}-jkl"
    other_host.mkdir()

    assert reap_orphans(tmp_path) == 2

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, unrelated.name, other_host.name])


def test_a_run_clears_what_a_killed_run_left_in_the_temp_folder(monkeypatch, tmp_path, dead, local_stores):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    left = scratch / f"karet-mapping-{dead}-q1w2"
    (left / "out" / "year=2026").mkdir(parents=True)
    install_template(local_stores, "spending", "spending")

    report = run_pipeline(local_stores, "spending")

    assert report.errors == [] and report.partitions_written == 3  # two months, and the rollup's year
    assert list(scratch.iterdir()) == []


def test_a_local_store_clears_partial_puts_of_killed_processes(tmp_path, dead):
    folder = tmp_path / TMP_DIR_NAME
    folder.mkdir()
    (folder / f"karet-put-{dead}-a1.tmp").write_bytes(b"half an object")
    live = folder / f"karet-put-{_mine()}-b2.tmp"
    live.write_bytes(b"being written")

    store = LocalStore(tmp_path)

    assert [p.name for p in folder.iterdir()] == [live.name]
    assert list(store.list("")) == []
