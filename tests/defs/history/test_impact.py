"""The impact of a version: its sandbox tables against production's, per partition, schema and rows."""

import json

import pytest

from karet_defs.errors import KaretError
from karet_defs.history import promotion, versions
from karet_defs.history.impact import impact_if_run, version_impact
from karet_defs.history.sandbox import run_sandbox
from tests.factories import put_sandbox_pipeline, sandbox_config


def test_impact_counts_rows_per_partition_and_shows_the_schema_and_rows_that_differ(stores):
    put_sandbox_pipeline(stores, "sb")
    run_sandbox(stores, "sb", 2, "qa", commit_info={"karet.job_id": "run-1"})

    impact = version_impact(stores, "sb", 2)

    assert (impact.environment, impact.job_id, impact.production_version) == ("qa", "run-1", 1)
    (table,) = impact.tables
    assert (table.table, table.status, table.partition_keys) == ("t", "changed", ["month"])
    assert (table.production.rows, table.sandbox.rows, table.sandbox.delta_version) == (3, 3, 0)
    assert [(p.partition, p.production, p.sandbox) for p in table.partitions] == [
        ("month=2026-01", 2, 2),
        ("month=2026-02", 1, 1),
    ]
    difference = table.schema_difference
    assert [(c.name, c.type) for c in difference.added] == [("note", "VARCHAR")]
    assert (difference.removed, difference.retyped) == ([], [])
    assert (table.rows_only_in_production, table.rows_only_in_sandbox) == (1, 1)
    assert [(r.side, r.row) for r in table.sample] == [
        ("production", {"id": "c", "n": 3, "month": "2026-02"}),
        ("sandbox", {"id": "C", "n": 3, "month": "2026-02"}),
    ]


def test_a_version_that_changes_nothing_in_the_data_is_unchanged(local_stores):
    put_sandbox_pipeline(local_stores, "sb")
    same = json.dumps({**sandbox_config(changed=False), "layout": {"x": 1}}).encode()
    versions.save_config(local_stores, "sb", same, author="t")
    promotion.promote(local_stores, "sb", 3, actor="t")
    run_sandbox(local_stores, "sb", 3, "qa")

    (table,) = version_impact(local_stores, "sb", 3).tables

    assert (table.status, table.rows_only_in_production, table.rows_only_in_sandbox, table.sample) == (
        "unchanged",
        0,
        0,
        [],
    )


def test_without_a_sandbox_run_of_the_version_there_is_no_impact(local_stores):
    put_sandbox_pipeline(local_stores, "sb")

    with pytest.raises(KaretError, match="no sandbox run yet") as raised:
        version_impact(local_stores, "sb", 2)

    assert raised.value.code == "no_sandbox_run"
    assert impact_if_run(local_stores, "sb", 2) is None


def test_a_later_sandbox_run_of_another_version_takes_the_sandbox_over(local_stores):
    put_sandbox_pipeline(local_stores, "sb")
    run_sandbox(local_stores, "sb", 2, "qa")
    same = json.dumps({**sandbox_config(changed=False), "layout": {"x": 1}}).encode()
    versions.save_config(local_stores, "sb", same, author="t")
    promotion.promote(local_stores, "sb", 3, actor="t")

    run_sandbox(local_stores, "sb", 3, "qa")

    assert impact_if_run(local_stores, "sb", 2) is None
    assert impact_if_run(local_stores, "sb", 3) is not None


def test_a_retyped_and_a_removed_column_and_a_new_table_are_named(local_stores):
    put_sandbox_pipeline(local_stores, "sb")
    config = sandbox_config(changed=False)
    mapping, table = config["mappings"][0], config["analytic_tables"][0]
    mapping["columns"] = [
        {"name": "label", "expr": {"kind": "col", "name": "id"}},
        {"name": "n", "expr": {"kind": "cast", "input": {"kind": "col", "name": "n"}, "to": "string"}},
        {"name": "month", "expr": {"kind": "col", "name": "month"}},
    ]
    table["schema"] = [{"name": c["name"], "type": "string"} for c in mapping["columns"]]
    config["mappings"].append({**mapping, "id": "m2", "analytic_table_id": "t2"})
    config["analytic_tables"].append({**table, "id": "t2", "name": "Second"})
    versions.save_config(local_stores, "sb", json.dumps(config).encode(), author="t")
    promotion.promote(local_stores, "sb", 3, actor="t")
    run_sandbox(local_stores, "sb", 3, "qa")

    tables = {t.table: t for t in version_impact(local_stores, "sb", 3).tables}

    changed, added = tables["t"], tables["t2"]
    difference = changed.schema_difference
    assert [(c.name, c.type) for c in difference.added] == [("label", "VARCHAR")]
    assert [(c.name, c.type) for c in difference.removed] == [("id", "VARCHAR")]
    assert [(c.name, c.production, c.sandbox) for c in difference.retyped] == [("n", "BIGINT", "VARCHAR")]
    # Compared on `n` (as text) and `month`, which hold the same values: only the schema changed.
    assert (changed.status, changed.rows_only_in_production, changed.rows_only_in_sandbox) == (
        "changed",
        0,
        0,
    )
    assert (added.status, added.production, added.sandbox.rows) == ("added", None, 3)
    assert [(p.partition, p.production, p.sandbox) for p in added.partitions] == [
        ("month=2026-01", 0, 2),
        ("month=2026-02", 0, 1),
    ]
    assert [c.name for c in added.schema_difference.added] == ["label", "n", "month"]
