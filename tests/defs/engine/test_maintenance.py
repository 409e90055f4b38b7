"""Versions, health, compaction, expiry and restore of real Delta tables, on the local store and on S3."""

import datetime as dt
import json
import uuid
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest
from deltalake import CommitProperties, write_deltalake

from karet_defs.engine import delta
from karet_defs.engine.maintenance import (
    compact_table,
    expire_versions,
    restore_version,
    table_health,
    table_versions,
)
from karet_defs.errors import KaretError
from karet_defs.store.factory import build_stores
from tests.factories import read_table

SLUG, TABLE = "maint", "t"
SCHEMA = pa.schema(
    [
        ("v", pa.int64()),
        (delta.SOURCE_COLUMN, pa.string()),
        (delta.MAPPING_COLUMN, pa.string()),
        ("p", pa.string()),
    ]
)


class Builder:
    """Commits to one table the way the engine does: one data file per raw file, Karet's commit metadata."""

    def __init__(self, settings, tmp: Path) -> None:
        self.stores = build_stores(settings)
        self.where = delta.location(self.stores.warehouse, SLUG, TABLE)
        self.tmp = tmp
        self.commits = 0
        self.state: dict[str, delta.MappingState] = {}

    def commit(self, files: dict[str, list[int]], *, partition: str = "a", replace: bool = False) -> int:
        """Add one data file per ``{source: values}`` (all of them instead, with ``replace``)."""
        added = [self._data_file(source, values, partition) for source, values in files.items()]
        kept = {} if replace or "m" not in self.state else self.state["m"].files
        self.state = {
            "m": delta.MappingState("sig", {**kept, **dict.fromkeys(files, f"etag-{self.commits}")})
        }
        metadata = {
            delta.META_JOB_ID: f"run-{self.commits}",
            delta.META_TRIGGER: "api",
            delta.META_OPERATION: "clean_run" if replace else "run",
            delta.META_STATE: delta.encode_state(self.state),
        }
        self.commits += 1
        table = delta.open_table(self.where)
        # With ``replace`` every current file leaves; naming them makes the commit count their rows.
        removed = list(delta.active_files(table).iter_rows(named=True)) if replace and table else []
        change = delta.Commit(added=added, removed=removed, replace_all=replace)
        return delta.commit(self.where, table, change, SCHEMA, ["p"], metadata)

    def _data_file(self, source: str, values: list[int], partition: str) -> delta.DataFile:
        relative = f"p={partition}/{delta.data_file_name('m', source)}"
        local = (self.where.local_root or self.tmp) / relative
        local.parent.mkdir(parents=True, exist_ok=True)
        pl.DataFrame(
            {
                "v": values,
                delta.SOURCE_COLUMN: [source] * len(values),
                delta.MAPPING_COLUMN: ["m"] * len(values),
            }
        ).write_parquet(local)
        if self.where.local_root is None:
            self.stores.warehouse.put_file(f"pipelines/{SLUG}/clean/{TABLE}/{relative}", local)
        return delta.describe_file(local, relative, {"p": partition}, "m", source)

    def rows(self, version: int | None = None) -> list[tuple[object, ...]]:
        return sorted(read_table(self.stores, SLUG, TABLE, version=version).rows())

    def data_keys(self) -> set[str]:
        prefix = f"pipelines/{SLUG}/clean/{TABLE}/"
        return {i.key for i in self.stores.warehouse.list(prefix) if i.key.endswith(".parquet")} - {
            i.key for i in self.stores.warehouse.list(prefix + "_delta_log/")
        }


@pytest.fixture
def table(settings, tmp_path) -> Builder:
    return Builder(settings, tmp_path)


def test_versions_are_listed_newest_first_with_karet_metadata(table):
    table.commit({"a.csv": [1, 2], "b.csv": [3]})
    table.commit({"c.csv": [4]}, partition="b")
    table.commit({"d.csv": [5, 6, 7]}, replace=True)

    versions = table_versions(table.where)

    assert [
        (v["version"], v["operation"], v["job_id"], v["trigger"], v["rows_added"], v["rows_removed"])
        for v in versions
    ] == [
        (2, "clean_run", "run-2", "api", 3, 4),
        (1, "run", "run-1", "api", 1, 0),
        (0, "run", "run-0", "api", 3, 0),
    ]
    assert [(v["files_added"], v["files_removed"], v["schema_changed"]) for v in versions] == [
        (1, 3, False),
        (1, 0, False),
        (2, 0, False),
    ]
    stamp = dt.datetime.fromisoformat(versions[0]["timestamp"])
    assert versions[0]["timestamp"].endswith("Z")
    assert abs((dt.datetime.now(dt.UTC) - stamp).total_seconds()) < 60


def test_commits_of_another_writer_are_described_from_the_log(table):
    table.commit({"a.csv": [1]})
    frame = pa.table(
        {"v": [8, 9], delta.SOURCE_COLUMN: ["x", "x"], delta.MAPPING_COLUMN: ["m", "m"], "p": ["a", "a"]}
    )
    write_deltalake(
        table.where.uri, frame, mode="append", storage_options=table.where.storage_options or None
    )

    newest = table_versions(table.where)[0]

    assert newest["version"] == 1
    assert (newest["operation"], newest["job_id"], newest["trigger"]) == ("write", None, None)
    assert (newest["rows_added"], newest["rows_removed"], newest["files_added"], newest["files_removed"]) == (
        2,
        0,
        1,
        0,
    )


def test_a_table_never_written_has_no_versions_and_no_health(table):
    assert table_versions(table.where) == []
    with pytest.raises(KaretError, match="not been written yet") as caught:
        table_health(table.where, TABLE)
    assert caught.value.code == "table_not_found"


def test_health_reports_files_and_recommends_compaction_then_expiry(table):
    for index in range(9):
        table.commit({f"{index}.csv": [index]})
    table.commit({"other.csv": [100]}, partition="b")  # a lone small file: nothing to merge it with

    report = table_health(table.where, TABLE, retain_last=5)

    sizes = [int(s) for s in delta.active_files(delta.open_table(table.where))["size_bytes"]]
    assert report == {
        "success": True,
        "table": TABLE,
        "snapshot_count": 10,
        "data_file_count": 10,
        "total_size_bytes": sum(sizes),
        "avg_file_size_bytes": sum(sizes) // 10,
        "small_file_count": 10,
        "recommendation": "Consider compaction: 9 files under 8 MiB share partitions with other small files; "
        "consider expiring versions: 5 older than the last 5 kept",
    }
    compact_table(table.where, {})
    expire_versions(table.where, retain_last=5)
    assert table_health(table.where, TABLE, retain_last=5)["recommendation"] == "Healthy"


def test_compaction_never_changes_rows_and_keeps_the_recorded_state(table):
    for index in range(6):
        table.commit({f"{index}.csv": [index, index * 10]}, partition="ab"[index % 2])
    before = table.rows()
    state = delta.recorded_state(table.where, delta.open_table(table.where).version())

    result = compact_table(table.where, {delta.META_JOB_ID: "compaction"})

    assert result == {
        "success": True,
        "operation": "compact",
        "table": TABLE,
        "details_json": json.dumps({"rewritten_files": 6, "new_files": 2}),
    }
    assert table.rows() == before
    assert table.rows(5) == before  # the version before compaction stays readable
    current = delta.open_table(table.where)
    assert current.version() == 6 and delta.recorded_state(table.where, current.version()) == state
    newest = table_versions(table.where)[0]
    assert (newest["operation"], newest["job_id"], newest["rows_added"], newest["rows_removed"]) == (
        "compact",
        "compaction",
        0,
        0,
    )
    assert (newest["files_added"], newest["files_removed"]) == (2, 6)
    again = compact_table(table.where, {})
    assert json.loads(again["details_json"]) == {"rewritten_files": 0, "new_files": 0}
    assert delta.open_table(table.where).version() == 6  # nothing to do commits nothing


def test_unknown_compaction_strategy_is_refused(table):
    table.commit({"a.csv": [1]})
    with pytest.raises(KaretError, match="unknown compaction strategy") as caught:
        compact_table(table.where, {}, strategy="zorder")
    assert caught.value.code == "invalid_strategy"


def test_expire_keeps_the_retained_versions_readable_and_removes_older_ones(table):
    table.commit({"a.csv": [1]})  # 0
    table.commit({"b.csv": [2]})  # 1
    table.commit({"c.csv": [3]}, replace=True)  # 2: a.csv and b.csv files are needed by 0 and 1 only
    table.commit({"d.csv": [4]})  # 3
    table.commit({"e.csv": [5]}, replace=True)  # 4: c.csv and d.csv files are needed by 2 and 3
    retained = {v: table.rows(v) for v in (3, 4)}
    needed_by_3 = set(table.data_keys())

    result = expire_versions(table.where, retain_last=2, metadata={delta.META_JOB_ID: "expiry"})

    assert result["operation"] == "expire" and result["table"] == TABLE
    assert json.loads(result["details_json"]) == {
        "expired_versions": 3,
        "oldest_version": 3,
        "deleted_files": 2,
    }
    assert {v: table.rows(v) for v in (3, 4)} == retained
    assert table.rows() == [(5, "a")]
    for gone in (0, 1, 2):
        with pytest.raises(delta.TableVersionNotFound):
            delta.open_table(table.where, gone)
    assert len(needed_by_3 - table.data_keys()) == 2  # exactly the files of a.csv and b.csv
    versions = table_versions(table.where)
    assert [v["version"] for v in versions] == [6, 5, 4, 3]  # 5 and 6: the vacuum's own two commits
    assert {v["operation"] for v in versions[:2]} == {"expire"}
    assert delta.recorded_state(table.where, delta.open_table(table.where).version()) == table.state
    # The vacuum's commits do not count: expiring again with the same retention removes nothing.
    assert json.loads(expire_versions(table.where, retain_last=2)["details_json"])["expired_versions"] == 0


def test_expire_older_than_keeps_every_version_committed_since(table):
    for index in range(4):
        table.commit({f"{index}.csv": [index]}, replace=True)
    last_hour = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)

    result = expire_versions(table.where, retain_last=1, older_than=last_hour)

    assert json.loads(result["details_json"])["expired_versions"] == 0
    assert [table.rows(v) for v in range(4)] == [[(i, "a")] for i in range(4)]
    with pytest.raises(KaretError, match="at least 1"):
        expire_versions(table.where, retain_last=0)


def test_restore_commits_the_rows_and_the_state_of_the_version(table):
    table.commit({"a.csv": [1, 2]})
    state_0 = dict(table.state)
    table.commit({"b.csv": [3]})
    table.commit({"c.csv": [4], "d.csv": [5]}, replace=True)
    compact_table(table.where, {})  # 3: c.csv and d.csv in one file

    version = restore_version(table.where, 0, {delta.META_JOB_ID: "restore-run"})

    assert version == 4
    assert table.rows() == table.rows(0) == [(1, "a"), (2, "a")]
    assert delta.recorded_state(table.where, delta.open_table(table.where).version()) == state_0
    newest = table_versions(table.where)[0]
    assert (newest["operation"], newest["job_id"], newest["rows_added"], newest["rows_removed"]) == (
        "restore",
        "restore-run",
        2,
        2,
    )
    assert restore_version(table.where, 4, {}) == 4  # restoring the current version commits nothing


def test_restore_of_an_unknown_version_is_version_not_found(table):
    with pytest.raises(delta.TableVersionNotFound):
        restore_version(table.where, 0, {})
    table.commit({"a.csv": [1]})
    for missing in (1, 7):
        with pytest.raises(KaretError, match="version") as caught:
            restore_version(table.where, missing, {})
        assert caught.value.code == "version_not_found"


def test_maintenance_commits_by_delta_rs_itself_are_listed(table):
    """OPTIMIZE and RESTORE made without Karet's metadata still say what they did."""
    table.commit({"a.csv": [1]})
    table.commit({"b.csv": [2]})
    raw = delta.open_table(table.where)
    raw.optimize.compact(commit_properties=CommitProperties(custom_metadata={"note": uuid.uuid4().hex}))
    delta.open_table(table.where).restore(0)

    versions = table_versions(table.where)

    assert [(v["operation"], v["files_added"], v["files_removed"]) for v in versions[:2]] == [
        ("restore", 1, 1),
        ("compact", 1, 2),
    ]
    assert (versions[1]["rows_added"], versions[1]["rows_removed"]) == (0, 0)
    assert (versions[0]["rows_added"], versions[0]["rows_removed"]) == (1, None)
