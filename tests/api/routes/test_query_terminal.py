"""What `karet sql SLUG "SELECT …"` prints (``karet_defs.query.terminal``), over a real run's table."""

import json

from karet_defs.engine.run import run_pipeline
from karet_defs.query.engine import Column, QueryResult
from karet_defs.query.terminal import format_table, sql_command
from karet_defs.templates import install_template


def test_format_table_aligns_text_left_and_numbers_right():
    result = QueryResult(
        columns=[Column("category", "VARCHAR"), Column("n", "BIGINT")],
        rows=[["FOOD", 3], ["GROCERIES", 12], [None, None]],
    )

    assert format_table(result) == "\n".join(
        [
            " category  |  n",
            "-----------+----",
            " FOOD      |  3",
            " GROCERIES | 12",
            "           |",
            "(3 rows)",
        ]
    )


def test_sql_command_answers_or_prints_the_refusal(local_settings, local_stores):
    install_template(local_stores, "spending", "spending")
    run_pipeline(local_stores, "spending")

    text, status = sql_command(
        local_settings, "spending", "SELECT count(*) AS n FROM transactions", as_json=True
    )
    refused, refused_status = sql_command(local_settings, "spending", "DROP VIEW transactions")

    assert (json.loads(text), status) == ({"columns": ["n"], "rows": [[35]], "rowCount": 1}, 0)
    assert (json.loads(refused)["error"], refused_status) == ("query_not_allowed", 1)
