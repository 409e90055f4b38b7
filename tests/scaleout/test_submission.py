"""Outside the embedded default the API submits runs to the webserver, and says so when it cannot."""

import pytest

from karet_defs.errors import KaretError
from karet_defs.orchestration.launch import pipeline_run_config, submit_pipeline_run
from karet_defs.templates import install_template
from tests.scaleout.stack import free_port


@pytest.mark.parametrize("deployment", ["production", "distributed"])
def test_queued_deployment_without_a_webserver_is_a_clear_error(
    make_client, local_settings, local_stores, deployment
):
    install_template(local_stores, "spending", "spending")
    client = make_client(
        local_settings.model_copy(
            update={"deployment": deployment, "dagster_url": f"http://127.0.0.1:{free_port()}"}
        )
    )

    response = client.post("/api/p/spending/jobs")

    assert response.status_code == 500
    assert response.json()["error"] == "dagster_unavailable"
    assert "did not accept the run of `spending`" in response.json()["message"]
    # Nothing ran in the API process: the run was never created.
    assert client.get("/api/p/spending/jobs").json() == {"jobs": []}


def test_queued_deployment_needs_the_webserver_url():
    with pytest.raises(KaretError, match="KARET_DAGSTER_URL") as raised:
        submit_pipeline_run("", "spending", trigger="manual")
    assert raised.value.code == "dagster_unavailable"


def test_submitted_run_config_matches_the_in_process_one():
    assert pipeline_run_config("spending-2026", clean_run=True) == {
        "ops": {"run_spending_2026": {"config": {"clean_run": True}}}
    }
