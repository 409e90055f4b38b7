"""The ``karet`` commands, one function each, taking the parsed arguments and returning the exit code.

Each builds its ``Settings`` once and passes them down; heavy imports wait for the command that needs them,
so ``karet validate`` starts without loading Dagster.
"""

import argparse
import json
import sys
import uuid
from pathlib import Path

from karet_api.cli.environment import (
    check,
    err,
    instance_yaml,
    load_settings,
    out,
    prepare_instance,
    with_home,
)


def cmd_dev(args: argparse.Namespace) -> int:
    from karet_api.cli.supervisor import serve_dev

    return serve_dev(
        args.data_dir,
        api_port=args.api_port,
        dagster_port=args.dagster_port,
        code_server_port=args.code_server_port,
        workers=args.workers,
    )


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from karet_api.main import create_app

    settings = prepare_instance(load_settings(args.data_dir))
    check(settings.require_dagster_url)
    out(f"Karet API: http://127.0.0.1:{args.port} (OpenAPI: http://127.0.0.1:{args.port}/docs)")
    uvicorn.run(create_app(settings), host="127.0.0.1", port=args.port, log_level="warning")
    return 0


def cmd_instance_yaml(args: argparse.Namespace) -> int:
    settings = load_settings()
    deployment = args.deployment or settings.deployment
    if not args.write:
        sys.stdout.buffer.write(instance_yaml(deployment))
        sys.stdout.flush()
        return 0
    target = with_home(settings).dagster_home / "dagster.yaml"
    target.write_bytes(instance_yaml(deployment))
    out(f"wrote the {deployment} instance to {target}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    """A Celery worker executing whole runs handed over by the distributed instance's run launcher."""
    prepare_instance(load_settings(args.data_dir))
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
        out(json.dumps(exc.to_dict(), indent=2))
        return 1
    out(json.dumps({"ok": True}))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    import dagster as dg

    from karet_api.run_progress import watch_run
    from karet_defs.catalog import read_pipeline
    from karet_defs.errors import KaretError
    from karet_defs.orchestration.launch import outcome_of_run, start_pipeline_run
    from karet_defs.store.factory import build_stores

    settings = prepare_instance(load_settings(args.data_dir))
    try:
        read_pipeline(build_stores(settings), args.slug)
    except KaretError as exc:
        out(json.dumps(exc.to_dict(), indent=2))
        return 1
    with dg.DagsterInstance.get() as instance:
        prepared, worker = start_pipeline_run(instance, args.slug, trigger="manual", clean_run=args.clean)
        watch_run(instance, prepared.run_id, worker)
        outcome = outcome_of_run(instance, prepared.run_id)
    out(
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

    text, status = sql_command(load_settings(args.data_dir), args.slug, args.sql, as_json=args.json)
    out(text)
    return status


def cmd_upgrade_config(args: argparse.Namespace) -> int:
    """Print a config with its lookups upgraded to dimensions (REFERENCE §1.9): a file, or a pipeline's stored
    config; ``--save`` records a pipeline's upgrade as its next config version."""
    from karet_api.services import pipelines
    from karet_defs.config.upgrade import upgrade_lookups
    from karet_defs.config.validate import parse_pipeline
    from karet_defs.errors import KaretError
    from karet_defs.slugs import sanitise_slug
    from karet_defs.store.factory import build_stores

    from_file = Path(args.target).is_file()
    if from_file and args.save:
        err("--save needs a pipeline slug, not a file")
        return 2
    try:
        if from_file:
            raw, etag, slug = Path(args.target).read_bytes(), None, ""
        else:
            stores = build_stores(load_settings(args.data_dir))
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
        err(f"{exc.message if isinstance(exc, KaretError) else exc}")
        return 1
    for note in upgrade.notes:
        err(f"note: {note}")
    out(body.decode())
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Convert every table of every pipeline that earlier releases wrote as plain Parquet into Delta."""
    from karet_defs.catalog import list_slugs
    from karet_defs.config.validate import parse_pipeline
    from karet_defs.engine.migrate_tables import convert_legacy_table
    from karet_defs.errors import KaretError
    from karet_defs.store import keys
    from karet_defs.store.factory import build_stores

    stores = build_stores(load_settings(args.data_dir))
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
    out(json.dumps({"tables": results}, indent=2))
    return 1 if any(r["status"] == "failed" for r in results) else 0
