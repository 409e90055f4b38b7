"""The ``karet`` command: ``dev`` (Dagster UI, daemon and API with a demo), ``api``, ``worker``,
``instance-yaml``, ``validate``, ``run``, ``migrate``, ``sql``, ``upgrade-config``.

``dev`` serves on the loopback and refuses at once a port already in use; its internal code server takes a
free port, so several ``dev`` on one host (each with its own ports, data directory and ``DAGSTER_HOME``)
never reach each other's processes.

``KARET_DEPLOYMENT`` (embedded, production, distributed) selects which of the instance configurations shipped
in ``karet_defs/instance/`` becomes ``$DAGSTER_HOME/dagster.yaml``.
"""

import argparse
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
import uuid
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import uvicorn

DEFINITIONS_MODULE = "karet_defs.definitions"
DEMO_SLUG = "spending"
LOCATION_NAME = "karet"
LOOPBACK = "127.0.0.1"
HOME_LOCK = "karet-dev.lock"
START_TIMEOUT = 120.0
DEPLOYMENTS = ("embedded", "production", "distributed")
# What each shipped instance reads from the environment when a Dagster process loads it.
REQUIRED_ENV = {
    "embedded": (),
    "production": ("KARET_POSTGRES_URL", "KARET_COMPUTE_LOGS_BUCKET"),
    "distributed": (
        "KARET_POSTGRES_URL",
        "KARET_COMPUTE_LOGS_BUCKET",
        "KARET_CELERY_BROKER_URL",
        "KARET_CELERY_BACKEND_URL",
    ),
}


def _out(message: str) -> None:
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def _err(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _deployment() -> str:
    from karet_defs.settings import Settings

    return Settings().deployment


def instance_yaml(deployment: str) -> bytes:
    """The shipped ``dagster.yaml`` of a deployment."""
    return (resources.files("karet_defs") / "instance" / f"{deployment}.yaml").read_bytes()


def _dagster_home() -> Path:
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster-home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def install_instance_yaml(home: Path, deployment: str) -> bool:
    """Make ``home/dagster.yaml`` the deployment's shipped instance, unless the user has edited it.

    A file equal to one of the shipped instances is replaced (``KARET_DEPLOYMENT`` changed); an edited one
    is kept, with a warning, since it is the user's. Returns whether the shipped instance is in place.
    """
    target = home / "dagster.yaml"
    wanted = instance_yaml(deployment)
    if target.exists():
        current = target.read_bytes()
        if current == wanted:
            return True
        shipped = {instance_yaml(d) for d in DEPLOYMENTS}
        if current not in shipped:
            _err(f"{target} was edited by hand: kept as is (KARET_DEPLOYMENT={deployment} not applied)")
            return False
    target.write_bytes(wanted)
    return True


def _check_deployment_env(deployment: str) -> None:
    missing = [name for name in REQUIRED_ENV[deployment] if not os.environ.get(name)]
    if missing:
        raise SystemExit(
            f"KARET_DEPLOYMENT={deployment} needs these environment variables: {', '.join(missing)}"
        )


def _prepare_environment(data_dir: str | None) -> None:
    """Pin the store and Dagster home in the environment so every process (webserver, daemon, runs) agrees.

    The instance's storage is created here, once: webserver, daemon and API creating a fresh SQLite
    storage at the same moment race on its schema migrations.
    """
    if data_dir:
        os.environ["KARET_DATA_DIR"] = str(Path(data_dir).resolve())
    elif not os.environ.get("S3_BUCKET"):
        os.environ["KARET_DATA_DIR"] = str(Path(os.environ.get("KARET_DATA_DIR", "karet-data")).resolve())
    deployment = _deployment()
    if install_instance_yaml(_dagster_home(), deployment):
        _check_deployment_env(deployment)
    import dagster as dg

    dg.DagsterInstance.get().dispose()


def _seed_demo() -> str | None:
    from karet_defs.catalog import list_slugs
    from karet_defs.settings import Settings
    from karet_defs.store.factory import build_stores
    from karet_defs.templates import install_template

    stores = build_stores(Settings())
    if next(iter(list_slugs(stores)), None) is not None:
        return None
    install_template(stores, DEMO_SLUG, "spending")
    return DEMO_SLUG


def _spawn(args: list[str]) -> subprocess.Popen[bytes]:
    # Own process group, so a stop reaches the code servers these tools start, too.
    return subprocess.Popen(args, start_new_session=True)


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


def _check_running(children: dict[str, subprocess.Popen[bytes]], api: threading.Thread) -> None:
    """Refuse to go on with a part missing: a webserver that lost its port leaves no instance to run."""
    for name, child in children.items():
        if child.poll() is not None:
            raise SystemExit(f"the {name} exited (code {child.returncode}): karet dev stops")
    if not api.is_alive():
        raise SystemExit("the Karet API stopped: karet dev stops")


def _wait_for_code_server(
    children: dict[str, subprocess.Popen[bytes]], api: threading.Thread, port: int
) -> None:
    """Block until the code server answers health checks (it has loaded the definitions)."""
    from dagster._grpc.client import DagsterGrpcClient

    client = DagsterGrpcClient(port=port, host=LOOPBACK)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        _check_running(children, api)
        with socket.socket() as probe:
            # The gRPC client prints every refused connection; ask it only once the port is open.
            listening = probe.connect_ex((LOOPBACK, port)) == 0
        if listening and client.health_check_query() == "SERVING":
            return
        time.sleep(0.5)
    raise SystemExit(f"the Dagster code server did not start on port {port} within {START_TIMEOUT:.0f} s")


def _local_http(request: urllib.request.Request | str) -> bytes | None:
    """The body of a 200 answer from a loopback server, or None while it does not answer."""
    # No proxy from the environment: it would answer for 127.0.0.1 in place of our own servers.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as response:
            return bytes(response.read())
    except (OSError, http.client.HTTPException):
        return None


_WORKSPACE_QUERY = (
    "{ workspaceOrError { ... on Workspace { locationEntries { displayMetadata { key value } } } } }"
)


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


def _wait_until_answering(
    children: dict[str, subprocess.Popen[bytes]],
    api_thread: threading.Thread,
    dagster_port: int,
    api_port: int,
    code_port: int,
) -> None:
    """Block until the webserver answers with this instance's code location, and the API answers."""
    deadline = time.monotonic() + START_TIMEOUT
    webserver = api = False
    while True:
        _check_running(children, api_thread)
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


def _worker_command(concurrency: int) -> list[str]:
    return [sys.executable, "-m", "karet_api.cli", "worker", "--concurrency", str(concurrency)]


def _stop(children: Iterable[subprocess.Popen[bytes]], grace: float = 10.0) -> None:
    children = list(children)
    for child in children:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGINT)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()


def _serve_api(port: int) -> None:
    import uvicorn

    from karet_api.main import create_app

    uvicorn.run(create_app(), host=LOOPBACK, port=port, log_level="warning")


def _api_server() -> "uvicorn.Server":
    import uvicorn

    from karet_api.main import create_app

    return uvicorn.Server(uvicorn.Config(create_app(), log_level="warning"))


def cmd_dev(args: argparse.Namespace) -> int:
    # Every port is claimed or checked before anything starts: a busy one is refused with nothing to undo.
    with _listen(args.api_port, "--api-port") as api_socket:
        with _listen(args.dagster_port, "--dagster-port"):
            if args.code_server_port is None:
                code_port = _free_port()
            else:
                _listen(args.code_server_port, "--code-server-port").close()
                code_port = args.code_server_port
        with _claim_home(_dagster_home()):
            return _run_dev(args, api_socket, code_port)


def _run_dev(args: argparse.Namespace, api_socket: socket.socket, code_port: int) -> int:
    _prepare_environment(args.data_dir)
    seeded = _seed_demo()
    bin_dir = Path(sys.executable).parent
    webserver = shutil.which("dagster-webserver", path=str(bin_dir)) or "dagster-webserver"
    daemon = shutil.which("dagster-daemon", path=str(bin_dir)) or "dagster-daemon"
    dagster = shutil.which("dagster", path=str(bin_dir)) or "dagster"
    # One code server shared by the webserver and the daemon: a reload asked of the webserver (after a
    # change of structure through the API) reloads the definitions both of them see.
    workspace = Path(os.environ["DAGSTER_HOME"]) / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - grpc_server:\n      host: {LOOPBACK}\n"
        f"      port: {code_port}\n      location_name: {LOCATION_NAME}\n"
    )
    os.environ["KARET_DAGSTER_URL"] = f"http://{LOOPBACK}:{args.dagster_port}"
    deployment = _deployment()
    workers = args.workers if args.workers is not None else (2 if deployment == "distributed" else 0)
    if workers and deployment != "distributed":
        _err(f"--workers ignored: Celery workers serve KARET_DEPLOYMENT=distributed, not {deployment}")
        workers = 0
    store = os.environ.get("S3_BUCKET") and f"s3://{os.environ['S3_BUCKET']}" or os.environ["KARET_DATA_DIR"]
    _out(f"Karet on Dagster ({deployment}) — store: {store}, DAGSTER_HOME: {os.environ['DAGSTER_HOME']}")
    if seeded:
        _out(f"Created the demo pipeline `{seeded}` (Spending Tracker) with its seed CSV.")
    # The children live in sessions of their own, out of reach of a SIGTERM sent to this one: turn it
    # into the same stop as Ctrl-C (pitfall 1).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    children: dict[str, subprocess.Popen[bytes]] = {}
    api = _api_server()
    # Off the main thread uvicorn leaves signals alone, so Ctrl-C reaches the stop below.
    api_thread = threading.Thread(target=api.run, kwargs={"sockets": [api_socket]}, daemon=True)
    try:
        api_thread.start()
        children["Dagster code server"] = _spawn(
            [dagster, "code-server", "start", "-m", DEFINITIONS_MODULE, "-h", LOOPBACK]
            + ["-p", str(code_port), "--location-name", LOCATION_NAME]
        )
        _wait_for_code_server(children, api_thread, code_port)
        children["Dagster webserver"] = _spawn(
            [webserver, "-w", str(workspace), "-h", LOOPBACK, "-p", str(args.dagster_port)]
        )
        children["Dagster daemon"] = _spawn([daemon, "run", "-w", str(workspace)])
        for number in range(1, workers + 1):
            children[f"Celery worker {number}"] = _spawn(_worker_command(1))
        _wait_until_answering(children, api_thread, args.dagster_port, args.api_port, code_port)
        if workers:
            _out(f"  {workers} Celery worker(s) on {os.environ['KARET_CELERY_BROKER_URL']}")
        api_url = f"http://{LOOPBACK}:{args.api_port}"
        _out(f"  Dagster UI: {os.environ['KARET_DAGSTER_URL']}")
        _out(f"  Karet API:  {api_url}   (OpenAPI: {api_url}/docs)")
        _out(
            f"  Try: curl -s -X POST {api_url}/jobs/run -H 'content-type: application/json'"
            f' -d \'{{"pipeline_prefix": "pipelines/{DEMO_SLUG}/"}}\''
        )
        while True:
            _check_running(children, api_thread)
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    finally:
        api.should_exit = True
        _stop(children.values())
        if api_thread.is_alive():
            api_thread.join(timeout=10)


def cmd_api(args: argparse.Namespace) -> int:
    _prepare_environment(args.data_dir)
    deployment = _deployment()
    if deployment != "embedded" and not os.environ.get("KARET_DAGSTER_URL"):
        raise SystemExit(
            f"KARET_DEPLOYMENT={deployment} submits runs to Dagster's queue: set KARET_DAGSTER_URL to the "
            "Dagster webserver (e.g. http://dagster-webserver:80)"
        )
    _out(f"Karet API: http://127.0.0.1:{args.port} (OpenAPI: http://127.0.0.1:{args.port}/docs)")
    _serve_api(args.port)
    return 0


def cmd_instance_yaml(args: argparse.Namespace) -> int:
    deployment = args.deployment or _deployment()
    if not args.write:
        sys.stdout.buffer.write(instance_yaml(deployment))
        sys.stdout.flush()
        return 0
    target = _dagster_home() / "dagster.yaml"
    target.write_bytes(instance_yaml(deployment))
    _out(f"wrote the {deployment} instance to {target}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """A Celery worker executing whole runs handed over by the distributed instance's run launcher."""
    _prepare_environment(args.data_dir)
    import dagster as dg
    from dagster_celery.launcher import CeleryRunLauncher
    from dagster_celery.tasks import create_execute_job_task, create_resume_job_task

    with dg.DagsterInstance.get() as instance:
        launcher = instance.run_launcher
        if not isinstance(launcher, CeleryRunLauncher):
            raise SystemExit(
                "`karet worker` serves the Celery run launcher: set KARET_DEPLOYMENT=distributed"
            )
        # The launcher's own Celery app, so broker, backend and queue come from dagster.yaml on both ends.
        app = launcher.celery
        queue = launcher.default_queue
    create_execute_job_task(app)
    create_resume_job_task(app)
    name = args.name or f"karet-{uuid.uuid4().hex[:6]}@%h"
    app.worker_main(
        [
            "worker",
            f"--concurrency={args.concurrency}",
            "--prefetch-multiplier=1",
            f"--loglevel={args.loglevel}",
            "--without-gossip",
            "--without-mingle",
            "-Q",
            queue,
            "-n",
            name,
        ]
    )
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from karet_defs.config.validate import load_pipeline
    from karet_defs.errors import KaretError

    try:
        load_pipeline(Path(args.file).read_bytes())
    except KaretError as exc:
        _out(json.dumps(exc.to_dict(), indent=2))
        return 1
    _out(json.dumps({"ok": True}))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import dagster as dg

    from karet_api.run_progress import watch_run
    from karet_defs.catalog import read_pipeline
    from karet_defs.errors import KaretError
    from karet_defs.orchestration.launch import outcome_of_run, start_pipeline_run
    from karet_defs.settings import Settings
    from karet_defs.store.factory import build_stores

    _prepare_environment(args.data_dir)
    try:
        read_pipeline(build_stores(Settings()), args.slug)
    except KaretError as exc:
        _out(json.dumps(exc.to_dict(), indent=2))
        return 1
    with dg.DagsterInstance.get() as instance:
        prepared, worker = start_pipeline_run(instance, args.slug, trigger="manual", clean_run=args.clean)
        watch_run(instance, prepared.run_id, worker)
        outcome = outcome_of_run(instance, prepared.run_id)
    _out(
        json.dumps(
            {
                "job_id": outcome.run_id,
                "status": "completed" if outcome.success else "failed",
                "partitions_written": outcome.partitions_written,
                "files_processed": outcome.files_processed,
                "errors": outcome.errors,
                **({"error": outcome.failure} if outcome.failure else {}),
            },
            indent=2,
        )
    )
    return 0 if outcome.success else 1


def cmd_sql(args: argparse.Namespace) -> int:
    """Run one read-only SELECT over a pipeline's tables and print the answer."""
    from karet_defs.query.terminal import sql_command
    from karet_defs.settings import Settings

    settings = Settings(data_dir=Path(args.data_dir)) if args.data_dir else Settings()
    text, status = sql_command(settings, args.slug, args.sql, as_json=args.json)
    _out(text)
    return status


def cmd_upgrade_config(args: argparse.Namespace) -> int:
    """Print a config with its lookups upgraded to dimensions (REFERENCE §1.9): a file, or a pipeline's stored
    config; ``--save`` records a pipeline's upgrade as its next config version."""
    from karet_api.services import pipelines
    from karet_defs.config.upgrade import upgrade_lookups
    from karet_defs.config.validate import parse_pipeline
    from karet_defs.errors import KaretError
    from karet_defs.settings import Settings
    from karet_defs.slugs import sanitise_slug
    from karet_defs.store.factory import build_stores

    from_file = Path(args.target).is_file()
    if from_file and args.save:
        _err("--save needs a pipeline slug, not a file")
        return 2
    try:
        if from_file:
            raw, etag, slug = Path(args.target).read_bytes(), None, ""
        else:
            stores = build_stores(Settings(data_dir=Path(args.data_dir)) if args.data_dir else Settings())
            slug = sanitise_slug(args.target)
            working, _ = pipelines.read_config(stores, slug)
            raw, etag = working.body, working.etag
        upgrade = upgrade_lookups(json.loads(raw))
        parse_pipeline(upgrade.config)
        body = json.dumps(upgrade.config, indent=2).encode()
        if args.save and upgrade.changed:
            pipelines.write_config(
                stores, slug, body, author="karet upgrade-config", if_match=etag, note="lookups → dimensions"
            )
    except (KaretError, ValueError, OSError) as exc:
        _err(f"{exc.message if isinstance(exc, KaretError) else exc}")
        return 1
    for note in upgrade.notes:
        _err(f"note: {note}")
    _out(body.decode())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Convert every table of every pipeline that earlier releases wrote as plain Parquet into Delta."""
    from karet_defs.catalog import list_slugs
    from karet_defs.config.validate import parse_pipeline
    from karet_defs.engine.migrate_tables import convert_legacy_table
    from karet_defs.errors import KaretError
    from karet_defs.settings import Settings
    from karet_defs.store import keys
    from karet_defs.store.factory import build_stores

    settings = Settings(data_dir=Path(args.data_dir)) if args.data_dir else Settings()
    stores = build_stores(settings)
    results: list[dict[str, object]] = []
    for slug in list_slugs(stores):
        try:
            # Parsed, not validated: a config that fails validation still declares its tables' types.
            tables = parse_pipeline(stores.pipelines.get(keys.config_key(slug))).analytic_tables
        except KaretError as exc:
            results.append({"pipeline": slug, "status": "failed", "error": exc.code, "message": exc.message})
            continue
        for table in tables:
            entry: dict[str, object] = {"pipeline": slug, "table": table.id}
            try:
                version = convert_legacy_table(stores.warehouse, slug, table)
            except KaretError as exc:
                entry.update(status="failed", error=exc.code, message=exc.message)
            else:
                entry["status"] = "unchanged" if version is None else "converted"
                if version is not None:
                    entry["version"] = version
            results.append(entry)
    _out(json.dumps({"tables": results}, indent=2))
    return 1 if any(r["status"] == "failed" for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="karet", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    dev = commands.add_parser("dev", help="Dagster UI + daemon + API on the embedded default, with a demo")
    dev.add_argument("--data-dir", help="local store root (default: $KARET_DATA_DIR or ./karet-data)")
    dev.add_argument("--api-port", type=int, default=8000)
    dev.add_argument("--dagster-port", type=int, default=3000)
    dev.add_argument(
        "--code-server-port", type=int, help="port of the internal Dagster code server (default: a free one)"
    )
    dev.add_argument(
        "--workers", type=int, help="Celery workers to start (distributed only; default 2 there, else 0)"
    )
    dev.set_defaults(func=cmd_dev)
    api = commands.add_parser("api", help="serve the API alone")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--data-dir")
    api.set_defaults(func=cmd_api)
    worker = commands.add_parser(
        "worker", help="a Celery worker running whole runs (KARET_DEPLOYMENT=distributed)"
    )
    worker.add_argument("--concurrency", type=int, default=1, help="runs executed at once by this worker")
    worker.add_argument("--name", help="Celery node name (default karet-<random>@<host>)")
    worker.add_argument("--loglevel", default="INFO")
    worker.add_argument("--data-dir")
    worker.set_defaults(func=cmd_worker)
    yaml_cmd = commands.add_parser(
        "instance-yaml",
        help="print the dagster.yaml of KARET_DEPLOYMENT (or --deployment); --write installs it",
    )
    yaml_cmd.add_argument("--deployment", choices=DEPLOYMENTS)
    yaml_cmd.add_argument("--write", action="store_true", help="write it to $DAGSTER_HOME/dagster.yaml")
    yaml_cmd.set_defaults(func=cmd_instance_yaml)
    validate = commands.add_parser("validate", help="validate a pipeline.json file")
    validate.add_argument("file")
    validate.set_defaults(func=cmd_validate)
    run = commands.add_parser("run", help="run one pipeline as a Dagster run and print its summary")
    run.add_argument("slug")
    run.add_argument("--clean", action="store_true", help="empty the tables' clean/ folders first")
    run.add_argument("--data-dir")
    run.set_defaults(func=cmd_run)
    migrate = commands.add_parser(
        "migrate",
        help="convert the tables earlier releases wrote as plain Parquet into Delta tables, in place",
    )
    migrate.add_argument("--data-dir", help="local store root (default: $KARET_DATA_DIR or ./karet-data)")
    migrate.set_defaults(func=cmd_migrate)
    sql = commands.add_parser("sql", help="run one read-only SELECT over a pipeline's tables and print it")
    sql.add_argument("slug")
    sql.add_argument("sql", help='e.g. "SELECT category, sum(amount) FROM transactions GROUP BY 1"')
    sql.add_argument("--json", action="store_true", help="print {columns, rows, rowCount} as JSON")
    sql.add_argument("--data-dir", help="local store root (default: $KARET_DATA_DIR or ./karet-data)")
    sql.set_defaults(func=cmd_sql)
    upgrade = commands.add_parser(
        "upgrade-config", help="print a config with its lookup_mappings upgraded to dimensions (Karet E4)"
    )
    upgrade.add_argument("target", help="a pipeline.json file, or the slug of a stored pipeline")
    upgrade.add_argument(
        "--save", action="store_true", help="record a pipeline's upgrade as its next version"
    )
    upgrade.add_argument("--data-dir", help="local store root (default: $KARET_DATA_DIR or ./karet-data)")
    upgrade.set_defaults(func=cmd_upgrade_config)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
