"""A corpus of hostile input: each case is refused with a 4xx in the Karet envelope; nothing stored changes.

After each refusal the whole data directory (the local store's objects, everything beside them) is compared
byte for byte with a snapshot taken before. Already covered where the feature is tested, and not repeated
here: the import refusals of `tests/api/routes/test_transfer.py` (zip-slip and unsafe entry paths, a 50 MB
zip bomb, 2,001 entries, lying sizes, body over 200 MiB), the forged, tampered and aged cookies of
`tests/api/routes/test_auth.py`, and its throttle arithmetic on a fake clock.
"""

import csv
import hmac
import io
import json
import time
import zipfile
from pathlib import Path
from urllib.parse import unquote

import pytest

from karet_api.routing import MAX_JSON_BODY_BYTES
from karet_defs.config.validate import MAX_CONFIG_BYTES, parse_pipeline
from karet_defs.errors import ConfigSchemaError
from karet_defs.orchestration.launch import execute_pipeline_run
from karet_defs.store import keys
from karet_defs.templates import install_template, template_files
from tests.conftest import API_KEY
from tests.factories import data_dir_snapshot, make_pipeline, put_config, put_raw

SLUG = "spending"
PASSWORD = "correct horse"
WEBHOOK_SECRET = "hook-secret"


@pytest.fixture
def hostile(make_client, local_settings, local_stores):
    """The API on the local store with the spending pipeline, and a snapshot function of the data dir."""
    client = make_client(local_settings.model_copy(update={"webhook_secret": WEBHOOK_SECRET}))
    install_template(local_stores, SLUG, "spending")
    root = Path(local_settings.data_dir)

    def snapshot() -> dict[str, str]:
        return data_dir_snapshot(root)

    return client, snapshot


def _refused(response, status: int | tuple[int, ...], error: str | None = None) -> None:
    statuses = (status,) if isinstance(status, int) else status
    assert response.status_code in statuses, (response.status_code, response.text[:200])
    if response.request.method != "HEAD":
        body = response.json()
        assert set(body) >= {"error", "message"}, body
        assert error is None or body["error"] == error, body


TRAVERSALS = [
    "..",
    "%2e%2e",
    "%2E%2E",
    "%2e%2e%2f",
    "..%2f..%2f",
    "%2e%2e%5c",
    "..%5c..%5c",
    "%2e%2e%2f%2e%2e",
]
SLUG_ROUTES = [
    ("GET", "/api/p/{}/config"),
    ("PUT", "/api/p/{}/config"),
    ("POST", "/api/p/{}/validate"),
    ("GET", "/api/p/{}/dashboards"),
    ("GET", "/api/p/{}/tables"),
    ("GET", "/api/p/{}/tables/transactions/rows"),
    ("POST", "/api/p/{}/jobs"),
    ("HEAD", "/api/p/{}/preview"),
    ("PUT", "/api/p/{}/preview"),
    ("GET", "/api/p/{}/export"),
    ("DELETE", "/api/pipelines/{}"),
    ("PATCH", "/api/pipelines/{}"),
    ("PUT", "/api/p/{}/files/transactions/a.csv"),
    ("POST", "/api/pipelines/import?name={}"),
]
PATH_ROUTES = [
    ("GET", "/api/p/spending/dashboards/{}"),
    ("GET", "/api/p/spending/tables/{}/rows"),
    ("PUT", "/api/p/spending/files/{}"),
]
PATHS = [
    "..%2fpipeline.json",
    "%2e%2e%2f%2e%2e%2f_auth%2fadmin.json",
    "transactions/../../pipeline.json",
    "transactions/%2e%2e/%2e%2e/x.csv",
    "%2fetc%2fpasswd",
    "transactions/..%5c..%5cx.csv",
    "..",
]


def _send(client, method: str, url: str, target: str):
    if method == "PATCH":
        return client.patch(url, json={"newSlug": target})
    body = b"\x89PNG\r\n\x1a\n" if "preview" in url else b'{"version": 1}'
    return client.request(method, url, content=body if method in ("PUT", "POST") else None)


def test_traversal_in_slugs_is_refused_and_touches_nothing(hostile):
    client, snapshot = hostile
    before = snapshot()
    cases = 0
    for slug in TRAVERSALS:
        for method, route in SLUG_ROUTES:
            response = _send(client, method, route.format(slug), "moved")
            _refused(response, (400, 404, 405, 422))
            cases += 1
        _refused(_send(client, "PATCH", f"/api/pipelines/{SLUG}", unquote(slug)), 422, "invalid_slug")
    assert snapshot() == before
    assert cases == len(TRAVERSALS) * len(SLUG_ROUTES)


def test_a_slug_with_a_name_after_the_dots_is_sanitised_and_confined_to_its_folder(hostile):
    client, snapshot = hostile
    before = snapshot()

    response = client.put("/api/p/..%5c..%5cwindows/config", content=template_files("blank")["pipeline.json"])

    assert response.status_code == 200  # Karet's rule: every character outside [a-z0-9-] is a dash, trimmed
    # The config and its history (version 1), all inside the sanitised pipeline's folder.
    assert snapshot().keys() - before.keys() == {
        "pipelines/windows/pipeline.json",
        "pipelines/windows/versions/1.json",
        "pipelines/windows/versions/index.json",
    }


def test_traversal_in_file_paths_and_names_is_refused_and_touches_nothing(hostile):
    client, snapshot = hostile
    before = snapshot()
    for path in PATHS:
        for method, route in PATH_ROUTES:
            response = _send(client, method, route.format(path), path)
            _refused(response, (404, 405, 422))
    assert snapshot() == before


def _zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _symlink_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("pipeline.json", template_files("blank")["pipeline.json"])
        link = zipfile.ZipInfo("raw/..%2f..%2fetc")
        link.external_attr = 0o120777 << 16  # a symlink entry, its target the content
        archive.writestr(link, "/etc/passwd")
    return buffer.getvalue()


BLANK = template_files("blank")["pipeline.json"]
ZIP_CASES = {
    "encoded-dots": (lambda: _zip({"pipeline.json": BLANK, "%2e%2e/x.csv": b"a"}), 422, "invalid_entry_path"),
    "encoded-slash": (lambda: _zip({"pipeline.json": BLANK, "..%2fx.csv": b"a"}), 422, "invalid_entry_path"),
    "drive-letter": (lambda: _zip({"pipeline.json": BLANK, "C:/x.csv": b"a"}), 422, "invalid_entry_path"),
    "backslashes": (lambda: _zip({"pipeline.json": BLANK, "..\\..\\x.csv": b"a"}), 422, "invalid_entry_path"),
    "fullwidth-dots": (
        lambda: _zip({"pipeline.json": BLANK, "\uff0e\uff0e/x.csv": b"a"}),
        422,
        "invalid_entry_path",
    ),
    "symlink": (_symlink_zip, 422, "invalid_entry_path"),
    # 4 MiB of zeros deflate to ~4 KiB: a ratio of ~1000, five times the limit.
    "ratio-bomb": (
        lambda: _zip({"pipeline.json": BLANK, "raw/z.csv": bytes(4 * 1024 * 1024)}),
        413,
        "zip_expands_too_large",
    ),
}


@pytest.mark.parametrize("case", list(ZIP_CASES))
def test_hostile_archives_are_refused_and_store_nothing(hostile, case):
    client, snapshot = hostile
    make, status, error = ZIP_CASES[case]
    before = snapshot()

    _refused(client.post("/api/pipelines/import?name=evil", content=make()), status, error)

    assert snapshot() == before


def _deep_expression(depth: int) -> dict:
    node: dict = {"kind": "col", "name": "a"}
    for _ in range(depth):
        node = {"kind": "not", "input": node}
    return node


def _deep_config_text(depth: int) -> str:
    # Written by hand: json.dumps itself recurses once per level.
    head = (
        '{"version":1,"source_containers":[],"lookup_mappings":[],"analytic_tables":[],"mappings":[{"id":"m",'
    )
    head += '"source_container_id":"s","analytic_table_id":"t","columns":[{"name":"a","expr":'
    return head + '{"kind":"not","input":' * depth + '{"kind":"col","name":"a"}' + "}" * depth + "}]}]}"


def test_oversized_and_abysmal_configs_get_a_bounded_clear_answer(hostile, local_stores):
    client, snapshot = hostile
    before = snapshot()
    big = b'{"version": 1, "x": "' + b"a" * (MAX_CONFIG_BYTES + 1) + b'"}'
    deep = _deep_config_text(10_000).encode()
    started = time.monotonic()
    for url in (f"/api/p/{SLUG}/config", f"/api/p/{SLUG}/validate", "/config/validate"):
        method = "PUT" if url.endswith("config") and "/api/" in url else "POST"
        _refused(client.request(method, url, content=big), 413, "payload_too_large")
        # Without a Content-Length the body is counted as it arrives.
        _refused(
            client.request(method, url, content=iter([big[:1024], big[1024:]])), 413, "payload_too_large"
        )
        deep_answer = client.request(method, url, content=deep)
        _refused(deep_answer, 422, "invalid_json" if method == "PUT" else "schema")
        assert "depth" in deep_answer.json()["message"] or "deeper" in deep_answer.json()["message"]
    assert time.monotonic() - started < 20
    assert snapshot() == before

    # Stored behind the API's back (an import can carry one), they fail the run at once with the reason.
    for stored, reason in [(deep, "deeper than the limit"), (b"{" + b" " * 100_000_000 + b"}", "limit is")]:
        put_config(local_stores, SLUG, stored)
        started = time.monotonic()
        run = client.post("/jobs/run", json={"pipeline_prefix": f"pipelines/{SLUG}/"})
        _refused(run, 400, "config_parse_failed")
        assert reason in run.json()["message"] and time.monotonic() - started < 20


def test_the_parser_refuses_100_mb_expressions_before_decoding_them():
    config = json.loads(template_files("spending")["pipeline.json"])
    config["mappings"][0]["columns"][0]["expr"] = {"kind": "str", "value": "x" * 100_000_000}
    raw = json.dumps(config)
    started = time.monotonic()
    with pytest.raises(ConfigSchemaError, match="the limit is 5242880 bytes"):
        parse_pipeline(raw)
    assert time.monotonic() - started < 1
    with pytest.raises(ConfigSchemaError, match="nesting is deeper than the limit of 256"):
        parse_pipeline(_deep_config_text(10_000))


WRONG_KEYS = [
    {"X-API-Key": "wrong"},
    {"X-API-Key": API_KEY + "x"},
    {"X-API-Key": API_KEY[:-1]},
    {"X-API-Key": API_KEY.upper()},
    {"X-API-Key": " " + API_KEY},
    {"Authorization": f"Basic {API_KEY}"},
    {"Authorization": "Bearer"},
    {"Cookie": "karet_session=eyJzdWIiOiJhZG1pbiJ9.Zm9v.YmFy"},
    {"Cookie": "karet_session=" + "A" * 5000},
]


def test_wrong_api_keys_and_forged_cookies_change_nothing_and_are_compared_in_constant_time(
    hostile, monkeypatch
):
    client, snapshot = hostile
    client.headers.pop("X-API-Key")
    compared: list[tuple[bytes, bytes]] = []
    real_compare = hmac.compare_digest

    def spy(a, b):
        compared.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    before = snapshot()
    for headers in WRONG_KEYS:
        for method, url in [("PUT", f"/api/p/{SLUG}/config"), ("DELETE", f"/api/pipelines/{SLUG}")]:
            _refused(client.request(method, url, content=b"{}", headers=headers), 401, "unauthorized")
    assert snapshot() == before
    # ``compare_digest`` is hmac's: the spy sees cookie signature checks too, which are constant-time as well.
    keys_compared = {a for a, b in compared if b == API_KEY.encode()}
    assert {h["X-API-Key"].encode() for h in WRONG_KEYS if "X-API-Key" in h} <= keys_compared


def test_wrong_webhook_secrets_start_nothing(hostile, dagster_instance):
    client, snapshot = hostile
    record = {
        "eventName": "s3:ObjectCreated:Put",
        "s3": {"bucket": {"name": "x"}, "object": {"key": f"pipelines/{SLUG}/transactions/new.csv"}},
    }
    before = snapshot()
    for attempt in [
        {"headers": {}},
        {"headers": {"X-Webhook-Secret": "wrong"}},
        {"headers": {"X-Webhook-Secret": WEBHOOK_SECRET + " "}},
        {"headers": {"Authorization": "Bearer wrong"}},
        {"headers": {"X-API-Key": API_KEY}},  # the API key is not the webhook secret
        {"params": {"secret": WEBHOOK_SECRET.upper()}},
    ]:
        _refused(client.post("/api/events/s3", json={"Records": [record]}, **attempt), 401, "unauthorized")
    assert snapshot() == before
    assert dagster_instance.get_runs_count() == 0


def test_login_brute_force_is_throttled_with_retry_after(hostile):
    client, snapshot = hostile
    client.headers.pop("X-API-Key")
    assert client.post("/api/auth/setup", json={"password": PASSWORD}).status_code == 200
    client.cookies.clear()
    before = snapshot()

    statuses = []
    for attempt in range(12):
        response = client.post("/api/auth/login", json={"password": f"guess-{attempt}"})
        statuses.append(response.status_code)
        if response.status_code == 429:
            assert response.json()["error"] == "rate_limited"
            assert 1 <= int(response.headers["Retry-After"]) <= 15
    right = client.post("/api/auth/login", json={"password": PASSWORD})

    assert statuses == [401] * 5 + [429] * 7
    assert right.status_code == 429, "the right password waits too: the bucket counts attempts"
    after = snapshot()
    # The audit log records each failed login it verified, and nothing of the refused ones.
    added = sorted(key for key in after.keys() - before.keys())
    assert [key.startswith("_auth/audit/") for key in added] == [True] * 5
    assert {k: v for k, v in after.items() if k not in added} == before


def test_megabyte_passwords_are_refused_before_hashing(hostile):
    client, snapshot = hostile
    client.headers.pop("X-API-Key")
    before = snapshot()
    started = time.monotonic()
    for size, refusal in [(100_000, (401, 422)), (1024 * 1024, 413)]:
        huge = "a" * size
        for path, body in [
            ("/api/auth/setup", {"password": huge}),
            ("/api/auth/login", {"password": huge}),
            ("/api/auth/me", {"currentPassword": huge, "newPassword": huge}),
        ]:
            method = "PATCH" if path.endswith("/me") else "POST"
            _refused(client.request(method, path, json=body), refusal)
    assert time.monotonic() - started < 5
    assert snapshot() == before


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_json_bodies_over_a_mebibyte_are_refused_unread(hostile, chunked):
    client, snapshot = hostile
    before = snapshot()
    body = json.dumps({"slug": "x" * (MAX_JSON_BODY_BYTES + 1)}).encode()
    headers = {"content-type": "application/json"}
    routes = [("POST", "/api/pipelines"), ("PATCH", f"/api/pipelines/{SLUG}"), ("POST", "/jobs/run")]

    for method, path in routes:
        content = iter([body[:1024], body[1024:]]) if chunked else body
        _refused(client.request(method, path, content=content, headers=headers), 413, "payload_too_large")

    assert snapshot() == before
    # A small body on the same route is read as usual.
    assert client.post("/api/pipelines", json={"slug": "fine"}).status_code == 200


INJECTIONS = [
    "=cmd|' /C calc'!A0",
    "+1",
    "-2+3",
    "@SUM(A1:A2)",
    '=HYPERLINK("http://example.invalid","x")',
    "\t=1",
    "'=1",
    "=1+1;=2",
    "",
]


def test_csv_injection_looking_cells_are_kept_as_data_verbatim(hostile, local_stores, dagster_instance):
    client, _ = hostile
    slug = "inject"
    put_config(
        local_stores,
        slug,
        make_pipeline(
            source_columns=[("id", "int64"), ("cell", "string")],
            columns=[("id", {"kind": "col", "name": "id"}), ("cell", {"kind": "col", "name": "cell"})],
            table_schema=[{"name": "id", "type": "int64"}, {"name": "cell", "type": "string"}],
        ),
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "cell"])
    writer.writerows(enumerate(INJECTIONS))
    put_raw(local_stores, f"{keys.pipeline_prefix(slug)}raw/cells.csv", buffer.getvalue())

    outcome = execute_pipeline_run(dagster_instance, slug, trigger="api")
    rows = client.get(f"/api/p/{slug}/tables/t/rows").json()["rows"]

    assert outcome.success and outcome.errors == []
    # An empty cell is a null in CSV; every other one comes back exactly as it was written.
    assert sorted((r["id"], r["cell"]) for r in rows) == [(i, c or None) for i, c in enumerate(INJECTIONS)]
