"""Live events measured: run progress overhead, SSE fan-out latency, and clients that come and go.

``python -m bench.events [--gb 1] [--repeat 3] [--clients 100] [--connects 1000] [--groups 10]``:

- **progress**: the same clean Dagster run of the Spending template over ``--gb`` of CSVs (in this
  process, as the embedded API runs it), with progress written as Dagster events and with a silent
  tracker, ``--repeat`` times each in A B B A order; medians of wall and CPU time, and the events written
  per run.
- **fan-out**: ``--clients`` SSE clients on ``/api/events`` of an API server (its own process) while a
  tiny run goes; the delay from each job event's Dagster timestamp to its arrival at every client; beside
  them ``--groups`` topic consumer groups long-polling ``runs`` and acking, until each sees the run end.
- **connects**: ``--connects`` SSE clients that connect and leave at once; the server's RSS, its poller
  and listeners before and after.

Figures go to stdout as JSON; data is cached under ``--workdir`` (``bench/data``).
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

from bench.api_server import API_KEY, serve_api
from bench.generate import ensure_dataset
from bench.measure import proc_status_mb
from bench.run import BYTES_PER_FILE, TINY_SLUG
from bench.spending import SLUG
from bench.stores import dagster_home, prepare_store, tiny_store


def bench_progress(workdir: Path, gb: float, repeat: int) -> dict:
    """Interleaved runs with and without progress events; run in this process like the embedded API."""
    import dagster as dg

    from karet_defs.engine.progress import ProgressTracker
    from karet_defs.orchestration import assets
    from karet_defs.orchestration.launch import execute_pipeline_run

    size = int(gb * 1e9)
    dataset = ensure_dataset(workdir / f"events-{gb}gb", size, max(1, round(size / BYTES_PER_FILE)))
    store = workdir / "events-progress-store"
    prepare_store(store, dataset.files)
    os.environ["KARET_DATA_DIR"] = str(store)
    os.environ["DAGSTER_HOME"] = str(dagster_home(workdir / "events-progress-home"))
    with_events = assets.build_progress_tracker
    timings: dict[str, list[tuple[float, float, int]]] = {"on": [], "off": []}
    with dg.DagsterInstance.get() as instance:
        # A B B A …: a machine that gets faster or slower during the runs weighs on both modes alike.
        for mode in [
            m for pair in range(repeat) for m in (("on", "off") if pair % 2 == 0 else ("off", "on"))
        ]:
            assets.build_progress_tracker = with_events if mode == "on" else (lambda *_: ProgressTracker())
            wall, cpu = time.perf_counter(), time.process_time()
            outcome = execute_pipeline_run(instance, SLUG, trigger="manual", clean_run=True)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            observations = instance.get_records_for_run(
                outcome.run_id, of_type=dg.DagsterEventType.ASSET_OBSERVATION, limit=10_000
            ).records
            timings[mode].append((wall, cpu, len(observations)))
            line = f"progress {mode}: {wall:.1f} s wall, {cpu:.1f} s cpu, {len(observations)} events"
            sys.stderr.write(line + "\n")
    assets.build_progress_tracker = with_events
    median = {
        mode: (statistics.median(w for w, _, _ in t), statistics.median(c for _, c, _ in t))
        for mode, t in timings.items()
    }
    return {
        "gb": gb,
        "rows": dataset.rows,
        "runs_each": repeat,
        "wall_s": {mode: round(m[0], 2) for mode, m in median.items()},
        "cpu_s": {mode: round(m[1], 2) for mode, m in median.items()},
        "wall_overhead_pct": round((median["on"][0] / median["off"][0] - 1) * 100, 2),
        "cpu_overhead_pct": round((median["on"][1] / median["off"][1] - 1) * 100, 2),
        "progress_events_per_run": timings["on"][0][2],
    }


def _sse_events(
    client: httpx.Client, path: str, until_job: list[str], received: list, ready: threading.Event
) -> None:
    with client.stream("GET", path) as response:
        ready.set()
        data = None
        for line in response.iter_lines():
            if line.startswith("data:"):
                data = json.loads(line[5:])
            elif not line and data is not None:
                received.append((time.time(), data))
                if data["type"] in ("completed", "failed") and data["job_id"] in until_job:
                    return
                data = None


def _bearer(client: httpx.Client) -> httpx.Client:
    # KalamDB's routes take the API key as a bearer token, as its clients send it.
    client.headers["Authorization"] = f"Bearer {API_KEY}"
    return client


def _consumer_group(
    client: httpx.Client, group: str, until_job: list[str], outcome: dict, deadline: float
) -> None:
    """One consumer group long-polling ``runs`` and acking what it got, until the run's end arrives."""
    body = {"topic_id": "runs", "group_id": group, "start": "Earliest", "limit": 100, "partition_id": 0}
    while time.time() < deadline:
        answer = client.post("/v1/api/topics/consume", json={**body, "timeout_seconds": 2})
        if answer.status_code != 200:
            outcome["errors"] += 1
            continue
        messages = answer.json()["messages"]
        outcome["messages"] += len(messages)
        if not messages:
            continue
        acked = client.post(
            "/v1/api/topics/ack",
            json={
                "topic_id": "runs",
                "group_id": group,
                "partition_id": 0,
                "upto_offset": messages[-1]["offset"],
            },
        )
        outcome["errors"] += acked.status_code != 200
        if any(m["op"] == "ended" and m["payload"]["job_id"] in until_job for m in messages):
            outcome["saw_the_end"] = True
            return


def bench_fan_out(workdir: Path, clients: int, connects: int, groups: int) -> dict:
    store = tiny_store(workdir / "events-api-store", TINY_SLUG)
    home = dagster_home(workdir / "events-api-home")
    with serve_api(store, home, log=workdir / "logs" / "events-api.log") as server:
        with server.client() as client:
            rss_start = proc_status_mb(server.pid, "VmRSS")
            started = time.perf_counter()
            for _ in range(connects):
                with client.stream("GET", "/api/events"):
                    pass
            connect_s = time.perf_counter() - started
            time.sleep(1.0)  # the poller ends one tick after its last listener
            rss_after_connects = proc_status_mb(server.pid, "VmRSS")
            job_ids: list[str] = []
            received: list[list] = [[] for _ in range(clients)]
            readies = [threading.Event() for _ in range(clients)]
            threads = []
            for i in range(clients):
                reader = server.client(timeout=120)
                thread = threading.Thread(
                    target=_sse_events,
                    args=(reader, "/api/events", job_ids, received[i], readies[i]),
                    daemon=True,
                )
                thread.start()
                threads.append(thread)
            consumers = [{"errors": 0, "messages": 0, "saw_the_end": False} for _ in range(groups)]
            for i in range(groups):
                thread = threading.Thread(
                    target=_consumer_group,
                    args=(
                        _bearer(server.client(timeout=30)),
                        f"bench-{i}",
                        job_ids,
                        consumers[i],
                        time.time() + 120,
                    ),
                    daemon=True,
                )
                thread.start()
                threads.append(thread)
            for ready in readies:
                ready.wait(30)
            time.sleep(1.0)  # every stream subscribed (headers arrive just before the subscription)
            job_ids.append(client.post(f"/api/p/{TINY_SLUG}/jobs").json()["job"]["id"])
            for thread in threads:
                thread.join(120)
            rss_end = proc_status_mb(server.pid, "VmRSS")
    delays = [
        arrived - datetime.fromisoformat(data["timestamp"].replace("Z", "+00:00")).timestamp()
        for events in received
        for arrived, data in events
    ]
    complete = sum(1 for events in received if events and events[-1][1]["type"] in ("completed", "failed"))
    return {
        "connects": connects,
        "connects_per_s": round(connects / connect_s, 1),
        "rss_mb": {
            "start": round(rss_start, 1),
            "after_connects": round(rss_after_connects, 1),
            "end": round(rss_end, 1),
        },
        "clients": clients,
        "clients_saw_the_whole_run": complete,
        "consumer_groups": groups,
        "groups_saw_the_run_end": sum(c["saw_the_end"] for c in consumers),
        "group_errors": sum(c["errors"] for c in consumers),
        "events_delivered": len(delays),
        "delay_s": {
            "median": round(statistics.median(delays), 3) if delays else None,
            "p95": round(sorted(delays)[int(len(delays) * 0.95) - 1], 3) if delays else None,
            "max": round(max(delays), 3) if delays else None,
        },
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__.split("\n\n")[0])
    parser.add_argument("--gb", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--connects", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=10, help="topic consumer groups during the fan-out")
    parser.add_argument("--workdir", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--no-progress", action="store_true", help="skip the progress overhead runs")
    parser.add_argument("--no-fan-out", action="store_true", help="skip the SSE measurements")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    if not args.no_fan_out:
        results["fan_out"] = bench_fan_out(args.workdir, args.clients, args.connects, args.groups)
    if not args.no_progress:
        results["progress"] = bench_progress(args.workdir, args.gb, args.repeat)
    sys.stdout.write(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
