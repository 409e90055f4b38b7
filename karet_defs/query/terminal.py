"""``karet sql SLUG "SELECT …"``: a query's answer as the text a terminal shows, psql-style or as JSON."""

import json

from karet_defs.errors import KaretError
from karet_defs.query.engine import QueryLimits, QueryResult, run_query
from karet_defs.settings import Settings
from karet_defs.slugs import sanitise_slug
from karet_defs.store.factory import build_stores


def sql_command(settings: Settings, slug: str, sql: str, *, as_json: bool = False) -> tuple[str, int]:
    """The text to print for one query over pipeline ``slug`` and the exit status (0 answered, 1 refused);
    a refusal is Karet's error envelope as JSON."""
    try:
        result = run_query(
            build_stores(settings), sanitise_slug(slug), sql, limits=QueryLimits.from_settings(settings)
        )
    except KaretError as exc:
        return json.dumps(exc.to_dict(), indent=2), 1
    if as_json:
        columns = [c.name for c in result.columns]
        document = {"columns": columns, "rows": result.rows, "rowCount": result.row_count}
        return json.dumps(document, ensure_ascii=False), 0
    return format_table(result), 0


def format_table(result: QueryResult) -> str:
    """Aligned columns under a header, numbers to the right, then ``(N rows)``."""
    header = [c.name for c in result.columns]
    cells = [["" if v is None else _text(v) for v in row] for row in result.rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(header)]
    numeric = [
        all(isinstance(row[i], int | float) or row[i] is None for row in result.rows)
        for i in range(len(header))
    ]

    def line(values: list[str]) -> str:
        padded = [
            v.rjust(w) if right else v.ljust(w) for v, w, right in zip(values, widths, numeric, strict=True)
        ]
        return " " + " | ".join(padded).rstrip()

    rule = "-" + "-+-".join("-" * w for w in widths) + "-"
    count = f"({result.row_count} row{'' if result.row_count == 1 else 's'})"
    return "\n".join([line(header), rule, *(line(r) for r in cells), count])


def _text(value: object) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
