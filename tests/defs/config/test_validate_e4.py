"""Validation of the E4 fields: dimensions, ``dim_ref`` and rollups, in Karet's kinds, templates and paths."""

import copy
from typing import Any

import pytest

from karet_defs.config.validate import load_pipeline, parse_pipeline, validate_pipeline
from karet_defs.errors import ConfigSchemaError

E4: dict[str, Any] = {
    "version": 1,
    "source_containers": [
        {
            "id": "src",
            "name": "Src",
            "path_prefix": "raw/",
            "schema": [{"name": "a", "type": "string"}, {"name": "n", "type": "number"}],
        }
    ],
    "dimensions": [
        {
            "id": "categories",
            "match": "keyword_substring",
            "case_insensitive": True,
            "on_miss": {"literal": "OTHER"},
            "rows": {"values": ["category", "group"], "rows": [{"patterns": ["UBER"], "values": ["T", "G"]}]},
        },
        {
            "id": "geo",
            "rows": {"path_prefix": "dims/geo/", "key": "code", "values": ["country"]},
        },
    ],
    "mappings": [
        {
            "id": "m",
            "source_container_id": "src",
            "analytic_table_id": "t",
            "columns": [
                {
                    "name": "cat",
                    "expr": {
                        "kind": "dim_ref",
                        "dim_id": "categories",
                        "input": {"kind": "col", "name": "a"},
                    },
                },
                {
                    "name": "grp",
                    "expr": {
                        "kind": "dim_ref",
                        "dim_id": "categories",
                        "value": "group",
                        "input": {"kind": "col", "name": "a"},
                    },
                },
                {
                    "name": "n",
                    "expr": {"kind": "cast", "input": {"kind": "col", "name": "n"}, "to": "float64"},
                },
            ],
        }
    ],
    "analytic_tables": [
        {
            "id": "t",
            "name": "T",
            "schema": [
                {"name": "cat", "type": "string"},
                {"name": "grp", "type": "string"},
                {"name": "n", "type": "float64"},
            ],
            "partition_keys": ["cat"],
        },
        {
            "id": "r",
            "name": "R",
            "schema": [
                {"name": "cat", "type": "string"},
                {"name": "rows", "type": "int64"},
                {"name": "n_sum", "type": "float64"},
                {"name": "n_count", "type": "int64"},
            ],
            "partition_keys": ["cat"],
        },
    ],
    "rollups": [
        {
            "id": "by_cat",
            "source_table_id": "t",
            "analytic_table_id": "r",
            "group_by": ["cat"],
            "aggregates": [{"name": "rows", "fn": "count"}, {"name": "n", "fn": "avg", "column": "n"}],
        }
    ],
}


def issues_of(doc: dict[str, Any]) -> list[dict[str, str]]:
    return [i.to_dict() for i in validate_pipeline(parse_pipeline(doc))]


def edited(change) -> dict[str, Any]:
    doc = copy.deepcopy(E4)
    change(doc)
    return doc


def test_an_e4_config_loads_as_is():
    pipeline = load_pipeline(E4)
    assert [d.id for d in pipeline.dimensions] == ["categories", "geo"]
    assert pipeline.lookup_mappings == []
    assert pipeline.dimensions[1].match == "exact"  # Karet's default
    assert pipeline.dimensions[1].on_miss == "null"
    assert pipeline.rollups[0].aggregates[1].output_columns() == ["n_sum", "n_count"]


def test_a_config_with_neither_lookups_nor_dimensions_misses_lookup_mappings():
    doc = {k: v for k, v in E4.items() if k != "dimensions"}
    with pytest.raises(ConfigSchemaError) as raised:
        parse_pipeline(doc)
    assert raised.value.details == [
        {
            "kind": "missing_field",
            "message": "missing field `lookup_mappings` at /lookup_mappings",
            "path": "/lookup_mappings",
        }
    ]


def _set(path: str, value: Any):
    def change(doc: dict[str, Any]) -> None:
        *parents, last = path.strip("/").split("/")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


@pytest.mark.parametrize(
    ("name", "change", "expected"),
    [
        (
            "duplicate_dimension_id",
            _set("/dimensions/1/id", "categories"),
            [("duplicate_id", "duplicate dimension id `categories` at /dimensions/1/id", "/dimensions/1/id")],
        ),
        (
            "dangling_dimension",
            _set("/mappings/0/columns/0/expr/dim_id", "nope"),
            [
                (
                    "dangling_reference",
                    "dangling dimension reference to `nope` at /mappings/0/columns/0/expr",
                    "/mappings/0/columns/0/expr",
                )
            ],
        ),
        (
            "dangling_dimension_value",
            _set("/mappings/0/columns/1/expr/value", "nope"),
            [
                (
                    "dangling_reference",
                    "dangling dimension_value reference to `categories.nope` at /mappings/0/columns/1/expr",
                    "/mappings/0/columns/1/expr",
                )
            ],
        ),
        (
            "unsupported_match",
            _set("/dimensions/0/match", "regex"),
            [
                (
                    "schema",
                    "schema error at /dimensions/0/match: match `regex` is not supported "
                    "(supported: keyword_substring, exact)",
                    "/dimensions/0/match",
                )
            ],
        ),
        (
            "row_values_mismatch",
            _set("/dimensions/0/rows/rows/0/values", ["T"]),
            [
                (
                    "schema",
                    "schema error at /dimensions/0/rows/rows/0/values: row has 1 value(s); the dimension "
                    "declares 2 value column(s)",
                    "/dimensions/0/rows/rows/0/values",
                )
            ],
        ),
        (
            "duplicate_exact_key",
            _set(
                "/dimensions/0",
                {
                    "id": "categories",
                    "match": "exact",
                    "rows": {
                        "values": ["category", "group"],
                        "rows": [
                            {"patterns": ["A"], "values": ["1", "2"]},
                            {"patterns": ["A"], "values": ["3", "4"]},
                        ],
                    },
                },
            ),
            [
                (
                    "schema",
                    "schema error at /dimensions/0/rows/rows/1/patterns: "
                    "dimension `categories` has duplicate key `A`",
                    "/dimensions/0/rows/rows/1/patterns",
                )
            ],
        ),
        (
            "file_prefix_malformed",
            _set("/dimensions/1/rows/path_prefix", "/dims"),
            [
                (
                    "schema",
                    "schema error at /dimensions/1/rows/path_prefix: path_prefix `/dims` must be a relative "
                    "key prefix ending in `/` without `..` segments",
                    "/dimensions/1/rows/path_prefix",
                )
            ],
        ),
        (
            "file_prefix_under_a_source",
            _set("/dimensions/1/rows/path_prefix", "raw/geo/"),
            [
                (
                    "schema",
                    "schema error at /dimensions/1/rows/path_prefix: prefix `raw/geo/` overlaps `raw/` "
                    "(source `src`); dimension and source prefixes must not overlap",
                    "/dimensions/1/rows/path_prefix",
                )
            ],
        ),
        (
            "file_key_empty",
            _set("/dimensions/1/rows/key", ""),
            [("missing_field", "missing field `key` at /dimensions/1/rows/key", "/dimensions/1/rows/key")],
        ),
        (
            "rollup_dangling_source",
            _set("/rollups/0/source_table_id", "nope"),
            [
                (
                    "dangling_reference",
                    "dangling analytic_table reference to `nope` at /rollups/0/source_table_id",
                    "/rollups/0/source_table_id",
                )
            ],
        ),
        (
            "rollup_partition_keys_not_a_subset",
            _set("/analytic_tables/0/partition_keys", []),
            [
                (
                    "schema",
                    "schema error at /rollups/0/analytic_table_id: partition keys [cat] of table `r` are not "
                    "a subset of the partition keys [] of its source `t`",
                    "/rollups/0/analytic_table_id",
                )
            ],
        ),
        (
            "rollup_aggregate_needs_a_column",
            _set("/rollups/0/aggregates/1", {"name": "n", "fn": "avg"}),
            [
                (
                    "schema",
                    "schema error at /rollups/0/aggregates/1/column: aggregate `n` needs a column",
                    "/rollups/0/aggregates/1/column",
                )
            ],
        ),
        (
            "rollup_unknown_fn",
            _set("/rollups/0/aggregates/0/fn", "mode"),
            [
                (
                    "schema",
                    "schema error at /rollups/0/aggregates/0/fn: fn `mode` is not supported (supported: "
                    "count, sum, min, max, avg, count_distinct, median)",
                    "/rollups/0/aggregates/0/fn",
                )
            ],
        ),
        (
            "rollup_output_not_in_target",
            _set("/rollups/0/aggregates/0/name", "total"),
            [
                (
                    "dangling_reference",
                    "dangling analytic_table_column reference to `r.total` at /rollups/0/aggregates/0/name",
                    "/rollups/0/aggregates/0/name",
                )
            ],
        ),
        (
            "rollup_where_names_a_source_column",
            _set(
                "/rollups/0/aggregates/0/where",
                {"kind": "gt", "left": {"kind": "col", "name": "zz"}, "right": {"kind": "num", "value": 0}},
            ),
            [
                (
                    "dangling_reference",
                    "dangling analytic_table_column reference to `t.zz` at /rollups/0/aggregates/0/where",
                    "/rollups/0/aggregates/0/where",
                )
            ],
        ),
        (
            "rollup_group_by_empty",
            _set("/rollups/0/group_by", []),
            [
                ("schema", "schema error at /rollups/0/group_by: group_by is empty", "/rollups/0/group_by"),
                (
                    "schema",
                    "schema error at /rollups/0/group_by: partition key `cat` of table `r` is not grouped by",
                    "/rollups/0/group_by",
                ),
            ],
        ),
        (
            "rollup_table_written_by_a_mapping",
            _set("/rollups/0/analytic_table_id", "t"),
            [
                (
                    "schema",
                    "schema error at /rollups/0/analytic_table_id: "
                    "a rollup cannot write its own source table",
                    "/rollups/0/analytic_table_id",
                )
            ],
        ),
    ],
)
def test_e4_validation_messages(name, change, expected):
    found = [(i["kind"], i["message"], i["path"]) for i in issues_of(edited(change))]
    assert found == expected


def test_a_rollup_of_a_mapping_table_elsewhere_is_refused():
    def change(doc):
        doc["analytic_tables"].append({**copy.deepcopy(doc["analytic_tables"][1]), "id": "r2", "name": "R2"})
        doc["mappings"].append({**copy.deepcopy(doc["mappings"][0]), "id": "m2", "analytic_table_id": "r"})

    found = [i["message"] for i in issues_of(edited(change))]
    assert (
        "schema error at /rollups/0/analytic_table_id: table `r` is also written by mapping `m2`; "
        "a rollup's table has no other writer"
    ) in found


def test_rollup_cycles_are_refused():
    def change(doc):
        doc["rollups"].append(
            {
                **copy.deepcopy(doc["rollups"][0]),
                "id": "back",
                "source_table_id": "r",
                "analytic_table_id": "t",
            }
        )

    found = [i["message"] for i in issues_of(edited(change))]
    assert any("rollups form a cycle" in m for m in found)
