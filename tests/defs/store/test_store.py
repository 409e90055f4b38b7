"""The ``ObjectStore`` contract, run against the local directory and a moto S3 server alike."""

import hashlib
import multiprocessing
import random
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from multiprocessing.synchronize import Barrier as ProcessBarrier
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from karet_defs.errors import BucketNotFound, ObjectNotFound, PreconditionFailed, StoreError
from karet_defs.settings import Settings
from karet_defs.store.base import ObjectStore, Stores, normalise_etag
from karet_defs.store.factory import build_stores
from karet_defs.store.local import TMP_DIR_NAME, LocalStore
from karet_defs.store.s3 import BUCKET_NOT_FOUND_MESSAGE, S3Store, make_s3_client

if TYPE_CHECKING:
    from tests.conftest import MotoServer

# Byte order puts '-' (0x2D) < '.' (0x2E) < '/' (0x2F) < '0' < 'A' < 'a' < 'é' (0xC3 0xA9 in UTF-8).
# (A local store cannot hold both "a" and "a/b": a file cannot also be a folder.)
TRICKY_KEYS = [
    "raw/a-b",
    "raw/a.b",
    "raw/a/b",
    "raw/a/c/d",
    "raw/a0",
    "raw/A",
    "raw/b/x.csv",
    "raw/z",
    "raw/é.csv",
    "raws/x",
    "other/x",
]
LOST = 3  # exit code of a process whose conditional put was refused


@pytest.fixture
def store(stores: Stores) -> ObjectStore:
    return stores.pipelines


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def put_all(store: ObjectStore, keys: list[str]) -> None:
    # Shuffled and concurrent: listing order must come from the keys, not from write order or timestamps.
    shuffled = list(keys)
    random.Random(0).shuffle(shuffled)
    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(lambda key: store.put(key, key.encode()), shuffled))


def listed_keys(store: ObjectStore, prefix: str = "", start_after: str | None = None) -> list[str]:
    return [info.key for info in store.list(prefix, start_after=start_after)]


def test_put_returns_the_md5_etag_that_head_and_list_report(store: ObjectStore) -> None:
    data = b"id,name\n1,ada\n"

    etag = store.put("raw/people.csv", data, content_type="text/csv")

    assert etag == md5(data)
    info = store.head("raw/people.csv")
    assert info is not None
    assert (info.key, info.size, info.etag) == ("raw/people.csv", len(data), etag)
    assert isinstance(info.last_modified, datetime) and info.last_modified.tzinfo is not None
    assert store.get("raw/people.csv") == data
    assert list(store.list("raw/")) == [info]


def test_put_overwrites_and_put_file_uploads_a_file(store: ObjectStore, tmp_path: Path) -> None:
    store.put("k.bin", b"old")
    src = tmp_path / "new.bin"
    src.write_bytes(b"new body" * 1000)

    etag = store.put_file("k.bin", src, content_type="application/octet-stream")

    assert etag == md5(src.read_bytes())
    assert store.get("k.bin") == src.read_bytes()
    assert store.put("k.bin", b"") == md5(b"")
    assert store.get("k.bin") == b""


@pytest.fixture(scope="module", params=["local", "s3"])
def tricky_store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ObjectStore]:
    """A store holding ``TRICKY_KEYS``, written once and only read by the listing tests."""
    if request.param == "local":
        settings = Settings(data_dir=tmp_path_factory.mktemp("tricky"), s3_bucket="")
    else:
        settings = request.getfixturevalue("make_s3_settings")()
    store = build_stores(settings).pipelines
    put_all(store, TRICKY_KEYS)
    yield store
    if isinstance(store, S3Store):
        store.close()


def test_list_is_in_key_byte_order(tricky_store: ObjectStore) -> None:
    store = tricky_store

    assert listed_keys(store) == sorted(TRICKY_KEYS)
    assert listed_keys(store, "raw/") == sorted(k for k in TRICKY_KEYS if k.startswith("raw/"))
    # A prefix is a string prefix, not a folder: "raw/a" also matches "raw/a-b" and "raw/a0".
    assert listed_keys(store, "raw/a") == ["raw/a-b", "raw/a.b", "raw/a/b", "raw/a/c/d", "raw/a0"]
    assert listed_keys(store, "raw/a/") == ["raw/a/b", "raw/a/c/d"]
    assert listed_keys(store, "nothing/") == []


@pytest.mark.parametrize(
    "start_after",
    [
        "",
        "raw/",
        "raw/a",
        "raw/a.b",
        "raw/a/",
        "raw/a/b",
        "raw/a/c",
        "raw/a/c/d",
        "raw/a0",
        "raw/b",
        "raw/é.csv",
        "zzz",
    ],
)
def test_list_start_after(tricky_store: ObjectStore, start_after: str) -> None:
    expected = [k for k in sorted(TRICKY_KEYS) if k.startswith("raw/") and k > start_after]

    assert listed_keys(tricky_store, "raw/", start_after) == expected


def test_2100_keys_list_in_order_across_pages_and_1200_delete_in_batches(store: ObjectStore) -> None:
    # One seeding serves both halves, and 2,100 keys (S3 pages of 1,000 + 1,000 + 100) rather than more:
    # moto spends ~4 ms of CPU on each PUT, which makes the seeding the slowest part of this module.
    keys = [f"raw/{i % 7}/part-{i:05d}.csv" for i in range(2_100)]
    put_all(store, keys)
    ordered = sorted(keys)

    assert listed_keys(store, "raw/") == ordered
    # Resuming exactly at a page boundary, then mid-page.
    for cut in (999, 1_499):
        assert listed_keys(store, "raw/", start_after=ordered[cut]) == ordered[cut + 1 :]

    doomed = random.Random(1).sample(ordered, 1_200)  # from every folder and page: two DeleteObjects batches
    assert store.delete_many(doomed) == 1_200
    gone = set(doomed)
    assert listed_keys(store, "raw/") == [k for k in ordered if k not in gone]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [(0, 0, b"0"), (2, 5, b"2345"), (0, 9, b"0123456789"), (8, 20, b"89"), (9, 9, b"9")],
)
def test_get_range_is_inclusive(store: ObjectStore, start: int, end: int, expected: bytes) -> None:
    store.put("digits.txt", b"0123456789")

    assert store.get_range("digits.txt", start, end) == expected


@pytest.mark.parametrize(("start", "end"), [(10, 20), (5, 2), (-1, 3)])
def test_get_range_out_of_bounds_is_a_store_error(store: ObjectStore, start: int, end: int) -> None:
    store.put("digits.txt", b"0123456789")

    with pytest.raises(StoreError, match="range") as info:
        store.get_range("digits.txt", start, end)
    assert info.value.code == "s3_error"


def test_download_copies_the_object_to_a_file(store: ObjectStore, tmp_path: Path) -> None:
    body = bytes(range(256)) * 5_000
    store.put("blobs/big.bin", body)
    dest = tmp_path / "downloads" / "big.bin"
    dest.parent.mkdir()

    store.download("blobs/big.bin", dest)

    assert dest.read_bytes() == body
    assert [p.name for p in dest.parent.iterdir()] == ["big.bin"]


def test_local_path_is_the_file_locally_and_none_on_s3(store: ObjectStore) -> None:
    store.put("a/b.txt", b"here")

    path = store.local_path("a/b.txt")

    if isinstance(store, LocalStore):
        assert path is not None and path.read_bytes() == b"here"
    else:
        assert path is None


def test_missing_key(store: ObjectStore, tmp_path: Path) -> None:
    store.put("raw/a/b.csv", b"x")

    assert store.head("raw/nope.csv") is None
    assert store.head("raw/a") is None  # a "folder" is not an object
    with pytest.raises(ObjectNotFound, match="raw/nope.csv") as info:
        store.get("raw/nope.csv")
    assert info.value.code == "not_found"
    with pytest.raises(ObjectNotFound):
        store.get("raw/a")
    with pytest.raises(ObjectNotFound):
        store.get_range("raw/nope.csv", 0, 10)
    (tmp_path / "downloads").mkdir()
    with pytest.raises(ObjectNotFound):
        store.download("raw/nope.csv", tmp_path / "downloads" / "out.csv")
    assert list((tmp_path / "downloads").iterdir()) == []


def test_delete(store: ObjectStore) -> None:
    store.put("raw/a/b.csv", b"x")
    store.put("raw/a.csv", b"y")

    store.delete("raw/a/b.csv")
    store.delete("raw/a/b.csv")  # already gone: not an error
    store.delete("raw/never.csv")

    assert store.head("raw/a/b.csv") is None
    assert listed_keys(store) == ["raw/a.csv"]


def test_delete_many(store: ObjectStore) -> None:
    put_all(store, ["clean/t/a.parquet", "clean/t/p=1/b.parquet", "clean/keep.parquet"])

    assert store.delete_many(["clean/t/a.parquet", "clean/t/p=1/b.parquet", "clean/never.parquet"]) == 3

    assert listed_keys(store) == ["clean/keep.parquet"]
    assert store.delete_many([]) == 0


def test_if_none_match_creates_only_an_absent_key(store: ObjectStore) -> None:
    etag = store.put("pipelines/p/pipeline.json", b"{}", if_none_match=True)

    with pytest.raises(PreconditionFailed) as info:
        store.put("pipelines/p/pipeline.json", b"{ }", if_none_match=True)

    assert info.value.code == "etag_mismatch"
    assert etag == md5(b"{}")
    assert store.get("pipelines/p/pipeline.json") == b"{}"


def test_if_match_writes_only_over_the_expected_etag(store: ObjectStore) -> None:
    first = store.put("cfg.json", b"v1")
    second = store.put("cfg.json", b"v2", if_match=first)

    with pytest.raises(PreconditionFailed):
        store.put("cfg.json", b"v3", if_match=first)  # stale
    with pytest.raises(PreconditionFailed):
        store.put("absent.json", b"v1", if_match=first)

    assert store.put("cfg.json", b"v3", if_match=f'"{second}"') == md5(b"v3")  # quoted ETags are fine
    assert store.get("cfg.json") == b"v3"
    assert store.head("absent.json") is None


def test_if_match_race_has_exactly_one_winner(store: ObjectStore) -> None:
    etag = store.put("cfg.json", b"base")
    barrier = threading.Barrier(20)

    def attempt(i: int) -> bool:
        barrier.wait()
        try:
            store.put("cfg.json", f"writer {i}".encode(), if_match=etag)
        except PreconditionFailed:
            return False
        return True

    with ThreadPoolExecutor(max_workers=20) as pool:
        won = list(pool.map(attempt, range(20)))

    assert won.count(True) == 1
    assert store.get("cfg.json") == f"writer {won.index(True)}".encode()


def test_missing_bucket_is_bucket_not_found(make_s3_settings: Callable[..., Settings]) -> None:
    store = build_stores(make_s3_settings(create=False)).pipelines
    assert isinstance(store, S3Store)

    try:
        for call in (
            lambda: list(store.list("")),
            lambda: store.head("k"),
            lambda: store.get("k"),
            lambda: store.put("k", b"x"),
            lambda: store.delete_many(["k"]),
        ):
            with pytest.raises(BucketNotFound) as info:
                call()
            assert info.value.code == "bucket_not_found"
            assert info.value.message == BUCKET_NOT_FOUND_MESSAGE
    finally:
        store.close()


def test_unreachable_endpoint_is_a_store_error(make_s3_settings: Callable[..., Settings]) -> None:
    # A bound but never listening socket: connections to its port are refused, and nobody can take it.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as closed:
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
        settings = make_s3_settings(endpoint=endpoint, create=False)
        # One attempt: the retries (3 by default, with backoff) would only make the test slower.
        store = S3Store(settings.s3_bucket, client=make_s3_client(settings, max_attempts=1))
        try:
            with pytest.raises(StoreError, match="Could not connect") as info:
                store.get("k")
        finally:
            store.close()

    assert type(info.value) is StoreError
    assert info.value.code == "s3_error"


def test_a_server_that_dies_mid_run_is_a_store_error_until_it_is_back(
    private_moto_server: "MotoServer", make_s3_settings: Callable[..., Settings]
) -> None:
    settings = make_s3_settings(endpoint=private_moto_server.url, create=False)
    store = S3Store(settings.s3_bucket, client=make_s3_client(settings, max_attempts=1))
    try:
        store.client.create_bucket(Bucket=store.bucket)
        store.put("k", b"x")

        private_moto_server.stop()
        with pytest.raises(StoreError, match="Could not connect"):
            store.get("k")

        private_moto_server.start()  # same port, but moto forgets everything on a restart
        with pytest.raises(BucketNotFound):
            store.get("k")
    finally:
        store.close()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"abc"', "abc"),
        ("abc", "abc"),
        ("abc-zstd", "abc"),
        ('"abc-zstd"', "abc"),
        ("abc-12", "abc-12"),
        ('"abc-12"', "abc-12"),
        ("", ""),
        (None, ""),
    ],
)
def test_normalise_etag(raw: str | None, expected: str) -> None:
    assert normalise_etag(raw) == expected


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../escape", "a/../../escape", "a/..", "./a", "a//b", "a/", "a\\b", ".karet-tmp/x"],
)
def test_local_store_refuses_keys_outside_its_root(tmp_path: Path, key: str) -> None:
    store = LocalStore(tmp_path / "data")

    for call in (
        lambda: store.put(key, b"x"),
        lambda: store.get(key),
        lambda: store.head(key),
        lambda: store.delete(key),
        lambda: store.delete_many(["ok", key]),
    ):
        with pytest.raises(StoreError, match="Invalid object key"):
            call()
    assert not (tmp_path / "escape").exists()
    assert not (tmp_path / "data" / "ok").exists()


@pytest.mark.parametrize("prefix", ["/etc/", "../", "a/../../", "a\\b/"])
def test_local_store_refuses_prefixes_outside_its_root(tmp_path: Path, prefix: str) -> None:
    with pytest.raises(StoreError, match="Invalid"):
        LocalStore(tmp_path).list(prefix)


def test_local_store_keeps_its_temp_dir_out_of_listings(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("a.csv", b"x", if_none_match=True)

    assert (tmp_path / TMP_DIR_NAME).is_dir()
    assert listed_keys(store) == ["a.csv"]
    assert listed_keys(store, ".karet") == []
    assert list((tmp_path / TMP_DIR_NAME).glob("*.tmp")) == []


def test_local_store_delete_removes_emptied_folders_but_never_its_root(tmp_path: Path) -> None:
    root = tmp_path / "data"
    store = LocalStore(root)
    store.put("p/clean/t/y=2024/m.parquet", b"x")
    store.put("p/pipeline.json", b"{}")

    store.delete("p/clean/t/y=2024/m.parquet")
    assert sorted(p.name for p in root.iterdir()) == [TMP_DIR_NAME, "p"]
    assert [p.name for p in (root / "p").iterdir()] == ["pipeline.json"]

    store.delete("p/pipeline.json")
    assert [p.name for p in root.iterdir()] == [TMP_DIR_NAME]


def test_local_store_etag_follows_edits_made_behind_its_back(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("raw/a.csv", b"one")
    path = tmp_path / "raw" / "a.csv"
    (tmp_path / "raw" / "dropped.csv").write_bytes(b"dropped in by hand")

    path.write_bytes(b"two, longer")

    assert [(i.key, i.etag) for i in store.list("raw/")] == [
        ("raw/a.csv", md5(b"two, longer")),
        ("raw/dropped.csv", md5(b"dropped in by hand")),
    ]


def test_local_store_refuses_an_object_and_a_folder_of_the_same_name(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("a", b"x")
    store.put("b/c", b"y")

    with pytest.raises(StoreError, match="parent of it is itself an object"):
        store.put("a/c", b"z")
    with pytest.raises(StoreError, match="other objects live under"):
        store.put("b", b"z")
    assert list((tmp_path / TMP_DIR_NAME).glob("*.tmp")) == []


def _cas_in_another_process(root: str, etag: str, barrier: ProcessBarrier, i: int) -> None:
    barrier.wait()
    try:
        LocalStore(Path(root)).put("cfg.json", f"process {i}".encode(), if_match=etag)
    except PreconditionFailed as exc:
        raise SystemExit(LOST) from exc


def test_local_store_if_match_is_a_compare_and_swap_across_processes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    etag = store.put("cfg.json", b"base")
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(8)
    procs = [
        ctx.Process(target=_cas_in_another_process, args=(str(tmp_path), etag, barrier, i)) for i in range(8)
    ]

    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=30)

    exit_codes = [proc.exitcode for proc in procs]
    assert sorted(exit_codes) == [0] + [LOST] * 7
    assert store.get("cfg.json") == f"process {exit_codes.index(0)}".encode()


def test_build_stores_without_a_bucket_is_one_local_store(local_settings: Settings) -> None:
    stores = build_stores(local_settings)

    assert isinstance(stores.pipelines, LocalStore)
    assert stores.pipelines.root == local_settings.data_dir
    assert stores.lake is stores.pipelines and stores.warehouse is stores.pipelines


def test_build_stores_with_buckets_shares_one_client(s3_settings: Settings) -> None:
    split = s3_settings.model_copy(update={"s3_bucket_warehouse": "karet-warehouse"})
    stores = build_stores(split)

    assert isinstance(stores.pipelines, S3Store) and isinstance(stores.warehouse, S3Store)
    assert stores.lake is stores.pipelines
    assert (stores.pipelines.bucket, stores.warehouse.bucket) == (s3_settings.s3_bucket, "karet-warehouse")
    assert stores.warehouse.client is stores.pipelines.client
    stores.pipelines.close()
