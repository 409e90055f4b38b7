"""Plain-text lines for each section of a benchmark run (the figures themselves go to ``results.json``)."""


def machine(m: dict) -> list[str]:
    return [
        f"{m['date']}  {m['cpus']} CPUs ({m['cpu']}), POLARS_MAX_THREADS={m['polars_max_threads']}, "
        f"load average {m['load_avg_start'][0]:.2f}"
    ]


def size(r: dict) -> list[str]:
    head = f"{'size':>8} {'tool':<7} {'wall s':>8} {'rows/s':>12} {'MB/s':>7} {'peak RSS MB':>12}"
    lines = [head + f" {'engine/x':>9} {'CPU s':>7} {'engine/x':>9}"]
    for tool, t in r["tools"].items():
        ratio = cpu_ratio = ""
        if tool != "engine":
            ratio, cpu_ratio = f"{r[f'engine_over_{tool}']:.2f}", f"{r[f'engine_over_{tool}_cpu']:.2f}"
        extra = f"  (in process {t['in_process_s']:.2f} s)" if tool == "engine" else ""
        lines.append(
            f"{r['size_mb']:>5g} MB {tool:<7} {t['wall_s']:>8.2f} {t['rows_per_s']:>12,.0f} "
            f"{t['mb_per_s']:>7.1f} {t['peak_rss_mb']:>12.0f} {ratio:>9} {t['cpu_s']:>7.2f} "
            f"{cpu_ratio:>9}{extra}"
        )
    counts = ", ".join(f"{k} {v:,}" for k, v in r["rows_out"].items())
    lines.append(
        f"{'':>8} same rows: {'yes' if r['same_rows'] else 'NO'} ({counts}); input {r['rows']:,} rows, "
        f"{r['input_mb']:.0f} MB in {r['files']} file(s); median of {r['repeat']} run(s)"
    )
    return lines + [f"{'':>8} {line}" for line in r["differences"]]


def incremental(r: dict) -> list[str]:
    full = r["full"]
    lines = [
        f"full run: {full['wall_s']:.2f} s wall, {full['cpu_s']:.2f} s CPU, {full['in_process_s']:.2f} s in "
        f"process, peak RSS {full['peak_rss_mb']:.0f} MB"
    ]
    for name, label in (("monthly_file", "+1 monthly file"), ("two_year_file", "+1 two-year file")):
        t = r[name]
        lines.append(
            f"{label}: {t['wall_s']:.2f} s wall, {t['in_process_s']:.2f} s in process = "
            f"{t['fraction_in_process']:.1%} of the full run in process ({t['fraction_wall']:.1%} wall); "
            f"{t['files_parsed']} file(s) parsed, {t['partitions_written']} partition(s) written; "
            f"same rows as a full transform: {'yes' if t['same_rows'] else 'NO'} "
            f"({t['rows_out']['engine']:,})"
        )
        lines += [f"  {line}" for line in t["differences"]]
    return lines


def rows_stream(r: dict) -> list[str]:
    return [
        f"{r['rows']:,} rows ({r['body_mb']:.0f} MB of JSON) in {r['seconds']:.1f} s: "
        f"{r['rows_per_s']:,.0f} rows/s, {r['mb_per_s']:.1f} MB/s, "
        f"first byte after {r['first_byte_s']:.2f} s",
        f"server RSS {r['server_rss_before_mb']:.0f} MB before, {r['server_rss_peak_mb']:.0f} MB peak while "
        f"streaming (VmHWM {r['server_vmhwm_mb']:.0f} MB)",
    ]


def jobs_list(r: dict) -> list[str]:
    lines = [f"{r['runs']} runs ({r['real_runs']} executed, the rest added to run storage)"]
    for name in ("default_page", "all_runs"):
        j = r[name]
        lines.append(
            f"{j['jobs_returned']:>5} jobs per response: p50 {j['p50_ms']:.1f} ms, p95 {j['p95_ms']:.1f} ms "
            f"({j['requests']} requests)"
        )
    return lines


def dagster_overhead(r: dict) -> list[str]:
    lines = []
    for key, name in (("cold", "first run in the process"), ("warm_median", "later runs, median")):
        t = r[key]
        lines += [
            f"{name}: submit → run recorded {t['recorded']:.3f} s → STEP_START {t['step_start']:.3f} s → "
            f"engine starts {t['engine_start']:.3f} s → engine done {t['engine_end']:.3f} s → "
            f"RUN_SUCCESS {t['run_success']:.3f} s → call returns {t['returned']:.3f} s",
            f"  Dagster overhead {t['overhead_s']:.3f} s around {t['engine_s']:.3f} s of engine work",
        ]
    return lines
