"""The fastest hand-written Polars script for the Spending Tracker transform: a baseline, not our engine."""

import sys
from pathlib import Path

import polars as pl

CATEGORIES = [  # (patterns, output) in priority order: INCOME (priority 10) first, then config order
    (["payroll", "salary", "direct dep"], "INCOME"),
    (["safeway", "trader joe", "whole foods", "costco"], "GROCERIES"),
    (["cafe", "coffee", "starbucks", "pizza", "restaurant"], "FOOD"),
    (["shell", "chevron", "uber", "transit", "parking"], "TRANSPORT"),
    (["pg&e", "comcast", "verizon", "rent", "insurance"], "BILLS"),
    (["amazon", "amzn", "target", "best buy"], "SHOPPING"),
    (["netflix", "spotify", "cinema"], "ENTERTAINMENT"),
    (["pharmacy", "cvs", "gym"], "HEALTH"),
]
MERCHANTS = [
    (["amzn", "amazon"], "AMAZON"), (["starbucks"], "STARBUCKS"), (["shell"], "SHELL"), (["uber"], "UBER"),
    (["netflix"], "NETFLIX"), (["spotify"], "SPOTIFY"), (["safeway"], "SAFEWAY"),
    (["trader joe"], "TRADER JOE'S"), (["whole foods"], "WHOLE FOODS"), (["costco"], "COSTCO"),
    (["pg&e"], "PG&E"),
]


def _lookup(value: pl.Expr, rows: list[tuple[list[str], str]]) -> pl.Expr:
    patterns, ranks, outputs = [], [], []
    for rank, (pats, output) in enumerate(rows):
        outputs.append(output)
        for p in pats:
            patterns.append(p)
            ranks.append(rank)
    rank = (
        value.str.to_lowercase()
        .str.extract_many(patterns, overlapping=True)
        .list.eval(pl.element().replace_strict(patterns, ranks, return_dtype=pl.Int32))
        .list.min()
    )
    return rank.replace_strict(list(range(len(outputs))), outputs, default=None, return_dtype=pl.String)


def run(raw_dir: Path, out_dir: Path) -> None:
    frame = pl.scan_csv(
        str(raw_dir / "*.csv"),
        schema={"date": pl.String, "description": pl.String, "amount": pl.Float64, "account": pl.String},
    )
    description = pl.col("description").str.strip_chars().str.to_uppercase()
    day = pl.col("date").str.to_date("%Y-%m-%d", strict=False)
    result = frame.select(
        day.alias("date"),
        description.alias("description"),
        pl.coalesce(_lookup(description, MERCHANTS), description).alias("merchant"),
        pl.col("amount"),
        pl.col("account"),
        pl.coalesce(_lookup(description, CATEGORIES), pl.lit("OTHER")).alias("category"),
        day.dt.year().cast(pl.Int64).alias("year"),
        day.dt.month().cast(pl.Int64).alias("month"),
    )
    result.sink_parquet(
        pl.PartitionBy(out_dir, key=["year", "month"], include_key=False), mkdir=True, engine="streaming"
    )


if __name__ == "__main__":
    run(Path(sys.argv[1]), Path(sys.argv[2]))
