"""Previews rendered by runs: after a real Dagster run the preview is the first dashboard, as a PNG; an
uploaded one lasts until the next run, or for good when uploaded with `keep=true`."""

import struct

import pytest

from karet_api.routes.preview import PLACEHOLDER_PNG
from karet_defs.orchestration.launch import execute_pipeline_run
from karet_defs.templates import install_template

PREVIEW = "/api/p/spending/preview"
UPLOADED = b"\x89PNG\r\n\x1a\n" + b"uploaded by the graph page"


def _size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


@pytest.fixture
def spending(api_client, local_stores):
    install_template(local_stores, "spending", "spending")
    return api_client


def _run(dagster_instance) -> None:
    outcome = execute_pipeline_run(dagster_instance, "spending", trigger="api")
    assert outcome.success, outcome.failure


def test_a_run_renders_the_first_dashboard_as_the_preview(spending, dagster_instance):
    assert spending.head(PREVIEW).status_code == 404

    _run(dagster_instance)

    assert spending.head(PREVIEW).status_code == 200
    shown = spending.get(PREVIEW)
    assert shown.headers["content-type"] == "image/png" and shown.content != PLACEHOLDER_PNG
    width, height = _size(shown.content)
    assert 600 <= width <= 1000 and height > 100


def test_an_upload_lasts_until_the_next_run(spending, dagster_instance):
    spending.put(PREVIEW, content=UPLOADED)
    assert spending.get(PREVIEW).content == UPLOADED

    _run(dagster_instance)

    assert spending.get(PREVIEW).content != UPLOADED
    _size(spending.get(PREVIEW).content)


def test_an_upload_kept_on_purpose_survives_runs_until_a_plain_upload(spending, dagster_instance):
    assert spending.put(f"{PREVIEW}?keep=true", content=UPLOADED).json() == {"ok": True}

    _run(dagster_instance)

    assert spending.get(PREVIEW).content == UPLOADED
    spending.put(PREVIEW, content=UPLOADED + b"again")  # a plain upload hands the preview back to runs
    _run(dagster_instance)
    assert spending.get(PREVIEW).content not in (UPLOADED, UPLOADED + b"again")
