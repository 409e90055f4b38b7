"""The HTML pages a person opens in a browser: a dashboard, the sign-in form, and an error notice.

Pages are small server-rendered shells; what they draw, ``karet_api/static`` scripts draw from the JSON
API, so a page says nothing the API would not. Every resource a page loads is served by this app (the
stylesheet and scripts from ``/static``, Vega, Vega-Lite and vega-embed from the bundle that
``vl-convert-python`` carries), and nothing a page embeds names another host: an air-gapped install shows
the same page. A browser without a session is sent to ``/login?next=<where it was going>``; the form there
posts the admin password to ``/api/auth/login`` (a user's name and password to ``/v1/api/auth/login``;
while no admin exists, the new admin password to ``/api/auth/setup``) and goes back.
"""

import json
from functools import cache
from html import escape
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import vl_convert
from fastapi import Request
from fastapi.responses import HTMLResponse

from karet_defs.dashboards.models import Dashboard

LOGIN_PATH = "/login"
USER_LOGIN_ENDPOINT = "/v1/api/auth/login"
# Where a sign-in without a `next` lands: the one page every install has.
DEFAULT_NEXT = "/docs"
VEGA_BUNDLE_PATH = "/vendor/vega-embed.js"
VEGA_BUNDLE_VERSION = vl_convert.__version__  # type: ignore[attr-defined]  # set at run time, not in its stub
# The browser holds every page to loading from this app alone, whatever a vendored script tries (ReDoc
# fetches its vendor's logo from a CDN). Vega compiles its expressions with `Function` (unsafe-eval);
# Swagger UI starts from an inline script, and Vega and ReDoc set inline styles.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)


def html_response(html: str, status_code: int = 200) -> HTMLResponse:
    """``html`` as a page held to ``CONTENT_SECURITY_POLICY``."""
    response = HTMLResponse(html, status_code=status_code)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


def login_redirect_url(request: Request) -> str:
    """``/login?next=<the request's path and query>``."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"{LOGIN_PATH}?{urlencode({'next': target})}"


def safe_next(target: str | None) -> str:
    """``target`` when it is a path on this site, else ``DEFAULT_NEXT``: signing in never leads elsewhere."""
    if not target or not target.startswith("/") or "\\" in target or any(ord(c) < 0x20 for c in target):
        return DEFAULT_NEXT
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else DEFAULT_NEXT


def dashboard_page(slug: str, dashboard: Dashboard, charts: list[dict[str, Any] | None]) -> str:
    """The dashboard page, its spec embedded; ``dashboard.js`` draws it and fetches its data."""
    # `$schema` only names the Vega-Lite version a spec was written for: the page says `mode: "vega-lite"`,
    # and leaves no other host's address in its HTML.
    spec = {
        "dashboard": dashboard.model_dump(mode="json"),
        "charts": [None if c is None else {k: v for k, v in c.items() if k != "$schema"} for c in charts],
    }
    base = f"/api/p/{quote(slug, safe='')}/dashboards/{quote(dashboard.id, safe='')}"
    page_path = f"/p/{quote(slug, safe='')}/dashboards/{quote(dashboard.id, safe='')}"
    login_url = f"{LOGIN_PATH}?{urlencode({'next': page_path})}"
    body = f"""<main id="dashboard" data-state="loading" data-data-url="{escape(base)}/data"
      data-login-url="{escape(login_url)}">
  <header class="page-header">
    <div>
      <p class="crumbs">{escape(slug)}</p>
      <h1>{escape(dashboard.name)}</h1>
    </div>
    <form class="filters" id="filters" aria-label="Filters"></form>
  </header>
  <p class="status" id="status" role="status"></p>
  <section class="panels" id="panels" aria-label="Panels"></section>
</main>
<script type="application/json" id="dashboard-spec">{_script_json(spec)}</script>
<script src="{VEGA_BUNDLE_PATH}?v={escape(VEGA_BUNDLE_VERSION)}"></script>
<script src="/static/dashboard.js"></script>"""
    return _document(f"{dashboard.name} · {slug}", body)


def login_page(next_path: str, *, needs_setup: bool) -> str:
    """The sign-in form, for Karet's admin password or a user's name and password; while no admin exists
    it sets the admin password instead."""
    if needs_setup:
        heading, intro, endpoint, autocomplete, action = (
            "Choose the admin password",
            "This Karet has no admin yet. The password you choose here signs you in from now on.",
            "/api/auth/setup",
            "new-password",
            "Set password",
        )
    else:
        heading, intro, endpoint, autocomplete, action = (
            "Sign in to Karet",
            "Enter your user name and password, or leave the name empty for the admin password.",
            "/api/auth/login",
            "current-password",
            "Sign in",
        )
    body = f"""<main class="login">
  <h1>{heading}</h1>
  <p>{intro}</p>
  <form id="login" data-endpoint="{endpoint}" data-user-endpoint="{USER_LOGIN_ENDPOINT}"
        data-next="{escape(next_path)}">
    {"" if needs_setup else _USER_FIELD}
    <label for="password">Password</label>
    <input id="password" name="password" type="password" autocomplete="{autocomplete}" required autofocus>
    <p class="error" role="alert" hidden></p>
    <button class="primary" type="submit">{action}</button>
  </form>
</main>
<script src="/static/login.js"></script>"""
    return _document(heading, body)


def error_page(status: int, code: str, message: str) -> str:
    """A notice for a page that cannot be shown, with the API's error code and message."""
    body = f"""<main class="notice">
  <h1>{escape(_HEADINGS.get(status, "This page cannot be shown"))}</h1>
  <p>{escape(message)}</p>
  <p class="crumbs">{status} · <code>{escape(code)}</code></p>
</main>"""
    return _document(_HEADINGS.get(status, "Error"), body)


_USER_FIELD = """<label for="user">User</label>
    <input id="user" name="user" autocomplete="username" autocapitalize="none" spellcheck="false">"""
_HEADINGS = {403: "Not allowed", 404: "Not found", 422: "This dashboard cannot be shown"}


@cache
def vega_bundle() -> bytes:
    """Vega, Vega-Lite and vega-embed in one script defining ``vegaEmbed``; built once per process."""
    # The stub makes ``snippet`` required; at run time it is optional and its default defines ``vegaEmbed``.
    return vl_convert.javascript_bundle().encode()  # type: ignore[call-arg]


def _document(title: str, body: str) -> str:
    # `data:,` as the icon spares the browser a request for /favicon.ico, which no route answers.
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} · Karet</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/dashboard.css">
</head>
<body>
{body}
</body>
</html>
"""


def _script_json(value: Any) -> str:
    """``value`` as JSON that cannot close its ``<script>`` element early."""
    text = json.dumps(value, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
