"""Versioned (Delta Lake) tables through the API, against the hand-written Polars script (issue 12's targets).

``python -m bench.versioned [--size-mb 1000] [--files 50] [--workdir bench/data]``

The API runs as a user runs it (uvicorn in a child process on the embedded local store and Dagster
instance, ``bench.api_server``; ``POLARS_MAX_THREADS=2`` unless set), with the Spending Tracker template as
pipeline ``bench``. Every run is ``POST /jobs/run {"pipeline_prefix": "pipelines/bench/", "clean_run":
false}``, timed from request to response; raw files arrive through the store, as an upload would deliver
them. In the same invocation the Polars script (``bench.baseline_polars``, its own process) redoes the
whole transform over the same raw files, and the ratios are taken against it: of wall times (the targets),
and of CPU times too (the API process's, children it reaped included), steadier on a shared machine:

1. the first run over the data set (``--files`` files, ``--size-mb`` MB) against the script's full run,
   with the peak RSS of the API process tree (sampled) and the API process's own ``VmHWM``;
2. one new file of ``--new-rows`` rows dated over all 24 months → the incremental run against the
   script's full re-run (target ≤ 0.05×);
3. one existing file rewritten with other rows of about its size → the run against the script's full
   re-run (target ≤ 0.5×); then the table's current version must hold exactly the script's rows;
4. nothing new → the run's time (target < 1 s), and no new table version may be committed;
5. ``--small-runs`` runs, each after one new file of ``--small-rows`` rows over all months, then a
   compaction (``karet_defs.engine.maintenance.compact_table`` when present, else delta-rs'
   ``optimize.compact``): full-table scans (``bench.scan_table``: Polars ``scan_delta`` and DuckDB over the
   current version's files) and the data-file count before and after; the scans must agree on the rows
   and the amount total before and after, a run with nothing new after the compaction must commit
   nothing, and the table must again hold exactly the script's rows over the final raw files.

Generated files are cached under ``<workdir>/raw``; child logs (the API's included) go to
``<workdir>/logs``; the figures to ``<workdir>/versioned.json``.
"""

import argparse
import json
import os
import re
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
from deltalake import DeltaTable

from bench.api_server import Server, serve_api
from bench.compare import compare_outputs
from bench.generate import Dataset, ensure_dataset, file_seed, write_transactions
from bench.measure import Measured, RssSampler, cpu_seconds, proc_status_mb
from bench.run import Bench, _machine
from bench.spending import SLUG, TABLE
from bench.stores import dagster_home, prepare_store, raw_dir, table_dir, warm_page_cache
from karet_defs.store.base import Stores

TARGETS = {  # issue 12's targets: ratio to the script (or seconds), and an upper bound
    "first_run_ratio": 1.10,
    "first_run_peak_rss_mb": 1500.0,
    "new_file_ratio": 0.05,
    "changed_file_ratio": 0.5,
    "nothing_new_s": 1.0,
}
_EXTRA_SEED = 11  # the added and rewritten files' rows differ from the data set's (seed 7)
_RSS_INTERVAL = 0.05


def dataset_label(size_mb: float, files: int) -> str:
    return f"{size_mb / 1000:g}gb-{files}" if size_mb >= 1000 else f"{size_mb:g}mb-{files}"


def generated(path: Path, target_bytes: int, seed: int) -> tuple[Path, int]:
    """A CSV dated over the two years, cached with its row count in ``<name>.json``: (path, rows)."""
    sidecar = path.with_name(path.name + ".json")
    wanted = {"target_bytes": target_bytes, "seed": seed}
    if path.exists() and sidecar.exists():
        recorded = json.loads(sidecar.read_text())
        if {k: recorded.get(k) for k in wanted} == wanted:
            return path, int(recorded["rows"])
    part = path.with_name(f".{path.name}.part")
    rows = write_transactions(part, target_bytes, seed)
    part.replace(path)
    sidecar.write_text(json.dumps({**wanted, "rows": rows}))
    return path, rows


@dataclass
class Extras:
    """The files added or rewritten after the first run."""

    new: tuple[Path, int]
    changed_key: str  # the name of the data set's file that is rewritten (in the source folder)
    changed: tuple[Path, int]
    small: list[tuple[Path, int]]


def prepare_extras(
    bench: Bench, label: str, dataset: Dataset, new_rows: int, small_runs: int, small_rows: int
) -> Extras:
    folder = bench.raw / f"versioned-extra-{label}"
    bytes_per_row = dataset.bytes / dataset.rows
    new = generated(
        folder / f"tx-new-{new_rows}.csv", int(new_rows * bytes_per_row), file_seed(_EXTRA_SEED, 0)
    )
    victim = dataset.files[len(dataset.files) // 2]
    changed = generated(folder / f"changed-{victim.name}", victim.stat().st_size, file_seed(_EXTRA_SEED, 1))
    small = [
        generated(
            folder / f"tx-small-{small_rows}-{i:05d}.csv",
            int(small_rows * bytes_per_row),
            file_seed(_EXTRA_SEED, 2 + i),
        )
        for i in range(small_runs)
    ]
    return Extras(new, victim.name, changed, small)


class VersionedBench:
    """One invocation: the store, the API client and the script's output folder."""

    def __init__(
        self, bench: Bench, label: str, stores: Stores, server: Server, client: httpx.Client
    ) -> None:
        self.bench, self.label, self.stores, self.server, self.client = bench, label, stores, server, client
        self.store_root = bench.runs / f"store-versioned-{label}"
        self.table = table_dir(self.store_root)
        self.raw = raw_dir(self.store_root)
        self.script_out = bench.runs / f"polars-versioned-{label}"
        self.api_log = bench.log(f"versioned-api-{label}")
        self.home = bench.runs / f"dagster-versioned-{label}"

    def upload(self, name: str, source: Path) -> None:
        """Put a raw file into the pipeline's source folder through the store (replacing any old body)."""
        prefix = self.raw.relative_to(self.store_root).as_posix()
        self.stores.lake.put_file(f"{prefix}/{name}", source)

    def table_facts(self) -> dict:
        """The table's current version, data files and the last commit's Karet metadata."""
        table = DeltaTable(str(self.table))
        last = table.history(1)[0]
        return {
            "version": table.version(),
            "data_files": len(table.file_uris()),
            "operation": last.get("karet.operation") or last.get("operation"),
            "rows_added": _int(last.get("karet.rows_added")),
            "rows_removed": _int(last.get("karet.rows_removed")),
        }

    def run(self, name: str, *, sample_rss: bool = True) -> dict:
        """``POST /jobs/run`` (incremental), timed from request to response, with the API tree's RSS."""
        url = "/jobs/run"
        body = {"pipeline_prefix": f"pipelines/{SLUG}/", "clean_run": False}
        before = self.table_facts() if self.table.joinpath("_delta_log").is_dir() else None
        load = os.getloadavg()[0]
        cpu = cpu_seconds(self.server.pid)
        sampler = RssSampler(self.server.pid, _RSS_INTERVAL, tree=True) if sample_rss else None
        start = time.perf_counter()
        if sampler is not None:
            with sampler:
                response = self.client.post(url, json=body)
        else:
            response = self.client.post(url, json=body)
        seconds = time.perf_counter() - start
        cpu = cpu_seconds(self.server.pid) - cpu
        if response.status_code != 200:
            raise RuntimeError(f"{name}: POST {url} answered {response.status_code}: {response.text[:2000]}")
        answer = response.json()
        if answer["errors"]:
            raise RuntimeError(f"{name}: the run reported errors: {answer['errors']} (API log in logs/)")
        after = self.table_facts()
        result = {
            "api_s": seconds,
            "api_cpu_s": cpu,
            "dagster_run_s": self._run_seconds(answer["job_id"]),
            **dagster_phases(self.api_log, answer["job_id"], self.home),
            "load_avg_1m_before": load,
            "response": answer,
            "version_before": None if before is None else before["version"],
            **{k if k != "version" else "version_after": v for k, v in after.items()},
            "new_version": before is None or after["version"] != before["version"],
        }
        if sampler is not None:
            result["api_tree_peak_rss_mb"] = sampler.peak_mb
            result["api_tree_rss_before_mb"] = sampler.first_mb
            result["api_tree_processes"] = sorted(set(sampler.commands.values()))
        return result

    def _run_seconds(self, job_id: str) -> float | None:
        """The Dagster run's own duration, start to end (the API's job record, millisecond stamps)."""
        response = self.client.get(f"/api/p/{SLUG}/jobs/{job_id}")
        if response.status_code != 200:
            return None
        job = response.json()
        job = job.get("job", job)
        if not job.get("startedAt") or not job.get("completedAt"):
            return None
        return _epoch_seconds(job["completedAt"]) - _epoch_seconds(job["startedAt"])

    def against_script(self, step: dict, name: str, **facts: object) -> dict:
        """Run the script over the same raw files right after ``step``; add its figures and the ratio."""
        script = self.script(name)
        step.update(
            facts,
            script=_script_facts(script),
            ratio=step["api_s"] / script.wall_s,
            cpu_ratio=step["api_cpu_s"] / script.cpu_s,
        )
        return step

    def script(self, name: str) -> Measured:
        """The Polars script's full run over the pipeline's current raw files."""
        return self.bench.polars(f"versioned-{name}-polars", self.raw, self.script_out)

    def same_rows(self) -> dict:
        """The table's current version (hidden columns left out) against the script's last output."""
        agreement = compare_outputs({"engine": self.table, "polars": self.script_out})
        return {"rows": agreement.rows, "same": agreement.same, "differences": agreement.details}

    def scan(self, name: str, repeat: int) -> dict:
        measured = self.bench.child(
            f"versioned-scan-{name}", "bench.scan_table", str(self.table), "--repeat", str(repeat)
        )
        result = measured.json()
        result["polars_median_s"] = statistics.median(result["polars_s"])
        result["duckdb_median_s"] = statistics.median(result["duckdb_s"])
        return result


_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def _seconds(text: str) -> float | None:
    """A duration as Dagster logs it (``0.5ms``, ``726ms``, ``1.33s``, ``4m52s``, ``1h4m``) in seconds."""
    parts = re.findall(r"([\d.]+)(ms|h|m|s)", text)
    return sum(float(value) * _UNITS[unit] for value, unit in parts) if parts else None


def dagster_phases(log: Path, run_id: str, home: Path | None = None) -> dict:
    """Durations Dagster logs for one run: the asset step, and all steps in the API process.

    They are read from the API's log, and from the run's captured compute logs under ``home`` too: Dagster
    mirrors a step's stderr into the API's log with ``tail -F``, which at times stops before the last lines.
    """
    phases: dict = {"step_s": None, "steps_in_process_s": None}
    logs = [log] if log.exists() else []
    if home is not None:
        logs += sorted((home / "storage" / run_id / "compute_logs").glob("*.err"))
    for line in (line for path in logs for line in path.read_text(errors="replace").splitlines()):
        if run_id not in line:
            continue
        if " - STEP_SUCCESS - " in line and (m := re.search(r" in (\S+?)\.?$", line)):
            phases["step_s"] = _seconds(m.group(1))
        elif "Finished steps in process" in line and (m := re.search(r" in (\S+?)\.?$", line)):
            phases["steps_in_process_s"] = _seconds(m.group(1))
    return phases


def _int(value: object) -> int | None:
    return None if value is None else int(str(value))


def _epoch_seconds(iso_text: str) -> float:
    return datetime.fromisoformat(iso_text.replace("Z", "+00:00")).timestamp()


def _script_facts(m: Measured) -> dict:
    return {"wall_s": m.wall_s, "cpu_s": m.cpu_s, "peak_rss_mb": m.peak_rss_mb}


def compact(store_root: Path) -> dict:
    """Compact the table (the colleague's ``compact_table`` when present, else delta-rs directly)."""
    uri = table_dir(store_root)
    start = time.perf_counter()
    try:
        from karet_defs.engine.maintenance import compact_table
    except ImportError:
        metrics = DeltaTable(str(uri)).optimize.compact()
        details = {"rewritten_files": metrics["numFilesRemoved"], "new_files": metrics["numFilesAdded"]}
        via = "deltalake optimize.compact"
    else:
        from karet_defs.engine.delta import location
        from karet_defs.settings import Settings
        from karet_defs.store.factory import build_stores

        warehouse = build_stores(Settings(data_dir=store_root, s3_bucket="")).warehouse
        answer = compact_table(location(warehouse, SLUG, TABLE), {"karet.trigger": "bench"})
        details = json.loads(answer["details_json"])
        via = "karet_defs.engine.maintenance.compact_table"
    return {"seconds": time.perf_counter() - start, "via": via, "details": details}


def run_versioned(
    workdir: Path,
    size_mb: float = 1000,
    files: int = 50,
    *,
    new_rows: int = 20_000,
    small_runs: int = 100,
    small_rows: int = 2_000,
    scan_repeat: int = 3,
    progress: bool = False,
) -> dict:
    """Every step above; the figures as one dict (also written to ``<workdir>/versioned.json``)."""
    bench = Bench(workdir.resolve())
    say = _progress if progress else (lambda message: None)
    label = dataset_label(size_mb, files)
    say(f"data set {label} (generated once, then cached)")
    dataset = ensure_dataset(bench.raw / label, int(size_mb * 1e6), files)
    extras = prepare_extras(bench, label, dataset, new_rows, small_runs, small_rows)
    warm_page_cache([*dataset.files, extras.new[0], extras.changed[0], *(p for p, _ in extras.small)])
    results: dict = {
        "machine": _machine(),
        "dataset": {
            "label": label,
            "size_mb": size_mb,
            "input_mb": dataset.bytes / 1e6,
            "files": len(dataset.files),
            "rows": dataset.rows,
        },
    }
    store_root = bench.runs / f"store-versioned-{label}"
    stores = prepare_store(store_root, dataset.files)
    home = dagster_home(bench.runs / f"dagster-versioned-{label}")
    api_log = bench.log(f"versioned-api-{label}")
    with serve_api(store_root, home, log=api_log) as server, server.client(None) as client:
        v = VersionedBench(bench, label, stores, server, client)
        client.get(f"/api/p/{SLUG}/tables").raise_for_status()  # the app answers before measuring
        results.update(_headline_steps(v, extras, say))
        results["small_runs"] = _small_runs(v, extras, scan_repeat, say)
    results["machine"]["load_avg_end"] = os.getloadavg()
    results["api_log"] = str(api_log)
    results["api_log_problems"] = log_problems(api_log)
    first, new, changed, small = (results[k] for k in ("first_run", "new_file", "changed_file", "small_runs"))
    results["targets"] = {
        "first_run_ratio": _target(first["ratio"], TARGETS["first_run_ratio"]),
        "first_run_peak_rss_mb": _target(first["api_tree_peak_rss_mb"], TARGETS["first_run_peak_rss_mb"]),
        "new_file_ratio": _target(new["ratio"], TARGETS["new_file_ratio"]),
        "changed_file_ratio": _target(changed["ratio"], TARGETS["changed_file_ratio"]),
        "nothing_new_s": _target(results["nothing_new"]["api_s"], TARGETS["nothing_new_s"], strict=True),
    }
    results["checks"] = {
        "same_rows_after_changed_file": results["correctness"]["same"],
        "nothing_new_committed_nothing": not results["nothing_new"]["new_version"],
        "every_small_run_committed": small["all_committed"],
        "compaction_changed_no_row": small["rows_unchanged"],
        "nothing_new_after_compaction_committed_nothing": not small["after_compaction_run"]["new_version"],
        "same_rows_after_compaction": small["final_correctness"]["same"],
    }
    (bench.workdir / "versioned.json").write_text(json.dumps(results, indent=2))
    return results


def _progress(message: str) -> None:
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def _headline_steps(v: VersionedBench, extras: Extras, say: Callable[[str], None]) -> dict:
    """Steps 1 to 4: the first run, one new file, one changed file (then the rows), nothing new."""
    results: dict = {}
    say("1. first run through the API, then the script's full run")
    first = v.run("first-run")
    first["api_vmhwm_mb"] = proc_status_mb(v.server.pid, "VmHWM")
    results["first_run"] = v.against_script(first, "first-run")

    say("2. one new file over all months")
    new_path, new_rows = extras.new
    v.upload(new_path.name, new_path)
    results["new_file"] = v.against_script(v.run("new-file"), "new-file", file_rows=new_rows)

    say("3. one changed file")
    v.upload(extras.changed_key, extras.changed[0])
    changed = v.run("changed-file")
    results["changed_file"] = v.against_script(
        changed, "changed-file", file=extras.changed_key, file_rows=extras.changed[1]
    )
    say("   correctness: the table's rows against the script's")
    results["correctness"] = v.same_rows()

    say("4. nothing new")
    none = v.run("nothing-new")
    # The same run by the engine alone (``bench.engine_run``, its own process): what Dagster and the API add.
    alone = v.bench.engine("versioned-nothing-new-engine", v.store_root, incremental=True)
    none["engine_alone"] = {"in_process_s": alone.json()["engine_s"], "wall_s": alone.wall_s}
    results["nothing_new"] = none
    return results


def _small_runs(v: VersionedBench, extras: Extras, scan_repeat: int, say: Callable[[str], None]) -> dict:
    """Step 5: one run per small file, scans before and after a compaction, then the checks."""
    say(f"5. {len(extras.small)} small incremental runs")
    runs = []
    for index, (path, _) in enumerate(extras.small):
        v.upload(path.name, path)
        runs.append(v.run(f"small-{index}", sample_rss=False))

    def spread(key: str) -> dict:
        return _distribution([r[key] for r in runs if r[key] is not None])

    small: dict = {
        "runs": len(runs),
        "rows_per_file": statistics.mean(rows for _, rows in extras.small) if extras.small else 0,
        "rows_added": sum(rows for _, rows in extras.small),
        "api_s": spread("api_s"),
        "dagster_run_s": spread("dagster_run_s"),
        "step_s": spread("step_s"),
        "partitions_written": _distribution([r["response"]["partitions_written"] for r in runs]),
        "all_committed": all(r["new_version"] for r in runs),
        # Each run in order, to see whether a run's cost grows with the table's versions and files.
        "each": [
            {
                k: r[k]
                for k in ("api_s", "api_cpu_s", "dagster_run_s", "step_s", "version_after", "data_files")
            }
            for r in runs
        ],
        "version_before_compaction": v.table_facts()["version"],
    }
    say("   scans before compaction")
    small["before"] = v.scan("before", scan_repeat)
    say("   compaction")
    small["compaction"] = compact(v.store_root)
    small["version_after_compaction"] = v.table_facts()["version"]
    say("   scans after compaction")
    small["after"] = v.scan("after", scan_repeat)
    small["data_files_before"] = small["before"]["files"]
    small["data_files_after"] = small["after"]["files"]
    small["rows_unchanged"] = _same_totals(small["before"], small["after"])
    say("   a run with nothing new after the compaction")
    small["after_compaction_run"] = v.run("after-compaction")
    say("   correctness over the final raw files")
    small["final_script"] = _script_facts(v.script("final"))
    small["final_correctness"] = v.same_rows()
    return small


def _same_totals(before: dict, after: dict) -> bool:
    """Both scans, before and after, count the same rows and the same amount total."""
    totals = [
        (scan[f"{tool}_rows"], scan[f"{tool}_amount"])
        for scan in (before, after)
        for tool in ("polars", "duckdb")
    ]
    rows = {n for n, _ in totals}
    amounts = [a for _, a in totals]
    return len(rows) == 1 and max(amounts) - min(amounts) <= 1e-9 * max(1.0, *map(abs, amounts))


def _distribution(values: list[float]) -> dict:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "n": len(values),
        "median": statistics.median(ordered),
        "p95": ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))],
        "min": ordered[0],
        "max": ordered[-1],
        "total": sum(ordered),
    }


def _target(value: float, bound: float, *, strict: bool = False) -> dict:
    return {"value": value, "target": bound, "met": value < bound if strict else value <= bound}


def log_problems(log: Path, limit: int = 20) -> list[str]:
    """Lines of the API's log that look like errors or warnings (the first ``limit``)."""
    if not log.exists():
        return []
    words = ("error", "traceback", "exception", "warning", "failed")
    lines = [
        line for line in log.read_text(errors="replace").splitlines() if any(w in line.lower() for w in words)
    ]
    return lines[:limit]


def report_lines(r: dict) -> list[str]:
    d, m = r["dataset"], r["machine"]
    lines = [
        f"{m['date']}  {m['cpus']} CPUs ({m['cpu']}), POLARS_MAX_THREADS={m['polars_max_threads']}, "
        f"load average {m['load_avg_start'][0]:.2f} at the start, {m['load_avg_end'][0]:.2f} at the end",
        f"data set {d['label']}: {d['input_mb']:.0f} MB, {d['files']} files, {d['rows']:,} rows; every run "
        "is POST /jobs/run (clean_run false) on the API in a child process",
        "API s: request → response; run s: the Dagster run's start → end; step s: its asset step; "
        "script s: the Polars script's full run over the same raw files (process start to exit)",
        "",
        f"{'step':<38} {'API s':>7} {'run s':>6} {'step s':>6} {'script s':>8} {'ratio':>6} {'target':>8} "
        f"{'met':>3} {'version':>7} {'files':>6} {'+rows':>10} {'-rows':>10} {'load':>5}",
    ]
    first, new, changed, none = r["first_run"], r["new_file"], r["changed_file"], r["nothing_new"]
    steps = [
        ("1. first run", first, "first_run_ratio"),
        (f"2. +1 file ({new['file_rows']:,} rows, 24 months)", new, "new_file_ratio"),
        (f"3. {changed['file']} changed ({changed['file_rows']:,} rows)", changed, "changed_file_ratio"),
        ("4. nothing new", none, "nothing_new_s"),
    ]
    for name, step, key in steps:
        target = r["targets"][key]
        bound = f"< {target['target']:g} s" if key == "nothing_new_s" else f"≤ {target['target']:g}x"
        committed = step["new_version"]
        version = (
            f"{'-' if step['version_before'] is None else step['version_before']}→{step['version_after']}"
        )
        lines.append(
            f"{name:<38} {step['api_s']:>7.3f} {_num(step['dagster_run_s'], 6, 3)} "
            f"{_num(step['step_s'], 6, 3)} "
            f"{_num(step.get('script', {}).get('wall_s'), 8, 2)} {_num(step.get('ratio'), 6, 3)} {bound:>8} "
            f"{'yes' if target['met'] else 'NO':>3} {version:>7} {step['data_files']:>6} "
            f"{_count(step['rows_added'] if committed else None):>10} "
            f"{_count(step['rows_removed'] if committed else None):>10} {step['load_avg_1m_before']:>5.1f}"
        )
    rss = r["targets"]["first_run_peak_rss_mb"]
    corr = r["correctness"]
    cpu = "; ".join(
        f"{name} {step['api_cpu_s']:.2f} vs {step['script']['cpu_s']:.2f} ({step['cpu_ratio']:.3f}x)"
        for name, step in (("first run", first), ("+1 file", new), ("changed", changed))
    )
    lines += [
        "",
        f"CPU s, API process (and its reaped children) vs the script: {cpu}; nothing new "
        f"{none['api_cpu_s']:.2f}",
        f"first run: API process tree peak RSS {first['api_tree_peak_rss_mb']:.0f} MB (target ≤ "
        f"{rss['target']:.0f} MB: {'yes' if rss['met'] else 'NO'}; sampled every "
        f"{_RSS_INTERVAL * 1000:.0f} ms, {len(first['api_tree_processes'])} process(es) seen), "
        f"API process VmHWM {first['api_vmhwm_mb']:.0f} MB; "
        f"script peak RSS {first['script']['peak_rss_mb']:.0f} MB",
        f"answers (files processed / partitions written): first {_answer(first)}; +1 file {_answer(new)}; "
        f"changed {_answer(changed)}; nothing new {_answer(none)}",
        f"after step 3 the table's rows equal the script's: {'yes' if corr['same'] else 'NO'} "
        f"({', '.join(f'{k} {v:,}' for k, v in corr['rows'].items())})",
        *[f"  {line}" for line in corr["differences"]],
        f"nothing new committed a version: {'YES (wrong)' if none['new_version'] else 'no'}; the same run "
        f"by the engine alone (bench.engine_run): {none['engine_alone']['in_process_s']:.3f} s in process, "
        f"{none['engine_alone']['wall_s']:.2f} s with interpreter start-up",
    ]
    lines += _small_runs_lines(r["small_runs"])
    problems = r["api_log_problems"]
    lines += ["", f"API log {r['api_log']}: {len(problems)} line(s) mentioning errors or warnings"]
    lines += [f"  {line[:300]}" for line in problems]
    lines += ["", "checks: " + ", ".join(f"{k} {'ok' if ok else 'FAILED'}" for k, ok in r["checks"].items())]
    return lines


def _small_runs_lines(s: dict) -> list[str]:
    api, run, step = s["api_s"], s["dagster_run_s"], s["step_s"]
    lines = [
        "",
        f"5. {s['runs']} small runs, each after +1 file of ~{s['rows_per_file']:,.0f} rows over 24 months; "
        f"every run committed: {'yes' if s['all_committed'] else 'NO'}",
    ]
    if api:
        lines.append(
            f"   API s median {api['median']:.3f}, p95 {api['p95']:.3f}, max {api['max']:.3f}, total "
            f"{api['total']:.1f}; Dagster run s median {run.get('median', float('nan')):.3f}; step s median "
            f"{step.get('median', float('nan')):.3f}"
        )
    c = s["compaction"]
    lines += [
        f"   compaction ({c['via']}): {c['seconds']:.2f} s, {c['details']}; version "
        f"{s['version_before_compaction']} → {s['version_after_compaction']}",
        f"   {'full-table scan':<30} {'before':>9} {'after':>9} {'after/before':>13}",
    ]
    for tool, name in (
        ("polars", "Polars scan_delta, median s"),
        ("duckdb", "DuckDB read_parquet, median s"),
    ):
        before, after = s["before"][f"{tool}_median_s"], s["after"][f"{tool}_median_s"]
        lines.append(f"   {name:<30} {before:>9.3f} {after:>9.3f} {after / before:>13.2f}")
    lines += [
        f"   {'data files':<30} {s['data_files_before']:>9,} {s['data_files_after']:>9,}",
        f"   rows {s['before']['polars_rows']:,} before, {s['after']['polars_rows']:,} after; compaction "
        f"changed no row: {'yes' if s['rows_unchanged'] else 'NO'}",
        f"   a run with nothing new after the compaction: {s['after_compaction_run']['api_s']:.3f} s, "
        f"committed a version: {'YES (wrong)' if s['after_compaction_run']['new_version'] else 'no'}",
        f"   the table's rows equal the script's over the final raw files: "
        f"{'yes' if s['final_correctness']['same'] else 'NO'} "
        f"({', '.join(f'{k} {v:,}' for k, v in s['final_correctness']['rows'].items())})",
        *[f"     {line}" for line in s["final_correctness"]["differences"]],
    ]
    return lines


def _num(value: float | None, width: int, digits: int) -> str:
    return f"{'':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _answer(step: dict) -> str:
    a = step["response"]
    return f"{a['files_processed']} files / {a['partitions_written']} partitions"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m bench.versioned", description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=1000)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--workdir", type=Path, default=Path(__file__).parent / "data")
    parser.add_argument("--new-rows", type=int, default=20_000)
    parser.add_argument("--small-runs", type=int, default=100)
    parser.add_argument("--small-rows", type=int, default=2_000)
    parser.add_argument("--scan-repeat", type=int, default=3)
    args = parser.parse_args(argv)
    results = run_versioned(
        args.workdir,
        args.size_mb,
        args.files,
        new_rows=args.new_rows,
        small_runs=args.small_runs,
        small_rows=args.small_rows,
        scan_repeat=args.scan_repeat,
        progress=True,
    )
    sys.stdout.write(
        "\n".join([*report_lines(results), f"figures in {args.workdir / 'versioned.json'}"]) + "\n"
    )
    return results


if __name__ == "__main__":
    main()
