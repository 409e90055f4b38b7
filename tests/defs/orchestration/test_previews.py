"""A run renders the pipeline's preview and shows it on the tables' materializations; a preview that cannot
be rendered is recorded there and never fails the run."""

import base64
import re

import dagster as dg

from karet_defs.catalog import read_pipeline
from karet_defs.orchestration.pipeline import build_pipeline_defs
from karet_defs.orchestration.resources import StoreResource
from karet_defs.templates import install_template

TABLE = dg.AssetKey(["spending", "transactions"])


def _materialize(local_settings, local_stores):
    store = StoreResource(data_dir=str(local_settings.data_dir))
    defs = build_pipeline_defs(read_pipeline(local_stores, "spending"), "spending", store)
    with dg.instance_for_test() as instance:
        result = dg.materialize(list(defs.assets or []), resources={"store": store}, instance=instance)
        event = instance.get_latest_materialization_event(TABLE)
        logs = [e.user_message for e in instance.all_logs(result.run_id)]
    return result, event.asset_materialization.metadata, logs


def test_the_table_materialization_shows_the_rendered_dashboard(local_settings, local_stores):
    install_template(local_stores, "spending", "spending")

    result, metadata, _ = _materialize(local_settings, local_stores)

    assert result.success
    markdown = metadata["preview"].value
    found = re.fullmatch(r"!\[Cash flow\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", markdown)
    assert found is not None, markdown
    thumbnail = base64.b64decode(found.group(1))
    assert thumbnail.startswith(b"\x89PNG") and len(thumbnail) < 100_000
    assert local_stores.pipelines.get("pipelines/spending/preview.png").startswith(b"\x89PNG")


def test_a_dashboard_that_cannot_be_rendered_is_recorded_and_the_run_stays_green(
    local_settings, local_stores
):
    install_template(local_stores, "spending", "spending")
    # First in the listing ("A…" sorts before "Cash flow"), and not a dashboard at all.
    local_stores.pipelines.put("pipelines/spending/dashboards/a_broken.yaml", b"name: A broken\npanels: 7\n")

    result, metadata, logs = _materialize(local_settings, local_stores)

    assert result.success
    assert metadata["preview"].value.startswith("not rendered: /panels: ")
    assert any("preview of `spending` not rendered: invalid_dashboard" in m for m in logs)
    assert local_stores.pipelines.head("pipelines/spending/preview.png") is None
