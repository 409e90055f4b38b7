"""Config history on both stores: numbering, compare-and-swap, revert, diff, pruning, moving it."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from karet_defs.errors import PreconditionFailed, StaleConfig, ValidationFailed
from karet_defs.history import versions
from karet_defs.history.records import MAX_VERSIONS
from karet_defs.slugs import relocate_path_prefixes
from karet_defs.store import keys
from karet_defs.store.changes import is_karet_output
from karet_defs.store.reads import md5_hex
from karet_defs.templates import install_template, template_files

BLANK = json.loads(template_files("blank")["pipeline.json"])


def _config(**extra) -> bytes:
    return json.dumps({**BLANK, **extra}).encode()


@pytest.fixture
def slug(stores):
    install_template(stores, "p", "blank", exclusive=True)
    versions.record_live(stores, "p", author="ann", note="created", source="template")
    return "p"


def test_each_save_is_the_next_version_with_its_author_note_and_document(stores, slug):
    saved = versions.save_config(stores, slug, _config(layout={"a": 1}), author="bob", note="why")

    history, _ = versions.read_history(stores.pipelines, slug)
    assert [(v.version, v.author, v.note, v.environment, v.source) for v in history.versions] == [
        (1, "ann", "created", "retired", "template"),
        (2, "bob", "why", "production", "save"),
    ]
    assert history.versions[1].replaced == 1 and history.versions[1].created_at.endswith("Z")
    assert versions.read_document(stores.pipelines, slug, 2) == _config(layout={"a": 1})
    assert stores.pipelines.get(keys.config_key(slug)) == _config(layout={"a": 1})
    assert (saved.live, saved.etag) == (True, md5_hex(_config(layout={"a": 1})))
    assert versions.config_version_of(stores, slug) == 2


def test_a_stale_version_or_etag_is_refused_and_nothing_is_stored(stores, slug):
    versions.save_config(stores, slug, _config(layout={"a": 1}), author="bob")

    with pytest.raises(StaleConfig, match="version 1 is stale: the current version is 2"):
        versions.save_config(stores, slug, _config(layout={"b": 2}), author="bob", expected_version=1)
    with pytest.raises(PreconditionFailed, match="ETag mismatch"):
        versions.save_config(stores, slug, _config(layout={"b": 2}), author="bob", if_match="nope")

    history, _ = versions.read_history(stores.pipelines, slug)
    assert history.latest == 2
    assert stores.pipelines.get(keys.config_key(slug)) == _config(layout={"a": 1})


def test_of_concurrent_saves_over_one_version_exactly_one_wins(stores, slug):
    def save(i: int) -> str:
        try:
            versions.save_config(stores, slug, _config(layout={"i": i}), author="bob", expected_version=1)
            return "saved"
        except StaleConfig:
            return "stale"

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(save, range(8)))

    assert sorted(outcomes) == ["saved"] + ["stale"] * 7
    history, _ = versions.read_history(stores.pipelines, slug)
    assert [v.version for v in history.versions] == [1, 2]
    assert md5_hex(stores.pipelines.get(keys.config_key(slug))) == history.versions[1].etag


def test_concurrent_unconditional_saves_each_get_a_number_and_the_live_one_is_production(stores, slug):
    with ThreadPoolExecutor(6) as pool:
        list(
            pool.map(
                lambda i: versions.save_config(stores, slug, _config(layout={"i": i}), author="x"), range(6)
            )
        )

    history, _ = versions.read_history(stores.pipelines, slug)
    assert [v.version for v in history.versions] == list(range(1, 8))
    live = md5_hex(stores.pipelines.get(keys.config_key(slug)))
    assert [v.etag for v in history.versions if v.environment == "production"] == [live]


def test_revert_writes_the_old_document_forward_as_a_new_version(stores, slug):
    versions.save_config(stores, slug, _config(layout={"a": 1}, mappings=[]), author="bob")

    saved = versions.revert(stores, slug, 1, author="cy")

    assert (saved.version.version, saved.version.reverted_from, saved.version.note) == (
        3,
        1,
        "revert to version 1",
    )
    assert stores.pipelines.get(keys.config_key(slug)) == template_files("blank")["pipeline.json"]
    assert versions.config_version_of(stores, slug) == 3


def test_revert_of_a_version_that_no_longer_validates_is_refused_with_the_details(stores, slug):
    # The stored document stands for one written under older, looser rules.
    broken = _config(analytic_tables=[{"id": "t", "name": "T", "schema": [], "partition_keys": ["nope"]}])
    stores.pipelines.put(keys.version_key(slug, 1), broken)
    live_before = stores.pipelines.get(keys.config_key(slug))

    with pytest.raises(ValidationFailed) as refused:
        versions.revert(stores, slug, 1, author="cy")

    assert refused.value.details and {"kind", "message", "path"} <= set(refused.value.details[0])
    assert stores.pipelines.get(keys.config_key(slug)) == live_before
    assert versions.read_history(stores.pipelines, slug)[0].latest == 1


def test_the_diff_turns_the_live_config_into_the_version_and_ignores_layout(stores, slug):
    source = {"id": "s", "name": "S", "path_prefix": "raw/", "schema": [{"name": "a", "type": "string"}]}
    versions.save_config(
        stores, slug, _config(source_containers=[source], layout={"moved": True}), author="b"
    )

    patch, against = versions.diff_against_live(stores, slug, 1)

    assert (against, patch) == (2, [{"op": "remove", "path": "/source_containers/0"}])


def test_only_the_last_hundred_versions_are_kept(local_stores):
    install_template(local_stores, "p", "blank", exclusive=True)
    for i in range(MAX_VERSIONS + 5):
        versions.save_config(local_stores, "p", _config(layout={"i": i}), author="x")

    history, _ = versions.read_history(local_stores.pipelines, "p")
    kept = [v.version for v in history.versions]
    assert len(kept) == MAX_VERSIONS and kept[-1] == MAX_VERSIONS + 6  # the baseline was version 1
    stored = sorted(
        int(i.key.rsplit("/", 1)[1][:-5])
        for i in local_stores.pipelines.list(keys.versions_prefix("p"))
        if i.key[-6].isdigit()
    )
    assert stored == kept


def test_a_config_written_before_history_becomes_version_one_on_the_first_save(stores):
    stores.pipelines.put(keys.config_key("old"), _config(layout={"old": 1}))

    versions.save_config(stores, "old", _config(layout={"new": 1}), author="bob")

    history, _ = versions.read_history(stores.pipelines, "old")
    assert [(v.version, v.source, v.environment) for v in history.versions] == [
        (1, "baseline", "retired"),
        (2, "save", "production"),
    ]
    assert versions.read_document(stores.pipelines, "old", 1) == _config(layout={"old": 1})


def test_moving_a_history_relocates_documents_and_their_md5s(stores, slug):
    source = {
        "id": "s",
        "name": "S",
        "path_prefix": "pipelines/p/raw/",
        "schema": [{"name": "a", "type": "string"}],
    }
    versions.save_config(stores, slug, _config(source_containers=[source]), author="b")
    files = {
        i.key[len(keys.pipeline_prefix(slug)) :]: stores.pipelines.get(i.key)
        for i in stores.pipelines.list(keys.versions_prefix(slug))
    }

    moved = versions.rehome_history(files, lambda body: relocate_path_prefixes(body, "p", "q"))

    assert b"pipelines/q/raw/" in moved["versions/2.json"]
    index = json.loads(moved["versions/index.json"])
    assert index["versions"][1]["etag"] == md5_hex(moved["versions/2.json"])
    assert moved["versions/1.json"] == files["versions/1.json"]


def test_history_keys_are_karet_output_and_never_trigger_runs():
    assert is_karet_output(keys.version_key("p", 3)) and is_karet_output(keys.history_key("p"))
