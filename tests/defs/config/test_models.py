import pytest
from pydantic import TypeAdapter, ValidationError

from karet_defs.config.models import (
    AstNode,
    Binary,
    Bool,
    Cast,
    Coalesce,
    Col,
    Concat,
    Contains,
    FromUnix,
    If,
    LookupRef,
    Null,
    Num,
    ParseDate,
    Pipeline,
    SourceContainer,
    Str,
    Substring,
    Unary,
)

AST = TypeAdapter(AstNode)
A = {"kind": "col", "name": "a"}
B = {"kind": "col", "name": "b"}
COL_A = Col(kind="col", name="a")
COL_B = Col(kind="col", name="b")

BLANK = {"version": 1, "source_containers": [], "lookup_mappings": [], "mappings": [], "analytic_tables": []}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(A, COL_A, id="col"),
        pytest.param({"kind": "str", "value": "x"}, Str(kind="str", value="x"), id="str"),
        pytest.param({"kind": "num", "value": 100}, Num(kind="num", value=100.0), id="num"),
        pytest.param({"kind": "bool", "value": False}, Bool(kind="bool", value=False), id="bool"),
        pytest.param({"kind": "null"}, Null(kind="null"), id="null"),
        *[
            pytest.param(
                {"kind": op, "left": A, "right": B},
                Binary(kind=op, left=COL_A, right=COL_B),
                id=op,
            )
            for op in ("add", "sub", "mul", "div", "eq", "ne", "gt", "lt", "ge", "le", "and", "or")
        ],
        *[
            pytest.param({"kind": op, "input": A}, Unary(kind=op, input=COL_A), id=op)
            for op in ("not", "upper", "lower", "trim", "year", "month", "day")
        ],
        pytest.param(
            {"kind": "contains", "input": A, "pattern": "UBER"},
            Contains(kind="contains", input=COL_A, pattern="UBER"),
            id="contains",
        ),
        pytest.param(
            {"kind": "substring", "input": A, "start": 2, "length": 3},
            Substring(kind="substring", input=COL_A, start=2, length=3),
            id="substring",
        ),
        pytest.param(
            {"kind": "substring", "input": A, "start": 0},
            Substring(kind="substring", input=COL_A, start=0, length=None),
            id="substring-to-end",
        ),
        pytest.param(
            {"kind": "concat", "sep": " ", "args": [A, {"kind": "null"}]},
            Concat(kind="concat", sep=" ", args=[COL_A, Null(kind="null")]),
            id="concat",
        ),
        pytest.param(
            {"kind": "if", "cond": {"kind": "bool", "value": True}, "then": A, "else": B},
            If(kind="if", cond=Bool(kind="bool", value=True), then=COL_A, else_=COL_B),
            id="if",
        ),
        pytest.param(
            {"kind": "coalesce", "args": []},
            Coalesce(kind="coalesce", args=[]),
            id="coalesce-empty",
        ),
        pytest.param(
            {"kind": "coalesce", "args": [A, B]},
            Coalesce(kind="coalesce", args=[COL_A, COL_B]),
            id="coalesce",
        ),
        pytest.param(
            {"kind": "parse_date", "input": A, "format": "%m/%d/%Y"},
            ParseDate(kind="parse_date", input=COL_A, format="%m/%d/%Y"),
            id="parse_date",
        ),
        pytest.param(
            {"kind": "parse_date", "input": A},
            ParseDate(kind="parse_date", input=COL_A, format="%Y-%m-%d"),
            id="parse_date-default-format",
        ),
        *[
            pytest.param(
                {"kind": "cast", "input": A, "to": to}, Cast(kind="cast", input=COL_A, to=to), id=f"cast-{to}"
            )
            for to in ("int64", "float64", "string", "date")
        ],
        pytest.param(
            {"kind": "lookup_ref", "lookup_id": "categories.merchants", "input": A},
            LookupRef(kind="lookup_ref", lookup_id="categories.merchants", input=COL_A),
            id="lookup_ref",
        ),
        pytest.param(
            {"kind": "from_unix", "input": A},
            FromUnix(kind="from_unix", input=COL_A, unit="s"),
            id="from_unix",
        ),
        pytest.param(
            {"kind": "from_unix", "input": A, "unit": "ms"},
            FromUnix(kind="from_unix", input=COL_A, unit="ms"),
            id="from_unix-ms",
        ),
    ],
)
def test_every_expression_kind_parses(raw, expected):
    assert AST.validate_python(raw) == expected


def test_if_dumps_else_under_its_json_name():
    node = AST.validate_python({"kind": "if", "cond": A, "then": A, "else": B})
    assert node.model_dump(by_alias=True)["else"] == B


@pytest.mark.parametrize(
    ("raw", "error_type"),
    [
        pytest.param({"kind": "foo"}, "union_tag_invalid", id="unknown-kind"),
        pytest.param({"kind": "lit", "value": 1}, "union_tag_invalid", id="no-lit-kind"),
        pytest.param({"name": "a"}, "union_tag_not_found", id="no-kind"),
        pytest.param({"kind": "col", "name": "a", "extra": 1}, "extra_forbidden", id="unknown-field"),
        pytest.param({"kind": "add", "left": A}, "missing", id="missing-operand"),
        pytest.param(
            {"kind": "substring", "input": A, "start": -1}, "greater_than_equal", id="negative-start"
        ),
        pytest.param({"kind": "cast", "input": A, "to": "timestamp"}, "literal_error", id="unknown-cast"),
        pytest.param({"kind": "from_unix", "input": A, "unit": "us"}, "literal_error", id="unknown-unit"),
    ],
)
def test_malformed_expressions_are_refused(raw, error_type):
    with pytest.raises(ValidationError) as info:
        AST.validate_python(raw)
    assert info.value.errors()[0]["type"] == error_type


def test_blank_template_parses_to_empty_pipeline():
    pipeline = Pipeline.model_validate(BLANK)
    assert pipeline.version == 1
    assert pipeline.source_containers == pipeline.lookup_mappings == pipeline.mappings == []
    assert pipeline.analytic_tables == []
    assert pipeline.layout == {}


@pytest.mark.parametrize("key", ["source_containers", "lookup_mappings", "mappings", "analytic_tables"])
def test_each_top_level_array_is_required(key):
    doc = {k: v for k, v in BLANK.items() if k != key}
    with pytest.raises(ValidationError) as info:
        Pipeline.model_validate(doc)
    assert [(e["type"], e["loc"]) for e in info.value.errors()] == [("missing", (key,))]


def test_unknown_top_level_keys_and_layout_are_accepted():
    pipeline = Pipeline.model_validate({**BLANK, "layout": {"src": {"x": 1, "y": 2}}, "future": True})
    assert pipeline.layout == {"src": {"x": 1, "y": 2}}


def test_mapping_denies_unknown_fields_but_tables_ignore_output_prefix():
    mapping = {"id": "m", "source_container_id": "s", "analytic_table_id": "t", "columns": [], "oops": 1}
    with pytest.raises(ValidationError, match="oops"):
        Pipeline.model_validate({**BLANK, "mappings": [mapping]})
    table = {"id": "t", "name": "T", "output_prefix": "clean/t/", "schema": [{"name": "a"}]}
    pipeline = Pipeline.model_validate({**BLANK, "analytic_tables": [table]})
    assert pipeline.analytic_tables[0].output_prefix == "clean/t/"
    assert pipeline.analytic_tables[0].schema_[0].type == "string"


def test_lookups_parse_with_children_and_defaults():
    lookup = {
        "id": "categories",
        "rows": [{"input_patterns": ["PAYROLL"], "output": "INCOME", "priority": 10}],
        "children": [{"id": "merchants", "rows": [], "case_insensitive": True}],
        "catch_all": {"output": "OTHER"},
    }
    parsed = Pipeline.model_validate({**BLANK, "lookup_mappings": [lookup]}).lookup_mappings[0]
    assert (parsed.match, parsed.case_insensitive, parsed.catch_all.output) == (
        "keyword_substring",
        False,
        "OTHER",
    )
    assert parsed.rows[0].priority == 10
    assert (parsed.children[0].id, parsed.children[0].case_insensitive) == ("merchants", True)


@pytest.mark.parametrize(
    ("prefix", "resolved"),
    [
        pytest.param(
            "pipelines/spending/transactions/", "pipelines/spending/transactions/", id="absolute-E2b"
        ),
        pytest.param("transactions/", "pipelines/demo/transactions/", id="relative-E2a"),
        pytest.param("raw/transactions/", "pipelines/demo/raw/transactions/", id="relative-E1"),
    ],
)
def test_source_prefix_resolves_against_the_pipeline_folder(prefix, resolved):
    assert SourceContainer(id="s", path_prefix=prefix).resolved_prefix("demo") == resolved


def test_pipeline_lookup_helpers_return_first_match():
    doc = {
        **BLANK,
        "source_containers": [{"id": "s", "name": "S", "path_prefix": "s/"}],
        "mappings": [
            {"id": "m1", "source_container_id": "s", "analytic_table_id": "t", "columns": []},
            {"id": "m2", "source_container_id": "s", "analytic_table_id": "u", "columns": []},
            {"id": "m3", "source_container_id": "s", "analytic_table_id": "t", "columns": []},
        ],
        "analytic_tables": [{"id": "t", "name": "T", "schema": [{"name": "a", "type": "date"}]}],
    }
    pipeline = Pipeline.model_validate(doc)
    assert pipeline.source("s").path_prefix == "s/"
    assert pipeline.source("x") is None
    assert pipeline.table("u") is None
    assert [m.id for m in pipeline.mappings_of_table("t")] == ["m1", "m3"]
    assert pipeline.table("t").column("a").type == "date"
    assert pipeline.table("t").column("b") is None
