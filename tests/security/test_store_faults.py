"""Store faults: the S3 endpoint going away mid-request and mid-run, coming back, and a missing bucket.

The app talks to a moto server of the test's own through a loopback relay; stopping the relay refuses new
connections and cuts open ones, as a crashed or unreachable endpoint does, while the objects behind it
survive (a restarted moto server would forget them), so what was published before the fault can be checked
after it. A real stop of the moto server is used where nothing needs to survive.
"""

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from karet_defs.store.s3 import S3Store
from tests.factories import col, make_pipeline, put_config, put_raw, read_table, table_version

SLUG = "faults"
CONFIG = make_pipeline(
    source_columns=[("month", "int64"), ("v", "string")],
    columns=[("month", col("month")), ("v", col("v"))],
    table_schema=[{"name": "month", "type": "int64"}, {"name": "v", "type": "string"}],
    partition_keys=["month"],
)


def _rows(n: int, tag: str) -> str:
    return "month,v\n" + "".join(f"{m},{tag}{i}\n" for m in (1, 2, 3) for i in range(n))


class Relay:
    """A TCP relay on a fixed loopback port; ``stop()`` refuses and cuts connections, ``start()`` resumes."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked on it; close() alone would not
            listener.close()
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by stop()
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._open |= {client, upstream}
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def relay(private_moto_server) -> Iterator[Relay]:
    relay = Relay(private_moto_server.port)
    relay.start()
    yield relay
    relay.stop()


@pytest.fixture
def faulty(make_client, make_s3_settings, relay, monkeypatch):
    """The API, and the runs it starts, on a bucket reached through the relay."""
    settings = make_s3_settings(endpoint=relay.url)
    # Runs build their stores from the environment, as every Dagster process does.
    for name, value in {
        "S3_BUCKET": settings.s3_bucket,
        "S3_ENDPOINT": relay.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    client = make_client(settings)
    return client, client.app.state.stores, settings


def _error(response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


def test_endpoint_stopped_mid_request_is_503_and_stores_nothing_then_a_retry_succeeds(faulty, relay):
    client, stores, _ = faulty
    put_config(stores, SLUG, CONFIG)
    before, etag = client.get(f"/api/p/{SLUG}/config").content, client.get(f"/api/p/{SLUG}/config").headers

    real_get = stores.pipelines.get

    def get_then_fail(key):
        # The request has read the stored config; the endpoint dies before it writes the new one.
        body = real_get(key)
        relay.stop()
        return body

    edited = json.dumps({**CONFIG, "layout": {"edited": True}}).encode()
    stores.pipelines.get = get_then_fail
    try:
        refused = client.put(f"/api/p/{SLUG}/config", content=edited)
    finally:
        stores.pipelines.get = real_get

    assert _error(refused) == (503, "s3_error")
    assert "Could not connect" in refused.json()["message"]
    assert _error(client.get("/api/pipelines")) == (503, "s3_error")

    relay.start()
    assert client.get(f"/api/p/{SLUG}/config").content == before
    retried = client.put(f"/api/p/{SLUG}/config", content=edited, headers={"If-Match": etag["ETag"]})
    assert retried.status_code == 200
    assert client.get(f"/api/p/{SLUG}/config").content == edited


def test_moto_server_killed_is_503_and_its_empty_restart_a_clear_502(
    make_client, make_s3_settings, private_moto_server
):
    client = make_client(make_s3_settings(endpoint=private_moto_server.url))
    assert client.get("/api/pipelines").json() == {"pipelines": []}

    private_moto_server.stop()
    assert _error(client.get("/api/pipelines")) == (503, "s3_error")

    private_moto_server.start()  # moto forgets its buckets on a restart
    response = client.get("/api/pipelines")
    assert _error(response) == (502, "bucket_not_found")
    assert "S3_BUCKET" in response.json()["message"]


def _endpoint_lost(message: str) -> bool:
    # boto3 says it for an upload, delta-rs for the commit: which one meets the dead endpoint first is a race.
    return "Could not connect" in message or "error sending request" in message


def test_endpoint_stopped_mid_run_fails_the_job_with_the_cause_commits_nothing_and_a_retry_converges(
    faulty, relay, monkeypatch
):
    client, stores, _ = faulty
    put_config(stores, SLUG, CONFIG)
    put_raw(stores, f"pipelines/{SLUG}/raw/a.csv", _rows(3, "old"))
    first = client.post("/jobs/run", json={"pipeline_prefix": f"pipelines/{SLUG}/"}).json()
    assert (first["partitions_written"], first["errors"]) == (3, [])
    old = read_table(stores, SLUG, "t").sort("month", "v")
    put_raw(stores, f"pipelines/{SLUG}/raw/a.csv", _rows(5, "new"))

    real_put_file = S3Store.put_file
    published: list[str] = []

    def put_file_then_fail(self, key, src, *, content_type=None):
        etag = real_put_file(self, key, src, content_type=content_type)
        if "/clean/" in key:
            published.append(key)
            relay.stop()  # the endpoint dies right after the first data file is uploaded
        return etag

    monkeypatch.setattr(S3Store, "put_file", put_file_then_fail)
    failed = client.post("/jobs/run", json={"pipeline_prefix": f"pipelines/{SLUG}/"})
    monkeypatch.setattr(S3Store, "put_file", real_put_file)

    assert failed.status_code == 200
    errors = failed.json()["errors"]
    assert any(e.startswith("run failed: ") and _endpoint_lost(e) for e in errors), errors
    relay.start()
    job = client.get(f"/api/p/{SLUG}/jobs/{failed.json()['job_id']}").json()["job"]
    assert job["status"] == "failed" and _endpoint_lost(job["error"])

    # The data files uploaded before the endpoint died (uploads run in parallel: the others may or may not
    # have gone out first, and then the commit is what fails) are not committed: readers still see
    # version 0, whole.
    assert published
    assert table_version(stores, SLUG, "t") == 0
    assert read_table(stores, SLUG, "t").sort("month", "v").equals(old)

    retried = client.post("/jobs/run", json={"pipeline_prefix": f"pipelines/{SLUG}/"}).json()
    assert (retried["partitions_written"], retried["errors"]) == (3, [])
    converged = read_table(stores, SLUG, "t").sort("month", "v")
    assert converged.height == 15 and converged["v"].str.starts_with("new").all()


def test_missing_bucket_is_502_naming_the_variables_to_check(make_client, make_s3_settings):
    client = make_client(make_s3_settings(create=False))

    for method, path in [
        ("GET", "/api/pipelines"),
        ("GET", "/api/auth/setup"),
        ("POST", "/api/pipelines"),
        ("GET", f"/api/p/{SLUG}/config"),
        ("PUT", f"/api/p/{SLUG}/config"),
        ("GET", f"/api/p/{SLUG}/dashboards"),
        ("GET", f"/api/p/{SLUG}/export"),
    ]:
        body = (
            {"json": {"slug": SLUG}} if method == "POST" else ({"content": b"{}"} if method == "PUT" else {})
        )
        response = client.request(method, path, **body)
        assert _error(response) == (502, "bucket_not_found"), (method, path)
        message = response.json()["message"]
        assert all(name in message for name in ("S3_BUCKET", "S3_BUCKET_LAKE", "S3_BUCKET_WAREHOUSE"))

    run = client.post("/jobs/run", json={"pipeline_prefix": f"pipelines/{SLUG}/"})
    assert run.status_code == 400 and "S3_BUCKET" in run.json()["message"]
