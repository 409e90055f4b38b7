"""What the Dagster UI says of rules and columns: assertions in words, expressions as formulas."""

import json

import dagster as dg
import pytest

from karet_defs.catalog import read_pipeline
from karet_defs.config.models import ColumnSchema, MappingColumn
from karet_defs.definitions import build_definitions
from karet_defs.orchestration.describe import (
    MAX_EXPRESSION_CHARS,
    describe_assertions,
    render_expression,
)
from karet_defs.orchestration.pipeline import build_pipeline_defs
from karet_defs.orchestration.resources import StoreResource
from karet_defs.store import keys
from karet_defs.templates import install_template
from tests.factories import col, make_pipeline, put_config, put_raw


@pytest.mark.parametrize(
    ("assertions", "said"),
    [
        ({"not_null": True}, "amount is never null"),
        ({"unique": True}, "amount is unique"),
        ({"accepted_values": ["a", "b"]}, "amount is one of: a, b"),
        ({"min": 0}, "amount is at least 0"),
        ({"max": 99.5}, "amount is at most 99.5"),
        ({"min": -1, "max": 1234567.25}, "amount is between -1 and 1234567.25"),
        (
            {"not_null": True, "unique": True, "accepted_values": ["x"], "min": 1},
            "amount is never null; amount is unique; amount is one of: x; amount is at least 1",
        ),
        ({"accepted_values": []}, "amount has no assertion set"),
        ({}, "amount has no assertion set"),
    ],
)
def test_assertions_in_words(assertions, said):
    assert describe_assertions(ColumnSchema(name="amount", assertions=assertions)) == said


def test_many_accepted_values_are_cut_and_odd_names_quoted():
    column = ColumnSchema(name="first name", assertions={"accepted_values": [str(i) for i in range(25)]})
    assert describe_assertions(column) == (
        "`first name` is one of: " + ", ".join(str(i) for i in range(20)) + ", … (25 values in all)"
    )


@pytest.mark.parametrize(
    ("expr", "formula"),
    [
        (col("amount"), "amount"),
        (col("first name"), "`first name`"),
        ({"kind": "str", "value": 'say "hi"'}, '"say \\"hi\\""'),
        ({"kind": "num", "value": 2}, "2"),
        ({"kind": "bool", "value": False}, "false"),
        ({"kind": "null"}, "null"),
        (
            {
                "kind": "mul",
                "left": {"kind": "add", "left": col("a"), "right": {"kind": "num", "value": 1.5}},
                "right": col("b"),
            },
            "(a + 1.5) * b",
        ),
        ({"kind": "not", "input": {"kind": "eq", "left": col("a"), "right": col("b")}}, "not (a = b)"),
        ({"kind": "upper", "input": {"kind": "trim", "input": col("d")}}, "upper(trim(d))"),
        ({"kind": "contains", "input": col("d"), "pattern": "UBER"}, 'contains(d, "UBER")'),
        ({"kind": "substring", "input": col("d"), "start": 0, "length": 4}, "substring(d, 0, 4)"),
        ({"kind": "substring", "input": col("d"), "start": 2}, "substring(d, 2)"),
        ({"kind": "concat", "args": [col("a"), col("b")]}, "concat(a, b)"),
        ({"kind": "concat", "sep": "-", "args": [col("a"), col("b")]}, 'concat(a, b, sep="-")'),
        (
            {
                "kind": "if",
                "cond": {"kind": "gt", "left": col("a"), "right": {"kind": "num", "value": 0}},
                "then": {"kind": "str", "value": "in"},
                "else": {"kind": "str", "value": "out"},
            },
            'if a > 0 then "in" else "out"',
        ),
        ({"kind": "coalesce", "args": [col("a"), {"kind": "str", "value": "?"}]}, 'coalesce(a, "?")'),
        ({"kind": "parse_date", "input": col("d")}, "parse_date(d)"),
        ({"kind": "parse_date", "input": col("d"), "format": "%d/%m/%Y"}, 'parse_date(d, "%d/%m/%Y")'),
        ({"kind": "cast", "input": col("a"), "to": "int64"}, "cast(a, int64)"),
        ({"kind": "lookup_ref", "lookup_id": "categories", "input": col("d")}, "lookup(categories, d)"),
        ({"kind": "from_unix", "input": col("t")}, "from_unix(t)"),
        ({"kind": "from_unix", "input": col("t"), "unit": "ms"}, "from_unix(t, ms)"),
        ({"kind": "year", "input": {"kind": "parse_date", "input": col("d")}}, "year(parse_date(d))"),
    ],
)
def test_expressions_as_formulas(expr, formula):
    assert render_expression(MappingColumn(name="x", expr=expr).expr) == formula


def test_a_very_long_formula_is_cut():
    expr = {"kind": "concat", "args": [col(f"column_{i}") for i in range(100)]}
    formula = render_expression(MappingColumn(name="x", expr=expr).expr)
    assert len(formula) == MAX_EXPRESSION_CHARS and formula.endswith("…")


def test_definitions_describe_checks_and_columns_in_words(local_settings, local_stores):
    config = make_pipeline(
        source_columns=[("id", "string"), ("amount", "string"), ("kind", "string")],
        columns=[
            ("id", col("id")),
            ("amount", {"kind": "cast", "input": col("amount"), "to": "float64"}),
            ("kind", {"kind": "lower", "input": col("kind")}),
        ],
        table_schema=[
            {"name": "id", "type": "string", "assertions": {"not_null": True, "unique": True}},
            {"name": "amount", "type": "float64", "assertions": {"min": 0, "max": 1000}},
            {"name": "kind", "type": "string", "assertions": {"accepted_values": ["a", "b"]}},
            {"name": "note", "type": "string"},
        ],
    )
    put_config(local_stores, "shop", config)

    graph = build_definitions(StoreResource(data_dir=str(local_settings.data_dir))).resolve_asset_graph()

    key = dg.AssetKey(["shop", "t"])
    checks = {
        k.name: graph.get_check_spec(k).description for k in graph.asset_check_keys if k.asset_key == key
    }
    assert {name: text for name, text in checks.items() if name.startswith("assertions_")} == {
        "assertions_id": "id is never null; id is unique",
        "assertions_amount": "amount is between 0 and 1000",
        "assertions_kind": "kind is one of: a, b",
    }
    columns = {c.name: c.description for c in graph.get(key).metadata["dagster/column_schema"].columns}
    assert columns == {
        "id": "from mapping m: id",
        "amount": "from mapping m: cast(amount, float64)",
        "kind": "from mapping m: lower(kind)",
        "note": "not filled by any mapping",
    }


def test_a_materialization_names_the_expressions_the_run_used(local_settings, local_stores):
    install_template(local_stores, "spending", "spending")
    store = StoreResource(data_dir=str(local_settings.data_dir))
    defs = build_pipeline_defs(read_pipeline(local_stores, "spending"), "spending", store)
    # An edit of an expression after the code location loaded: the next run uses it, and says so.
    config = json.loads(local_stores.pipelines.get(keys.config_key("spending")))
    [account] = [c for c in config["mappings"][0]["columns"] if c["name"] == "account"]
    account["expr"] = {"kind": "upper", "input": col("account")}
    put_config(local_stores, "spending", config)

    with dg.instance_for_test() as instance:
        result = dg.materialize(list(defs.assets or []), resources={"store": store}, instance=instance)
        event = instance.get_latest_materialization_event(dg.AssetKey(["spending", "transactions"]))

    assert result.success
    schema = event.asset_materialization.metadata["dagster/column_schema"].value
    assert {c.name: c.description for c in schema.columns} == {
        "date": "from mapping transactions_mapping: parse_date(date)",
        "description": "from mapping transactions_mapping: upper(trim(description))",
        "merchant": "from mapping transactions_mapping: "
        "coalesce(lookup(merchants, upper(trim(description))), upper(trim(description)))",
        "amount": "from mapping transactions_mapping: cast(amount, float64)",
        "account": "from mapping transactions_mapping: upper(account)",
        "category": "from mapping transactions_mapping: lookup(categories, upper(trim(description)))",
        "year": "from mapping transactions_mapping: year(parse_date(date))",
        "month": "from mapping transactions_mapping: month(parse_date(date))",
    }


def test_a_failed_assertion_check_says_what_broke(local_settings, local_stores):
    config = make_pipeline(
        source_columns=[("id", "string")],
        columns=[("id", col("id"))],
        table_schema=[{"name": "id", "type": "string"}],
    )
    # A second table whose `unique` fails: it publishes nothing while `t` does, so the run's checks report.
    config["mappings"].append({**config["mappings"][0], "id": "mu", "analytic_table_id": "u"})
    config["analytic_tables"].append(
        {"id": "u", "name": "U", "schema": [{"name": "id", "type": "string", "assertions": {"unique": True}}]}
    )
    put_config(local_stores, "dupes", config)
    put_raw(local_stores, "pipelines/dupes/raw/a.csv", "id\n1\n1\n")
    store = StoreResource(data_dir=str(local_settings.data_dir))
    defs = build_pipeline_defs(read_pipeline(local_stores, "dupes"), "dupes", store)

    with dg.instance_for_test() as instance:
        result = dg.materialize(list(defs.assets or []), resources={"store": store}, instance=instance)

    checks = {(e.asset_key.path[-1], e.check_name): e for e in result.get_asset_check_evaluations()}
    failed = checks[("u", "assertions_id")]
    assert not failed.passed
    assert failed.description == "column `id` unique: 1 duplicate value(s)"
