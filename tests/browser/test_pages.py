"""The pages in a real browser: Debian's chromium, driven by Playwright, against the API on a loopback port.

The API runs in uvicorn on a thread, over a data dir holding the Spending template after a real run, plus
one dashboard of the test's own with a dropdown, a table, a cross-filter and a panel whose SQL fails.
Each test gets a fresh browser context and fails (at teardown) on a console error, an uncaught script
error, or a request to any host but the server's: those requests are refused, not sent. What the SQL
says is asked of the same server's `/api/p/<slug>/query`. Screenshots go to ``SHOTS``.
"""

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dagster as dg
import httpx
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from karet_api.main import create_app
from karet_defs.engine.run import run_pipeline
from karet_defs.settings import Settings
from karet_defs.store.factory import build_stores
from karet_defs.templates import install_template

CHROMIUM = Path("/usr/bin/chromium")
# What the machine notes advise for a headless chromium on a closed network: no background calls home.
CHROMIUM_ARGS = [
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]
SHOTS = Path("/tmp/karet-shots")
PASSWORD = "correct horse battery"
OVERVIEW = "/p/spending/dashboards/spending_overview"
BY_CATEGORY = "/p/spending/dashboards/by_category"
SERVER_START_TIMEOUT = 30.0
# Playwright's 5 s default is short for Swagger UI and ReDoc laying out the whole API on a busy 2-core CI.
EXPECT_TIMEOUT_MS = 30_000

BY_CATEGORY_YAML = b"""\
version: 2
name: By category
filters:
  - name: category
    kind: dropdown
    label: Category
    options_sql: SELECT DISTINCT category FROM transactions WHERE amount > 0 ORDER BY 1
panels:
  - kind: bar
    title: Spent per category
    query: |
      SELECT category AS label, SUM(amount) AS value FROM transactions
      WHERE amount > 0 GROUP BY category ORDER BY value DESC
    emit: {param: category}
  - kind: kpi
    title: Purchases
    query: |
      SELECT count(*) AS value FROM transactions
      WHERE amount > 0 AND ($category IS NULL OR category = $category)
  - kind: table
    title: Purchases
    page_size: 10
    query: |
      SELECT date, description, amount, category FROM transactions
      WHERE amount > 0 AND ($category IS NULL OR category = $category) ORDER BY date, description
    grid: {span: 2}
  - kind: kpi
    title: Broken
    query: SELECT no_such_column AS value FROM transactions
layout:
  columns: 2
  gap: 12
"""


@dataclass
class Watched:
    """A page, and what it did that no page of Karet's may do."""

    page: Page
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)

    def shot(self, name: str, *, full_page: bool = True) -> None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=full_page)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API on a free loopback port, over the Spending template after a real run."""
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("pages") / "data",
        s3_bucket="",
        s3_bucket_lake="",
        s3_bucket_warehouse="",
    )
    stores = build_stores(settings)
    install_template(stores, "spending", "spending")
    stores.pipelines.put("pipelines/spending/dashboards/by_category.yaml", BY_CATEGORY_YAML)
    run_pipeline(stores, "spending")
    with dg.instance_for_test() as instance:
        port = _free_port()
        app = create_app(settings, instance)
        uvicorn_server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=uvicorn_server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while not uvicorn_server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        httpx.post(f"{base}/api/auth/setup", json={"password": PASSWORD}).raise_for_status()
        try:
            yield base
        finally:
            uvicorn_server.should_exit = True
            thread.join(timeout=30)


@pytest.fixture(scope="module")
def sql(server: str) -> Iterator[Any]:
    """``sql("SELECT …")``: the rows the server's SQL endpoint answers, as dicts."""
    with httpx.Client(base_url=server) as client:
        client.post("/api/auth/login", json={"password": PASSWORD}).raise_for_status()

        def run(statement: str) -> list[dict[str, Any]]:
            response = client.post("/api/p/spending/query", json={"sql": statement})
            response.raise_for_status()
            return response.json()["rows"]

        yield run


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: scripts/install installs Debian's chromium when run as root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def anonymous(browser: Browser, server: str) -> Iterator[Watched]:
    """A page in a fresh context without a session; the test fails if it errs or reaches off the server."""
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    watched = Watched(page)
    own_host = urlsplit(server).hostname

    def only_own_host(route: Route) -> None:
        if urlsplit(route.request.url).hostname == own_host:
            route.continue_()
        else:
            watched.outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_own_host)
    page.on("console", lambda message: message.type == "error" and watched.errors.append(message.text))
    page.on("pageerror", lambda error: watched.errors.append(f"uncaught: {error}"))
    yield watched
    context.close()
    assert watched.outside == [], "the page asked another host"
    assert watched.errors == [], "the page logged errors"


@pytest.fixture
def signed_in(anonymous: Watched) -> Watched:
    """A fresh context holding a session cookie, as a sign-in leaves it."""
    anonymous.page.request.post("/api/auth/login", data={"password": PASSWORD})
    return anonymous


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _open(watched: Watched, path: str) -> Page:
    page = watched.page
    page.goto(path)
    expect(page.locator("#dashboard")).to_have_attribute("data-state", "ready")
    return page


def _panel(page: Page, title: str):
    return page.locator("article.panel", has=page.get_by_role("heading", name=title, exact=True))


def _money(amount: float) -> str:
    return f"${amount:,.2f}"


def test_a_browser_without_a_session_signs_in_and_lands_on_the_dashboard(anonymous: Watched) -> None:
    page = anonymous.page
    page.goto(OVERVIEW)

    expect(page).to_have_url("/login?next=%2Fp%2Fspending%2Fdashboards%2Fspending_overview")
    expect(page.get_by_role("heading")).to_have_text("Sign in to Karet")
    anonymous.shot("login")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    expect(page).to_have_url(OVERVIEW)
    expect(page.locator("#dashboard")).to_have_attribute("data-state", "ready")
    expect(page.get_by_role("heading", level=1)).to_have_text("Spending overview")


def test_the_overview_shows_what_the_sql_says(signed_in: Watched, sql) -> None:
    total = sql("SELECT SUM(amount) AS t FROM transactions WHERE amount > 0")[0]["t"]
    categories = sql("SELECT DISTINCT category FROM transactions WHERE amount > 0")
    merchants = sql(
        "SELECT merchant FROM transactions WHERE amount > 0 GROUP BY merchant "
        "ORDER BY SUM(amount) DESC, merchant LIMIT 10"
    )

    page = _open(signed_in, OVERVIEW)
    signed_in.shot("spending-overview")

    kpi = _panel(page, "Total spent").locator(".kpi-value")
    assert float(kpi.get_attribute("data-value")) == pytest.approx(total)
    expect(kpi).to_have_text(_money(total))
    # SVG rendering: every slice and bar is a DOM element.
    expect(_panel(page, "Spending by category").locator("g.mark-arc path")).to_have_count(len(categories))
    bars = _panel(page, "Top merchants")
    expect(bars.locator("g.mark-rect path")).to_have_count(len(merchants))
    shown = set(bars.locator("g.role-axis-label text").all_text_contents())
    assert {m["merchant"] for m in merchants} <= shown
    expect(page.locator(".panel-error")).to_have_count(0)


def test_choosing_a_period_updates_the_numbers(signed_in: Watched, sql) -> None:
    may = "amount > 0 AND date BETWEEN DATE '2026-05-01' AND DATE '2026-05-31'"
    total = sql(f"SELECT SUM(amount) AS t FROM transactions WHERE {may}")[0]["t"]
    categories = sql(f"SELECT DISTINCT category FROM transactions WHERE {may}")
    page = _open(signed_in, OVERVIEW)
    everything = float(_panel(page, "Total spent").locator(".kpi-value").get_attribute("data-value"))

    page.locator("input[name=period_from]").fill("2026-05-01")
    page.locator("input[name=period_to]").fill("2026-05-31")

    kpi = _panel(page, "Total spent").locator(".kpi-value")
    expect(kpi).to_have_text(_money(total))
    expect(page.locator("#dashboard")).to_have_attribute("data-state", "ready")
    assert total < everything
    expect(_panel(page, "Spending by category").locator("g.mark-arc path")).to_have_count(len(categories))
    signed_in.shot("spending-overview-may")


def test_a_dropdown_a_paged_table_a_cross_filter_and_a_failing_panel(signed_in: Watched, sql) -> None:
    purchases = sql(
        "SELECT date, description, category FROM transactions WHERE amount > 0 ORDER BY date, description"
    )
    per_category = {
        r["category"]: r["n"]
        for r in sql("SELECT category, count(*) AS n FROM transactions WHERE amount > 0 GROUP BY 1")
    }
    page = _open(signed_in, BY_CATEGORY)
    count = _panel(page, "Purchases").locator(".kpi-value")
    table = _panel(page, "Purchases").locator("table.rows tbody tr")
    category = page.get_by_label("Category")

    expect(count).to_have_text(str(len(purchases)))
    expect(table).to_have_count(10)
    expect(table.first.locator("td").nth(1)).to_have_text(purchases[0]["description"])
    expect(page.locator(".pager .position")).to_have_text(f"1–10 of {len(purchases)}")
    expect(category.locator("option")).to_have_text(["All", *sorted(per_category)])
    expect(_panel(page, "Broken").locator(".panel-error")).to_contain_text("no_such_column")
    signed_in.shot("by-category")

    page.get_by_role("button", name="Next").click()
    expect(table.first.locator("td").nth(1)).to_have_text(purchases[10]["description"])

    category.select_option("GROCERIES")
    expect(count).to_have_text(str(per_category["GROCERIES"]))
    expect(table).to_have_count(per_category["GROCERIES"])
    expect(table.locator("td:nth-child(4)")).to_have_text(["GROCERIES"] * per_category["GROCERIES"])
    signed_in.shot("by-category-groceries")

    # The bars come in the query's order, biggest first: clicking the first picks its category.
    biggest = max(
        sql("SELECT category, SUM(amount) AS s FROM transactions WHERE amount > 0 GROUP BY 1"),
        key=lambda r: r["s"],
    )["category"]
    _panel(page, "Spent per category").locator("g.mark-rect path").first.click()
    expect(category).to_have_value(biggest)
    expect(count).to_have_text(str(per_category[biggest]))


def test_the_api_docs_render_offline(anonymous: Watched) -> None:
    page = anonymous.page

    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Karet on Dagster")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    anonymous.shot("docs", full_page=False)

    page.goto("/redoc")
    expect(page.get_by_role("heading", name="Karet on Dagster", exact=False).first).to_be_visible()
    anonymous.shot("redoc", full_page=False)
    # ReDoc's sidebar asks its vendor's CDN for a logo: the page's policy refuses it before any request.
    refused = [e for e in anonymous.errors if "Content Security Policy" in e]
    assert refused and all("cdn.redoc.ly" in e for e in refused)
    anonymous.errors[:] = [e for e in anonymous.errors if e not in refused]
