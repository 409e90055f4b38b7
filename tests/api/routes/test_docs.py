"""The OpenAPI pages load their scripts and styles from this app, never from a CDN (in a browser, offline:
``tests/browser``)."""

import re

import pytest

SHARES_DAGSTER_INSTANCE = True  # these routes never touch Dagster
ASSETS = "/vendor/docs"


@pytest.mark.parametrize(
    ("path", "assets"),
    [
        ("/docs", [f"{ASSETS}/swagger-ui.css", f"{ASSETS}/favicon.png", f"{ASSETS}/swagger-ui-bundle.js"]),
        ("/redoc", [f"{ASSETS}/favicon.png", f"{ASSETS}/redoc.standalone.js"]),
    ],
)
def test_a_docs_page_loads_everything_from_the_app(make_client, local_settings, path, assets):
    client = make_client(local_settings, authenticated=False)

    response = client.get(path)

    assert response.status_code == 200
    assert re.findall(r'(?:src|href)="([^"]*)"', response.text) == assets
    assert "'/openapi.json'" in response.text or '"/openapi.json"' in response.text
    assert "fonts.googleapis" not in response.text
    assert "default-src 'self'" in response.headers["content-security-policy"]
    for asset in assets:
        served = client.get(asset)
        assert served.status_code == 200 and len(served.content) > 1000, asset
