"""The config in words for the Dagster UI: column assertions as sentences, expressions as formulas.

Check and column descriptions are read by people deciding whether a table is right, so they say what a rule
means (``amount is at least 0``) or which expression fills a column (``upper(trim(description))``), never a
model dump. Optional fields left at their defaults are omitted, so a formula stays short enough for a table
cell; very long ones are cut.
"""

import json
import re

from karet_defs.config.models import (
    AstNode,
    Binary,
    Bool,
    Cast,
    Coalesce,
    Col,
    ColumnSchema,
    Concat,
    Contains,
    DimRef,
    FromUnix,
    If,
    LookupRef,
    Null,
    Num,
    ParseDate,
    Pipeline,
    Str,
    Substring,
    Unary,
)

MAX_EXPRESSION_CHARS = 300
SHOWN_VALUES = 20
_OPERATORS = {
    "add": "+",
    "sub": "-",
    "mul": "*",
    "div": "/",
    "eq": "=",
    "ne": "!=",
    "gt": ">",
    "lt": "<",
    "ge": ">=",
    "le": "<=",
    "and": "and",
    "or": "or",
}
_BARE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFAULT_DATE_FORMAT = ParseDate.model_fields["format"].default
_DEFAULT_UNIX_UNIT = FromUnix.model_fields["unit"].default


def describe_assertions(column: ColumnSchema) -> str:
    """The column's assertions, one clause per rule: ``amount is never null; amount is at least 0``."""
    rules = column.assertions
    name = _name(column.name)
    said: list[str] = []
    if rules is not None:
        if rules.not_null:
            said.append(f"{name} is never null")
        if rules.unique:
            said.append(f"{name} is unique")
        if rules.accepted_values:
            values = rules.accepted_values
            shown = ", ".join(values[:SHOWN_VALUES])
            more = f", … ({len(values)} values in all)" if len(values) > SHOWN_VALUES else ""
            said.append(f"{name} is one of: {shown}{more}")
        if rules.min is not None and rules.max is not None:
            said.append(f"{name} is between {_number(rules.min)} and {_number(rules.max)}")
        elif rules.min is not None:
            said.append(f"{name} is at least {_number(rules.min)}")
        elif rules.max is not None:
            said.append(f"{name} is at most {_number(rules.max)}")
    return "; ".join(said) or f"{name} has no assertion set"


def describe_column_source(pipeline: Pipeline, table_id: str, column: str) -> str:
    """Which mapping expression fills a table column: ``from mapping <id>: <expression>``, one per mapping."""
    sources = [
        f"from mapping {mapping.id}: {render_expression(produced.expr)}"
        for mapping in pipeline.mappings_of_table(table_id)
        for produced in mapping.columns
        if produced.name == column
    ]
    rollup = pipeline.rollup_of_table(table_id)
    if rollup is not None:
        if column in rollup.group_by:
            sources.append(f"from rollup {rollup.id}: grouped by {column} of {rollup.source_table_id}")
        sources += [
            f"from rollup {rollup.id}: {a.fn}({a.column or ''})" + (" where …" if a.where is not None else "")
            for a in rollup.aggregates
            if column in a.output_columns()
        ]
    return "; ".join(sources) or "not filled by any mapping"


def render_expression(node: AstNode) -> str:
    """An expression tree as a compact formula: ``coalesce(lookup(merchants, upper(description)), "?")``."""
    text = _render(node)
    return text if len(text) <= MAX_EXPRESSION_CHARS else text[: MAX_EXPRESSION_CHARS - 1] + "…"


def _render(node: AstNode) -> str:
    match node:
        case Col():
            return _name(node.name)
        case Str():
            return _quoted(node.value)
        case Num():
            return _number(node.value)
        case Bool():
            return "true" if node.value else "false"
        case Null():
            return "null"
        case Binary():
            return f"{_operand(node.left)} {_OPERATORS[node.kind]} {_operand(node.right)}"
        case Unary(kind="not"):
            return f"not {_operand(node.input)}"
        case Unary():
            return f"{node.kind}({_render(node.input)})"
        case Contains():
            return f"contains({_render(node.input)}, {_quoted(node.pattern)})"
        case Substring():
            length = "" if node.length is None else f", {node.length}"
            return f"substring({_render(node.input)}, {node.start}{length})"
        case Concat():
            sep = f", sep={_quoted(node.sep)}" if node.sep else ""
            return f"concat({', '.join(_render(a) for a in node.args)}{sep})"
        case If():
            return f"if {_render(node.cond)} then {_render(node.then)} else {_render(node.else_)}"
        case Coalesce():
            return f"coalesce({', '.join(_render(a) for a in node.args)})"
        case ParseDate():
            fmt = "" if node.format == _DEFAULT_DATE_FORMAT else f", {_quoted(node.format)}"
            return f"parse_date({_render(node.input)}{fmt})"
        case Cast():
            return f"cast({_render(node.input)}, {node.to})"
        case LookupRef():
            return f"lookup({node.lookup_id}, {_render(node.input)})"
        case DimRef():
            value = "" if node.value is None else f".{node.value}"
            return f"dim({node.dim_id}{value}, {_render(node.input)})"
        case FromUnix():
            unit = "" if node.unit == _DEFAULT_UNIX_UNIT else f", {node.unit}"
            return f"from_unix({_render(node.input)}{unit})"
    raise TypeError(f"no rendering for expression kind {node.kind!r}")


def _operand(node: AstNode) -> str:
    # Operators and `if` inside an operator are bracketed, so `(a + b) * c` never reads as `a + b * c`.
    text = _render(node)
    return f"({text})" if isinstance(node, Binary | If) else text


def _name(name: str) -> str:
    return name if _BARE_NAME.fullmatch(name) else f"`{name}`"


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def _number(value: float) -> str:
    # repr keeps every digit a user typed (`:g` would show 1234567.5 as 1.23457e+06).
    return str(int(value)) if value.is_integer() else repr(value)
