import json

import pytest

from karet_defs.config.validate import (
    MAX_DEPTH,
    ValidationIssue,
    load_pipeline,
    parse_pipeline,
    validate_pipeline,
)
from karet_defs.errors import ConfigSchemaError, KaretError, ValidationFailed

BLANK = '{"version":1,"source_containers":[],"lookup_mappings":[],"mappings":[],"analytic_tables":[]}'


def col(name: str) -> dict:
    return {"kind": "col", "name": name}


def lookup_ref(lookup_id: str, node: dict) -> dict:
    return {"kind": "lookup_ref", "lookup_id": lookup_id, "input": node}


def valid_doc() -> dict:
    """One source, a lookup with a child, one mapping using both, one table: no validation issue."""
    return {
        "version": 1,
        "source_containers": [
            {
                "id": "src",
                "name": "Src",
                "path_prefix": "pipelines/demo/src/",
                "schema": [
                    {"name": "a", "type": "string"},
                    {"name": "d", "type": "string"},
                    {"name": "n", "type": "number"},
                ],
            }
        ],
        "lookup_mappings": [
            {
                "id": "categories",
                "match": "keyword_substring",
                "case_insensitive": True,
                "rows": [{"input_patterns": ["UBER"], "output": "TRANSPORT"}],
                "children": [{"id": "merchants", "rows": [{"input_patterns": ["UBER"], "output": "UBER"}]}],
            }
        ],
        "mappings": [
            {
                "id": "m",
                "source_container_id": "src",
                "analytic_table_id": "t",
                "columns": [
                    {"name": "cat", "expr": lookup_ref("categories", col("a"))},
                    {"name": "mer", "expr": lookup_ref("categories.merchants", col("a"))},
                    {"name": "date", "expr": {"kind": "parse_date", "input": col("d")}},
                    {"name": "amount", "expr": {"kind": "cast", "input": col("n"), "to": "float64"}},
                ],
            }
        ],
        "analytic_tables": [
            {
                "id": "t",
                "name": "T",
                "schema": [
                    {"name": "cat", "type": "string"},
                    {"name": "mer", "type": "string"},
                    {"name": "date", "type": "date"},
                    {"name": "amount", "type": "float64"},
                    {"name": "n", "type": "number"},
                    {"name": "year", "type": "int64"},
                ],
            }
        ],
    }


def edit(doc: dict, pointer: str, value) -> None:
    """Set the value at a JSON Pointer; a last segment ``-`` appends, as in RFC 6902."""
    *parents, last = pointer.strip("/").split("/")
    target = doc
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if last == "-":
        target.append(value)
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


def doc_with(*edits: tuple[str, object]) -> dict:
    doc = valid_doc()
    for pointer, value in edits:
        edit(doc, pointer, value)
    return doc


def issues_of(*edits: tuple[str, object]) -> list[tuple[str, str, str]]:
    return [(i.kind, i.message, i.path) for i in validate_pipeline(parse_pipeline(doc_with(*edits)))]


def second_source(source_id: str = "src2", prefix: str = "pipelines/demo/other/") -> dict:
    return {"id": source_id, "name": "Src2", "path_prefix": prefix, "schema": []}


def test_valid_config_has_no_issues():
    assert validate_pipeline(parse_pipeline(valid_doc())) == []


def test_blank_template_is_valid():
    pipeline = load_pipeline(BLANK)
    assert pipeline.mappings == []
    assert validate_pipeline(pipeline) == []


MF, DUP, DANGLING, SCHEMA = "missing_field", "duplicate_id", "dangling_reference", "schema"


@pytest.mark.parametrize(
    ("edits", "expected"),
    [
        pytest.param(
            [("/source_containers/0/id", "")],
            [
                (MF, "missing field `id` at /source_containers/0/id", "/source_containers/0/id"),
                (
                    DANGLING,
                    "dangling source_container reference to `src` at /mappings/0/source_container_id",
                    "/mappings/0/source_container_id",
                ),
            ],
            id="missing_field-source-id",
        ),
        pytest.param(
            [("/source_containers/0/name", "")],
            [(MF, "missing field `name` at /source_containers/0/name", "/source_containers/0/name")],
            id="missing_field-source-name",
        ),
        pytest.param(
            [("/analytic_tables/0/name", "")],
            [(MF, "missing field `name` at /analytic_tables/0/name", "/analytic_tables/0/name")],
            id="missing_field-table-name",
        ),
        pytest.param(
            [("/lookup_mappings/0/name", ""), ("/mappings/0/name", "")],
            [],
            id="names-of-lookups-and-mappings-are-optional",
        ),
        pytest.param(
            [("/mappings/0/id", "")],
            [(MF, "missing field `id` at /mappings/0/id", "/mappings/0/id")],
            id="missing_field-mapping-id",
        ),
        pytest.param(
            [("/lookup_mappings/0/id", "")],
            [
                (MF, "missing field `id` at /lookup_mappings/0/id", "/lookup_mappings/0/id"),
                (
                    DANGLING,
                    "dangling lookup reference to `categories` at /mappings/0/columns/0/expr",
                    "/mappings/0/columns/0/expr",
                ),
                (
                    DANGLING,
                    "dangling lookup reference to `categories.merchants` at /mappings/0/columns/1/expr",
                    "/mappings/0/columns/1/expr",
                ),
            ],
            id="missing_field-lookup-id",
        ),
        pytest.param(
            [("/analytic_tables/0/id", "")],
            [
                (MF, "missing field `id` at /analytic_tables/0/id", "/analytic_tables/0/id"),
                (
                    DANGLING,
                    "dangling analytic_table reference to `t` at /mappings/0/analytic_table_id",
                    "/mappings/0/analytic_table_id",
                ),
            ],
            id="missing_field-table-id",
        ),
        pytest.param(
            [("/source_containers/0/path_prefix", "")],
            [
                (
                    MF,
                    "missing field `path_prefix` at /source_containers/0/path_prefix",
                    "/source_containers/0/path_prefix",
                )
            ],
            id="missing_field-path_prefix",
        ),
        pytest.param(
            [("/mappings/0/source_container_id", ""), ("/mappings/0/analytic_table_id", "")],
            [
                (
                    MF,
                    "missing field `source_container_id` at /mappings/0/source_container_id",
                    "/mappings/0/source_container_id",
                ),
                (
                    MF,
                    "missing field `analytic_table_id` at /mappings/0/analytic_table_id",
                    "/mappings/0/analytic_table_id",
                ),
            ],
            id="missing_field-empty-references",
        ),
        pytest.param(
            [("/source_containers/-", second_source("src"))],
            [
                (
                    DUP,
                    "duplicate source_container id `src` at /source_containers/1/id",
                    "/source_containers/1/id",
                )
            ],
            id="duplicate_id-source_container",
        ),
        pytest.param(
            [("/lookup_mappings/-", {"id": "categories", "rows": []})],
            [
                (
                    DUP,
                    "duplicate lookup_mapping id `categories` at /lookup_mappings/1/id",
                    "/lookup_mappings/1/id",
                )
            ],
            id="duplicate_id-lookup_mapping",
        ),
        pytest.param(
            [("/lookup_mappings/0/children/-", {"id": "merchants", "rows": []})],
            [],
            id="duplicate-child-lookup-ids-are-not-checked",
        ),
        pytest.param(
            [
                (
                    "/mappings/-",
                    {"id": "m", "source_container_id": "src", "analytic_table_id": "t", "columns": []},
                ),
                (
                    "/mappings/-",
                    {"id": "m", "source_container_id": "src", "analytic_table_id": "t", "columns": []},
                ),
            ],
            [
                (DUP, "duplicate mapping id `m` at /mappings/1/id", "/mappings/1/id"),
                (DUP, "duplicate mapping id `m` at /mappings/2/id", "/mappings/2/id"),
            ],
            id="duplicate_id-mapping-second-and-later",
        ),
        pytest.param(
            [("/analytic_tables/-", {"id": "t", "name": "T2", "schema": []})],
            [(DUP, "duplicate analytic_table id `t` at /analytic_tables/1/id", "/analytic_tables/1/id")],
            id="duplicate_id-analytic_table",
        ),
        pytest.param(
            [("/mappings/0/source_container_id", "ghost")],
            [
                (
                    DANGLING,
                    "dangling source_container reference to `ghost` at /mappings/0/source_container_id",
                    "/mappings/0/source_container_id",
                )
            ],
            id="dangling-source_container",
        ),
        pytest.param(
            [("/mappings/0/analytic_table_id", "ghost")],
            [
                (
                    DANGLING,
                    "dangling analytic_table reference to `ghost` at /mappings/0/analytic_table_id",
                    "/mappings/0/analytic_table_id",
                )
            ],
            id="dangling-analytic_table",
        ),
        pytest.param(
            [("/mappings/0/columns/0/expr/lookup_id", "nope")],
            [
                (
                    DANGLING,
                    "dangling lookup reference to `nope` at /mappings/0/columns/0/expr",
                    "/mappings/0/columns/0/expr",
                )
            ],
            id="dangling-lookup",
        ),
        pytest.param(
            [("/mappings/0/columns/1/expr/lookup_id", "categories.shops")],
            [
                (
                    DANGLING,
                    "dangling lookup reference to `categories.shops` at /mappings/0/columns/1/expr",
                    "/mappings/0/columns/1/expr",
                )
            ],
            id="dangling-lookup-dotted-child",
        ),
        pytest.param(
            [("/mappings/0/columns/1/expr/lookup_id", "categories.")],
            [
                (
                    DANGLING,
                    "dangling lookup reference to `categories.` at /mappings/0/columns/1/expr",
                    "/mappings/0/columns/1/expr",
                )
            ],
            id="dangling-lookup-empty-segment",
        ),
        pytest.param(
            [("/mappings/0/columns/1/expr/lookup_id", "merchants")],
            [
                (
                    DANGLING,
                    "dangling lookup reference to `merchants` at /mappings/0/columns/1/expr",
                    "/mappings/0/columns/1/expr",
                )
            ],
            id="dangling-lookup-child-needs-its-parent",
        ),
        pytest.param(
            [
                (
                    "/mappings/0/columns/0/expr",
                    {
                        "kind": "coalesce",
                        "args": [
                            lookup_ref("gone", col("a")),
                            {"kind": "upper", "input": lookup_ref("x", col("a"))},
                        ],
                    },
                )
            ],
            [
                (
                    DANGLING,
                    "dangling lookup reference to `gone` at /mappings/0/columns/0/expr",
                    "/mappings/0/columns/0/expr",
                ),
                (
                    DANGLING,
                    "dangling lookup reference to `x` at /mappings/0/columns/0/expr",
                    "/mappings/0/columns/0/expr",
                ),
            ],
            id="dangling-lookup-nested-in-order",
        ),
        pytest.param(
            [("/mappings/0/columns/0/name", "ghost")],
            [
                (
                    DANGLING,
                    "dangling analytic_table_column reference to `t.ghost` at /mappings/0/columns/0/name",
                    "/mappings/0/columns/0/name",
                )
            ],
            id="dangling-analytic_table_column",
        ),
        pytest.param(
            [("/mappings/0/columns/2/expr/input", col("zzz"))],
            [
                (
                    DANGLING,
                    "dangling source_column reference to `src.zzz` at /mappings/0/columns/2/expr",
                    "/mappings/0/columns/2/expr",
                )
            ],
            id="dangling-source_column",
        ),
        pytest.param(
            [("/mappings/0/columns/0/name", "ghost"), ("/mappings/0/analytic_table_id", "nope")],
            [
                (
                    DANGLING,
                    "dangling analytic_table reference to `nope` at /mappings/0/analytic_table_id",
                    "/mappings/0/analytic_table_id",
                )
            ],
            id="table-columns-checked-only-when-table-resolves",
        ),
        pytest.param(
            [("/mappings/0/columns/2/expr/input", col("zzz")), ("/mappings/0/source_container_id", "nope")],
            [
                (
                    DANGLING,
                    "dangling source_container reference to `nope` at /mappings/0/source_container_id",
                    "/mappings/0/source_container_id",
                )
            ],
            id="col-checked-only-when-source-resolves",
        ),
        pytest.param(
            [("/analytic_tables/0/partition_keys", ["ghost"])],
            [
                (
                    DANGLING,
                    "dangling schema_column reference to `ghost` at /analytic_tables/0/partition_keys",
                    "/analytic_tables/0/partition_keys",
                )
            ],
            id="dangling-schema_column-partition_keys",
        ),
        pytest.param(
            [("/analytic_tables/0/dedup_keys", ["cat", "ghost"])],
            [
                (
                    DANGLING,
                    "dangling schema_column reference to `ghost` at /analytic_tables/0/dedup_keys",
                    "/analytic_tables/0/dedup_keys",
                )
            ],
            id="dangling-schema_column-dedup_keys",
        ),
        pytest.param(
            [("/analytic_tables/0/partition_keys", ["cat", "mer", "year"])],
            [
                (
                    SCHEMA,
                    "schema error at /analytic_tables/0/partition_keys: "
                    "3 partition keys; at most 2 are supported",
                    "/analytic_tables/0/partition_keys",
                )
            ],
            id="schema-more-than-two-partition-keys",
        ),
        pytest.param(
            [("/analytic_tables/0/partition_keys", ["year", "year"])],
            [
                (
                    SCHEMA,
                    "schema error at /analytic_tables/0/partition_keys: duplicate partition key `year`",
                    "/analytic_tables/0/partition_keys",
                )
            ],
            id="schema-duplicate-partition-key",
        ),
        pytest.param(
            [("/analytic_tables/0/partition_keys", ["amount", "n"])],
            [
                (
                    SCHEMA,
                    "schema error at /analytic_tables/0/partition_keys: "
                    "partition key `amount` is float-capable; floats make unstable path segments",
                    "/analytic_tables/0/partition_keys",
                ),
                (
                    SCHEMA,
                    "schema error at /analytic_tables/0/partition_keys: partition key `n` is float-capable; "
                    "floats make unstable path segments",
                    "/analytic_tables/0/partition_keys",
                ),
            ],
            id="schema-float-partition-keys-float64-and-number",
        ),
        pytest.param(
            [
                ("/analytic_tables/0/partition_keys", ["year", "date"]),
                ("/analytic_tables/0/dedup_keys", ["amount"]),
            ],
            [],
            id="int-and-date-partition-keys-and-float-dedup-key-are-fine",
        ),
        pytest.param(
            [("/analytic_tables/0/dedup_keys", ["cat", "mer", "cat"])],
            [
                (
                    SCHEMA,
                    "schema error at /analytic_tables/0/dedup_keys: duplicate dedup key `cat`",
                    "/analytic_tables/0/dedup_keys",
                )
            ],
            id="schema-duplicate-dedup-key",
        ),
        *[
            pytest.param(
                [("/source_containers/0/path_prefix", prefix)],
                [
                    (
                        SCHEMA,
                        f"schema error at /source_containers/0/path_prefix: path_prefix `{prefix}` must be a "
                        "relative key prefix ending in `/` without `..` segments",
                        "/source_containers/0/path_prefix",
                    )
                ],
                id=f"schema-path_prefix-{name}",
            )
            for name, prefix in [
                ("leading-slash", "/abs/"),
                ("no-trailing-slash", "no-slash"),
                ("dotdot", "a/../b/"),
            ]
        ],
        pytest.param(
            [("/source_containers/0/path_prefix", "transactions/")],
            [],
            id="relative-prefix-is-well-formed",
        ),
        pytest.param(
            [("/source_containers/-", second_source(prefix="pipelines/demo/src/nested/"))],
            [
                (
                    SCHEMA,
                    "schema error at /source_containers/1/path_prefix: prefix `pipelines/demo/src/nested/` "
                    "is nested under `pipelines/demo/src/` (source `src`); source prefixes must not overlap",
                    "/source_containers/1/path_prefix",
                )
            ],
            id="schema-nested-prefix",
        ),
        pytest.param(
            [("/source_containers/-", second_source(prefix="pipelines/demo/src/"))],
            [
                (
                    SCHEMA,
                    "schema error at /source_containers/1/path_prefix: prefix `pipelines/demo/src/` "
                    "is nested under `pipelines/demo/src/` (source `src`); source prefixes must not overlap",
                    "/source_containers/1/path_prefix",
                ),
                (
                    SCHEMA,
                    "schema error at /source_containers/0/path_prefix: prefix `pipelines/demo/src/` "
                    "is nested under `pipelines/demo/src/` (source `src2`); source prefixes must not overlap",
                    "/source_containers/0/path_prefix",
                ),
            ],
            id="schema-identical-prefixes-reported-on-both-sources",
        ),
        pytest.param(
            [("/source_containers/-", second_source(prefix="pipelines/demo/src2/"))],
            [],
            id="sibling-prefixes-sharing-a-string-start-but-not-a-folder",
        ),
        pytest.param(
            [("/lookup_mappings/0/match", "regex")],
            [
                (
                    SCHEMA,
                    "schema error at /lookup_mappings/0/match: match `regex` is not supported "
                    "(supported: keyword_substring, exact)",
                    "/lookup_mappings/0/match",
                )
            ],
            id="schema-lookup-match-regex",
        ),
        pytest.param(
            [("/lookup_mappings/0/children/0/match", "regex"), ("/lookup_mappings/0/match", "exact")],
            [
                (
                    SCHEMA,
                    "schema error at /lookup_mappings/0/children/0/match: match `regex` is not supported "
                    "(supported: keyword_substring, exact)",
                    "/lookup_mappings/0/children/0/match",
                )
            ],
            id="schema-child-lookup-match-regex",
        ),
        pytest.param(
            [("/source_containers/0/schema/2/type", "numbr"), ("/analytic_tables/0/schema/0/type", "text")],
            [
                (
                    SCHEMA,
                    "schema error at /source_containers/0/schema/2/type: unknown column type `numbr`; "
                    "expected one of string, number, int64, float64, date, bool",
                    "/source_containers/0/schema/2/type",
                ),
                (
                    SCHEMA,
                    "schema error at /analytic_tables/0/schema/0/type: unknown column type `text`; "
                    "expected one of string, number, int64, float64, date, bool",
                    "/analytic_tables/0/schema/0/type",
                ),
            ],
            id="schema-unknown-column-types",
        ),
        pytest.param(
            [
                (
                    "/mappings/0/where",
                    {"kind": "and", "left": {"kind": "not", "input": col("cat")}, "right": col("a")},
                )
            ],
            [
                (
                    DANGLING,
                    "dangling mapping_output_column reference to `a` at /mappings/0/where",
                    "/mappings/0/where",
                )
            ],
            id="where-refers-to-output-columns",
        ),
        pytest.param(
            [
                (
                    "/mappings/0/where",
                    {"kind": "eq", "left": lookup_ref("nope", col("cat")), "right": col("mer")},
                )
            ],
            [(DANGLING, "dangling lookup reference to `nope` at /mappings/0/where", "/mappings/0/where")],
            id="where-dangling-lookup",
        ),
        pytest.param(
            [
                (
                    "/source_containers/0/record_filter",
                    {"kind": "contains", "input": col("cat"), "pattern": "x"},
                )
            ],
            [
                (
                    DANGLING,
                    "dangling source_column reference to `src.cat` at /source_containers/0/record_filter",
                    "/source_containers/0/record_filter",
                )
            ],
            id="record_filter-refers-to-source-columns",
        ),
        pytest.param(
            [
                (
                    "/source_containers/0/record_filter",
                    {"kind": "gt", "left": col("n"), "right": {"kind": "num", "value": 0}},
                )
            ],
            [],
            id="record_filter-valid",
        ),
    ],
)
def test_validation_issue(edits, expected):
    assert issues_of(*edits) == expected


EVERY_NODE_KIND = {
    "kind": "if",
    "cond": {
        "kind": "or",
        "left": {"kind": "not", "input": {"kind": "contains", "input": col("c1"), "pattern": "x"}},
        "right": {
            "kind": "ge",
            "left": {"kind": "year", "input": col("c2")},
            "right": {"kind": "num", "value": 1},
        },
    },
    "then": {
        "kind": "concat",
        "sep": "-",
        "args": [
            {"kind": "substring", "input": {"kind": "upper", "input": col("c3")}, "start": 0},
            {"kind": "cast", "input": {"kind": "from_unix", "input": col("c4")}, "to": "string"},
        ],
    },
    "else": {
        "kind": "coalesce",
        "args": [
            lookup_ref("categories", {"kind": "trim", "input": col("c5")}),
            {"kind": "parse_date", "input": {"kind": "lower", "input": col("c6")}},
            {"kind": "add", "left": {"kind": "day", "input": col("c7")}, "right": {"kind": "null"}},
        ],
    },
}


def test_col_checks_walk_every_expression_kind_in_source_order():
    issues = issues_of(("/mappings/0/columns/3/expr", EVERY_NODE_KIND))
    assert [message.split("`")[1] for _, message, _ in issues] == [f"src.c{k}" for k in range(1, 8)]
    assert {path for _, _, path in issues} == {"/mappings/0/columns/3/expr"}


def test_legacy_partition_by_leftovers_get_the_e1_messages():
    doc = valid_doc()
    doc["mappings"][0]["partition_by"] = {"column": "when", "granularity": "month"}
    doc["mappings"].append(
        {
            "id": "m2",
            "source_container_id": "src",
            "analytic_table_id": "t",
            "columns": [{"name": "cat", "expr": col("a")}],
            "partition_by": {"column": "cat", "granularity": "month"},
        }
    )
    doc["mappings"].append(
        {
            "id": "m3",
            "source_container_id": "src",
            "analytic_table_id": "t",
            "columns": [{"name": "date", "expr": {"kind": "parse_date", "input": col("d")}}],
            "partition_by": {"column": "date", "granularity": "week"},
        }
    )
    assert [(i.kind, i.message, i.path) for i in validate_pipeline(parse_pipeline(doc))] == [
        (
            DANGLING,
            "dangling mapping_output_column reference to `when` at /mappings/0/partition_by/column",
            "/mappings/0/partition_by/column",
        ),
        (
            SCHEMA,
            "schema error at /mappings/1/partition_by/column: partition column `cat` is type `string`; "
            "only `date` columns can be partitioned by month",
            "/mappings/1/partition_by/column",
        ),
        (
            SCHEMA,
            "schema error at /mappings/2/partition_by/granularity: unsupported partition granularity: `week` "
            '(supported: "month")',
            "/mappings/2/partition_by/granularity",
        ),
    ]


def test_all_errors_are_collected_in_reference_order():
    doc = valid_doc()
    doc["source_containers"][0]["path_prefix"] = "no-slash"
    doc["source_containers"].append(second_source("src", prefix="no-slash/deeper/"))
    doc["lookup_mappings"][0]["match"] = "regex"
    doc["lookup_mappings"].append({"id": "", "rows": []})
    doc["mappings"][0]["columns"][0]["expr"]["lookup_id"] = "nope"
    doc["mappings"][0]["columns"][0]["name"] = "ghost"
    doc["mappings"][0]["columns"][2]["expr"]["input"] = col("zzz")
    doc["mappings"][0]["partition_by"] = {"column": "missing", "granularity": "month"}
    doc["mappings"].append(
        {"id": "m", "source_container_id": "x", "analytic_table_id": "t", "columns": [], "where": col("q")}
    )
    doc["analytic_tables"][0]["name"] = ""
    doc["analytic_tables"][0]["partition_keys"] = ["a", "b", "cat"]
    doc["analytic_tables"][0]["dedup_keys"] = ["cat", "cat"]
    issues = validate_pipeline(parse_pipeline(doc))
    assert [(i.kind, i.path) for i in issues] == [
        # id checks per collection: sources, lookups, mappings, tables
        (DUP, "/source_containers/1/id"),
        (MF, "/lookup_mappings/1/id"),
        (DUP, "/mappings/1/id"),
        (MF, "/analytic_tables/0/name"),
        # per-mapping reference checks: lookups, table columns, partition_by, cols, where
        (DANGLING, "/mappings/0/columns/0/expr"),
        (DANGLING, "/mappings/0/columns/0/name"),
        (DANGLING, "/mappings/0/partition_by/column"),
        (DANGLING, "/mappings/0/columns/2/expr"),
        (DANGLING, "/mappings/1/source_container_id"),
        (DANGLING, "/mappings/1/where"),
        # table key checks
        (SCHEMA, "/analytic_tables/0/partition_keys"),
        (DANGLING, "/analytic_tables/0/partition_keys"),
        (DANGLING, "/analytic_tables/0/partition_keys"),
        (SCHEMA, "/analytic_tables/0/dedup_keys"),
        # source prefix checks: shape, then nesting
        (SCHEMA, "/source_containers/0/path_prefix"),
        (SCHEMA, "/source_containers/1/path_prefix"),
        # lookup match, added by this port, last
        (SCHEMA, "/lookup_mappings/0/match"),
    ]


def test_issue_to_dict_has_kind_message_path():
    issue = ValidationIssue("missing_field", "missing field `id` at /mappings/0/id", "/mappings/0/id")
    assert issue.to_dict() == {
        "kind": "missing_field",
        "message": "missing field `id` at /mappings/0/id",
        "path": "/mappings/0/id",
    }


def test_load_pipeline_raises_validation_failed_with_every_issue():
    doc = valid_doc()
    doc["mappings"][0]["analytic_table_id"] = "ghost"
    doc["source_containers"][0]["name"] = ""
    with pytest.raises(KaretError, match="missing field `name` at /source_containers/0/name") as info:
        load_pipeline(json.dumps(doc))
    assert isinstance(info.value, ValidationFailed)
    assert info.value.code == "missing_field"
    assert info.value.details == [
        {
            "kind": MF,
            "message": "missing field `name` at /source_containers/0/name",
            "path": "/source_containers/0/name",
        },
        {
            "kind": DANGLING,
            "message": "dangling analytic_table reference to `ghost` at /mappings/0/analytic_table_id",
            "path": "/mappings/0/analytic_table_id",
        },
    ]
    assert info.value.to_dict()["error"] == "missing_field"


def test_load_pipeline_returns_the_model_when_valid():
    pipeline = load_pipeline(json.dumps(valid_doc()).encode())
    assert [c.name for c in pipeline.mappings[0].columns] == ["cat", "mer", "date", "amount"]


def nested_expression(depth: int) -> dict:
    node = col("a")
    for _ in range(depth):
        node = {"kind": "upper", "input": node}
    return node


def text_with(*edits: tuple[str, object]) -> str:
    return json.dumps(doc_with(*edits))


def deep_doc(depth: int) -> dict:
    doc = valid_doc()
    doc["mappings"][0]["columns"][0]["expr"] = nested_expression(depth)
    return doc


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param(b"\xff{}", "not valid UTF-8", id="bad-utf8"),
        pytest.param("{", r"invalid JSON at line 1 column 2", id="bad-json"),
        pytest.param('{"version": NaN}', "invalid JSON: `NaN`", id="nan"),
        pytest.param("[]", "must be a JSON object, not an array", id="not-an-object"),
        pytest.param("null", "must be a JSON object, not null", id="null"),
        pytest.param(5, "must be JSON text or an object, not int", id="wrong-python-type"),
        *[
            pytest.param(
                json.dumps({k: v for k, v in json.loads(BLANK).items() if k != key}),
                f"^{key}: required field is missing$",
                id=f"missing-{key}",
            )
            for key in ("source_containers", "lookup_mappings", "mappings", "analytic_tables")
        ],
        pytest.param(
            BLANK.replace('"mappings":[]', '"mappings":{}'),
            r"^mappings: Input should be a valid list",
            id="wrong-type",
        ),
        pytest.param(
            text_with(("/mappings/0/columns/0/expr", {"kind": "foo"})),
            r"^mappings\.0\.columns\.0\.expr: unknown expression kind 'foo'$",
            id="unknown-kind",
        ),
        pytest.param(
            text_with(("/source_containers/0/record_filter", {"kind": "not", "input": {"kind": "regex"}})),
            r"^source_containers\.0\.record_filter\.input: unknown expression kind 'regex'$",
            id="unknown-kind-in-record_filter",
        ),
        pytest.param(
            text_with(("/mappings/0/where", {"kind": "add", "left": col("a"), "right": {"kind": 7}})),
            r"^mappings\.0\.where\.right: unknown expression kind '7'$",
            id="non-string-kind-in-where",
        ),
        pytest.param(
            text_with(("/mappings/0/columns/0/expr", {"name": "a"})),
            r"^mappings\.0\.columns\.0\.expr: expression has no `kind`$",
            id="no-kind",
        ),
        pytest.param(
            text_with(
                (
                    "/mappings/0/columns/0/expr",
                    {
                        "kind": "if",
                        "cond": col("a"),
                        "then": col("a"),
                        "else": {"kind": "concat", "args": [col("a"), {"kind": "col", "nam": "a"}]},
                    },
                )
            ),
            r"^mappings\.0\.columns\.0\.expr\.else\.args\.1\.name: required field is missing; "
            r"mappings\.0\.columns\.0\.expr\.else\.args\.1\.nam: unknown field$",
            id="nested-error-location-without-union-tags",
        ),
        pytest.param(
            text_with(("/mappings/0/partition_by2", {})),
            r"^mappings\.0\.partition_by2: unknown field$",
            id="unknown-field-in-mapping",
        ),
        pytest.param(
            text_with(("/analytic_tables/0/schema/0/assertions", {"not_null": True, "regex": "x"})),
            r"^analytic_tables\.0\.schema\.0\.assertions\.regex: unknown field$",
            id="unknown-field-in-assertions",
        ),
        pytest.param(
            text_with(("/mappings/0/columns/0/expr", {"kind": "cast", "input": col("a"), "to": "timestamp"})),
            r"^mappings\.0\.columns\.0\.expr\.to: "
            r"Input should be 'int64', 'float64', 'string', 'date' or 'bool'$",
            id="bad-literal-field",
        ),
        pytest.param(
            json.dumps(
                {
                    "version": -1,
                    "source_containers": 1,
                    "lookup_mappings": 2,
                    "mappings": 3,
                    "analytic_tables": 4,
                }
            ),
            r"^version: .*; source_containers: .*; lookup_mappings: .* \(and 2 more\)$",
            id="first-three-errors-kept",
        ),
        pytest.param(
            deep_doc(300),
            rf"^mappings\.0\.columns\.0\.expr: nesting is deeper than the limit of {MAX_DEPTH} levels$",
            id="deep-dict",
        ),
        pytest.param(
            json.dumps(deep_doc(300)),
            rf"^mappings\.0\.columns\.0\.expr: nesting is deeper than the limit of {MAX_DEPTH} levels$",
            id="deep-text",
        ),
        pytest.param(
            '{"version":1,"mappings":[{"columns":[{"expr":'
            + '{"kind":"upper","input":' * 10_000
            + "{}"
            + "}" * 10_000
            + "}]}]}",
            f"nesting is deeper than the limit of {MAX_DEPTH} levels",
            id="deep-10000-text",
        ),
        pytest.param(
            deep_doc(10_000),
            f"nesting is deeper than the limit of {MAX_DEPTH} levels",
            id="deep-10000-dict",
        ),
    ],
)
def test_parse_failures_are_one_schema_error(raw, message):
    with pytest.raises(KaretError, match=message) as info:
        parse_pipeline(raw)
    assert type(info.value) is ConfigSchemaError
    assert info.value.code == "schema"


def test_every_structural_error_is_a_detail_with_its_json_pointer():
    doc = valid_doc()
    del doc["mappings"]
    del doc["source_containers"][0]["id"]
    doc["analytic_tables"][0]["schema"][0]["assertions"] = {"not_null": "often"}
    doc["lookup_mappings"][0]["children"][0]["rows"][0]["input/patterns"] = doc["lookup_mappings"][0][
        "children"
    ][0]["rows"][0].pop("input_patterns")

    with pytest.raises(ConfigSchemaError) as info:
        parse_pipeline(doc)

    assert sorted(info.value.details, key=lambda d: d["path"]) == [
        {
            "kind": "schema",
            "message": "schema error at /analytic_tables/0/schema/0/assertions/not_null: "
            "Input should be a valid boolean, unable to interpret input",
            "path": "/analytic_tables/0/schema/0/assertions/not_null",
        },
        {
            "kind": "missing_field",
            "message": "missing field `input_patterns` at "
            "/lookup_mappings/0/children/0/rows/0/input_patterns",
            "path": "/lookup_mappings/0/children/0/rows/0/input_patterns",
        },
        {"kind": "missing_field", "message": "missing field `mappings` at /mappings", "path": "/mappings"},
        {
            "kind": "missing_field",
            "message": "missing field `id` at /source_containers/0/id",
            "path": "/source_containers/0/id",
        },
    ]


def test_a_pointer_escapes_slash_and_tilde_in_keys():
    doc = valid_doc()
    doc["mappings"][0]["a/b~c"] = 1

    with pytest.raises(ConfigSchemaError) as info:
        parse_pipeline(doc)

    assert [d["path"] for d in info.value.details] == ["/mappings/0/a~1b~0c"]


def test_nesting_just_under_the_limit_parses():
    # root, mappings, mapping, columns, column: five levels before the expression starts.
    pipeline = parse_pipeline(deep_doc(MAX_DEPTH - 6))
    assert validate_pipeline(pipeline) == []


def test_cyclic_dict_is_a_schema_error():
    doc = valid_doc()
    doc["layout"] = {"loop": doc}
    with pytest.raises(ConfigSchemaError, match="nesting is deeper"):
        parse_pipeline(doc)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"\xef\xbb\xbf" + BLANK.encode(), id="bytes-with-bom"),
        pytest.param("\ufeff" + BLANK, id="str-with-bom"),
        pytest.param(bytearray(BLANK.encode()), id="bytearray"),
        pytest.param(json.loads(BLANK), id="dict"),
    ],
)
def test_parse_accepts_bytes_str_and_dict(raw):
    assert parse_pipeline(raw).version == 1


def test_parse_does_not_mutate_a_dict_argument():
    doc = valid_doc()
    doc["mappings"][0]["partition_by"] = {"column": "date", "granularity": "month"}
    snapshot = json.dumps(doc, sort_keys=True)
    pipeline = parse_pipeline(doc)
    assert json.dumps(doc, sort_keys=True) == snapshot
    assert pipeline.analytic_tables[0].partition_keys == ["year", "month"]
