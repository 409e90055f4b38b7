"""Properties of parsing and validation: any JSON gives a ``Pipeline`` or a ``KaretError`` with a code.

Random JSON alone rarely gets past the top-level checks, so the documents are also grown from the config's
own vocabulary (its field names and expression kinds) and from mutations of a valid config, which reach the
model's unions, the legacy upgrade and every validation rule.
"""

import copy
import json
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from karet_defs.config.models import Pipeline
from karet_defs.config.validate import ValidationIssue, load_pipeline, parse_pipeline, validate_pipeline
from karet_defs.errors import ConfigSchemaError, KaretError, ValidationFailed
from karet_defs.templates import template_files

PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
ISSUE_KINDS = {"missing_field", "duplicate_id", "dangling_reference", "schema"}
SPENDING = json.loads(template_files("spending")["pipeline.json"])

FIELDS = """
    version source_containers lookup_mappings mappings analytic_tables layout id name path_prefix schema
    format record_filter type nullable assertions not_null unique accepted_values min max match
    case_insensitive rows children catch_all output input_patterns priority source_container_id
    analytic_table_id columns expr where partition_by column granularity partition_keys dedup_keys kind
    value left right input pattern start length sep args cond then else to lookup_id unit
""".split()
_KIND_NAMES = """
    col str num bool null add sub mul div eq ne gt lt ge le and or not upper lower trim year month day
    contains substring concat if coalesce parse_date cast lookup_ref from_unix regex
"""
KINDS = [*_KIND_NAMES.split(), ""]  # with one the model refuses and an empty one
WORDS = ["src", "t", "m", "a", "year", "month", "date", "raw/", "pipelines/x/raw/", "../", "/abs/", "month"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.sampled_from(KINDS + WORDS),
)
# Any JSON value: what a client may send as a config.
any_json = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=30,
)
# JSON built from the config's own words: objects whose keys are its field names, strings often its kinds.
config_like = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(FIELDS), inner, max_size=6),
    max_leaves=40,
)


def _paths(doc: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [at]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += _paths(value, (*at, key))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            found += _paths(value, (*at, index))
    return found


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def _same_kind(value: Any, doc: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values a careless edit would put in place of ``value``: mostly of its own JSON type."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int | float):
        return st.integers(min_value=-3, max_value=300) | st.floats(allow_nan=False, allow_infinity=False)
    if isinstance(value, str):
        # Other strings of the same document make duplicate ids and dangling references.
        strings = [v for p in _paths(doc) if isinstance(v := _at(doc, p), str)]
        return st.sampled_from(strings + WORDS + [value + value, ""]) | st.text(max_size=6)
    if isinstance(value, list):
        return st.just(value[:-1]) | st.just(list(reversed(value)))
    return config_like


@st.composite
def mutated_spending(draw: st.DrawFn) -> dict[str, Any]:
    """The Spending Tracker config with a few values replaced, grafted, removed or duplicated."""
    doc = copy.deepcopy(SPENDING)
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = _paths(doc)[1:]
        path = draw(st.sampled_from(paths))
        parent, last = _at(doc, path[:-1]), path[-1]
        action = draw(st.sampled_from(["edit", "edit", "graft", "replace", "delete", "duplicate"]))
        if action == "edit":
            parent[last] = draw(_same_kind(parent[last], doc))
        elif action == "graft":
            parent[last] = copy.deepcopy(_at(doc, draw(st.sampled_from(paths))))
        elif action == "replace":
            parent[last] = draw(config_like)
        elif action == "delete":
            del parent[last]
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
        else:
            parent[draw(st.sampled_from(FIELDS))] = copy.deepcopy(parent[last])
    return doc


def _check_outcome(raw: Any) -> None:
    """``parse_pipeline`` and ``load_pipeline`` either succeed or raise a coded ``KaretError``."""
    try:
        parsed = parse_pipeline(raw)
    except ConfigSchemaError as exc:
        assert exc.code == "schema" and exc.message
        parsed = None
    if parsed is not None:
        assert isinstance(parsed, Pipeline)
        issues = validate_pipeline(parsed)
        assert all(isinstance(i, ValidationIssue) and i.kind in ISSUE_KINDS for i in issues)
        assert all(i.path.startswith("/") for i in issues)
    try:
        loaded = load_pipeline(raw)
    except ValidationFailed as exc:
        assert parsed is not None
        assert exc.code in ISSUE_KINDS and exc.message == exc.details[0]["message"]
        assert all(set(d) == {"kind", "message", "path"} for d in exc.details)
    except KaretError as exc:
        assert parsed is None and exc.code == "schema"
    else:
        assert loaded == parsed and not validate_pipeline(loaded)


@PROPERTY_SETTINGS
@given(any_json)
def test_any_json_value_parses_or_is_a_schema_error(doc):
    _check_outcome(json.dumps(doc))
    if isinstance(doc, dict):
        _check_outcome(doc)


@PROPERTY_SETTINGS
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_any_bytes_or_text_parse_or_are_a_schema_error(raw):
    _check_outcome(raw)


@PROPERTY_SETTINGS
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "version": st.integers(min_value=-1, max_value=2) | scalars,
            **{
                f: st.lists(st.dictionaries(st.sampled_from(FIELDS), config_like), max_size=3)
                for f in FIELDS[1:5]
            },
        },
    )
)
def test_documents_in_the_configs_words_parse_or_fail_with_a_code(doc):
    _check_outcome(json.dumps(doc).encode())
    _check_outcome(doc)


@PROPERTY_SETTINGS
@given(mutated_spending())
def test_mutated_configs_parse_or_fail_with_a_code(doc):
    before = json.dumps(doc)
    _check_outcome(doc)
    assert json.dumps(doc) == before  # the caller's document is never mutated (the upgrade copies on write)
    _check_outcome(before.encode("utf-8-sig"))
