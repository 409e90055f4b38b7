"""Vectorised lookup matching (REFERENCE §1.5, SPEC §2.1).

A lookup turns an input string into the ``output`` of its best matching row: children are scanned first, in
order, without their catch-alls (first child hit wins), then the node's own rows, where the highest
``priority`` wins and ties go to the earliest row; a miss gives the root's ``catch_all`` or null, and a null
input always gives null. ``keyword_substring`` matches when any pattern is a substring of the input and is
computed with one Aho-Corasick pass (``str.extract_many``) that reports every matched pattern; the best rank
among them is taken and turned into its output inside ``list.eval``. ``exact`` is one ``replace_strict``. The
root's ``match`` governs the whole tree (the field is documented as parent-only), while ``case_insensitive``
is read per node. No Python code runs per row.
"""

from collections.abc import Sequence

import polars as pl

from karet_defs.config.models import LookupMapping
from karet_defs.errors import ExpressionError

MATCH_MODES = ("keyword_substring", "exact")


def build_lookup_registry(lookups: Sequence[LookupMapping]) -> dict[str, LookupMapping]:
    """Index lookups by top-level id and by dotted child path (``categories.merchants``)."""
    registry: dict[str, LookupMapping] = {}

    def register(lookup: LookupMapping, path: str) -> None:
        registry[path] = lookup
        for child in lookup.children:
            register(child, f"{path}.{child.id}")

    for lookup in lookups:
        register(lookup, lookup.id)
    return registry


def lookup_expr(lookup: LookupMapping, input: pl.Expr) -> pl.Expr:
    """Match the String expression ``input`` against ``lookup`` as the scan's root; the result is String."""
    if lookup.match not in MATCH_MODES:
        raise ExpressionError(f"unsupported lookup match: {lookup.match} (lookup {lookup.id})")
    hit = _scan(lookup, input, exact=lookup.match == "exact")
    if lookup.catch_all is None:
        return hit
    # The catch-all fills misses only: a null input must stay null.
    fallback = pl.when(input.is_not_null()).then(pl.lit(lookup.catch_all.output, dtype=pl.String))
    return pl.coalesce(hit, fallback)


def _scan(node: LookupMapping, value: pl.Expr, *, exact: bool) -> pl.Expr:
    # Children receive the unfolded input because each node folds case by its own flag.
    hits = [_scan(child, value, exact=exact) for child in node.children]
    hits.append(_match_rows(node, value, exact=exact))
    return hits[0] if len(hits) == 1 else pl.coalesce(hits)


def _match_rows(node: LookupMapping, value: pl.Expr, *, exact: bool) -> pl.Expr:
    # Rank 0 is the best row: highest priority first, then definition order.
    order = sorted(range(len(node.rows)), key=lambda i: (-node.rows[i].priority, i))
    best_rank: dict[str, int] = {}
    for rank, index in enumerate(order):
        for pattern in node.rows[index].input_patterns:
            # Ranks ascend, so the first row that lists a pattern is its best row.
            best_rank.setdefault(pattern.lower() if node.case_insensitive else pattern, rank)
    return match_ranked(
        value,
        pl.Series(list(best_rank), dtype=pl.String),
        pl.Series(list(best_rank.values()), dtype=pl.UInt32),
        pl.Series([node.rows[i].output for i in order], dtype=pl.String),
        exact=exact,
        case_insensitive=node.case_insensitive,
    )


def match_ranked(
    value: pl.Expr,
    patterns: pl.Series,
    ranks: pl.Series,
    outputs: pl.Series,
    *,
    exact: bool,
    case_insensitive: bool,
) -> pl.Expr:
    """The output of the best row matching the String ``value``, null on a miss or a null input.

    ``patterns`` are distinct (lower-cased when ``case_insensitive``), ``ranks`` (UInt32) gives each the rank
    of the best row listing it, and ``outputs[r]`` is the output of the row of rank ``r``; rank 0 is best.
    """
    # ASCII patterns are matched case-insensitively by the automaton itself, which spares lower-casing
    # every input; only the few matched substrings are folded to find their rows.
    ascii_fold = (
        case_insensitive and not exact and bool((patterns.str.len_bytes() == patterns.str.len_chars()).all())
    )
    if case_insensitive and not ascii_fold:
        value = value.str.to_lowercase()

    if exact:
        output_of = pl.element().replace_strict(
            patterns, outputs.gather(ranks), default=None, return_dtype=pl.String
        )
        return _per_row(pl.concat_list([value]), output_of)

    # "" is a substring of every string, and Aho-Corasick must not see it (it panics on multi-byte text).
    empty = patterns == ""
    empty_rank = ranks.filter(empty).min() if empty.any() else None
    patterns, ranks = patterns.filter(~empty), ranks.filter(~empty)
    if patterns.is_empty():
        output = pl.lit(outputs[empty_rank] if empty_rank is not None else None, dtype=pl.String)
        # Tied to the input, so the result is null where it is and keeps the frame's length.
        return pl.when(value.is_not_null()).then(output).otherwise(pl.lit(None, dtype=pl.String))
    matched = pl.element().str.to_lowercase() if ascii_fold else pl.element()
    best = matched.replace_strict(patterns, ranks, return_dtype=pl.UInt32).min()
    if empty_rank is not None:
        # A non-null input always matches "", so its row competes with the real hits (nulls are ignored).
        best = pl.min_horizontal(best, pl.lit(empty_rank, dtype=pl.UInt32))
    return _per_row(
        value.str.extract_many(
            pl.lit(patterns).implode(), overlapping=True, ascii_case_insensitive=ascii_fold
        ),
        best.replace_strict(
            pl.int_range(outputs.len(), dtype=pl.UInt32, eager=True),
            outputs,
            default=None,
            return_dtype=pl.String,
        ),
    )


def _per_row(lists: pl.Expr, pick: pl.Expr) -> pl.Expr:
    """``pick`` evaluated on each row's list, down to one value per row (null lists stay null).

    ``replace_strict`` on a plain column is not streamed by Polars 2.1: it held the whole column (0.45 GB
    more per 250 MB of CSV). Inside ``list.eval`` it works row by row, so memory stays flat.
    """
    return lists.list.eval(pick).list.first()
