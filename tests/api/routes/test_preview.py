"""The preview PNG through HTTP: placeholder, store, probe, and the refusals of a bad body."""

import struct
import zlib

from karet_api.routes.preview import MAX_PREVIEW_BYTES, PLACEHOLDER_PNG
from karet_defs.errors import StoreError

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


SHARES_DAGSTER_INSTANCE = True  # these routes never touch Dagster


def test_the_placeholder_is_a_transparent_1x1_png():
    assert PLACEHOLDER_PNG.startswith(b"\x89PNG\r\n\x1a\n")
    width, height, depth, colour = struct.unpack(">IIBB", PLACEHOLDER_PNG[16:26])
    assert (width, height, depth, colour) == (1, 1, 8, 6)  # RGBA
    idat_length = struct.unpack(">I", PLACEHOLDER_PNG[33:37])[0]
    assert zlib.decompress(PLACEHOLDER_PNG[41 : 41 + idat_length]) == b"\x00" + b"\x00" * 4  # alpha 0


def test_a_missing_preview_is_the_placeholder_cached_briefly(any_api_client):
    response = any_api_client.get("/api/p/none/preview")

    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["cache-control"] == "public, max-age=10"
    assert response.content == PLACEHOLDER_PNG


def test_head_tells_whether_a_preview_is_stored(any_api_client):
    assert any_api_client.head("/api/p/shot/preview").status_code == 404

    response = any_api_client.put("/api/p/shot/preview", content=PNG)

    assert (response.status_code, response.json()) == (200, {"ok": True})
    assert any_api_client.head("/api/p/shot/preview").status_code == 200
    stored = any_api_client.get("/api/p/shot/preview")
    assert (stored.content, stored.headers["cache-control"]) == (PNG, "public, max-age=60")


def test_put_refuses_a_body_that_is_not_a_png(any_api_client):
    response = any_api_client.put("/api/p/shot/preview", content=b"GIF89a...")

    assert (response.status_code, response.json()["error"]) == (422, "invalid_png")
    assert any_api_client.head("/api/p/shot/preview").status_code == 404


def test_put_refuses_a_body_over_5_mib(any_api_client):
    response = any_api_client.put("/api/p/shot/preview", content=PNG + b"\x00" * MAX_PREVIEW_BYTES)

    assert (response.status_code, response.json()["error"]) == (413, "payload_too_large")
    assert any_api_client.head("/api/p/shot/preview").status_code == 404


def test_put_counts_the_bytes_of_a_body_without_length(api_client):
    def chunks():
        yield PNG
        for _ in range(6):
            yield b"\x00" * (1024 * 1024)

    response = api_client.put("/api/p/shot/preview", content=chunks())

    assert (response.status_code, response.json()["error"]) == (413, "payload_too_large")


def test_put_refuses_an_invalid_slug(api_client):
    response = api_client.put("/api/p/%21%21/preview", content=PNG)
    assert (response.status_code, response.json()["error"]) == (422, "invalid_slug")


def test_a_store_failure_still_answers_the_placeholder(api_client, monkeypatch):
    api_client.put("/api/p/shot/preview", content=PNG)

    def broken(key):
        raise StoreError("injected failure")

    monkeypatch.setattr(api_client.app.state.stores.pipelines, "get", broken)
    response = api_client.get("/api/p/shot/preview")

    assert (response.status_code, response.content) == (200, PLACEHOLDER_PNG)
    assert response.headers["cache-control"] == "public, max-age=10"
