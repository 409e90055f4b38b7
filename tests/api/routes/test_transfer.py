"""Export and import through HTTP: a byte-for-byte round trip, and every refusal storing nothing."""

import io
import json
import os
import re
import zipfile

import pytest

from karet_api.services import transfer
from karet_defs.engine.run import run_pipeline
from karet_defs.errors import StoreError
from karet_defs.store.base import Stores
from karet_defs.store.s3 import make_s3_client
from karet_defs.templates import template_files
from tests.factories import SPENDING_CSV, put_raw, stored_objects, table_version

SHARES_DAGSTER_INSTANCE = True  # these routes never touch Dagster


def _stores(client) -> Stores:
    return client.app.state.stores


def _objects(client) -> dict[str, bytes]:
    return stored_objects(_stores(client))


def _zip(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


CONFIG = template_files("blank")["pipeline.json"]


def _seed_source(client, slug: str) -> None:
    """A spending pipeline reading its own folder by absolute prefix, with output, preview, a job record."""
    assert client.post("/api/pipelines", json={"slug": slug, "template": "spending"}).status_code == 200
    stores = _stores(client)
    config = json.loads(template_files("spending")["pipeline.json"])
    config["source_containers"][0]["path_prefix"] = f"pipelines/{slug}/transactions/"
    config["source_containers"].append(
        {**config["source_containers"][0], "id": "shared", "path_prefix": "pipelines/bank/feed/"}
    )
    assert client.put(f"/api/p/{slug}/config", content=json.dumps(config, indent=2)).status_code == 200
    stores.warehouse.put(f"pipelines/{slug}/clean/transactions/year=2026/month=4/m.parquet", os.urandom(3000))
    stores.pipelines.put(f"pipelines/{slug}/preview.png", b"\x89PNG\r\n\x1a\n" + os.urandom(100))
    stores.pipelines.put(f"pipelines/{slug}/jobs/job-1.json", b'{"id": "job-1"}')


def _relative(objects: dict[str, bytes], slug: str) -> dict[str, bytes]:
    """``<store>:<relative path>`` → body for the objects of one pipeline."""
    marker = f":pipelines/{slug}/"
    return {k.replace(marker, ":"): v for k, v in objects.items() if marker in k}


def test_export_then_import_round_trips_byte_for_byte(any_api_client):
    _seed_source(any_api_client, "source")
    source = _relative(_objects(any_api_client), "source")

    exported = any_api_client.get("/api/p/source/export")

    assert exported.status_code == 200
    assert exported.headers["content-type"] == "application/zip"
    assert exported.headers["content-disposition"] == 'attachment; filename="source.zip"'
    with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
        assert {i.compress_type for i in archive.infolist()} == {zipfile.ZIP_DEFLATED}
        entries = {name: archive.read(name) for name in archive.namelist()}
    assert {f":{name}": body for name, body in entries.items()} == {
        ":" + k.partition(":")[2]: v for k, v in source.items()
    }

    imported = any_api_client.post("/api/pipelines/import?name=The Copy", content=exported.content)

    assert (imported.status_code, imported.json()) == (200, {"ok": True, "pipeline": "the-copy"})
    copy = _relative(_objects(any_api_client), "the-copy")
    expected = {k: v for k, v in source.items() if not k.endswith(":jobs/job-1.json")}
    assert set(copy) == set(expected)
    # The config and the history of its versions name the pipeline's own folder: they move with it.
    moved = {k for k in copy if k.endswith((":pipeline.json", ":versions/2.json", ":versions/index.json"))}
    assert {k: v for k, v in copy.items() if k not in moved} == {
        k: v for k, v in expected.items() if k not in moved
    }
    config_key = next(k for k in copy if k.endswith(":pipeline.json"))
    assert copy[config_key] == next(v for k, v in copy.items() if k.endswith(":versions/2.json"))
    history = any_api_client.get("/api/p/the-copy/config/versions").json()
    assert (history["live_version"], [v["version"] for v in history["versions"]]) == (2, [2, 1])
    prefixes = [s["path_prefix"] for s in json.loads(copy[config_key])["source_containers"]]
    assert prefixes == ["pipelines/the-copy/transactions/", "pipelines/bank/feed/"]
    assert json.loads(copy[config_key])["mappings"] == json.loads(expected[config_key])["mappings"]


def test_three_buckets_export_import_and_delete(make_client, make_s3_settings):
    settings = make_s3_settings()
    extra = {
        "s3_bucket_lake": settings.s3_bucket + "-lake",
        "s3_bucket_warehouse": settings.s3_bucket + "-wh",
    }
    s3 = make_s3_client(settings)
    try:
        for bucket in extra.values():
            s3.create_bucket(Bucket=bucket)
    finally:
        s3.close()
    client = make_client(settings.model_copy(update=extra))
    _seed_source(client, "tri")
    stores = _stores(client)
    assert len({id(stores.pipelines), id(stores.lake), id(stores.warehouse)}) == 3
    # The same relative path in a second bucket: the ZIP keeps the one an import would write back.
    stores.lake.put("pipelines/tri/preview.png", b"not the preview")

    exported = client.get("/api/p/tri/export").content
    client.delete("/api/pipelines/tri")
    assert _objects(client) == {}
    assert client.post("/api/pipelines/import?name=tri", content=exported).status_code == 200

    assert stores.lake.head("pipelines/tri/transactions/seed.csv") is not None
    assert stores.warehouse.head("pipelines/tri/clean/transactions/year=2026/month=4/m.parquet") is not None
    assert stores.pipelines.get("pipelines/tri/preview.png").startswith(b"\x89PNG")
    assert stores.lake.head("pipelines/tri/preview.png") is None


def test_export_of_nothing_is_not_found(any_api_client):
    response = any_api_client.get("/api/p/ghost/export")
    assert (response.status_code, response.json()["error"]) == (404, "pipeline_not_found")


def test_import_without_a_name_picks_one(api_client):
    response = api_client.post("/api/pipelines/import", content=_zip({"pipeline.json": CONFIG}))

    assert response.status_code == 200
    slug = response.json()["pipeline"]
    assert re.fullmatch(r"imported-\d{13}", slug)
    assert api_client.get(f"/api/p/{slug}/config").content == CONFIG


def test_import_refuses_an_existing_slug(any_api_client):
    assert (
        any_api_client.post("/api/pipelines", json={"slug": "here", "template": "blank"}).status_code == 200
    )
    before = _objects(any_api_client)

    response = any_api_client.post("/api/pipelines/import?name=here", content=_zip({"pipeline.json": b"{}"}))

    assert response.status_code == 409
    assert (response.json()["error"], response.json()["pipeline"]) == ("already_exists", "here")
    assert _objects(any_api_client) == before


def test_import_refuses_an_invalid_name(api_client):
    response = api_client.post(
        f"/api/pipelines/import?name={'x' * 64}", content=_zip({"pipeline.json": CONFIG})
    )
    assert (response.status_code, response.json()["error"]) == (422, "invalid_slug")


def _lying_zip() -> bytes:
    # The central directory claims 100 bytes for an entry that inflates to 5000.
    data = bytearray(_zip({"pipeline.json": CONFIG, "raw/a.csv": os.urandom(5000)}))
    central = data.rindex(b"PK\x01\x02")
    data[central + 24 : central + 28] = (100).to_bytes(4, "little")
    return bytes(data)


# Bodies are built when a case runs: the bomb alone is 50 MB of zeros to compress.
REFUSALS = {
    "not-a-zip": (lambda: b"PK\x03\x04 definitely not a zip", 422, "invalid_zip"),
    "empty-body": (lambda: b"", 422, "invalid_zip"),
    "lying-sizes": (_lying_zip, 422, "invalid_zip"),
    "no-config": (lambda: _zip({"dashboards/a.json": b"{}"}), 422, "missing_pipeline_json"),
    "nested-config": (lambda: _zip({"sub/pipeline.json": CONFIG}), 422, "missing_pipeline_json"),
    "too-many": (
        lambda: _zip({"pipeline.json": CONFIG, **{f"raw/{i}.csv": b"a" for i in range(2000)}}),
        422,
        "too_many_entries",
    ),
    "bomb": (
        lambda: _zip({"pipeline.json": CONFIG, "raw/zeros.csv": bytes(50 * 1024 * 1024)}),
        413,
        "zip_expands_too_large",
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_import_refusals_store_nothing(any_api_client, case):
    make_body, status, error = REFUSALS[case]
    body = make_body()
    before = _objects(any_api_client)

    response = any_api_client.post("/api/pipelines/import?name=refused", content=body)

    assert (response.status_code, response.json()["error"]) == (status, error)
    assert _objects(any_api_client) == before


@pytest.mark.parametrize(
    "path", ["../x.csv", "/abs.csv", "a\\b.csv", ".hidden", "raw/.env", "raw//a.csv", "raw/./a", "x" * 513]
)
def test_import_refuses_unsafe_entry_paths(api_client, path):
    body = _zip({"pipeline.json": CONFIG, "raw/ok.csv": b"a\n1\n", path: b"evil"})

    response = api_client.post("/api/pipelines/import?name=slip", content=body)

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_entry_path"
    assert response.json()["message"] == f"Unsafe zip entry: {path}"
    assert _objects(api_client) == {}


def test_import_refuses_an_archive_expanding_past_the_total_limit(api_client, monkeypatch):
    monkeypatch.setattr(transfer, "MAX_EXPANDED_BYTES", 10_000)
    body = _zip({"pipeline.json": CONFIG, "raw/a.csv": os.urandom(6000), "raw/b.csv": os.urandom(6000)})

    response = api_client.post("/api/pipelines/import?name=big", content=body)

    assert (response.status_code, response.json()["error"]) == (413, "zip_expands_too_large")
    assert _objects(api_client) == {}


def test_import_refuses_a_body_over_the_size_limit(api_client, monkeypatch):
    monkeypatch.setattr(transfer, "MAX_ZIP_BYTES", 1000)
    body = _zip({"pipeline.json": CONFIG, "raw/a.csv": os.urandom(2000)})

    declared = api_client.post("/api/pipelines/import?name=big", content=body)
    streamed = api_client.post("/api/pipelines/import?name=big", content=iter([body[:500], body[500:]]))

    assert (declared.status_code, declared.json()["error"]) == (413, "zip_too_large")
    assert (streamed.status_code, streamed.json()["error"]) == (413, "zip_too_large")
    assert _objects(api_client) == {}


def test_a_failed_import_write_removes_what_it_stored(api_client, monkeypatch):
    def broken(*args, **kwargs):
        raise StoreError("injected failure")

    monkeypatch.setattr(api_client.app.state.stores.pipelines, "put", broken)
    body = _zip({"pipeline.json": CONFIG, "raw/a.csv": b"a\n1\n", "dashboards/d.json": b"{}"})

    response = api_client.post("/api/pipelines/import?name=half", content=body)

    assert (response.status_code, response.json()["error"]) == (503, "s3_error")
    assert _objects(api_client) == {}


def _table_with_two_versions(client, slug: str) -> None:
    assert client.post("/api/pipelines", json={"slug": slug, "template": "spending"}).status_code == 200
    stores = _stores(client)
    run_pipeline(stores, slug)
    put_raw(stores, f"pipelines/{slug}/transactions/may.csv", SPENDING_CSV)
    run_pipeline(stores, slug)
    # A crashed commit's scratch in the log belongs to no version.
    stores.warehouse.put(f"pipelines/{slug}/clean/transactions/_delta_log/_commit_0a1b.json.tmp", b"{}")


def _rows_by_version(client, slug: str) -> list[list[dict]]:
    url = f"/api/p/{slug}/tables/transactions/rows"
    return [client.get(f"{url}?version={v}&include_hidden=true").json()["rows"] for v in (0, 1)]


@pytest.fixture(params=["local", "s3", "s3-three-buckets"])
def table_client(request, make_client, local_settings, make_s3_settings):
    if request.param == "local":
        return make_client(local_settings)
    settings = make_s3_settings()
    if request.param == "s3-three-buckets":
        extra = {
            "s3_bucket_lake": settings.s3_bucket + "-lake",
            "s3_bucket_warehouse": settings.s3_bucket + "-wh",
        }
        s3 = make_s3_client(settings)
        try:
            for bucket in extra.values():
                s3.create_bucket(Bucket=bucket)
        finally:
            s3.close()
        settings = settings.model_copy(update=extra)
    return make_client(settings)


def test_an_exported_then_imported_pipeline_keeps_its_tables_at_their_versions(table_client):
    _table_with_two_versions(table_client, "source")
    source_rows = _rows_by_version(table_client, "source")

    exported = table_client.get("/api/p/source/export").content
    with zipfile.ZipFile(io.BytesIO(exported)) as archive:
        names = archive.namelist()
    assert {
        "clean/transactions/_delta_log/00000000000000000000.json",
        "clean/transactions/_delta_log/00000000000000000001.json",
    } <= set(names)
    assert not any(name.endswith(".tmp") for name in names)

    imported = table_client.post("/api/pipelines/import?name=copy", content=exported)

    assert imported.status_code == 200, imported.text
    stores = _stores(table_client)
    assert table_version(stores, "copy", "transactions") == 1
    assert _rows_by_version(table_client, "copy") == source_rows
    # The log lives beside the data, in the warehouse, whichever bucket JSON would go to.
    log = "pipelines/copy/clean/transactions/_delta_log/00000000000000000000.json"
    assert stores.warehouse.head(log) is not None


@pytest.mark.parametrize(
    ("path", "safe"),
    [
        ("clean/t/_delta_log/00000000000000000003.json", True),
        ("clean/t/_delta_log/00000000000000000010.checkpoint.parquet", True),
        ("clean/t/_delta_log/_last_checkpoint", True),
        ("clean/t/merchant=A%20%26%20B/year=2026/m.0a1b.2c3d.parquet", True),
        ("clean/t/_delta_log", False),
        ("clean/t/_delta_log/_commit_0a1b.json.tmp", False),
        ("clean/t/_last_checkpoint", False),
        ("clean/t/%2E%2E/x.parquet", False),
        ("clean/t/a=%zz/x.parquet", False),
    ],
)
def test_entry_paths_of_delta_tables(path, safe):
    assert transfer.is_safe_entry_path(path) is safe
