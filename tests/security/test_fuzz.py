"""Schemathesis over the whole OpenAPI document: no 5xx, and every answer matches what the route documents.

The app runs on a local store seeded with two Spending Tracker pipelines, `spending` (read by safe methods)
and `scratch` (written, renamed and deleted by the others), so that generated path parameters often name
real objects instead of only ever reaching 404s. Every route is included, the ones that start Dagster runs
too; the fixture waits for those runs to end before it tears the instance down.
"""

import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import dagster as dg
import pytest
import schemathesis
from hypothesis import HealthCheck, settings, strategies as st
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from karet_api.main import create_app
from karet_defs.orchestration.launch import execute_pipeline_run
from karet_defs.settings import Settings
from karet_defs.store.factory import build_stores
from karet_defs.templates import install_template
from tests.conftest import API_KEY

WEBHOOK_SECRET = "test-webhook-secret"
MAX_EXAMPLES = 15
# Slugs the generated path parameters are steered to, half of the time.
READ_SLUG, WRITE_SLUG = "spending", "scratch"
KNOWN = {"table_id": "transactions", "name": "spending_overview"}
# Operation label -> status -> responses, for the figures of the README's Guarantees section.
CALLS: defaultdict[str, Counter[int]] = defaultdict(Counter)
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzzed_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data_dir = tmp_path_factory.mktemp("fuzz") / "data"
    settings_ = Settings(
        data_dir=data_dir,
        s3_bucket="",
        s3_bucket_lake="",
        s3_bucket_warehouse="",
        api_key=API_KEY,
        webhook_secret=WEBHOOK_SECRET,
    )
    with pytest.MonkeyPatch.context() as env, dg.instance_for_test() as instance:
        # Runs rebuild the definitions from the environment, as every Dagster process does.
        env.setenv("KARET_DATA_DIR", str(data_dir))
        for name in ("S3_BUCKET", "S3_BUCKET_LAKE", "S3_BUCKET_WAREHOUSE", "KARET_WORKER_TOKEN"):
            env.delenv(name, raising=False)
        stores = build_stores(settings_)
        install_template(stores, READ_SLUG, "spending")
        install_template(stores, WRITE_SLUG, "spending")
        run = execute_pipeline_run(instance, READ_SLUG, trigger="api")
        assert run.success
        KNOWN["job_id"] = run.run_id
        app = create_app(settings_, instance)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)

        @schema.hook
        def before_generate_path_parameters(context, strategy):
            return st.one_of(strategy, strategy.map(lambda p: _known(p, context.operation.method)))

        @schema.hook
        def after_call(context, case, response):
            CALLS[case.operation.label][response.status_code] += 1

        yield schema
        _wait_for_runs()


def _known(parameters: dict[str, Any] | None, method: str) -> dict[str, Any] | None:
    if not isinstance(parameters, dict) or not parameters:
        # Negative generation wraps parameters it made invalid (an integer path parameter as text): as is.
        return parameters
    known = {**KNOWN, "slug": READ_SLUG if method.upper() in ("GET", "HEAD", "POST") else WRITE_SLUG}
    return {name: known.get(name, value) for name, value in parameters.items()}


def _wait_for_runs(timeout: float = 120.0) -> None:
    # Runs started by the API execute on threads of this process; the instance must outlive them.
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread.name.startswith(("karet-run-", "karet-autorun-")):
            thread.join(max(0.0, deadline - time.monotonic()))


# An import body is a ZIP: sent as the raw bytes generated for it, like any binary body.
schemathesis.serializer.alias("application/zip", "application/octet-stream")
# Event streams never end on their own: a generated call would wait forever (`test_job_events` covers them).
STREAMS = ["/api/events", "/api/p/{slug}/jobs/events"]
schema = schemathesis.pytest.from_fixture("fuzzed_api").exclude(method="GET", path=STREAMS)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_every_route_answers_as_documented(case):
    case.call_and_validate(headers={"X-API-Key": API_KEY, "X-Webhook-Secret": WEBHOOK_SECRET}, checks=CHECKS)


def test_every_operation_was_exercised(fuzzed_api):
    """Runs after the fuzzing above: every documented operation got its share of generated cases."""
    if not CALLS:
        pytest.skip("counts the cases of test_every_route_answers_as_documented; run it first")
    operations = {op.ok().label for op in fuzzed_api.get_all_operations() if op.ok().path not in STREAMS}
    starved = {label: sum(CALLS[label].values()) for label in operations if sum(CALLS[label].values()) < 10}
    assert not starved, f"operations with fewer than 10 cases: {starved}"
    cases = sum(sum(c.values()) for c in CALLS.values())
    statuses = sorted(Counter(s for c in CALLS.values() for s in c.elements()).items())
    sys.stdout.write(f"fuzzed {len(operations)} operations, {cases} cases, statuses {statuses}\n")
