"""v1 JSON dashboards as SQL panels: identifiers quoted, values bound, v1's null rule, kinds kept or not."""

import duckdb
import pytest

from karet_defs.dashboards.data import DateRange, bind_filters
from karet_defs.dashboards.legacy import parse_v1
from karet_defs.errors import InvalidDashboard
from karet_defs.query.engine import parameter_names

HOSTILE = "x'); DROP TABLE t; --"


def _col(name):
    return {"kind": "col", "name": name}


def _count_where(*where):
    return parse_v1(
        {
            "analytic_table_id": "t",
            "where": list(where),
            "panels": [{"kind": "kpi", "title": "n", "agg": "count"}],
        },
        "board",
    )


def _answer(dashboard, panel=0, **values):
    """Run a panel's SQL over a small table holding a null, with its parameters bound as the server does."""
    sql = dashboard.panels[panel].query
    bound = bind_filters(dashboard, values)
    with duckdb.connect() as con:
        con.execute(
            "CREATE TABLE t AS SELECT * FROM (VALUES "
            "('a', 1.0, DATE '2026-04-02'), ('b', 2.0, DATE '2026-05-03'), (NULL, 3.0, DATE '2026-05-04')"
            ') v("who", "amount", "when")'
        )
        return con.execute(sql, {n: bound[n] for n in parameter_names(sql)}).fetchall()


@pytest.mark.parametrize(
    ("where", "count"),
    [
        ({"kind": "eq", "left": _col("who"), "right": {"kind": "str", "value": "a"}}, 1),
        ({"kind": "ne", "left": _col("who"), "right": {"kind": "str", "value": "a"}}, 2),  # null != a: true
        ({"kind": "gt", "left": _col("amount"), "right": {"kind": "num", "value": 1}}, 2),
        ({"kind": "contains", "input": {"kind": "upper", "input": _col("who")}, "pattern": "B"}, 1),
        ({"kind": "eq", "left": {"kind": "coalesce", "args": [_col("who"), {"kind": "str", "value": "?"}]},
          "right": {"kind": "str", "value": "?"}}, 1),
    ],
    ids=["eq", "ne-null-is-true", "gt", "contains-upper", "coalesce"],
)  # fmt: skip
def test_where_keeps_v1s_null_rule(where, count):
    assert _answer(_count_where(where)) == [(count,)]


def test_where_values_are_bound_never_written_into_the_sql():
    dashboard = _count_where({"kind": "eq", "left": _col("who"), "right": {"kind": "str", "value": HOSTILE}})

    assert HOSTILE not in dashboard.panels[0].query
    assert list(dashboard.constants.values()) == [HOSTILE]
    assert _answer(dashboard) == [(0,)]


def test_identifiers_are_quoted():
    dashboard = parse_v1(
        {"analytic_table_id": 'we"ird', "panels": [{"kind": "table", "columns": ['a"b', "c d"]}]}, "board"
    )

    assert dashboard.panels[0].query.startswith('SELECT "a""b", "c d" FROM "we""ird" WHERE true LIMIT $__c0')


def test_filters_become_parameters_named_after_their_columns():
    dashboard = parse_v1(
        {
            "analytic_table_id": "t",
            "filters": [{"kind": "dropdown", "column": "who"}, {"kind": "date_range", "column": "when"}],
            "panels": [{"kind": "kpi", "title": "total", "column": "amount", "agg": "sum"}],
        },
        "board",
    )

    assert [(f.name, f.kind, f.label) for f in dashboard.filters] == [
        ("who", "dropdown", "who"),
        ("when", "date_range", "when"),
    ]
    assert _answer(dashboard) == [(6.0,)]
    assert _answer(dashboard, who="b") == [(2.0,)]
    assert _answer(dashboard, when=DateRange.model_validate({"from": "2026-05-01"})) == [(5.0,)]
    assert dashboard.filters[0].options_sql == (
        'SELECT DISTINCT "who" AS value FROM "t" WHERE "who" IS NOT NULL AND true ORDER BY 1'
    )


def test_panels_aggregate_as_v1_drew_them():
    dashboard = parse_v1(
        {
            "analytic_table_id": "t",
            "panels": [
                {"kind": "doughnut", "group_by": "who", "value": "amount", "agg": "sum"},
                {"kind": "bar", "group_by": "who", "limit": 1},
                {"kind": "bar", "group_by": "when", "x_bin": "month", "value": "amount", "agg": "max"},
                {"kind": "line", "x": "when", "y": "amount", "agg": "avg"},
                {"kind": "sankey", "flows": [{"from": "in", "to": "out", "value": "amount",
                                              "agg": "abs_sum"}], "labels": {"in": "Income"}},
            ],
        },
        "board",
    )  # fmt: skip

    assert _answer(dashboard, 0) == [(None, 3.0), ("b", 2.0), ("a", 1.0)]
    assert dashboard.panels[1].horizontal and len(_answer(dashboard, 1)) == 1
    assert [(str(x), y) for x, y in _answer(dashboard, 2)] == [("2026-04-01", 1.0), ("2026-05-01", 3.0)]
    assert not dashboard.panels[2].horizontal
    assert len(_answer(dashboard, 3)) == 3
    assert _answer(dashboard, 4) == [("Income", "out", 6.0)]


def test_kinds_sql_cannot_draw_are_kept_with_their_problem():
    dashboard = parse_v1(
        {"analytic_table_id": "t", "panels": [{"kind": "summary", "title": "S", "columns": ["a"]}]}, "board"
    )

    assert dashboard.panels[0].query is None
    assert dashboard.panels[0].problem.startswith("panel kind `summary` is not supported")


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"panels": []}, "/analytic_table_id"),
        ({"analytic_table_id": "t", "panels": [{"kind": "doughnut"}]}, "/panels/0/group_by"),
        ({"analytic_table_id": "t", "panels": [{"kind": "kpi", "agg": "median"}]}, "/panels/0/agg"),
        ({"analytic_table_id": "t", "where": [{"kind": "add", "left": _col("a"), "right": _col("b")}]},
         "/where/0"),
        ({"analytic_table_id": "t", "panels": [{"kind": "sankey"}]}, "/panels/0/flows"),
        ({"analytic_table_id": "t", "panels": [{"kind": "table", "grid": {"aspect": "tall"}}]},
         "/panels/0/grid/aspect"),
    ],
    ids=["no-table", "no-group-by", "agg", "where-kind", "no-flows", "grid"],
)  # fmt: skip
def test_what_cannot_be_translated_is_invalid_with_the_path(document, path):
    with pytest.raises(InvalidDashboard) as refused:
        parse_v1(document, "board")

    assert refused.value.details[0]["path"] == path
