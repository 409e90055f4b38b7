"""Karet's slug rule and the relocation of absolute source prefixes to another slug."""

import json

import pytest

from karet_defs.errors import InvalidSlug
from karet_defs.slugs import MAX_SLUG_LENGTH, pipeline_folders, relocate_path_prefixes, sanitise_slug


@pytest.mark.parametrize(
    ("raw", "slug"),
    [
        ("My  Pipe!", "my--pipe"),  # REFERENCE §4.2: no collapsing
        ("  spending  ", "spending"),
        ("My_Pipe", "my-pipe"),
        ("--a--b--", "a--b"),
        ("../etc/passwd", "etc-passwd"),
        ("a/../b", "a----b"),
        ("Café 2026", "caf--2026"),
        ("x" * MAX_SLUG_LENGTH, "x" * MAX_SLUG_LENGTH),
    ],
)
def test_sanitise_slug_follows_karet(raw, slug):
    assert sanitise_slug(raw) == slug


@pytest.mark.parametrize("raw", ["", "   ", "---", "../", "日本語", "!!!"])
def test_a_slug_without_letters_or_digits_is_invalid(raw):
    with pytest.raises(InvalidSlug, match="invalid slug"):
        sanitise_slug(raw)


def test_a_slug_over_the_limit_is_invalid():
    with pytest.raises(InvalidSlug, match="limit is 63"):
        sanitise_slug("a" * (MAX_SLUG_LENGTH + 1))


def test_an_empty_slug_takes_the_default_when_given():
    assert sanitise_slug("?!", default="imported-1") == "imported-1"
    assert sanitise_slug("Given", default="imported-1") == "given"


def _config(*prefixes: str) -> bytes:
    sources = [{"id": f"s{i}", "name": "S", "path_prefix": p, "schema": []} for i, p in enumerate(prefixes)]
    return json.dumps({"version": 1, "source_containers": sources, "mappings": []}).encode()


def test_relocate_moves_only_prefixes_inside_the_old_folder():
    config = _config("pipelines/old/transactions/", "pipelines/older/x/", "banks/rbc/", "transactions/")

    moved = json.loads(relocate_path_prefixes(config, "old", "new"))

    assert [s["path_prefix"] for s in moved["source_containers"]] == [
        "pipelines/new/transactions/",
        "pipelines/older/x/",
        "banks/rbc/",
        "transactions/",
    ]


def test_relocate_keeps_the_bytes_when_nothing_moves():
    config = b'{"version": 1,   "source_containers": [{"path_prefix": "transactions/"}]}'
    assert relocate_path_prefixes(config, "old", "new") is config
    assert relocate_path_prefixes(b"{not json", "old", "new") == b"{not json"


def test_relocate_finds_nested_prefixes():
    config = json.dumps({"a": [{"b": {"path_prefix": "pipelines/old/deep/"}}]}).encode()
    assert json.loads(relocate_path_prefixes(config, "old", "new")) == {
        "a": [{"b": {"path_prefix": "pipelines/new/deep/"}}]
    }


def test_pipeline_folders_groups_absolute_prefixes_by_slug():
    config = _config("pipelines/a/x/", "raw/", "pipelines/b/", "pipelines/a/y/")
    assert pipeline_folders(config) == {"a": ["x/", "y/"], "b": [""]}
    assert pipeline_folders(b"[]") == {}
