"""The E4 upgrade of REFERENCE §1.9: ``lookup_mappings`` become flat ``dimensions``, ``lookup_ref`` becomes
``dim_ref``.

It follows Karet's ``lib/config/migrate.ts``: each lookup, children included (flattened, each keeping its own
id), becomes a dimension with one value column ``value``; ``match`` stays ``exact`` when it was and is
``keyword_substring`` otherwise; each row ``{input_patterns, output, priority}`` becomes ``{patterns,
values: [output], priority}``; a ``catch_all`` becomes ``on_miss: {"literal": ...}``; and every ``lookup_ref
{lookup_id}`` becomes ``dim_ref {dim_id}`` with a dotted id reduced to its last segment. Beyond Karet, the
flattened dimensions are appended to any the config already has (Karet replaced them), and source
``record_filter`` expressions are rewritten too. The upgrade works on the raw JSON document, changes
nothing else, is idempotent and never raises; what it cannot carry over is said in its notes: a parent
lookup scanned its children before its own rows, a dimension does not.
"""

from dataclasses import dataclass, field
from typing import Any

VALUE_COLUMN = "value"


@dataclass(frozen=True)
class Upgrade:
    """The upgraded document, whether anything changed, and what a person should know about it."""

    config: dict[str, Any]
    changed: bool
    notes: list[str] = field(default_factory=list)


def upgrade_lookups(doc: dict[str, Any]) -> Upgrade:
    """``doc`` with its lookups turned into dimensions and its ``lookup_ref`` nodes into ``dim_ref``."""
    lookups = doc.get("lookup_mappings")
    if not isinstance(lookups, list):
        return Upgrade(doc, False)
    notes: list[str] = []
    out = {k: v for k, v in doc.items() if k != "lookup_mappings"}
    existing = doc.get("dimensions")
    out["dimensions"] = (existing if isinstance(existing, list) else []) + _flatten(lookups, notes)
    mappings = doc.get("mappings")
    if isinstance(mappings, list):
        out["mappings"] = [_upgrade_mapping(m) for m in mappings]
    sources = doc.get("source_containers")
    if isinstance(sources, list):
        out["source_containers"] = [
            {**s, "record_filter": _upgrade_expr(s["record_filter"])}
            if isinstance(s, dict) and isinstance(s.get("record_filter"), dict)
            else s
            for s in sources
        ]
    return Upgrade(out, True, notes)


def _flatten(lookups: list[Any], notes: list[str]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for lookup in lookups:
        if not isinstance(lookup, dict):
            continue
        out.append(_dimension(lookup))
        children = lookup.get("children")
        if isinstance(children, list) and children:
            ids = ", ".join(f"`{c.get('id')}`" for c in children if isinstance(c, dict))
            notes.append(
                f"lookup `{lookup.get('id')}` had children ({ids}); each is now a dimension of its own, and "
                f"`{lookup.get('id')}` no longer matches their rows before its own"
            )
            out += _flatten(children, notes)
    return out


def _dimension(lookup: dict[str, Any]) -> dict[str, Any]:
    dimension: dict[str, Any] = {"id": lookup.get("id", "")}
    if lookup.get("name") is not None:
        dimension["name"] = lookup["name"]
    dimension["match"] = "exact" if lookup.get("match") == "exact" else "keyword_substring"
    if lookup.get("case_insensitive") is not None:
        dimension["case_insensitive"] = lookup["case_insensitive"]
    given_rows = lookup.get("rows")
    rows = given_rows if isinstance(given_rows, list) else []
    dimension["rows"] = {
        "values": [VALUE_COLUMN],
        "rows": [_row(row) for row in rows if isinstance(row, dict)],
    }
    catch_all = lookup.get("catch_all")
    if isinstance(catch_all, dict) and catch_all.get("output") is not None:
        dimension["on_miss"] = {"literal": catch_all["output"]}
    return dimension


def _row(row: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"patterns": row.get("input_patterns") or [], "values": [row.get("output") or ""]}
    if row.get("priority"):
        out["priority"] = row["priority"]
    return out


def _upgrade_mapping(mapping: Any) -> Any:
    if not isinstance(mapping, dict):
        return mapping
    out = dict(mapping)
    if isinstance(mapping.get("columns"), list):
        out["columns"] = [
            {**c, "expr": _upgrade_expr(c["expr"])} if isinstance(c, dict) and "expr" in c else c
            for c in mapping["columns"]
        ]
    if isinstance(mapping.get("where"), dict):
        out["where"] = _upgrade_expr(mapping["where"])
    return out


def _upgrade_expr(node: Any) -> Any:
    if isinstance(node, list):
        return [_upgrade_expr(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "kind" and value == "lookup_ref":
            out["kind"] = "dim_ref"
        elif key == "lookup_id" and isinstance(value, str) and node.get("kind") == "lookup_ref":
            # A child lookup became its own dimension under its leaf id.
            out["dim_id"] = value.rsplit(".", 1)[-1]
        else:
            out[key] = _upgrade_expr(value)
    return out
