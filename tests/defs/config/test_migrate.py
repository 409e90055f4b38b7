import copy

import pytest

from karet_defs.config.migrate import upgrade_legacy
from karet_defs.config.models import Cast, Col, Num, ParseDate, Unary
from karet_defs.config.validate import parse_pipeline, validate_pipeline

DATE_EXPR = {"kind": "parse_date", "input": {"kind": "col", "name": "date"}, "format": "%Y-%m-%d"}


def e1_spending() -> dict:
    """The E1 Spending Tracker shape (REFERENCE §4.9): relative prefix, integer cents, ``partition_by``."""
    return {
        "version": 1,
        "source_containers": [
            {
                "id": "transactions_raw",
                "name": "Transactions",
                "path_prefix": "raw/transactions/",
                "schema": [
                    {"name": "date", "type": "string"},
                    {"name": "description", "type": "string"},
                    {"name": "amount", "type": "number"},
                ],
            }
        ],
        "lookup_mappings": [],
        "mappings": [
            {
                "id": "transactions_mapping",
                "source_container_id": "transactions_raw",
                "analytic_table_id": "transactions",
                "columns": [
                    {"name": "date", "expr": DATE_EXPR},
                    {
                        "name": "amount_cents",
                        "expr": {
                            "kind": "cast",
                            "to": "int64",
                            "input": {
                                "kind": "mul",
                                "left": {"kind": "col", "name": "amount"},
                                "right": {"kind": "num", "value": 100},
                            },
                        },
                    },
                ],
                "partition_by": {"column": "date", "granularity": "month"},
            }
        ],
        "analytic_tables": [
            {
                "id": "transactions",
                "name": "Transactions",
                "output_prefix": "clean/transactions/",
                "schema": [{"name": "date", "type": "date"}, {"name": "amount_cents", "type": "int64"}],
            }
        ],
    }


def test_e1_spending_tracker_is_upgraded_to_year_month_partition_keys():
    pipeline = parse_pipeline(e1_spending())

    mapping = pipeline.mappings[0]
    assert mapping.partition_by is None
    assert [c.name for c in mapping.columns] == ["date", "amount_cents", "year", "month"]
    date_node = ParseDate(kind="parse_date", input=Col(kind="col", name="date"), format="%Y-%m-%d")
    assert mapping.columns[2].expr == Unary(kind="year", input=date_node)
    assert mapping.columns[3].expr == Unary(kind="month", input=date_node)
    assert isinstance(mapping.columns[1].expr, Cast)
    assert mapping.columns[1].expr.input.right == Num(kind="num", value=100.0)

    table = pipeline.analytic_tables[0]
    assert [(c.name, c.type) for c in table.schema_] == [
        ("date", "date"),
        ("amount_cents", "int64"),
        ("year", "int64"),
        ("month", "int64"),
    ]
    assert table.partition_keys == ["year", "month"]
    assert table.output_prefix == "clean/transactions/"
    assert validate_pipeline(pipeline) == []


def test_relative_path_prefix_is_kept_for_use_time_resolution():
    pipeline = parse_pipeline(e1_spending())
    assert pipeline.source_containers[0].path_prefix == "raw/transactions/"
    assert pipeline.source_containers[0].resolved_prefix("spending") == "pipelines/spending/raw/transactions/"


def test_upgrade_is_idempotent_and_does_not_mutate_its_input():
    doc = e1_spending()
    before = copy.deepcopy(doc)
    once = upgrade_legacy(doc)
    assert doc == before
    assert upgrade_legacy(once) == once
    assert "partition_by" not in once["mappings"][0]


def test_granularity_defaults_to_month():
    doc = e1_spending()
    doc["mappings"][0]["partition_by"] = {"column": "date"}
    assert upgrade_legacy(doc)["analytic_tables"][0]["partition_keys"] == ["year", "month"]


def test_existing_year_month_columns_are_not_duplicated():
    doc = e1_spending()
    own_year = {"name": "year", "expr": {"kind": "num", "value": 2026}}
    doc["mappings"][0]["columns"].append(own_year)
    doc["analytic_tables"][0]["schema"].append({"name": "month", "type": "int64"})
    out = upgrade_legacy(doc)
    assert [c["name"] for c in out["mappings"][0]["columns"]] == ["date", "amount_cents", "year", "month"]
    assert out["mappings"][0]["columns"][2] == own_year
    assert [c["name"] for c in out["analytic_tables"][0]["schema"]] == [
        "date",
        "amount_cents",
        "month",
        "year",
    ]


def test_two_legacy_mappings_of_one_table_add_the_table_columns_once():
    doc = e1_spending()
    second = copy.deepcopy(doc["mappings"][0])
    second["id"] = "second_mapping"
    doc["mappings"].append(second)
    out = upgrade_legacy(doc)
    assert [c["name"] for c in out["analytic_tables"][0]["schema"]] == [
        "date",
        "amount_cents",
        "year",
        "month",
    ]
    assert all("partition_by" not in m for m in out["mappings"])
    assert validate_pipeline(parse_pipeline(doc)) == []


def test_partition_column_undeclared_in_table_is_upgraded_and_reported_as_table_column():
    doc = e1_spending()
    doc["analytic_tables"][0]["schema"] = [{"name": "amount_cents", "type": "int64"}]
    issues = validate_pipeline(parse_pipeline(doc))
    assert [(i.kind, i.path) for i in issues] == [("dangling_reference", "/mappings/0/columns/0/name")]


def _no_output_column(doc):
    doc["mappings"][0]["partition_by"]["column"] = "posted_on"


def _week(doc):
    doc["mappings"][0]["partition_by"]["granularity"] = "week"


def _no_table(doc):
    doc["mappings"][0]["analytic_table_id"] = "ghost"


def _string_date(doc):
    doc["analytic_tables"][0]["schema"][0]["type"] = "string"


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(_no_output_column, id="column-not-a-mapping-output"),
        pytest.param(_week, id="granularity-not-month"),
        pytest.param(_no_table, id="table-missing"),
        pytest.param(_string_date, id="column-declared-non-date"),
    ],
)
def test_unupgradable_partition_by_is_left_for_the_validator(edit):
    doc = e1_spending()
    edit(doc)
    out = upgrade_legacy(doc)
    assert out["mappings"][0]["partition_by"] == doc["mappings"][0]["partition_by"]
    assert out["mappings"][0]["columns"] == doc["mappings"][0]["columns"]
    assert "partition_keys" not in out["analytic_tables"][0]
    assert validate_pipeline(parse_pipeline(doc)) != []


def test_null_partition_by_is_dropped():
    doc = e1_spending()
    doc["mappings"][0]["partition_by"] = None
    out = upgrade_legacy(doc)
    assert "partition_by" not in out["mappings"][0]
    assert "partition_keys" not in out["analytic_tables"][0]


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param({"version": 1}, id="no-mappings"),
        pytest.param({"mappings": "nope"}, id="mappings-not-a-list"),
        pytest.param({"mappings": [1, None, {"partition_by": "month"}]}, id="odd-mappings"),
        pytest.param(
            {"mappings": [{"partition_by": {"column": "d"}, "columns": [{"name": "d", "expr": {}}]}]},
            id="no-tables",
        ),
        pytest.param(
            {
                "mappings": [
                    {"analytic_table_id": "t", "partition_by": {"column": "d"}, "columns": {"name": "d"}}
                ],
                "analytic_tables": [{"id": "t", "schema": "x"}],
            },
            id="columns-not-a-list",
        ),
    ],
)
def test_malformed_documents_pass_through_unchanged(doc):
    assert upgrade_legacy(copy.deepcopy(doc)) == doc
