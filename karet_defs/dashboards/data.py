"""A dashboard's data: every panel's query and every dropdown's ``options_sql``, run with the filters bound.

Each query goes through the locked-down query engine with only the parameters it names bound: a dropdown
``d`` is ``$d``, a date range ``p`` is ``$p_from`` and ``$p_to``, and v1 literals are their ``__c<n>``.
An unset dropdown binds NULL, so a panel that wants "everything until one is chosen" writes
``($d IS NULL OR col = $d)``; an unset date range (or an unset end of one) binds ``0001-01-01`` …
``9999-12-31``, so ``date BETWEEN $p_from AND $p_to`` keeps every dated row, as Karet's page did before a
range was picked. One panel failing (its SQL, a missing parameter, the row cap) is that panel's
``error``; the others still answer. Validation plans the same queries (``LIMIT 0``, no row read) with
the unset bindings and lists every problem: a query that does not plan, a column a chart needs that the
query does not answer, a cross-filter naming no filter, a dropdown without options.
"""

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from karet_defs.dashboards.files import load_dashboard
from karet_defs.dashboards.models import Dashboard, DashboardFilter, Panel, problem
from karet_defs.errors import InvalidDashboard, InvalidFilterValue, MissingSql, QueryError, QueryTooLong
from karet_defs.query.engine import (
    QueryLimits,
    QueryResult,
    parameter_names,
    pipeline_tables,
    plan_query,
    run_query,
)
from karet_defs.store.base import Stores

EARLIEST = dt.date(1, 1, 1)
LATEST = dt.date(9999, 12, 31)
# What a query of a dashboard may fail with and still leave the others to answer.
_QUERY_FAILURES = (QueryError, MissingSql, QueryTooLong)


class DateRange(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    from_: dt.date | None = Field(default=None, alias="from")
    to: dt.date | None = None


class PanelData(BaseModel):
    title: str
    kind: str
    columns: list[str] = []
    rows: list[dict[str, Any]] = []
    error: str | None = None


class DashboardData(BaseModel):
    panels: list[PanelData]
    filters: dict[str, list[Any]] = Field(description="Each dropdown's options (its query's first column)")
    filter_errors: dict[str, str] = Field(
        default={}, description="Dropdowns whose options query failed, with the reason"
    )


class Problem(BaseModel):
    kind: str
    message: str
    path: str = Field(description="JSON Pointer into the dashboard, e.g. `/panels/1/query`")


class Verdict(BaseModel):
    ok: bool
    errors: list[Problem] = []


def bind_filters(dashboard: Dashboard, values: Mapping[str, object]) -> dict[str, object]:
    """Every parameter the dashboard's queries may name, from the filter values given (unknown names are
    ignored); ``invalid_filter`` when a value has the wrong shape for its filter."""
    bound: dict[str, object] = dict(dashboard.constants)
    for f in dashboard.filters:
        given = values.get(f.name)
        if f.kind == "date_range":
            if given is not None and not isinstance(given, DateRange):
                raise _wrong_shape(f, 'a date range is {"from": "YYYY-MM-DD", "to": "YYYY-MM-DD"}')
            span = given or DateRange()
            bound[f"{f.name}_from"] = span.from_ or EARLIEST
            bound[f"{f.name}_to"] = span.to or LATEST
        else:
            if isinstance(given, DateRange | dict | list):
                raise _wrong_shape(f, "a dropdown's value is one text, number or boolean")
            bound[f.name] = given
    return bound


def _wrong_shape(f: DashboardFilter, expected: str) -> InvalidFilterValue:
    message = f"filter `{f.name}`: {expected}"
    return InvalidFilterValue(message, details=[problem("invalid_filter", message, f"/filters/{f.name}")])


def dashboard_data(
    stores: Stores,
    slug: str,
    dashboard: Dashboard,
    values: Mapping[str, object],
    *,
    limits: QueryLimits | None = None,
) -> DashboardData:
    """Every panel's rows (or its error) and every dropdown's options, with ``values`` bound."""
    pipeline_tables(stores, slug)  # a missing pipeline is the request's failure, not every panel's
    bound = bind_filters(dashboard, values)
    panels = [_panel_data(stores, slug, p, bound, limits) for p in dashboard.panels]
    options: dict[str, list[Any]] = {}
    failures: dict[str, str] = {}
    for f in dashboard.filters:
        if f.kind != "dropdown":
            continue
        options[f.name] = []
        if f.options_sql is None:
            continue
        try:
            result = _run(stores, slug, f.options_sql, bound, limits)
        except _QUERY_FAILURES as exc:
            failures[f.name] = exc.message
            continue
        options[f.name] = [row[0] for row in result.rows if row]
    return DashboardData(panels=panels, filters=options, filter_errors=failures)


def _panel_data(
    stores: Stores, slug: str, panel: Panel, bound: dict[str, object], limits: QueryLimits | None
) -> PanelData:
    answer = PanelData(title=panel.title, kind=panel.kind)
    if panel.problem is not None:
        return answer.model_copy(update={"error": panel.problem})
    try:
        result = _run(stores, slug, panel.query or "", bound, limits)
    except _QUERY_FAILURES as exc:
        return answer.model_copy(update={"error": exc.message})
    columns = [c.name for c in result.columns]
    rows = [dict(zip(columns, row, strict=True)) for row in result.rows]
    return answer.model_copy(update={"columns": columns, "rows": rows})


def _run(
    stores: Stores, slug: str, sql: str, bound: dict[str, object], limits: QueryLimits | None
) -> QueryResult:
    return run_query(stores, slug, sql, _parameters(sql, bound), limits=limits)


def _parameters(sql: str, bound: dict[str, object]) -> dict[str, object]:
    """The bound values ``sql`` names; ``query_error`` naming any no filter gives."""
    names = parameter_names(sql)
    unknown = sorted(names - bound.keys())
    if unknown:
        given = ", ".join(f"${n}" for n in sorted(bound) if not n.startswith("__")) or "none"
        raise QueryError(
            f"no filter gives {', '.join(f'${n}' for n in unknown)} (the dashboard's parameters: {given})"
        )
    return {name: bound[name] for name in names}


def validate_dashboard(stores: Stores, slug: str, name: str, *, limits: QueryLimits | None = None) -> Verdict:
    """Plan every query of dashboard ``name`` and list every problem; one that does not parse is a verdict
    too (its ``schema`` problems). ``dashboard_not_found`` when there is no such dashboard."""
    pipeline_tables(stores, slug)
    try:
        dashboard = load_dashboard(stores, slug, name)
    except InvalidDashboard as exc:
        return Verdict(ok=False, errors=[Problem(**d) for d in exc.details or []])
    bound = bind_filters(dashboard, {})
    errors: list[dict[str, str]] = []
    names = {f.name for f in dashboard.filters}
    for i, f in enumerate(dashboard.filters):
        if f.kind != "dropdown":
            continue
        if f.options_sql is None:
            errors.append(
                problem("missing_field", f"dropdown `{f.name}` has no options_sql", f"/filters/{i}")
            )
            continue
        errors += _plan_problems(stores, slug, f.options_sql, bound, limits, f"/filters/{i}/options_sql")
    for i, panel in enumerate(dashboard.panels):
        at = f"/panels/{i}"
        if panel.problem is not None:
            errors.append(problem("unsupported_panel", panel.problem, f"{at}/kind"))
            continue
        if panel.emit is not None and panel.emit.param not in names:
            message = f"emit names `{panel.emit.param}`, which is no filter of the dashboard"
            errors.append(problem("dangling_reference", message, f"{at}/emit/param"))
        errors += _plan_problems(stores, slug, panel.query or "", bound, limits, f"{at}/query", panel.plotted)
    return Verdict(ok=not errors, errors=[Problem(**e) for e in errors])


def _plan_problems(
    stores: Stores,
    slug: str,
    sql: str,
    bound: dict[str, object],
    limits: QueryLimits | None,
    query_path: str,
    needed: Mapping[str, str] | None = None,
) -> list[dict[str, str]]:
    """The problems of one query: it does not plan, or lacks a column the chart reads (``needed``: the
    panel field naming each column)."""
    try:
        columns = {c.name for c in plan_query(stores, slug, sql, _parameters(sql, bound), limits=limits)}
    except _QUERY_FAILURES as exc:
        return [problem(exc.code, exc.message, query_path)]
    answered = ", ".join(sorted(columns)) or "nothing"
    return [
        problem(
            "missing_column",
            f"the query answers no column `{column}` (it answers {answered})",
            query_path.rsplit("/", 1)[0] + f"/{field}",
        )
        for field, column in (needed or {}).items()
        if column not in columns
    ]
