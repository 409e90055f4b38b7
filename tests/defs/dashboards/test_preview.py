"""Rendering a pipeline's preview from its first dashboard, and the upload a user keeps instead."""

from karet_defs.dashboards.preview import keep_upload, keeps_upload, render_preview
from karet_defs.engine.run import run_pipeline
from karet_defs.templates import install_template

PREVIEW = "pipelines/spending/preview.png"
UPLOADED = b"\x89PNG\r\n\x1a\nuploaded"


def _spending(stores):
    install_template(stores, "spending", "spending")
    run_pipeline(stores, "spending")


def test_the_first_dashboard_by_name_becomes_the_preview(stores):
    _spending(stores)

    preview = render_preview(stores, "spending")

    assert (preview.dashboard, preview.stored) == ("Cash flow", True)
    assert stores.pipelines.get(PREVIEW) == preview.png and preview.png.startswith(b"\x89PNG")
    assert [view["title"] for view in preview.spec["concat"]] == ["Net cash flow per month"]


def test_a_kept_upload_is_not_replaced_until_handed_back(local_stores):
    _spending(local_stores)
    local_stores.pipelines.put(PREVIEW, UPLOADED)
    keep_upload(local_stores, "spending", True)

    kept = render_preview(local_stores, "spending")
    keep_upload(local_stores, "spending", False)
    replaced = render_preview(local_stores, "spending")

    assert kept.stored is False and kept.png.startswith(b"\x89PNG")
    assert not keeps_upload(local_stores, "spending")
    assert replaced.stored is True and local_stores.pipelines.get(PREVIEW) == replaced.png


def test_a_pipeline_without_dashboards_has_nothing_to_render(local_stores):
    _spending(local_stores)
    for info in local_stores.pipelines.list("pipelines/spending/dashboards/"):
        local_stores.pipelines.delete(info.key)

    assert render_preview(local_stores, "spending") is None
    assert local_stores.pipelines.head(PREVIEW) is None


def test_a_first_dashboard_whose_panels_all_fail_renders_nothing(local_stores):
    _spending(local_stores)
    local_stores.pipelines.put(
        "pipelines/spending/dashboards/a.yaml",
        b"name: A\npanels:\n  - {kind: bar, title: B, query: SELECT nope FROM transactions}\n",
    )

    assert render_preview(local_stores, "spending") is None
    assert local_stores.pipelines.head(PREVIEW) is None
