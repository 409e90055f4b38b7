"""Raw-files sensor ticks with ``build_sensor_context``, over the local store and a moto S3 server."""

import dataclasses
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.events import DagsterEvent, DagsterEventType
from moto.core import DEFAULT_ACCOUNT_ID
from moto.s3.models import s3_backends
from moto.server import ThreadedMotoServer

from karet_defs.catalog import read_pipeline
from karet_defs.definitions import build_definitions
from karet_defs.orchestration import sensors
from karet_defs.orchestration.resources import StoreResource
from karet_defs.orchestration.run_coverage import claim_for_webhook
from karet_defs.orchestration.sensors import SENSOR_INTERVAL_SECONDS, build_raw_files_sensor
from karet_defs.settings import Settings
from karet_defs.store.base import ObjectInfo, ObjectStore, Stores
from karet_defs.store.changes import ChangeCursor
from karet_defs.store.factory import build_stores
from karet_defs.templates import install_template
from tests.factories import col, make_pipeline, put_config

CONFIG = make_pipeline(
    source_columns=[("a", "string")],
    columns=[("a", col("a"))],
    table_schema=[{"name": "a", "type": "string"}],
    path_prefix="raw/",
)


@dataclass
class StampedLake:
    """The lake as a tick lists it, with chosen ``LastModified`` stamps for some keys: moto stamps whole
    seconds, so a test sets the second it needs instead of waiting for the clock to reach it."""

    lake: ObjectStore
    stamps: dict[str, datetime]

    def list(self, prefix: str, *, start_after: str | None = None) -> Iterator[ObjectInfo]:
        return (self._stamped(info) for info in self.lake.list(prefix, start_after=start_after))

    def head(self, key: str) -> ObjectInfo | None:
        info = self.lake.head(key)
        return None if info is None else self._stamped(info)

    def _stamped(self, info: ObjectInfo) -> ObjectInfo:
        stamp = self.stamps.get(info.key)
        return info if stamp is None else dataclasses.replace(info, last_modified=stamp)


@dataclass
class Ticker:
    """Evaluates the sensor as the daemon would: the cursor a tick returns is the next tick's."""

    stores: Stores
    instance: dg.DagsterInstance
    resource: StoreResource
    slug: str
    grace_seconds: float = 0.0
    cursor: str | None = None
    stamps: dict[str, datetime] = field(default_factory=dict)

    @property
    def raw(self) -> str:
        return f"pipelines/{self.slug}/raw/"

    def put(self, name: str, body: bytes = b"a\n1\n") -> None:
        self.stores.lake.put(self.raw + name, body)

    def head(self, name: str) -> ObjectInfo:
        info = self.stores.lake.head(self.raw + name)
        assert info is not None
        return info

    def stamp(self, name: str, when: datetime) -> None:
        """Make ticks see ``when`` as the raw file's ``LastModified``."""
        self.stamps[self.raw + name] = when

    def tick(self) -> dg.SensorResult:
        sensor = build_raw_files_sensor(
            read_pipeline(self.stores, self.slug), self.slug, self.resource, grace_seconds=self.grace_seconds
        )
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor)
        with pytest.MonkeyPatch.context() as patch:
            if self.stamps:
                lake = StampedLake(self.stores.lake, self.stamps)
                seen = dataclasses.replace(self.stores, lake=lake)
                patch.setattr(sensors, "_stores_for", lambda settings: seen)
            result = sensor(context)
        assert isinstance(result, dg.SensorResult)
        if result.cursor is not None:
            self.cursor = result.cursor
        return result

    def batch(self) -> int:
        """How many files the tick's one run request covers (0: no request)."""
        requests = self.tick().run_requests or []
        assert len(requests) <= 1
        return int(requests[0].run_key.split(":")[0]) if requests else 0


def _resource(settings: Settings) -> StoreResource:
    return StoreResource(
        data_dir=str(settings.data_dir),
        s3_bucket=settings.s3_bucket,
        s3_endpoint=settings.s3_endpoint or None,
    )


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials and bucket variables as the daemon's environment would carry them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    for name in ("S3_BUCKET", "S3_BUCKET_LAKE", "S3_BUCKET_WAREHOUSE", "KARET_ORPHAN_AFTER_SECONDS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    """One instance for the module (creating one costs a second); every test has a slug of its own."""
    with dg.instance_for_test() as shared:
        yield shared


def _ticker(settings: Settings, stores: Stores, instance: dg.DagsterInstance, config=CONFIG) -> Ticker:
    slug = f"auto-{uuid.uuid4().hex[:10]}"
    put_config(stores, slug, config)
    return Ticker(stores, instance, _resource(settings), slug)


@pytest.fixture
def ticker(settings: Settings, stores: Stores, instance: dg.DagsterInstance, s3_env: None) -> Ticker:
    return _ticker(settings, stores, instance)


def test_each_pipeline_gets_a_running_sensor_on_its_job(local_settings, local_stores):
    install_template(local_stores, "spending-2026", "spending")
    install_template(local_stores, "empty", "blank")

    defs = build_definitions(StoreResource(data_dir=str(local_settings.data_dir)))

    sensor = defs.resolve_sensor_def("spending_2026_raw_files")
    assert sensor.job_name == "spending_2026"
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert sensor.minimum_interval_seconds == SENSOR_INTERVAL_SECONDS
    assert "pipelines/spending-2026/transactions/" in (sensor.description or "")
    assert [s.name for s in defs.sensors or []] == ["spending_2026_raw_files"]  # no job, no sensor: `empty`


def test_first_tick_runs_existing_files_once_and_a_restart_runs_nothing(ticker):
    ticker.put("jan.csv")
    ticker.put("feb.csv")

    first = ticker.tick()

    [request] = first.run_requests or []
    assert request.run_key.startswith("2:")
    assert request.tags == {
        "karet/pipeline": ticker.slug,
        "karet/trigger": "sensor",
        "karet/clean_run": "false",
    }
    assert ticker.batch() == 0
    restarted = Ticker(ticker.stores, ticker.instance, ticker.resource, ticker.slug, cursor=first.cursor)
    result = restarted.tick()
    assert result.run_requests == [] and "no new or changed" in str(result.skip_reason)


def test_new_and_changed_files_each_request_one_run(ticker):
    assert ticker.batch() == 0
    ticker.put("jan.csv")
    first = ticker.tick().run_requests
    ticker.put("feb.csv")
    assert ticker.batch() == 1

    ticker.put("jan.csv", b"a\n2\n")  # same key, new body
    changed = ticker.tick().run_requests

    assert first and changed and changed[0].run_key.startswith("1:")
    assert changed[0].run_key != first[0].run_key
    assert ticker.batch() == 0


def test_a_file_landing_in_the_same_second_as_the_last_one_is_new(ticker):
    second = datetime.fromtimestamp(int(time.time()), UTC)
    ticker.put("a.csv")
    ticker.stamp("a.csv", second)
    assert ticker.batch() == 1

    ticker.put("b.csv")
    ticker.stamp("b.csv", second)
    assert ticker.batch() == 1


def test_a_deleted_file_runs_nothing_and_counts_as_new_when_recreated(ticker):
    ticker.put("a.csv")
    ticker.put("b.csv")
    assert ticker.batch() == 2
    first = ticker.head("a.csv")

    ticker.stores.lake.delete(ticker.raw + "a.csv")
    assert ticker.batch() == 0
    assert ticker.raw + "a.csv" not in ChangeCursor.from_json(ticker.cursor).window

    ticker.put("a.csv")  # same body, so the same ETag: only the later stamp tells the new version apart
    ticker.stamp("a.csv", first.last_modified + timedelta(seconds=2))
    assert ticker.head("a.csv").etag == first.etag
    assert ticker.batch() == 1


def test_2500_files_of_the_first_tick_are_one_batch(local_settings, local_stores, instance):
    ticker = _ticker(local_settings, local_stores, instance)
    folder = local_settings.data_dir / ticker.raw
    folder.mkdir(parents=True)
    for i in range(2_500):  # written straight into the store's folder: 2,500 fsynced puts take seconds
        (folder / f"{i:05d}.csv").write_bytes(b"a\n%d\n" % i)

    assert ticker.batch() == 2_500
    assert ticker.batch() == 0


@pytest.fixture
def inproc_moto() -> Iterator[str]:
    """A moto server in this process, so a test can seed thousands of objects straight into its backend."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_2500_keys_on_s3_are_listed_across_pages(inproc_moto, instance, s3_env, tmp_path):
    settings = Settings(data_dir=tmp_path, s3_bucket="karet-sensor-pages", s3_endpoint=inproc_moto)
    stores = build_stores(settings)
    stores.lake.client.create_bucket(Bucket=settings.s3_bucket)
    ticker = _ticker(settings, stores, instance)
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for i in range(2_500):
        backend.put_object(settings.s3_bucket, f"{ticker.raw}{i:05d}.csv", b"a\n%d\n" % i)

    assert ticker.batch() == 2_500
    ticker.put("01234.csv", b"a\nchanged\n")
    ticker.put("99999.csv")
    assert ticker.batch() == 2
    stores.lake.close()


def test_files_outside_the_sources_never_trigger(settings, stores, instance, s3_env):
    slug = f"auto-{uuid.uuid4().hex[:10]}"
    root_config = make_pipeline(
        source_columns=[("a", "string")],
        columns=[("a", col("a"))],
        table_schema=[{"name": "a", "type": "string"}],
        path_prefix=f"pipelines/{slug}/",
    )
    put_config(stores, slug, root_config)
    ticker = Ticker(stores, instance, _resource(settings), slug)
    for key in ["clean/t/part.csv", "notes.txt", "dashboards/d.csv", "other.parquet"]:
        stores.lake.put(f"pipelines/{slug}/{key}", b"a\n1\n")
    stores.lake.put(f"pipelines/{slug}-other/raw/x.csv", b"a\n1\n")

    assert ticker.batch() == 0
    stores.lake.put(f"pipelines/{slug}/in.csv", b"a\n1\n")
    assert ticker.batch() == 1


def test_versions_a_webhook_run_covered_are_skipped(ticker):
    ticker.put("a.csv")
    ticker.put("b.csv")
    claim_for_webhook(ticker.instance, ticker.slug, ChangeCursor().advance([ticker.head("a.csv")]))

    assert ticker.batch() == 1  # b only

    ticker.put("c.csv")
    claim_for_webhook(ticker.instance, ticker.slug, ChangeCursor().advance([ticker.head("c.csv")]))
    result = ticker.tick()
    assert result.run_requests == [] and "covered by webhook runs" in str(result.skip_reason)
    assert ticker.batch() == 0


def _finish(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    event = DagsterEvent(event_type_value=DagsterEventType.RUN_SUCCESS.value, job_name=run.job_name)
    instance.report_dagster_event(event, run.run_id)


def _started_run(ticker: Ticker) -> dg.DagsterRun:
    return ticker.instance.add_run(
        dg.DagsterRun(
            job_name="auto", tags={"karet/pipeline": ticker.slug}, status=dg.DagsterRunStatus.STARTED
        )
    )


def test_a_tick_waits_while_a_run_of_the_pipeline_is_in_flight(ticker):
    run = _started_run(ticker)
    ticker.put("a.csv")

    waiting = ticker.tick()

    assert waiting.run_requests == [] and ChangeCursor.from_json(waiting.cursor) == ChangeCursor()
    assert f"wait for run {run.run_id}" in str(waiting.skip_reason)
    # The file is observed at once, and once: waiting keeps the change cursor, not the listing's digest.
    assert [e.metadata["file_count"].value for e in waiting.asset_events] == [1]
    _finish(ticker.instance, run)
    ticker.grace_seconds = 60.0
    grace = ticker.tick()
    assert "just ended" in str(grace.skip_reason) and grace.asset_events == []
    ticker.grace_seconds = 0.0
    assert ticker.batch() == 1


def test_a_run_silent_past_the_orphan_limit_does_not_hold_the_sensor(ticker, monkeypatch):
    run = _started_run(ticker)
    # The run's last event is three minutes old, past the two-minute limit, without the test waiting.
    ticker.instance.store_event(
        dg.EventLogEntry(
            error_info=None, level="INFO", user_message="", run_id=run.run_id, timestamp=time.time() - 180
        )
    )
    monkeypatch.setenv("KARET_ORPHAN_AFTER_SECONDS", "120")
    ticker.put("a.csv")

    assert ticker.batch() == 1


TWO_SOURCES = {
    **CONFIG,
    "source_containers": [
        *CONFIG["source_containers"],
        {
            "id": "notes",
            "name": "Notes",
            "path_prefix": "notes/",
            "schema": [{"name": "a", "type": "string"}],
        },
    ],
}


def test_ticks_observe_a_source_only_when_its_listing_changed(settings, stores, instance, s3_env):
    ticker = _ticker(settings, stores, instance, TWO_SOURCES)
    ticker.put("jan.csv", b"a\n1\n")
    ticker.put("feb.csv", b"a\n22\n")
    ticker.put("readme.txt", b"not a file the source reads")

    first = ticker.tick()

    raw, notes = (dg.AssetKey([ticker.slug, "raw", source]) for source in ("src", "notes"))
    assert [e.asset_key for e in first.asset_events] == [raw, notes]
    newest = max((ticker.head(n) for n in ("jan.csv", "feb.csv")), key=lambda i: (i.last_modified, i.key))
    stamp = newest.last_modified.timestamp()
    assert {k: v.value for k, v in first.asset_events[0].metadata.items()} == {
        "file_count": 2,
        "total_bytes": 9,
        "newest_file": newest.key,
        "last_modified": stamp,
        "dagster/last_updated_timestamp": stamp,
    }
    assert {k: v.value for k, v in first.asset_events[1].metadata.items()} == {
        "file_count": 0,
        "total_bytes": 0,
    }
    assert ticker.tick().asset_events == []  # an unchanged listing reports nothing

    stores.lake.put(f"pipelines/{ticker.slug}/notes/n.csv", b"a\n1\n")
    assert [e.asset_key for e in ticker.tick().asset_events] == [notes]

    stores.lake.delete(ticker.raw + "jan.csv")
    deleted = ticker.tick()
    assert deleted.run_requests == []
    assert [(e.asset_key, e.metadata["file_count"].value) for e in deleted.asset_events] == [(raw, 1)]


def test_an_observation_the_daemon_records_is_the_raw_assets_last_observation(ticker):
    ticker.put("jan.csv")
    key = dg.AssetKey([ticker.slug, "raw", "src"])

    for event in ticker.tick().asset_events:  # what the daemon does with a tick's asset events
        ticker.instance.report_runless_asset_event(event)

    [record] = ticker.instance.fetch_observations(key, limit=1).records
    observation = record.asset_observation
    assert observation is not None and observation.metadata["file_count"].value == 1
    assert observation.metadata["newest_file"].value == ticker.raw + "jan.csv"
