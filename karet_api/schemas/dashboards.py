"""Models of a pipeline's dashboards."""

from pydantic import BaseModel, Field


class DashboardListing(BaseModel):
    id: str
    name: str = Field(description="The dashboard's own `name`, or its id")


class DashboardList(BaseModel):
    dashboards: list[str] = Field(description="Dashboard ids in key order")
    listings: list[DashboardListing] = Field(description="Sorted by name")
