"""The browser pages over HTTP: who gets a page and who is sent to sign in, what a page embeds, and that
nothing it loads comes from another host. What the pages show in a browser: ``tests/browser``."""

import json
import re
from html.parser import HTMLParser

import pytest

from karet_api.services import pages
from karet_defs.store import keys
from tests.conftest import API_KEY
from tests.factories import make_user, token_pair_for

SHARES_DAGSTER_INSTANCE = True  # these routes never touch Dagster
OVERVIEW = "/p/spending/dashboards/spending_overview"
PASSWORD = "correct horse battery"


@pytest.fixture
def anonymous(make_client, local_settings):
    """A client without a session, on a store holding the Spending template."""
    client = make_client(local_settings, authenticated=False)
    response = client.post(
        "/api/pipelines", json={"slug": "spending", "template": "spending"}, headers={"X-API-Key": API_KEY}
    )
    assert response.status_code == 200, response.text
    return client


@pytest.fixture
def signed_in(anonymous):
    """The same client holding the session cookie that setting the admin password leaves."""
    assert anonymous.post("/api/auth/setup", json={"password": PASSWORD}).status_code == 200
    return anonymous


class _Links(HTMLParser):
    """Every `src` and `href` of a document."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value or "" for name, value in attrs if name in ("src", "href")]


def _links(html: str) -> list[str]:
    parser = _Links()
    parser.feed(html)
    return parser.links


def _embedded_spec(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="dashboard-spec">(.*?)</script>', html, re.S)
    assert found, "the page embeds no spec"
    return json.loads(found.group(1))


def test_a_browser_without_a_session_is_sent_to_sign_in_and_back(anonymous):
    response = anonymous.get(f"{OVERVIEW}?from=mail", follow_redirects=False)

    assert response.status_code == 302
    assert response.headers["location"] == (
        "/login?next=%2Fp%2Fspending%2Fdashboards%2Fspending_overview%3Ffrom%3Dmail"
    )


def test_the_session_cookie_or_the_api_key_opens_the_page(signed_in):
    assert signed_in.get(OVERVIEW).status_code == 200
    signed_in.cookies.clear()
    assert signed_in.get(OVERVIEW, follow_redirects=False).status_code == 302
    assert signed_in.get(OVERVIEW, headers={"X-API-Key": API_KEY}).status_code == 200


def test_a_user_opens_the_page_only_of_a_pipeline_they_may_see(anonymous):
    make_user(anonymous, "ada", "auditor")
    as_ada = {"Authorization": f"Bearer {token_pair_for(anonymous, 'ada').access_token}"}
    shared = anonymous.get(OVERVIEW, headers=as_ada)
    access = json.dumps({"owner": "grace", "members": []}).encode()
    anonymous.app.state.stores.pipelines.put(keys.access_key("spending"), access)

    hidden = anonymous.get(OVERVIEW, headers=as_ada)

    assert shared.status_code == 200
    assert hidden.status_code == 404
    assert "<code>not_found</code>" in hidden.text


def test_the_page_embeds_what_the_spec_endpoint_answers(signed_in):
    response = signed_in.get(OVERVIEW)
    spec = signed_in.get("/api/p/spending/dashboards/spending_overview/spec").json()

    assert response.headers["content-type"].startswith("text/html")
    assert 'data-data-url="/api/p/spending/dashboards/spending_overview/data"' in response.text
    # Only the schema address goes: the page tells vega-embed the mode instead.
    for chart in spec["charts"]:
        if chart is not None:
            del chart["$schema"]
    assert _embedded_spec(response.text) == spec


def test_embedded_text_cannot_end_the_script_element(signed_in):
    dashboard = b"version: 2\nname: '</script><script>alert(1)</script>'\npanels: []\n"
    signed_in.app.state.stores.pipelines.put("pipelines/spending/dashboards/evil.yaml", dashboard)

    html = signed_in.get("/p/spending/dashboards/evil").text

    assert "<script>alert" not in html
    assert _embedded_spec(html)["dashboard"]["name"] == "</script><script>alert(1)</script>"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/p/spending/dashboards/missing", 404, "dashboard_not_found"),
        ("/p/nowhere/dashboards/spending_overview", 404, "dashboard_not_found"),
        ("/p/spending/dashboards/broken", 422, "invalid_dashboard"),
        ("/p/---/dashboards/spending_overview", 422, "invalid_slug"),
    ],
)
def test_a_dashboard_that_cannot_be_shown_gets_a_page_saying_why(signed_in, path, status, code):
    signed_in.app.state.stores.pipelines.put("pipelines/spending/dashboards/broken.yaml", b"name: [\n")

    response = signed_in.get(path)

    assert response.status_code == status
    assert response.headers["content-type"].startswith("text/html")
    assert f"<code>{code}</code>" in response.text


def test_the_sign_in_form_sets_the_admin_password_until_one_exists(anonymous):
    first = anonymous.get("/login")
    anonymous.post("/api/auth/setup", json={"password": PASSWORD})
    later = anonymous.get("/login")

    assert "Choose the admin password" in first.text
    assert 'data-endpoint="/api/auth/setup"' in first.text
    assert 'name="user"' not in first.text
    assert "Sign in to Karet" in later.text
    assert 'data-endpoint="/api/auth/login"' in later.text
    assert 'data-user-endpoint="/v1/api/auth/login"' in later.text and 'name="user"' in later.text


@pytest.mark.parametrize(
    ("target", "lands"),
    [
        ("/p/spending/dashboards/cash_flow?x=1", "/p/spending/dashboards/cash_flow?x=1"),
        (None, "/docs"),
        ("", "/docs"),
        ("https://elsewhere.example/", "/docs"),
        ("//elsewhere.example/", "/docs"),
        ("/\\elsewhere.example/", "/docs"),
        ("javascript:alert(1)", "/docs"),
        ("/p\n/x", "/docs"),
    ],
)
def test_signing_in_only_ever_leads_to_a_page_of_this_site(anonymous, target, lands):
    response = anonymous.get("/login", params={} if target is None else {"next": target})

    assert re.search(r'data-next="([^"]*)"', response.text).group(1) == lands.replace("&", "&amp;")


@pytest.mark.parametrize("path", [OVERVIEW, "/login"])
def test_a_page_names_no_other_host_and_the_browser_holds_it_to_that(signed_in, path):
    response = signed_in.get(path)

    assert response.status_code == 200
    assert "://" not in response.text
    links = _links(response.text)
    assert links and all(link == "data:," or re.match(r"/[^/\\]", link) for link in links)
    for link in links:
        if link.startswith("/"):
            asset = signed_in.get(link)
            assert asset.status_code == 200, link
            if link.startswith("/static/"):
                assert "://" not in asset.text and "url(" not in asset.text, link
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data: blob:" in policy


def test_the_chart_bundle_is_vega_embed_built_once(anonymous):
    first = anonymous.get(pages.VEGA_BUNDLE_PATH)
    second = anonymous.get(pages.VEGA_BUNDLE_PATH)

    assert first.status_code == 200
    assert first.headers["content-type"].startswith("text/javascript")
    assert "window.vegaEmbed=" in first.text
    assert second.content == first.content
    assert pages.vega_bundle.cache_info().hits >= 1


def test_pages_stay_out_of_the_api_document(anonymous):
    paths = anonymous.get("/openapi.json").json()["paths"]

    assert not {"/p/{slug}/dashboards/{name}", "/login", pages.VEGA_BUNDLE_PATH, "/docs", "/redoc"} & {*paths}
