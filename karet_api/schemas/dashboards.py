"""Models of a pipeline's dashboards: listings, the page's spec, filter values, data and verdicts."""

from typing import Any

from pydantic import BaseModel, Field

from karet_defs.dashboards.data import DateRange
from karet_defs.dashboards.models import Dashboard


class DashboardListing(BaseModel):
    id: str
    name: str = Field(description="The dashboard's own `name`, or its id")


class DashboardList(BaseModel):
    dashboards: list[str] = Field(description="Dashboard ids in key order")
    listings: list[DashboardListing] = Field(description="Sorted by name")


class DashboardSpec(BaseModel):
    dashboard: Dashboard = Field(description="The dashboard in its normalized shape (v1 panels as SQL)")
    charts: list[dict[str, Any] | None] = Field(
        description="A Vega-Lite spec per panel over the named dataset `rows`; null for a table"
    )


class DashboardDataRequest(BaseModel):
    filters: dict[str, DateRange | str | int | float | bool | None] = Field(
        default={},
        description=(
            "Values by filter name: a dropdown's value, a date range's `{from, to}` (ISO dates, either may "
            "be left out). An absent or null value leaves the filter unset; unknown names are ignored."
        ),
    )
