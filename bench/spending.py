"""The Spending Tracker transform as the baselines hand-code it: output schema and lookups in match order.

The lookup rows are read from the template's ``pipeline.json`` (plain JSON, no engine code), so the baselines
cannot drift from the lookups our engine runs. Rows come in the order the first match wins: highest
``priority`` first (INCOME, priority 10), ties to the earliest row. Patterns are upper-cased because the
baselines match them against the already upper-cased description, which makes the case-insensitive match
a plain substring test.
"""

import json
from dataclasses import dataclass
from importlib import resources

SLUG = "bench"
TABLE = "transactions"
PARTITION_KEYS = ("year", "month")
# Column name -> Polars dtype name, in output order; partition columns last (Hive path segments).
OUTPUT_SCHEMA = {
    "date": "Date",
    "description": "String",
    "merchant": "String",
    "amount": "Float64",
    "account": "String",
    "category": "String",
    "year": "Int64",
    "month": "Int64",
}
DATE_FORMAT = "%Y-%m-%d"


@dataclass(frozen=True)
class Lookup:
    rows: list[tuple[list[str], str]]  # (patterns, output), the winning row first
    catch_all: str | None


def template_config() -> dict:
    return json.loads((resources.files("karet_defs.templates") / "spending" / "pipeline.json").read_text())


def lookup(lookup_id: str) -> Lookup:
    """One lookup of the template, rows in match order."""
    (config,) = [lk for lk in template_config()["lookup_mappings"] if lk["id"] == lookup_id]
    assert not config.get("children"), "the baselines hand-code flat lookups only"
    order = sorted(range(len(config["rows"])), key=lambda i: (-config["rows"][i].get("priority", 0), i))
    rows = [
        ([p.upper() for p in config["rows"][i]["input_patterns"]], config["rows"][i]["output"]) for i in order
    ]
    catch_all = config.get("catch_all")
    return Lookup(rows, catch_all["output"] if catch_all else None)
