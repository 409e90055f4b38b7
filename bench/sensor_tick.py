"""Raw-files sensor tick time at 10,000 and 100,000 objects, on the local store and on a moto S3 server.

Each case seeds N small CSVs under one source prefix (stamped over the past day, as a lake that has been
filled over time), then evaluates the pipeline's sensor as the daemon does: the first tick (no cursor: all N
files are one batch), idle ticks (nothing changed: the steady cost), and a tick after one new upload. Seeding
bypasses the store API (files written directly; objects put straight into the moto backend, which runs in a
child process) because putting 100,000 objects through HTTP would take minutes and measures nothing here.

Usage: ``python -m bench.sensor_tick [--sizes 10000,100000] [--stores local,s3] [--idle 3]``.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from karet_defs.catalog import read_pipeline
from karet_defs.orchestration.resources import StoreResource
from karet_defs.orchestration.sensors import build_raw_files_sensor
from karet_defs.settings import Settings
from karet_defs.store.changes import ChangeCursor
from karet_defs.store.factory import build_stores

SLUG = "bench"
RAW = f"pipelines/{SLUG}/raw/"
BUCKET = "karet-bench-sensor"
BODY = b"date,description,amount,account\n2026-05-01,Coffee,4.50,visa\n"
CONFIG = {
    "version": 1,
    "source_containers": [
        {
            "id": "src",
            "name": "Source",
            "path_prefix": "raw/",
            "schema": [{"name": "description", "type": "string"}],
        }
    ],
    "lookup_mappings": [],
    "mappings": [
        {
            "id": "m",
            "source_container_id": "src",
            "analytic_table_id": "t",
            "columns": [{"name": "description", "expr": {"kind": "col", "name": "description"}}],
        }
    ],
    "analytic_tables": [{"id": "t", "name": "T", "schema": [{"name": "description", "type": "string"}]}],
}


def _key(i: int) -> str:
    return f"{RAW}{i // 1000:03d}/{i:06d}.csv"


def _stamp(i: int, n: int) -> float:
    return time.time() - 86_400 + 86_000 * i / n  # spread over the past day, the newest ~7 min old


def _seed_local(root: Path, n: int) -> None:
    for i in range(n):
        path = root / _key(i)
        if i % 1000 == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(BODY)
        when = _stamp(i, n)
        os.utime(path, (when, when))


def _serve_moto(port: int, n: int) -> None:
    """Child process: a moto server whose backend holds ``n`` objects; runs until stdin closes."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    backend.create_bucket(BUCKET, "us-east-1")
    for i in range(n):
        key = backend.put_object(BUCKET, _key(i), BODY)
        key.last_modified = datetime.fromtimestamp(_stamp(i, n), tz=UTC).replace(tzinfo=None)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.read()
    server.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _measure(settings: Settings, resource: StoreResource, idle: int) -> dict:
    stores = build_stores(settings)
    stores.pipelines.put(f"pipelines/{SLUG}/pipeline.json", json.dumps(CONFIG).encode())
    sensor = build_raw_files_sensor(read_pipeline(stores, SLUG), SLUG, resource, grace_seconds=0)
    with dg.instance_for_test() as instance:

        def tick(cursor: str | None) -> tuple[float, dg.SensorResult]:
            context = dg.build_sensor_context(instance=instance, cursor=cursor)
            start = time.perf_counter()
            result = sensor(context)
            return time.perf_counter() - start, result

        first_s, first = tick(None)
        cursor = first.cursor
        idle_s = []
        for _ in range(idle):
            seconds, result = tick(cursor)
            assert not result.run_requests
            idle_s.append(seconds)
        stores.lake.put(RAW + "new/upload.csv", BODY)
        new_s, new = tick(cursor)
    assert first.run_requests and first.run_requests[0].run_key.startswith(f"{first_files(first)}:")
    assert new.run_requests and new.run_requests[0].run_key.startswith("1:")
    return {
        "first_tick_s": round(first_s, 3),
        "first_batch": first_files(first),
        "idle_tick_s": round(statistics.median(idle_s), 3),
        "new_file_tick_s": round(new_s, 3),
        "cursor_bytes": len(cursor or ""),
        "cursor_window": len(ChangeCursor.from_json(cursor).window),
    }


def first_files(result: dg.SensorResult) -> int:
    return int(result.run_requests[0].run_key.split(":")[0]) if result.run_requests else 0


def bench_local(n: int, idle: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="karet-sensor-bench-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        _seed_local(root, n)
        seeded = time.perf_counter() - start
        settings = Settings(data_dir=root, s3_bucket="")
        return {
            "seed_s": round(seeded, 1),
            **_measure(settings, StoreResource(data_dir=str(root), s3_bucket=""), idle),
        }


def bench_moto(n: int, idle: int) -> dict:
    port = _free_port()
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.sensor_tick", "--serve-moto", str(port), str(n)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        if child.stdout.readline().strip() != b"ready":
            raise RuntimeError("moto server did not start")
        seeded = time.perf_counter() - start
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        endpoint = f"http://127.0.0.1:{port}"
        settings = Settings(s3_bucket=BUCKET, s3_endpoint=endpoint)
        resource = StoreResource(s3_bucket=BUCKET, s3_endpoint=endpoint)
        return {"seed_s": round(seeded, 1), **_measure(settings, resource, idle)}
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="python -m bench.sensor_tick", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000", help="objects under the prefix, comma-separated")
    parser.add_argument("--stores", default="local,s3", help="local, s3 (a moto server), comma-separated")
    parser.add_argument("--idle", type=int, default=3, help="idle ticks per case (median kept)")
    parser.add_argument("--serve-moto", nargs=2, type=int, metavar=("PORT", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_moto:
        _serve_moto(*args.serve_moto)
        return []
    results = []
    for store in args.stores.split(","):
        for n in (int(s) for s in args.sizes.split(",")):
            measured = (bench_local if store == "local" else bench_moto)(n, args.idle)
            result = {"store": store if store == "local" else "s3 (moto server)", "objects": n, **measured}
            sys.stdout.write(json.dumps(result) + "\n")
            sys.stdout.flush()
            results.append(result)
    return results


if __name__ == "__main__":
    main()
