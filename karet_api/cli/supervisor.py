"""``karet dev``: one process supervising a Dagster code server, webserver and daemon, the API and workers.

It serves on the loopback and refuses at once a port already in use; its internal code server takes a free
port, so several ``dev`` on one host (each with its own ports, data directory and ``DAGSTER_HOME``) never
reach each other's processes. It prints the URLs once every part answers, and stops every part when one
of them stops, on Ctrl-C or on SIGTERM.
"""

import errno
import fcntl
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO

import grpc  # type: ignore[import-untyped]
import uvicorn
from grpc_health.v1 import health_pb2, health_pb2_grpc  # type: ignore[import-untyped]

from karet_api.cli.environment import err, load_settings, out, prepare_instance, with_home
from karet_defs.settings import Settings

DEFINITIONS_MODULE = "karet_defs.definitions"
DEMO_SLUG = "spending"
LOCATION_NAME = "karet"
LOOPBACK = "127.0.0.1"
HOME_LOCK = "karet-dev.lock"
START_TIMEOUT = 120.0
STOP_GRACE = 10.0
# The service a Dagster code server reports SERVING once it has loaded the definitions.
_DAGSTER_HEALTH_SERVICE = "DagsterApi"
_WORKSPACE_QUERY = (
    "{ workspaceOrError { ... on Workspace { locationEntries { displayMetadata { key value } } } } }"
)


def _listen(port: int, flag: str) -> socket.socket:
    """A socket listening on the loopback ``port``, or a refusal naming the flag that picks another one."""
    sock = socket.socket()
    # As uvicorn does: connections of an earlier run still in TIME_WAIT do not make the port busy.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((LOOPBACK, port))
        sock.listen()
    except OSError as exc:
        sock.close()
        busy = "is in use (another karet dev?)" if exc.errno == errno.EADDRINUSE else f"is not usable ({exc})"
        raise SystemExit(f"port {port} {busy}: pass {flag} <free port>") from exc
    return sock


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _claim_home(home: Path) -> IO[bytes]:
    """Hold ``home`` for this ``karet dev`` until the returned file is closed.

    A second ``karet dev`` on the same home would rewrite the workspace.yaml the first one's webserver and
    daemon read, and share its runs.
    """
    lock = (home / HOME_LOCK).open("wb")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise SystemExit(
            f"DAGSTER_HOME {home} is in use by another karet dev: set DAGSTER_HOME to another directory"
        ) from None
    return lock


def _seed_demo(settings: Settings) -> str | None:
    from karet_defs.catalog import list_slugs
    from karet_defs.store.factory import build_stores
    from karet_defs.templates import install_template

    stores = build_stores(settings)
    if next(iter(list_slugs(stores)), None) is not None:
        return None
    install_template(stores, DEMO_SLUG, "spending")
    return DEMO_SLUG


def _code_server_serving(port: int) -> bool:
    """Whether the code server on ``port`` answers Dagster's health check (it has loaded the definitions)."""
    with grpc.insecure_channel(f"{LOOPBACK}:{port}") as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=_DAGSTER_HEALTH_SERVICE), timeout=5
            )
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def _local_http(request: urllib.request.Request | str) -> bytes | None:
    """The body of a 200 answer from a loopback server, or None while it does not answer."""
    # No proxy from the environment: it would answer for 127.0.0.1 in place of our own servers.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            return bytes(response.read())
    except (OSError, http.client.HTTPException):
        return None


def _webserver_code_ports(url: str) -> set[str] | None:
    """The code server ports of the webserver's locations, or None while it does not answer."""
    body = _local_http(
        urllib.request.Request(
            f"{url}/graphql",
            data=json.dumps({"query": _WORKSPACE_QUERY}).encode(),
            headers={"content-type": "application/json"},
        )
    )
    if body is None:
        return None
    entries = json.loads(body)["data"]["workspaceOrError"].get("locationEntries", [])
    return {item["value"] for entry in entries for item in entry["displayMetadata"] if item["key"] == "port"}


class _Parts:
    """The running parts of one ``karet dev``: Dagster's processes and the workers, and the API's thread."""

    def __init__(self, settings: Settings, api_socket: socket.socket) -> None:
        from karet_api.main import create_app

        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.api = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
        # Off the main thread uvicorn leaves signals alone, so Ctrl-C reaches the stop below.
        self.api_thread = threading.Thread(target=self.api.run, kwargs={"sockets": [api_socket]}, daemon=True)

    def spawn(self, name: str, args: list[str]) -> None:
        # Own process group, so a stop reaches the code servers these tools start, too.
        self.children[name] = subprocess.Popen(args, start_new_session=True)

    def check_running(self) -> None:
        """Refuse to go on with a part missing: a webserver that lost its port leaves no instance to run."""
        for name, child in self.children.items():
            if child.poll() is not None:
                raise SystemExit(f"the {name} exited (code {child.returncode}): karet dev stops")
        if not self.api_thread.is_alive():
            raise SystemExit("the Karet API stopped: karet dev stops")

    def wait_for_code_server(self, port: int) -> None:
        """Block until the code server answers health checks."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self.check_running()
            if _code_server_serving(port):
                return
            time.sleep(0.5)
        raise SystemExit(f"the Dagster code server did not start on port {port} within {START_TIMEOUT:.0f} s")

    def wait_until_answering(self, dagster_port: int, api_port: int, code_port: int) -> None:
        """Block until the webserver answers with this instance's code location, and the API answers."""
        deadline = time.monotonic() + START_TIMEOUT
        webserver = api = False
        while True:
            self.check_running()
            if not webserver:
                ports = _webserver_code_ports(f"http://{LOOPBACK}:{dagster_port}")
                # Another `karet dev` that won a start-up race for the port: its UI is not ours to print.
                if ports is not None and ports != {str(code_port)}:
                    raise SystemExit(
                        f"port {dagster_port} answers for another Dagster webserver (another karet dev?): "
                        "pass --dagster-port <free port>"
                    )
                webserver = ports is not None
            api = api or _local_http(f"http://{LOOPBACK}:{api_port}/health") is not None
            if webserver and api:
                return
            if time.monotonic() > deadline:
                what = "the Dagster webserver" if not webserver else "the Karet API"
                raise SystemExit(f"{what} did not answer within {START_TIMEOUT:.0f} s")
            time.sleep(0.5)

    def stop(self) -> None:
        self.api.should_exit = True
        children = list(self.children.values())
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGINT)
        deadline = time.monotonic() + STOP_GRACE
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
        if self.api_thread.is_alive():
            self.api_thread.join(timeout=STOP_GRACE)


def serve_dev(
    data_dir: str | None,
    *,
    api_port: int,
    dagster_port: int,
    code_server_port: int | None,
    workers: int | None,
) -> int:
    """Run ``karet dev`` until Ctrl-C or SIGTERM (exit 0), or until one of its parts stops."""
    # Every port is claimed or checked before anything starts or loads (the app and Dagster take seconds to
    # import): a busy one is refused at once, with nothing to undo.
    with _listen(api_port, "--api-port") as api_socket:
        with _listen(dagster_port, "--dagster-port"):
            if code_server_port is None:
                code_port = _free_port()
            else:
                _listen(code_server_port, "--code-server-port").close()
                code_port = code_server_port
        settings = with_home(load_settings(data_dir))
        with _claim_home(settings.dagster_home):
            settings = prepare_instance(settings)
            settings = settings.model_copy(update={"dagster_url": f"http://{LOOPBACK}:{dagster_port}"})
            return _run(settings, api_socket, api_port, dagster_port, code_port, workers)


def _run(
    settings: Settings,
    api_socket: socket.socket,
    api_port: int,
    dagster_port: int,
    code_port: int,
    workers: int | None,
) -> int:
    seeded = _seed_demo(settings)
    bin_dir = Path(sys.executable).parent
    webserver = shutil.which("dagster-webserver", path=str(bin_dir)) or "dagster-webserver"
    daemon = shutil.which("dagster-daemon", path=str(bin_dir)) or "dagster-daemon"
    dagster = shutil.which("dagster", path=str(bin_dir)) or "dagster"
    # One code server shared by the webserver and the daemon: a reload asked of the webserver (after a
    # change of structure through the API) reloads the definitions both of them see.
    workspace = settings.dagster_home / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - grpc_server:\n      host: {LOOPBACK}\n"
        f"      port: {code_port}\n      location_name: {LOCATION_NAME}\n"
    )
    deployment = settings.deployment
    if workers is None:
        workers = 2 if deployment == "distributed" else 0
    if workers and deployment != "distributed":
        err(f"--workers ignored: Celery workers serve KARET_DEPLOYMENT=distributed, not {deployment}")
        workers = 0
    store = f"s3://{settings.s3_bucket}" if settings.uses_s3 else str(settings.data_dir)
    out(f"Karet on Dagster ({deployment}) — store: {store}, DAGSTER_HOME: {settings.dagster_home}")
    if seeded:
        out(f"Created the demo pipeline `{seeded}` (Spending Tracker) with its seed CSV.")
    # The children live in sessions of their own, out of reach of a SIGTERM sent to this one: turn it
    # into the same stop as Ctrl-C (pitfall 1).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    parts = _Parts(settings, api_socket)
    try:
        parts.api_thread.start()
        parts.spawn(
            "Dagster code server",
            [dagster, "code-server", "start", "-m", DEFINITIONS_MODULE, "-h", LOOPBACK]
            + ["-p", str(code_port), "--location-name", LOCATION_NAME],
        )
        parts.wait_for_code_server(code_port)
        parts.spawn(
            "Dagster webserver", [webserver, "-w", str(workspace), "-h", LOOPBACK, "-p", str(dagster_port)]
        )
        parts.spawn("Dagster daemon", [daemon, "run", "-w", str(workspace)])
        for number in range(1, workers + 1):
            parts.spawn(
                f"Celery worker {number}",
                [sys.executable, "-m", "karet_api.cli", "worker", "--concurrency", "1"],
            )
        parts.wait_until_answering(dagster_port, api_port, code_port)
        if workers:
            out(f"  {workers} Celery worker(s) on {settings.celery_broker_url.get_secret_value()}")
        api_url = f"http://{LOOPBACK}:{api_port}"
        out(f"  Dagster UI: {settings.dagster_url}")
        out(f"  Karet API:  {api_url}   (OpenAPI: {api_url}/docs)")
        out(
            f"  Try: curl -s -X POST {api_url}/jobs/run -H 'content-type: application/json'"
            f' -d \'{{"pipeline_prefix": "pipelines/{DEMO_SLUG}/"}}\''
        )
        while True:
            parts.check_running()
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    finally:
        parts.stop()
