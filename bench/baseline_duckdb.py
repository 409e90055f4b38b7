"""The Spending Tracker transform in DuckDB SQL: a second baseline, written the way a DuckDB user would.

One ``COPY (SELECT ...) TO ... (FORMAT parquet, PARTITION_BY (year, month))``. Lookups are ``CASE`` chains
of ``contains`` in match order (INCOME first, then the rows in config order), so the first ``WHEN`` that
hits is the winning row; the category catch-all is the ``ELSE`` and a null description stays null, as in
the engine. ``preserve_insertion_order = false`` lets the partitioned write stream instead of buffering to
keep row order, which no reader of a Hive table may rely on anyway. ``trim`` strips the ASCII whitespace
characters (DuckDB's default strips spaces only). Usage:
``python -m bench.baseline_duckdb RAW_DIR OUT_DIR [--threads N]``.
"""

import argparse
from pathlib import Path

import duckdb

from bench.spending import DATE_FORMAT, PARTITION_KEYS, Lookup, lookup

_WHITESPACE = " \t\n\r\v\f"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _case(column: str, table: Lookup, default: str) -> str:
    whens = " ".join(
        f"WHEN {' OR '.join(f'contains({column}, {_literal(p)})' for p in patterns)} THEN {_literal(output)}"
        for patterns, output in table.rows
    )
    return f"CASE WHEN {column} IS NULL THEN NULL {whens} ELSE {default} END"


def transform_sql(raw_glob: str) -> str:
    """The SELECT of the whole transform over the CSVs matching ``raw_glob``."""
    merchants, categories = lookup("merchants"), lookup("categories")
    catch_all = _literal(categories.catch_all) if categories.catch_all is not None else "NULL"
    columns = "{'date': 'VARCHAR', 'description': 'VARCHAR', 'amount': 'DOUBLE', 'account': 'VARCHAR'}"
    return f"""
        WITH src AS (
            SELECT try_strptime(date, {_literal(DATE_FORMAT)})::DATE AS day,
                   upper(trim(description, {_literal(_WHITESPACE)})) AS d,
                   amount,
                   account
            FROM read_csv({_literal(raw_glob)}, header = true, columns = {columns})
        )
        SELECT day AS date,
               d AS description,
               coalesce({_case("d", merchants, "NULL")}, d) AS merchant,
               amount,
               account,
               {_case("d", categories, catch_all)} AS category,
               year(day)::BIGINT AS year,
               month(day)::BIGINT AS month
        FROM src
    """


def run(raw_dir: Path, out_dir: Path, threads: int) -> None:
    with duckdb.connect() as con:
        con.execute(f"SET threads = {threads}")
        con.execute("SET preserve_insertion_order = false")
        con.execute(
            f"COPY ({transform_sql(str(raw_dir / '*.csv'))}) TO {_literal(str(out_dir))} "
            f"(FORMAT parquet, PARTITION_BY ({', '.join(PARTITION_KEYS)}), COMPRESSION zstd)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("raw_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    run(args.raw_dir, args.out_dir, args.threads)
