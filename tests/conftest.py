"""Shared fixtures: a loopback moto S3 server, local and S3 settings, and the stores built from them."""

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dagster as dg
import pytest
from fastapi.testclient import TestClient

from karet_api.main import create_app
from karet_defs.settings import Settings
from karet_defs.store.base import Stores
from karet_defs.store.factory import build_stores
from karet_defs.store.s3 import S3Store, make_s3_client

_MOTO_START_TIMEOUT = 30.0


class MotoServer:
    """A moto S3 server in a subprocess on a fixed loopback port; ``stop()`` and ``start()`` again at will."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the server (a restart loses every bucket: moto keeps them in memory) and wait for it."""
        if self._proc is not None:
            return
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + _MOTO_START_TIMEOUT
        while not _answers(self.port):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto server did not start on {self.url}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server; clients then get refused connections on its port."""
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """The endpoint URL of one moto S3 server shared by the whole session."""
    server = MotoServer()
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def private_moto_server() -> Iterator[MotoServer]:
    """A moto server of the test's own, which it may stop and restart without disturbing the shared one."""
    server = MotoServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def make_s3_settings(moto_server: str) -> Callable[..., Settings]:
    """Make S3 settings for the shared server, each with a fresh empty bucket (none with ``create=False``)."""

    def make(*, endpoint: str = moto_server, create: bool = True) -> Settings:
        settings = Settings(
            s3_bucket=f"karet-test-{uuid.uuid4().hex[:16]}",
            s3_bucket_lake="",
            s3_bucket_warehouse="",
            s3_endpoint=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            aws_region="us-east-1",
            s3_force_path_style=True,
        )
        if create:
            client = make_s3_client(settings)
            try:
                client.create_bucket(Bucket=settings.s3_bucket)
            finally:
                client.close()
        return settings

    return make


@pytest.fixture
def s3_settings(make_s3_settings: Callable[..., Settings]) -> Settings:
    """Settings for the shared moto server with a fresh bucket of this test's own."""
    return make_s3_settings()


@pytest.fixture
def local_settings(tmp_path: Path) -> Settings:
    """Settings for the embedded local store under ``tmp_path / "data"``."""
    return Settings(data_dir=tmp_path / "data", s3_bucket="", s3_bucket_lake="", s3_bucket_warehouse="")


@pytest.fixture
def local_stores(local_settings: Settings) -> Stores:
    """``build_stores(local_settings)``: one ``LocalStore`` playing all three buckets."""
    return build_stores(local_settings)


@pytest.fixture(params=["local", "s3"])
def settings(request: pytest.FixtureRequest) -> Settings:
    """The local settings, then the S3 settings: a test using this runs once against each store."""
    return request.getfixturevalue(f"{request.param}_settings")


@pytest.fixture
def stores(settings: Settings) -> Iterator[Stores]:
    """``build_stores(settings)``, its S3 connections closed after the test."""
    built = build_stores(settings)
    yield built
    for store in {id(s): s for s in (built.pipelines, built.lake, built.warehouse)}.values():
        if isinstance(store, S3Store):
            store.close()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def pipeline_env(local_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Point the environment at the local store, as ``karet dev`` does for every Dagster process."""
    monkeypatch.setenv("KARET_DATA_DIR", str(local_settings.data_dir))
    for name in ("S3_BUCKET", "S3_BUCKET_LAKE", "S3_BUCKET_WAREHOUSE", "KARET_WORKER_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return local_settings


@pytest.fixture(scope="module")
def _module_dagster_instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as instance:
        yield instance


@pytest.fixture
def dagster_instance(request: pytest.FixtureRequest) -> Iterator[dg.DagsterInstance]:
    """A throwaway Dagster instance with real (SQLite) run and event storage.

    A module whose routes never touch Dagster sets ``SHARES_DAGSTER_INSTANCE = True`` and gets one instance
    for the whole module (creating one costs about 0.5 s).
    """
    if getattr(request.module, "SHARES_DAGSTER_INSTANCE", False):
        yield request.getfixturevalue("_module_dagster_instance")
        return
    with dg.instance_for_test() as instance:
        yield instance


API_KEY = "test-api-key"


@pytest.fixture
def make_client(
    pipeline_env: Settings, dagster_instance: dg.DagsterInstance
) -> Iterator[Callable[..., TestClient]]:
    """Build a started ``TestClient`` over ``create_app(settings)``; with ``api_key`` it sends that key."""
    opened: list[TestClient] = []

    def make(settings: Settings, *, authenticated: bool = True) -> TestClient:
        settings = settings.model_copy(update={"api_key": API_KEY})
        client = TestClient(create_app(settings, dagster_instance))
        client.__enter__()
        if authenticated:
            client.headers["X-API-Key"] = API_KEY
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def api_client(make_client: Callable[..., TestClient], local_settings: Settings) -> TestClient:
    """The API on the local store, authenticated with the API key."""
    return make_client(local_settings)


@pytest.fixture
def s3_api_client(make_client: Callable[..., TestClient], s3_settings: Settings) -> TestClient:
    """The API on a fresh moto S3 bucket, authenticated with the API key."""
    return make_client(s3_settings)


@pytest.fixture(params=["local", "s3"])
def any_api_client(request: pytest.FixtureRequest) -> TestClient:
    """The API on the local store, then on S3: a test using this runs once against each."""
    return request.getfixturevalue("api_client" if request.param == "local" else "s3_api_client")
