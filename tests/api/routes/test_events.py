"""The S3 event webhook: secret, real RustFS/MinIO/AWS payloads, the debounce, the dedupe with the sensor."""

import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import quote, quote_plus

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType
from fastapi.testclient import TestClient

from karet_api.services import autoruns
from karet_defs.catalog import read_pipeline
from karet_defs.orchestration.jobs import run_tags
from karet_defs.orchestration.launch import create_pipeline_run, execute_prepared_run
from karet_defs.orchestration.resources import StoreResource
from karet_defs.orchestration.sensors import build_raw_files_sensor
from karet_defs.settings import Settings
from karet_defs.store.base import Stores
from karet_defs.store.factory import build_stores
from karet_defs.templates import install_template
from tests.factories import SPENDING_CSV, SPENDING_RAW, FakeLauncher

SECRET = "s3cr3t-hook"


def minio_event(key: str, bucket: str = "karet-lake", name: str = "s3:ObjectCreated:Put") -> dict:
    """A MinIO notification as RustFS sends it too: the key query-escaped, slashes included."""
    return {
        "EventName": name,
        "Key": f"{bucket}/{key}",
        "Records": [
            {
                "eventVersion": "2.0",
                "eventSource": "minio:s3",
                "awsRegion": "",
                "eventTime": "2026-05-01T10:00:00.000Z",
                "eventName": name,
                "userIdentity": {"principalId": "rustfsadmin"},
                "requestParameters": {
                    "principalId": "rustfsadmin",
                    "region": "",
                    "sourceIPAddress": "10.0.0.2",
                },
                "responseElements": {
                    "x-amz-id-2": "dd9025bab4ad464b",
                    "x-amz-request-id": "17A0B5C4D1E2F3A4",
                },
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "Config",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "rustfsadmin"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    "object": {
                        "key": quote_plus(key),
                        "size": 120,
                        "eTag": "0b5a3c8e2f0f1d6a7d7b1a7c7e2e3f4a",
                        "contentType": "text/csv",
                        "userMetadata": {"content-type": "text/csv"},
                        "sequencer": "17A0B5C4D1E2F3A4",
                    },
                },
                "source": {
                    "host": "10.0.0.2",
                    "port": "",
                    "userAgent": "MinIO (linux; amd64) minio-go/v7.0.70",
                },
            }
        ],
    }


def aws_record(key: str, bucket: str = "karet-lake", name: str = "ObjectCreated:Put") -> dict:
    """One record of an AWS S3 notification: key URL-encoded with `+` for spaces, slashes kept."""
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-east-1",
        "eventTime": "2026-05-01T10:00:00.000Z",
        "eventName": name,
        "userIdentity": {"principalId": "AWS:AIDAJDPLRKLG7UEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {
            "x-amz-request-id": "C3D13FE58DE4C810",
            "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "karet-raw-files",
            "bucket": {
                "name": bucket,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{bucket}",
            },
            "object": {
                "key": quote(key, safe="/ ").replace(" ", "+"),
                "size": 120,
                "eTag": "d41d8cd98f00b204e9800998ecf8427e",
                "sequencer": "0055AED6DCD90281E5",
            },
        },
    }


class HeldLauncher:
    """Real Dagster runs, each held until ``release`` is set: a run that is surely in flight."""

    def __init__(self) -> None:
        self.run_ids: list[str] = []
        self.release = threading.Event()

    def __call__(self, instance: dg.DagsterInstance, slug: str, *, trigger: str, clean_run: bool = False):
        prepared = create_pipeline_run(instance, slug, trigger=trigger, clean_run=clean_run)
        self.run_ids.append(prepared.run_id)

        def run() -> None:
            self.release.wait(30)
            execute_prepared_run(instance, prepared)

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        return prepared, worker


@pytest.fixture
def hook(make_client: Callable[..., TestClient]) -> Iterator[Callable[[Settings], TestClient]]:
    """Clients with the webhook secret set; their automatic runs are waited for before the instance goes."""
    clients: list[TestClient] = []

    def make(settings: Settings) -> TestClient:
        client = make_client(settings.model_copy(update={"webhook_secret": SECRET}))
        clients.append(client)
        return client

    yield make
    for client in clients:
        assert client.app.state.auto_runs.wait_idle(timeout=60)


@pytest.fixture
def spending(local_stores: Stores) -> Stores:
    install_template(local_stores, "spending", "spending")
    return local_stores


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLauncher]:
    launcher = FakeLauncher()
    monkeypatch.setattr(autoruns, "start_pipeline_run", launcher)
    yield launcher
    launcher.release.set()


def post(client: TestClient, body: dict, **params: str):
    return client.post("/api/events/s3", json=body, params={"secret": SECRET, **params})


def idle(client: TestClient) -> None:
    assert client.app.state.auto_runs.wait_idle(timeout=60)


def sensor_tick(stores: Stores, settings: Settings, instance: dg.DagsterInstance, cursor: str | None = None):
    resource = StoreResource(data_dir=str(settings.data_dir), s3_bucket="")
    sensor = build_raw_files_sensor(read_pipeline(stores, "spending"), "spending", resource, grace_seconds=0)
    return sensor(dg.build_sensor_context(instance=instance, cursor=cursor))


REFUSED = [
    ({}, {}),
    ({"Authorization": "Bearer nope"}, {}),
    ({"X-Webhook-Secret": SECRET[:-1]}, {}),
    ({}, {"secret": SECRET + "x"}),
    ({"Authorization": f"Basic {SECRET}"}, {}),
]
ACCEPTED = [
    ({"Authorization": f"bearer {SECRET}"}, {}),
    ({"X-Webhook-Secret": SECRET}, {}),
    ({}, {"secret": SECRET}),
]


def test_the_secret_is_checked_from_each_place_and_fails_closed_when_unset(make_client, local_settings):
    unset = make_client(local_settings, authenticated=False)
    client = make_client(local_settings.model_copy(update={"webhook_secret": SECRET}), authenticated=False)

    def answer(app: TestClient, headers: dict, params: dict):
        response = app.post("/api/events/s3", json={"Records": []}, headers=headers, params=params)
        return response.status_code, response.json()

    refusal = (401, {"error": "unauthorized", "message": "missing or invalid webhook secret"})
    assert [answer(client, h, p) for h, p in REFUSED] == [refusal] * len(REFUSED)
    assert [answer(unset, h, p) for h, p in ACCEPTED] == [refusal] * len(ACCEPTED)
    assert [answer(client, h, p) for h, p in ACCEPTED] == [(200, {"received": 0, "scheduled": []})] * 3


def test_bad_bodies(hook, local_settings):
    client = hook(local_settings)

    not_json = client.post("/api/events/s3?secret=" + SECRET, content=b"Records=1")
    huge = client.post("/api/events/s3?secret=" + SECRET, content=b" " * (1024 * 1024 + 1))

    assert not_json.status_code == 400 and not_json.json()["error"] == "invalid_json"
    assert huge.status_code == 413 and huge.json()["error"] == "payload_too_large"
    assert post(client, [1, 2]).json() == {"received": 0, "scheduled": []}  # type: ignore[arg-type]
    assert post(client, {"Records": "x"}).json() == {"received": 0, "scheduled": []}


def test_one_event_starts_a_real_run_at_once_and_a_redelivery_starts_nothing(
    hook, local_settings, spending, dagster_instance
):
    client = hook(local_settings)
    baseline = sensor_tick(spending, local_settings, dagster_instance)  # the sensor has seen seed.csv
    spending.lake.put(SPENDING_RAW + "may 2026.csv", SPENDING_CSV)

    response = post(client, minio_event(SPENDING_RAW + "may 2026.csv"))

    assert response.json() == {"received": 1, "scheduled": ["spending"]}
    [job] = client.get("/api/p/spending/jobs").json()["jobs"]  # shows at once
    assert job["trigger"] == "webhook" and job["status"] in ("scheduled", "running", "completed")
    idle(client)
    [done] = client.get("/api/p/spending/jobs").json()["jobs"]
    assert (done["id"], done["status"], done["files_processed"], done["errors"]) == (
        job["id"],
        "completed",
        2,
        [],
    )
    assert dagster_instance.get_run_by_id(job["id"]).tags["karet/clean_run"] == "false"

    assert post(client, minio_event(SPENDING_RAW + "may 2026.csv")).json() == {"received": 1, "scheduled": []}
    after = sensor_tick(spending, local_settings, dagster_instance, baseline.cursor)
    assert after.run_requests == [] and "covered by webhook runs" in str(after.skip_reason)
    assert len(client.get("/api/p/spending/jobs").json()["jobs"]) == 1


def test_only_created_source_files_of_the_lake_trigger(hook, local_settings, spending, fake):
    client = hook(local_settings)
    spending.lake.put(SPENDING_RAW + "my file (2).csv", SPENDING_CSV)
    spending.lake.put(SPENDING_RAW + "notes.txt", b"x")
    spending.lake.put("pipelines/spending/clean/transactions/year=2026/month=5/m.csv", SPENDING_CSV)
    records = [
        aws_record("pipelines/spending/clean/transactions/year=2026/month=5/m.csv"),
        aws_record("elsewhere/jan.csv"),
        aws_record("pipelines/ghost/transactions/jan.csv"),
        aws_record(SPENDING_RAW + "notes.txt"),
        aws_record(SPENDING_RAW + "my file (2).csv", name="ObjectRemoved:Delete"),
        aws_record(SPENDING_RAW + "gone.csv"),  # deleted before the event arrived: nothing to run
        {"eventName": "s3:ObjectCreated:Put"},
        "garbage",
    ]

    ignored = post(client, {"Records": records})
    matched = post(
        client,
        {
            "Records": [
                aws_record(SPENDING_RAW + "my file (2).csv", name="ObjectCreated:CompleteMultipartUpload")
            ]
        },
    )

    assert ignored.json() == {"received": 8, "scheduled": []}
    assert matched.json() == {"received": 1, "scheduled": ["spending"]}
    assert [run.tags["karet/trigger"] for run in fake.runs] == ["webhook"]


def test_events_naming_another_bucket_than_the_lake_are_ignored(hook, s3_settings, fake):
    stores = build_stores(s3_settings)
    install_template(stores, "spending", "spending")
    stores.lake.put(SPENDING_RAW + "jan.csv", SPENDING_CSV)
    client = hook(s3_settings)

    other = post(client, minio_event(SPENDING_RAW + "jan.csv", bucket="karet-warehouse"))
    lake = post(client, minio_event(SPENDING_RAW + "jan.csv", bucket=s3_settings.s3_bucket))

    assert other.json() == {"received": 1, "scheduled": []}
    assert lake.json() == {"received": 1, "scheduled": ["spending"]}
    assert len(fake.runs) == 1


def test_a_burst_while_a_run_is_in_flight_gives_exactly_one_follow_up(
    hook, local_settings, spending, dagster_instance, monkeypatch
):
    launcher = HeldLauncher()
    monkeypatch.setattr(autoruns, "start_pipeline_run", launcher)
    client = hook(local_settings)
    baseline = sensor_tick(spending, local_settings, dagster_instance)
    names = [f"burst-{i:03d}.csv" for i in range(150)]
    for name in names:
        spending.lake.put(SPENDING_RAW + name, SPENDING_CSV)

    answers = [post(client, minio_event(SPENDING_RAW + name)).json()["scheduled"] for name in names]

    assert answers == [["spending"]] * len(names)
    assert len(launcher.run_ids) == 1
    launcher.release.set()
    idle(client)
    assert len(launcher.run_ids) == 2
    jobs = client.get("/api/p/spending/jobs").json()["jobs"]
    assert [(j["trigger"], j["status"]) for j in jobs] == [("webhook", "completed")] * 2
    assert [j["files_processed"] for j in jobs] == [151, 151]  # the follow-up read them all again
    after = sensor_tick(spending, local_settings, dagster_instance, baseline.cursor)
    assert after.run_requests == []  # every burst file is covered by the follow-up's claim


def test_an_event_for_a_file_the_sensor_already_ran_starts_nothing(
    hook, local_settings, spending, dagster_instance, fake
):
    client = hook(local_settings)
    spending.lake.put(SPENDING_RAW + "jan.csv", SPENDING_CSV)
    assert sensor_tick(spending, local_settings, dagster_instance).run_requests  # seed.csv and jan.csv

    assert post(client, minio_event(SPENDING_RAW + "jan.csv")).json()["scheduled"] == []
    # A new version of the same file.
    spending.lake.put(SPENDING_RAW + "jan.csv", SPENDING_CSV + b"2026-05-03,Uber,12.00,visa\n")
    assert post(client, minio_event(SPENDING_RAW + "jan.csv")).json()["scheduled"] == ["spending"]
    assert len(fake.runs) == 1


def test_a_run_in_flight_elsewhere_gets_one_follow_up_when_it_ends(
    hook, local_settings, spending, dagster_instance, fake
):
    client = hook(local_settings)
    manual = dagster_instance.add_run(
        dg.DagsterRun(job_name="spending", tags=run_tags("spending"), status=dg.DagsterRunStatus.STARTED)
    )
    for name in ("a.csv", "b.csv"):
        spending.lake.put(SPENDING_RAW + name, SPENDING_CSV)
        assert post(client, minio_event(SPENDING_RAW + name)).json()["scheduled"] == ["spending"]
    assert fake.runs == []

    event = DagsterEvent(event_type_value=DagsterEventType.RUN_SUCCESS.value, job_name="spending")
    dagster_instance.report_dagster_event(event, manual.run_id)
    idle(client)

    assert len(fake.runs) == 1


def test_a_run_that_cannot_start_schedules_nothing_and_frees_the_pipeline(
    hook, local_settings, spending, monkeypatch
):
    client = hook(local_settings)
    spending.lake.put(SPENDING_RAW + "jan.csv", SPENDING_CSV)

    def broken(*args, **kwargs):
        raise dg.DagsterInvariantViolationError("no job named spending")

    monkeypatch.setattr(autoruns, "start_pipeline_run", broken)
    assert post(client, minio_event(SPENDING_RAW + "jan.csv")).json()["scheduled"] == []
    launcher = FakeLauncher()
    monkeypatch.setattr(autoruns, "start_pipeline_run", launcher)
    assert post(client, minio_event(SPENDING_RAW + "jan.csv")).json()["scheduled"] == ["spending"]
    assert len(launcher.runs) == 1


def test_outside_the_embedded_default_runs_go_through_dagsters_queue(
    hook, local_settings, spending, dagster_instance, monkeypatch
):
    submitted: list[dg.DagsterRun] = []

    def submit(dagster_url: str, slug: str, *, trigger: str, clean_run: bool = False) -> str:
        tags = run_tags(slug, trigger=trigger, clean_run=clean_run)
        run = dagster_instance.add_run(
            dg.DagsterRun(job_name="spending", tags=tags, status=dg.DagsterRunStatus.NOT_STARTED)
        )
        submitted.append(run)
        return run.run_id

    def finish(run: dg.DagsterRun) -> None:
        event = DagsterEvent(event_type_value=DagsterEventType.RUN_SUCCESS.value, job_name="spending")
        dagster_instance.report_dagster_event(event, run.run_id)

    monkeypatch.setattr(autoruns, "submit_pipeline_run", submit)
    queued = local_settings.model_copy(
        update={"deployment": "production", "dagster_url": "http://127.0.0.1:9"}
    )
    client = hook(queued)
    for name in ("a.csv", "b.csv"):
        spending.lake.put(SPENDING_RAW + name, SPENDING_CSV)
        assert post(client, minio_event(SPENDING_RAW + name)).json()["scheduled"] == ["spending"]
    assert [run.tags["karet/trigger"] for run in submitted] == ["webhook"]

    finish(submitted[0])  # the queued run ends: the follow-up is submitted
    deadline = time.monotonic() + 10
    while len(submitted) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(submitted) == 2
    finish(submitted[1])
    idle(client)


def test_deeply_nested_body_is_invalid_json_not_a_crash(make_client, local_settings):
    client = make_client(local_settings.model_copy(update={"webhook_secret": "s"}), authenticated=False)
    body = b"[" * 5000 + b"]" * 5000
    response = client.post("/api/events/s3", content=body, headers={"X-Webhook-Secret": "s"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_json"
