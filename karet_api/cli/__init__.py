"""The ``karet`` command: ``dev`` (Dagster UI, daemon and API with a demo), ``api``, ``worker``,
``instance-yaml``, ``validate``, ``run``, ``migrate``, ``sql``, ``upgrade-config``.

``dev`` serves on the loopback, refuses a port already in use, and stops every process it started when one
stops (``supervisor``). ``KARET_DEPLOYMENT`` (embedded, production, distributed) selects which of the
instance configurations shipped in ``karet_defs/instance/`` becomes ``$DAGSTER_HOME/dagster.yaml``
(``environment``). Each command (``commands``) builds its settings once.
"""

import argparse

from karet_api.cli import commands
from karet_defs.settings import DEPLOYMENTS

_DATA_DIR_HELP = "local store root (default: $KARET_DATA_DIR or ./karet-data)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="karet", description=__doc__)
    subcommands = parser.add_subparsers(dest="command", required=True)
    dev = subcommands.add_parser("dev", help="Dagster UI + daemon + API on the embedded default, with a demo")
    dev.add_argument("--data-dir", help=_DATA_DIR_HELP)
    dev.add_argument("--api-port", type=int, default=8000)
    dev.add_argument("--dagster-port", type=int, default=3000)
    dev.add_argument(
        "--code-server-port", type=int, help="port of the internal Dagster code server (default: a free one)"
    )
    dev.add_argument(
        "--workers", type=int, help="Celery workers to start (distributed only; default 2 there, else 0)"
    )
    dev.set_defaults(func=commands.cmd_dev)
    api = subcommands.add_parser("api", help="serve the API alone")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--data-dir")
    api.set_defaults(func=commands.cmd_api)
    worker = subcommands.add_parser(
        "worker", help="a Celery worker running whole runs (KARET_DEPLOYMENT=distributed)"
    )
    worker.add_argument("--concurrency", type=int, default=1, help="runs executed at once by this worker")
    worker.add_argument("--name", help="Celery node name (default karet-<random>@<host>)")
    worker.add_argument("--loglevel", default="INFO")
    worker.add_argument("--data-dir")
    worker.set_defaults(func=commands.cmd_worker)
    yaml_cmd = subcommands.add_parser(
        "instance-yaml",
        help="print the dagster.yaml of KARET_DEPLOYMENT (or --deployment); --write installs it",
    )
    yaml_cmd.add_argument("--deployment", choices=DEPLOYMENTS)
    yaml_cmd.add_argument("--write", action="store_true", help="write it to $DAGSTER_HOME/dagster.yaml")
    yaml_cmd.set_defaults(func=commands.cmd_instance_yaml)
    validate = subcommands.add_parser("validate", help="validate a pipeline.json file")
    validate.add_argument("file")
    validate.set_defaults(func=commands.cmd_validate)
    run = subcommands.add_parser("run", help="run one pipeline as a Dagster run and print its summary")
    run.add_argument("slug")
    run.add_argument("--clean", action="store_true", help="empty the tables' clean/ folders first")
    run.add_argument("--data-dir")
    run.set_defaults(func=commands.cmd_run)
    migrate = subcommands.add_parser(
        "migrate",
        help="convert the tables earlier releases wrote as plain Parquet into Delta tables, in place",
    )
    migrate.add_argument("--data-dir", help=_DATA_DIR_HELP)
    migrate.set_defaults(func=commands.cmd_migrate)
    sql = subcommands.add_parser("sql", help="run one read-only SELECT over a pipeline's tables and print it")
    sql.add_argument("slug")
    sql.add_argument("sql", help='e.g. "SELECT category, sum(amount) FROM transactions GROUP BY 1"')
    sql.add_argument("--json", action="store_true", help="print {columns, rows, rowCount} as JSON")
    sql.add_argument("--data-dir", help=_DATA_DIR_HELP)
    sql.set_defaults(func=commands.cmd_sql)
    upgrade = subcommands.add_parser(
        "upgrade-config", help="print a config with its lookup_mappings upgraded to dimensions (Karet E4)"
    )
    upgrade.add_argument("target", help="a pipeline.json file, or the slug of a stored pipeline")
    upgrade.add_argument(
        "--save", action="store_true", help="record a pipeline's upgrade as its next version"
    )
    upgrade.add_argument("--data-dir", help=_DATA_DIR_HELP)
    upgrade.set_defaults(func=commands.cmd_upgrade_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the ``karet`` command named in ``argv`` (default: the process's arguments)."""
    args = _parser().parse_args(argv)
    return int(args.func(args))
