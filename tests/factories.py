"""Builders for tests: pipelines, raw files, and reading published tables back with Hive partitioning."""

import hashlib
import json
import threading
import urllib.parse
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import polars as pl
import pyarrow as pa
from dagster._core.events import DagsterEvent, DagsterEventType

from karet_api.services.accounts import tokens, users
from karet_api.services.auth.secret import resolve_session_secret
from karet_defs.engine import delta
from karet_defs.engine.run import run_pipeline
from karet_defs.engine.write import render_segment
from karet_defs.history import promotion, versions
from karet_defs.orchestration.jobs import run_tags
from karet_defs.store import keys
from karet_defs.store.base import Stores


def col(name: str) -> dict[str, Any]:
    return {"kind": "col", "name": name}


def make_pipeline(
    *,
    source_columns: list[tuple[str, str]],
    columns: list[tuple[str, dict[str, Any]]],
    table_schema: list[dict[str, Any]],
    partition_keys: list[str] | None = None,
    dedup_keys: list[str] | None = None,
    path_prefix: str = "raw/",
    lookups: list[dict[str, Any]] | None = None,
    where: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A one-source, one-mapping, one-table config (source `src`, mapping `m`, table `t`)."""
    mapping: dict[str, Any] = {
        "id": "m",
        "source_container_id": "src",
        "analytic_table_id": "t",
        "columns": [{"name": n, "expr": e} for n, e in columns],
    }
    if where is not None:
        mapping["where"] = where
    return {
        "version": 1,
        "source_containers": [
            {
                "id": "src",
                "name": "Source",
                "path_prefix": path_prefix,
                "schema": [{"name": n, "type": t} for n, t in source_columns],
            }
        ],
        "lookup_mappings": lookups or [],
        "mappings": [mapping],
        "analytic_tables": [
            {
                "id": "t",
                "name": "Table",
                "schema": table_schema,
                "partition_keys": partition_keys or [],
                "dedup_keys": dedup_keys or [],
            }
        ],
    }


def put_config(stores: Stores, slug: str, config: dict[str, Any] | str | bytes) -> None:
    body = (
        config
        if isinstance(config, bytes)
        else (config.encode() if isinstance(config, str) else json.dumps(config).encode())
    )
    stores.pipelines.put(keys.config_key(slug), body, content_type="application/json")


def put_raw(stores: Stores, key: str, content: str | bytes) -> None:
    stores.lake.put(key, content.encode() if isinstance(content, str) else content, content_type="text/csv")


SMALL_ROWS = 3


def put_small_pipeline(stores: Stores, slug: str) -> None:
    """A one-table pipeline (table `t`) with one raw file of ``SMALL_ROWS`` rows: a run that stays the same
    whatever the templates become."""
    config = make_pipeline(
        source_columns=[("id", "string"), ("n", "int64")],
        columns=[("id", col("id")), ("n", col("n"))],
        table_schema=[{"name": "id", "type": "string"}, {"name": "n", "type": "int64"}],
    )
    put_config(stores, slug, config)
    put_raw(stores, f"pipelines/{slug}/raw/a.csv", "id,n\na,1\nb,2\nc,3\n")


def table_files(stores: Stores, slug: str, table_id: str) -> dict[str, str]:
    """Relative key → ETag of every object under a table's clean prefix."""
    prefix = keys.table_prefix(slug, table_id)
    return {i.key[len(prefix) :]: i.etag for i in stores.warehouse.list(prefix)}


def table_partitions(stores: Stores, slug: str, table_id: str) -> list[str]:
    """The partition folders (``k=v[/k=v]``) holding data files of the table's current version."""
    table = delta.open_table(stores.warehouse.table_location(keys.table_prefix(slug, table_id)))
    if table is None:
        return []
    paths = delta.active_files(table).get_column("path").to_list()
    return sorted({urllib.parse.unquote(p).rpartition("/")[0] for p in paths})


def table_version(stores: Stores, slug: str, table_id: str) -> int | None:
    """The table's current Delta version, None when it was never written."""
    table = delta.open_table(stores.warehouse.table_location(keys.table_prefix(slug, table_id)))
    return None if table is None else table.version()


def read_table(
    stores: Stores, slug: str, table_id: str, tmp: Path | None = None, *, version: int | None = None
) -> pl.DataFrame:
    """Every row of a table's current (or given) version as a Delta reader (Polars) sees it, hidden
    columns left out; an empty frame when the table was never written."""
    where = stores.warehouse.table_location(keys.table_prefix(slug, table_id))
    if delta.open_table(where) is None:
        return pl.DataFrame()
    frame = pl.scan_delta(where.uri, version=version, storage_options=where.reader_options())
    return frame.drop(delta.HIDDEN_COLUMNS, strict=False).collect()


def stored_objects(stores: Stores) -> dict[str, bytes]:
    """Every stored object of every distinct bucket, as ``<store>:<key>`` → body."""
    unique = {id(s): s for s in (stores.pipelines, stores.lake, stores.warehouse)}.values()
    return {f"{s!r}:{i.key}": s.get(i.key) for s in unique for i in s.list("pipelines/")}


# The Spending template's raw folder, and a CSV for it: what the webhook and upload tests drop there.
SPENDING_RAW = "pipelines/spending/transactions/"
SPENDING_CSV = (
    b"date,description,amount,account\n2026-05-01,Starbucks #1,4.50,visa\n2026-05-02,Shell 77,40.00,visa\n"
)


class FakeLauncher:
    """Stands in for ``start_pipeline_run``: records a run, which ends (SUCCESS) once ``release`` is set."""

    def __init__(self) -> None:
        self.runs: list[dg.DagsterRun] = []
        self.release = threading.Event()
        self.release.set()

    def __call__(self, instance: dg.DagsterInstance, slug: str, *, trigger: str, clean_run: bool = False):
        run = instance.add_run(
            dg.DagsterRun(
                job_name=slug.replace("-", "_"),
                tags=run_tags(slug, trigger=trigger, clean_run=clean_run),
                status=dg.DagsterRunStatus.STARTED,
            )
        )
        self.runs.append(run)

        def finish() -> None:
            self.release.wait(30)
            event = DagsterEvent(event_type_value=DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name)
            instance.report_dagster_event(event, run.run_id)

        worker = threading.Thread(target=finish, daemon=True)
        worker.start()
        return SimpleNamespace(run_id=run.run_id), worker


def _partition_groups(frame: pl.DataFrame, partition_keys: list[str]) -> dict[tuple[Any, ...], pl.DataFrame]:
    if not partition_keys:
        return {(): frame}
    return frame.partition_by(partition_keys, as_dict=True, include_key=False, maintain_order=True)


def commit_frame(
    stores: Stores,
    slug: str,
    table_id: str,
    frame: pl.DataFrame,
    tmp: Path,
    *,
    partition_keys: list[str] | None = None,
    replace: bool = False,
) -> int:
    """Commit ``frame`` as the next version of a Delta table, the way the engine lays it out (one file per
    partition under percent-encoded Hive folders, partition columns only in the log); return the version."""
    partition_keys = partition_keys or []
    where = delta.location(stores.warehouse, slug, table_id)
    prefix = keys.table_prefix(slug, table_id)
    added = []
    for values, part in _partition_groups(frame, partition_keys).items():
        segments = [f"{k}={render_segment(v)}" for k, v in zip(partition_keys, values, strict=True)]
        relative = "/".join([*segments, delta.data_file_name("m", "raw/a.csv")])
        local = tmp / "commit" / relative
        local.parent.mkdir(parents=True, exist_ok=True)
        part.write_parquet(local)
        stores.warehouse.put_file(prefix + relative, local)
        partition = {k: delta.partition_string(v) for k, v in zip(partition_keys, values, strict=True)}
        added.append(delta.describe_file(local, relative, partition, "m", "raw/a.csv"))
    table_schema = frame.to_arrow().schema
    ordered = [f for f in table_schema if f.name not in partition_keys] + [
        table_schema.field(k) for k in partition_keys
    ]
    return delta.commit(
        where,
        delta.open_table(where),
        delta.Commit(added=added, replace_all=replace),
        pa.schema(ordered),
        partition_keys,
        {},
    )


def write_legacy_table(
    stores: Stores,
    slug: str,
    table_id: str,
    frames: dict[str, pl.DataFrame],
    partition_keys: list[str],
    tmp: Path,
) -> None:
    """A table as earlier releases wrote it: ``<k>=<v>/<mapping_id>.parquet`` per mapping and partition,
    the partition columns only in the (percent-encoded) path, no Delta log."""
    prefix = keys.table_prefix(slug, table_id)
    for mapping_id, frame in frames.items():
        for values, part in _partition_groups(frame, partition_keys).items():
            segments = [f"{k}={render_segment(v)}" for k, v in zip(partition_keys, values, strict=True)]
            relative = "/".join([*segments, f"{mapping_id}.parquet"])
            local = tmp / "legacy" / relative
            local.parent.mkdir(parents=True, exist_ok=True)
            part.write_parquet(local)
            stores.warehouse.put_file(prefix + relative, local)


def data_dir_snapshot(root: Path) -> dict[str, str]:
    """Every data file under a local store root with its SHA-256: what a refused request must not change.

    Generated secrets and the store's temp folder are not data; everything else under the root is.
    """
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.relative_to(root).parts[0].startswith((".karet-tmp", ".karet-sec"))
    }


def make_user(client: Any, name: str, role: str, password: str = "user password") -> None:
    """Create a user with ``role`` in the store of ``client``'s app."""
    users.create_user(client.app.state.stores.pipelines, name, password, users.Role[role])


def token_pair_for(client: Any, name: str) -> Any:
    """A fresh token family of ``name`` (no password check, no rate limit): ``.access_token`` etc."""
    key = tokens.signing_key(resolve_session_secret(client.app.state.settings))
    return tokens.start(client.app.state.stores.pipelines, key, name)[1]


# A pipeline whose production (version 1) and a QA version (2) differ: version 2 upper-cases the id of the
# row with n = 3 and adds a `note` column; raw rows fall in two `month` partitions.
SANDBOX_RAW = "id,n,month\na,1,2026-01\nb,2,2026-01\nc,3,2026-02\n"


def sandbox_config(*, changed: bool) -> dict[str, Any]:
    """Version 1 (``changed=False``) or version 2 of the sandbox pipeline."""
    identity = {
        "kind": "if",
        "cond": {"kind": "eq", "left": col("n"), "right": {"kind": "num", "value": 3}},
        "then": {"kind": "upper", "input": col("id")},
        "else": col("id"),
    }
    columns = [("id", identity if changed else col("id")), ("n", col("n")), ("month", col("month"))]
    schema = [{"name": "id", "type": "string"}, {"name": "n", "type": "int64"}]
    if changed:
        columns.append(("note", {"kind": "str", "value": "new"}))
        schema.append({"name": "note", "type": "string"})
    return make_pipeline(
        source_columns=[("id", "string"), ("n", "int64"), ("month", "string")],
        columns=columns,
        table_schema=[*schema, {"name": "month", "type": "string"}],
        partition_keys=["month"],
    )


def put_sandbox_pipeline(stores: Stores, slug: str) -> None:
    """Version 1 in production (its tables written by a run), version 2 promoted to QA (reviewed mode)."""
    put_raw(stores, f"pipelines/{slug}/raw/a.csv", SANDBOX_RAW)
    versions.save_config(stores, slug, json.dumps(sandbox_config(changed=False)).encode(), author="t")
    run_pipeline(stores, slug)
    versions.set_promotion(stores, slug, "reviewed")
    versions.save_config(stores, slug, json.dumps(sandbox_config(changed=True)).encode(), author="t")
    promotion.promote(stores, slug, 2, actor="t")
