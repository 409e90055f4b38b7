"""Raw file uploads: stored under a source folder, checked, capped, and run like a webhook event."""

import hashlib
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from karet_api.services import autoruns, uploads
from karet_defs.store.factory import build_stores
from karet_defs.templates import install_template
from tests.factories import SPENDING_CSV, SPENDING_RAW, FakeLauncher

SECRET = "hook"


@pytest.fixture
def client(make_client, local_settings, local_stores) -> Iterator[TestClient]:
    install_template(local_stores, "spending", "spending")
    api = make_client(local_settings.model_copy(update={"webhook_secret": SECRET}))
    yield api
    assert api.app.state.auto_runs.wait_idle(timeout=60)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeLauncher:
    launcher = FakeLauncher()
    monkeypatch.setattr(autoruns, "start_pipeline_run", launcher)
    return launcher


def test_an_upload_is_stored_and_runs_the_pipeline_end_to_end(client, local_stores):
    response = client.put("/api/p/spending/files/transactions/2026/may.csv", content=SPENDING_CSV)

    assert response.status_code == 200
    assert response.json() == {
        "ok": True,
        "key": SPENDING_RAW + "2026/may.csv",
        "etag": hashlib.md5(SPENDING_CSV).hexdigest(),
        "scheduled": True,
    }
    assert local_stores.lake.get(SPENDING_RAW + "2026/may.csv") == SPENDING_CSV
    assert client.app.state.auto_runs.wait_idle(timeout=60)
    [job] = client.get("/api/p/spending/jobs").json()["jobs"]
    assert (job["trigger"], job["status"], job["files_processed"], job["errors"]) == (
        "webhook",
        "completed",
        2,
        [],
    )
    rows = client.get("/api/p/spending/tables/transactions/rows?limit=1000").json()["rows"]
    assert {"STARBUCKS #1", "SHELL 77"} <= {row["description"] for row in rows}


def test_the_bucket_notification_of_an_upload_starts_nothing_more(client, fake):
    first = client.put("/api/p/spending/files/transactions/jan.csv", content=SPENDING_CSV).json()
    record = {"eventName": "s3:ObjectCreated:Put", "s3": {"object": {"key": SPENDING_RAW + "jan.csv"}}}
    event = {"Records": [record]}
    echoed = client.post(f"/api/events/s3?secret={SECRET}", json=event).json()

    assert first["scheduled"] is True
    assert echoed == {"received": 1, "scheduled": []}  # RustFS notifying about our own upload
    assert len(fake.runs) == 1


REFUSED = [
    ("..%2Fother%2Ftransactions%2Fx.csv", "invalid_path"),
    ("transactions/%2e%2e/%2e%2e/other/x.csv", "invalid_path"),
    ("transactions/%252e%252e/x.csv", "invalid_path"),  # double-encoded: decoded once more, then checked
    ("transactions//x.csv", "invalid_path"),
    ("transactions/a%5Cb.csv", "invalid_path"),
    ("transactions/a%00.csv", "invalid_path"),
    ("%2Fetc%2Fx.csv", "invalid_path"),
    ("elsewhere/x.csv", "invalid_path"),
    ("x.csv", "invalid_path"),
    ("transactions/report.parquet", "unsupported_file_type"),
    ("transactions/run.sh", "unsupported_file_type"),
    ("transactions/noext", "unsupported_file_type"),
    ("transactions/events.json", "unsupported_file_type"),  # the source reads SPENDING_CSV
]


def test_unsafe_paths_and_types_are_422(client, local_stores):
    answers = [client.put(f"/api/p/spending/files/{path}", content=SPENDING_CSV) for path, _ in REFUSED]

    assert [(a.status_code, a.json()["error"]) for a in answers] == [(422, code) for _, code in REFUSED]
    assert [i.key for i in local_stores.lake.list(SPENDING_RAW)] == [SPENDING_RAW + "seed.csv"]


UNREADABLE = [
    (b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00", "NUL bytes"),  # a workbook named .csv
    ("date,description,amount,account\n2026-05-01,Caf\u00e9,4.50,visa\n".encode("latin-1"), "not UTF-8"),
    (b"date,amount\n2026-05-01,4.50\n", 'missing required columns: ["description", "account"]'),
    (b"  \n", "empty"),
]


def test_content_no_run_could_read_is_422_and_not_stored(client, local_stores, fake):
    answers = [client.put("/api/p/spending/files/transactions/bad.csv", content=b) for b, _ in UNREADABLE]

    assert {(a.status_code, a.json()["error"]) for a in answers} == {(422, "invalid_file_content")}
    assert all(said in a.json()["message"] for a, (_, said) in zip(answers, UNREADABLE, strict=True))
    assert [i.key for i in local_stores.lake.list(SPENDING_RAW)] == [SPENDING_RAW + "seed.csv"]
    assert fake.runs == []


def test_too_large_unknown_pipeline_and_no_session(client, make_client, local_settings, monkeypatch, fake):
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 64)

    declared = client.put("/api/p/spending/files/transactions/big.csv", content=b"x" * 65)
    streamed = client.put("/api/p/spending/files/transactions/big.csv", content=iter([b"x" * 40, b"y" * 40]))
    missing = client.put("/api/p/ghost/files/transactions/x.csv", content=b"a\n")
    anonymous = make_client(local_settings, authenticated=False).put(
        "/api/p/spending/files/transactions/x.csv", content=b"a\n"
    )

    assert (declared.status_code, declared.json()["error"]) == (413, "payload_too_large")
    assert (streamed.status_code, streamed.json()["error"]) == (413, "payload_too_large")
    assert (missing.status_code, missing.json()["error"]) == (404, "pipeline_config_not_found")
    assert anonymous.status_code == 401
    assert fake.runs == []


def test_an_upload_goes_to_the_lake_bucket_on_s3(s3_api_client, s3_settings, fake):
    stores = build_stores(s3_settings)
    install_template(stores, "spending", "spending")

    response = s3_api_client.put("/api/p/spending/files/transactions/jan.csv", content=SPENDING_CSV)

    assert response.json()["scheduled"] is True and response.json()["key"] == SPENDING_RAW + "jan.csv"
    assert stores.lake.get(SPENDING_RAW + "jan.csv") == SPENDING_CSV
    assert s3_api_client.app.state.auto_runs.wait_idle(timeout=60)
    assert [run.tags["karet/trigger"] for run in fake.runs] == ["webhook"]
