"""Change detection over listings: the cursor catches same-second, changed, slow and re-created files."""

from datetime import UTC, datetime

import pytest

from karet_defs.store.base import ObjectInfo
from karet_defs.store.changes import (
    MAX_WINDOW,
    SETTLE_SECONDS,
    ChangeCursor,
    Watch,
    batch_digest,
    detect_changes,
    is_karet_output,
    list_watched,
    version_of,
)

T0 = 1_800_000_000.0


def obj(key: str, etag: str = "e1", at: float = T0) -> ObjectInfo:
    return ObjectInfo(key=key, size=1, etag=etag, last_modified=datetime.fromtimestamp(at, tz=UTC))


def changed_keys(objects: list[ObjectInfo], cursor: ChangeCursor) -> tuple[list[str], ChangeCursor]:
    changes = detect_changes(objects, cursor)
    return [i.key for i in changes.changed], changes.cursor


def test_first_listing_is_all_new_and_a_repeat_is_nothing():
    listing = [obj("r/a.csv", at=T0 - 5000), obj("r/b.csv", at=T0)]

    keys, cursor = changed_keys(listing, ChangeCursor())
    again, after = changed_keys(listing, ChangeCursor.from_json(cursor.to_json()))

    assert keys == ["r/a.csv", "r/b.csv"]
    assert again == []
    assert after == cursor
    assert cursor.newest_stamp == T0 and cursor.cutoff == T0 - SETTLE_SECONDS
    assert cursor.window == {"r/b.csv": version_of(listing[1])}  # the old file is below the cutoff


def test_a_second_file_in_the_same_second_is_new():
    # Second-resolution stamps (S3): b lands after the tick, in the very second a was stamped.
    _, cursor = changed_keys([obj("r/a.csv", at=T0)], ChangeCursor())

    keys, _ = changed_keys([obj("r/a.csv", at=T0), obj("r/b.csv", at=T0)], cursor)

    assert keys == ["r/b.csv"]


def test_a_changed_file_is_new_and_a_slow_upload_stamped_earlier_is_caught():
    _, cursor = changed_keys([obj("r/a.csv", at=T0), obj("r/b.csv", at=T0 - 10)], ChangeCursor())

    listing = [obj("r/a.csv", "e2", at=T0 + 1), obj("r/b.csv", at=T0 - 10), obj("r/slow.csv", at=T0 - 60)]
    keys, _ = changed_keys(listing, cursor)

    assert keys == ["r/a.csv", "r/slow.csv"]


def test_a_deleted_file_leaves_the_window_and_counts_as_new_when_recreated():
    _, cursor = changed_keys([obj("r/a.csv", at=T0), obj("r/b.csv", at=T0)], ChangeCursor())

    keys, cursor = changed_keys([obj("r/b.csv", at=T0)], cursor)
    assert keys == [] and set(cursor.window) == {"r/b.csv"}

    keys, _ = changed_keys([obj("r/a.csv", at=T0 + 2), obj("r/b.csv", at=T0)], cursor)
    assert keys == ["r/a.csv"]  # same body, same ETag: the new stamp makes it a new version


def test_the_cursor_stays_small_over_100000_objects():
    listing = [obj(f"r/{i:06d}.csv", at=T0 - 100_000 + i) for i in range(100_000)]

    keys, cursor = changed_keys(listing, ChangeCursor())

    assert len(keys) == 100_000
    assert len(cursor.window) == SETTLE_SECONDS  # one object per second of the settle window
    assert len(cursor.to_json()) < 40_000
    assert changed_keys(listing, cursor)[0] == []


def test_a_bulk_upload_in_one_second_is_capped():
    listing = [obj(f"r/{i:06d}.csv", at=T0 - 1) for i in range(MAX_WINDOW)] + [
        obj(f"s/{i:06d}.csv", at=T0) for i in range(10)
    ]

    keys, cursor = changed_keys(listing, ChangeCursor())

    assert len(keys) == MAX_WINDOW + 10
    assert cursor.cutoff == T0 - 1 and set(cursor.window) == {f"s/{i:06d}.csv" for i in range(10)}
    assert changed_keys(listing, cursor)[0] == []


def test_advance_and_merge_record_coverage():
    claim = ChangeCursor().advance([obj("r/a.csv", at=T0), obj("r/b.csv", "e9", at=T0 + 1)])
    other = ChangeCursor().advance([obj("r/c.csv", at=T0 + 400)])

    merged = claim.merge(other)

    assert claim.covers(obj("r/a.csv", at=T0)) and not claim.covers(obj("r/a.csv", "e2", at=T0 + 2))
    assert claim.covers(obj("r/old.csv", at=T0 - SETTLE_SECONDS - 1))
    assert merged.covers(obj("r/c.csv", at=T0 + 400)) and merged.covers(obj("r/a.csv", at=T0))
    assert merged.cutoff == T0 + 100 and "r/a.csv" not in merged.window
    assert ChangeCursor().merge(claim) == claim and claim.merge(ChangeCursor()) == claim


def test_a_foreign_cursor_is_refused():
    with pytest.raises(ValueError, match="not a change cursor"):
        ChangeCursor.from_json('{"last_key": "x"}')


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("pipelines/s/raw/a.csv", True),
        ("pipelines/s/raw/a.CSV", True),
        ("pipelines/s/raw/a.json", False),
        ("pipelines/s/raw2/a.csv", True),  # the engine's prefix test is a plain startswith too
        ("pipelines/s/events/e.ndjson", True),
        ("pipelines/s/events/e.json", True),
        ("pipelines/s/events/e.txt", False),
        ("pipelines/s/x.jsonl", True),
        ("pipelines/s/clean/t/x.jsonl", False),
        ("pipelines/s/pipeline.json", False),
        ("pipelines/s/dashboards/d.json", False),
        ("pipelines/other/raw/a.csv", False),
    ],
)
def test_watch_matches_source_prefixes_and_extensions(key, expected):
    watch = Watch(
        (
            ("pipelines/s/raw", (".csv",)),
            ("pipelines/s/", (".jsonl",)),
            ("pipelines/s/events/", (".ndjson", ".json")),
        )
    )
    assert watch.matches(key) is expected
    assert watch.prefixes() == ["pipelines/s/"]


def test_list_watched_lists_disjoint_prefixes_in_order(local_stores):
    for key in ["pipelines/s/b/2.csv", "pipelines/s/a/1.csv", "pipelines/s/a/x.txt", "pipelines/s/c/3.csv"]:
        local_stores.lake.put(key, b"x")
    watch = Watch(
        (("pipelines/s/b/", (".csv",)), ("pipelines/s/a/", (".csv",)), ("pipelines/s/a/sub", (".csv",)))
    )

    assert [i.key for i in list_watched(local_stores.lake, watch)] == [
        "pipelines/s/a/1.csv",
        "pipelines/s/b/2.csv",
    ]


def test_karet_output_and_batch_digest():
    assert is_karet_output("pipelines/s/clean/t/k=1/m.parquet")
    assert is_karet_output("pipelines/s/pipeline.json")
    assert not is_karet_output("pipelines/s/raw/clean.csv") and not is_karet_output("pipelines/s/clean")
    batch = [obj("r/a.csv"), obj("r/b.csv")]
    assert batch_digest(batch) == batch_digest(list(batch))
    assert batch_digest(batch) != batch_digest([obj("r/a.csv"), obj("r/b.csv", "e2")])
    assert batch_digest(batch) != batch_digest([obj("r/a.csv"), obj("r/b.csv", at=T0 + 1)])
