"""Delta commits on the local store and on S3 (moto server): racing writers, recorded state."""

import threading
from pathlib import Path

import polars as pl
import pyarrow as pa

from karet_defs.engine import delta
from karet_defs.store.factory import build_stores
from tests.factories import read_table

SCHEMA = pa.schema(
    [("v", pa.string()), (delta.SOURCE_COLUMN, pa.string()), (delta.MAPPING_COLUMN, pa.string())]
)


def _data_file(stores, where, tmp: Path, name: str, value: str) -> delta.DataFile:
    local = (where.local_root or tmp) / name
    local.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"v": [value], delta.SOURCE_COLUMN: [name], delta.MAPPING_COLUMN: ["m"]}).write_parquet(
        local
    )
    if where.local_root is None:
        stores.warehouse.put_file("pipelines/race/clean/t/" + name, local)
    return delta.describe_file(local, name, {}, "m", name)


def test_racing_writers_both_commit_and_no_commit_is_lost(settings, tmp_path):
    stores = build_stores(settings)
    where = delta.location(stores.warehouse, "race", "t")
    first = delta.Commit(added=[_data_file(stores, where, tmp_path, "0.parquet", "zero")])
    assert delta.commit(where, None, first, SCHEMA, [], {delta.META_JOB_ID: "run-0"}) == 0

    errors: list[Exception] = []
    barrier = threading.Barrier(4)

    def write(index: int) -> None:
        change = delta.Commit(added=[_data_file(stores, where, tmp_path, f"{index}.parquet", f"w{index}")])
        table = delta.open_table(where)
        barrier.wait()  # every writer read version 0 before any commits
        try:
            delta.commit(where, table, change, SCHEMA, [], {delta.META_JOB_ID: f"run-{index}"})
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    table = delta.open_table(where)
    assert table is not None and table.version() == 4
    assert sorted(read_table(stores, "race", "t").get_column("v")) == ["w1", "w2", "w3", "w4", "zero"]
    job_ids = {c.get(delta.META_JOB_ID) for c in table.history()}
    assert job_ids == {"run-0", "run-1", "run-2", "run-3", "run-4"}


def test_recorded_state_survives_compaction_and_is_lost_after_a_foreign_write(local_stores, tmp_path):
    where = delta.location(local_stores.warehouse, "race", "t")
    state = {"m": delta.MappingState("sig", {"raw/a.csv": "etag-a"})}
    change = delta.Commit(added=[_data_file(local_stores, where, tmp_path, "a.parquet", "a")])
    delta.commit(where, None, change, SCHEMA, [], {delta.META_STATE: delta.encode_state(state)})
    table = delta.open_table(where)
    assert table is not None

    table.optimize.compact()
    assert delta.recorded_state(where, delta.open_table(where).version()) == state

    from deltalake import write_deltalake

    write_deltalake(
        where.uri,
        pa.table({"v": ["x"], delta.SOURCE_COLUMN: ["?"], delta.MAPPING_COLUMN: ["?"]}),
        mode="append",
    )
    assert delta.recorded_state(where, delta.open_table(where).version()) is None
