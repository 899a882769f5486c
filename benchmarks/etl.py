"""Time every ETL stage on a synthetic dataset and report rows/s and peak memory per stage:
``python -m benchmarks.etl --workdir DIR [--stays N] [--repeat N] [--baseline]`` (benchmarks/README.md).

Each stage runs as its own ``medfuse-bench`` process, as the workflow runs it, so its wall time includes start-up
and its peak resident memory is its own. The ingest
of chartevents is also timed inside the process, scan + filter + Parquet write only, to give the rows/s of the
largest table.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl import DEFAULT_POLICY
from medfuse_bench.fidelity import FidelityPolicy, add_policy_arguments, policy_from_args
from medfuse_bench.io import write_json

from benchmarks.machine import machine_check, machine_check_all_cores, spread_runs

log = logging.getLogger(__name__)


def _synthesize(out_dir: Path, stays: int, seed: int, unrelated_chart_share: float | None = None) -> None:
    try:
        from medfuse_bench.synth import generate
    except ImportError as exc:
        raise MedfuseError(f"the synthetic generator (medfuse_bench.synth) is not available: {exc}") from exc
    generate(out_dir, stays, seed, force=True, progress=False, unrelated_chart_share=unrelated_chart_share)


def _csv_rows(path: Path) -> int:
    return duckdb.sql(f"SELECT count(*) FROM read_csv('{path}', header = true, all_varchar = true)").fetchall()[0][0]


def _parquet_rows(*paths: Path) -> int:
    return sum(duckdb.sql(f"SELECT count(*) FROM read_parquet('{p}')").fetchall()[0][0] for p in paths if p.exists())


# Runs one subcommand and writes its own peak memory to the file named by argv[1]. The kernel's ru_maxrss of a
# child also counts the memory of the parent it was forked from, so the child reads its high-water mark (VmHWM)
# itself; resource.getrusage is the fallback where /proc is missing.
_STAGE = """
import resource, sys
from pathlib import Path
from medfuse_bench.cli import main
try:
    code = main(sys.argv[2:])
finally:
    try:
        status = Path("/proc/self/status").read_text()
        kb = int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1])
    except (OSError, StopIteration):
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    Path(sys.argv[1]).write_text(str(kb))
sys.exit(code)
"""


def run_stage(args: list[str], log_path: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one ``medfuse-bench`` subcommand in its own process (``env`` added to its environment); return wall
    seconds, exit code and peak RSS (MB)."""
    memory = log_path.with_suffix(".peak_kb")
    memory.unlink(missing_ok=True)
    start = time.perf_counter()
    with log_path.open("w") as fh:
        code = subprocess.run([sys.executable, "-c", _STAGE, str(memory), *args], stdout=fh, stderr=fh,
                              env={**os.environ, **(env or {})}).returncode
    seconds = time.perf_counter() - start
    peak_kb = int(memory.read_text()) if memory.exists() else 0
    return {"seconds": round(seconds, 3), "exit_code": code, "peak_rss_mb": round(peak_kb / 1024, 1)}


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _median_stages(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per stage over the runs: median seconds (rows/s from it), highest peak RSS, worst exit code."""
    out = []
    for i, first in enumerate(runs[0]):
        same = [r[i] for r in runs if i < len(r)]
        row = {**first, "seconds": round(_median([s["seconds"] for s in same]), 3),
               "peak_rss_mb": max(s["peak_rss_mb"] for s in same),
               "exit_code": next((s["exit_code"] for s in same if s["exit_code"] != 0), 0)}
        row["rows_per_s"] = round(row["rows"] / row["seconds"]) if row["seconds"] else None
        out.append(row)
    return out


def _run_stages(mimic_iv: Path, mimic_cxr: Path | None, workdir: Path, logs: Path, policy: FidelityPolicy,
                threads: int | None, raw_event_rows: int) -> dict[str, Any]:
    """Run every ETL stage once, in the workflow's order, each as its own process; stop at the first failure.
    Each stage gets its own switches of ``policy``, as the workflow's rules pass them."""
    etl = workdir / "etl"
    raw = etl / "raw"
    stages: list[dict[str, Any]] = []

    def stage(name: str, args: list[str], rows: int, env: dict[str, str] | None = None) -> dict[str, Any]:
        log.info("bench: %s", name)
        result = {"stage": name, "rows": rows, **run_stage(args, logs / f"{name}.log", env)}
        result["rows_per_s"] = round(rows / result["seconds"]) if result["seconds"] else None
        if result["exit_code"] != 0:
            result["error"] = (logs / f"{name}.log").read_text()[-2000:]
        stages.append(result)
        return result

    threads_args = ["--threads", str(threads)] if threads else []
    if stage("ingest", ["ingest", "--mimic-iv", str(mimic_iv), "--mimic-cxr", str(mimic_cxr), "--out-dir", str(raw),
                        "--provenance", str(etl / "provenance.json"), *threads_args],
             raw_event_rows, {"POLARS_MAX_THREADS": str(threads)} if threads else None)["exit_code"] != 0:
        return {"stages": stages, "chartevents_seconds": 0.0, "chartevents_rows_kept": 0}
    provenance = json.loads((etl / "provenance.json").read_text())
    result: dict[str, Any] = {"stages": stages, "chartevents_seconds": provenance["seconds"]["chartevents"],
                              "chartevents_rows_kept": provenance["outputs"]["chartevents"]["rows"]}
    stays_path, events = etl / "stays.parquet", etl / "events.parquet"
    # (name, arguments, rows of its input): rows are counted when the stage starts, after the one that writes them
    steps: list[tuple[str, list[str], Callable[[], int]]] = [
        ("cohort", ["cohort", "--raw-dir", str(raw), "--out", str(stays_path), *policy.stage_args("cohort").split()],
         lambda: _parquet_rows(raw / "icustays.parquet")),
        ("variables", ["variables", "--raw-dir", str(raw), "--stays", str(stays_path), "--out", str(events),
                       *policy.stage_args("variables").split()],
         lambda: _parquet_rows(raw / "chartevents.parquet", raw / "labevents.parquet")),
        ("phenotypes", ["phenotypes", "--raw-dir", str(raw), "--stays", str(stays_path), "--out",
                        str(etl / "phenotypes.parquet"), "--stats", str(etl / "phenotype_mapping.json"),
                        *policy.stage_args("phenotypes").split()],
         lambda: _parquet_rows(raw / "diagnoses_icd.parquet")),
        ("splits", ["splits", "--stays", str(stays_path), "--raw-dir", str(raw), "--out",
                    str(etl / "splits.parquet")], lambda: _parquet_rows(stays_path)),
        ("cxr-uni", ["cxr-uni", "--raw-dir", str(raw), "--splits", str(etl / "splits.parquet"), "--out",
                     str(workdir / "cxr" / "cxr_uni.parquet"), *policy.stage_args("cxr_uni").split()],
         lambda: _parquet_rows(raw / "cxr_metadata.parquet")),
    ]
    for task in ("in-hospital-mortality", "phenotyping"):
        samples = workdir / "tasks" / task / "samples.parquet"
        steps.append((f"task-tables {task}", [
            "task-tables", "--stays", str(stays_path), "--events", str(events), "--phenotypes",
            str(etl / "phenotypes.parquet"), "--splits", str(etl / "splits.parquet"), "--cxr-metadata",
            str(raw / "cxr_metadata.parquet"), "--task", task, "--out", str(samples),
            *policy.stage_args("task_tables").split()],
            lambda: _parquet_rows(stays_path)))
        steps.append((f"timeseries {task}", [
            "timeseries", "--events", str(events), "--samples", str(samples), "--out-dir", str(samples.parent),
            *policy.stage_args("timeseries").split()],
            lambda: _parquet_rows(events)))
    for name, args, rows in steps:
        if stage(name, args, rows())["exit_code"] != 0:
            break
    return result


def bench_etl(
    stays: int,
    workdir: str | Path,
    *,
    seed: int = 1002,
    policy: FidelityPolicy = DEFAULT_POLICY,
    threads: int | None = None,
    mimic_iv: str | Path | None = None,
    mimic_cxr: str | Path | None = None,
    out: str | Path | None = None,
    unrelated_chart_share: float | None = None,
    baseline: bool = False,
    repeat: int = 1,
) -> dict[str, Any]:
    """Generate ``stays`` synthetic stays under ``workdir`` (unless ``mimic_iv`` / ``mimic_cxr`` are given), run the
    ETL stages one by one and write the timings as JSON (default ``workdir/bench_etl.json``).

    ``repeat`` runs the whole stage sequence that many times: ``stages`` and ``etl_total`` then give each stage's
    median seconds and the median of the runs' totals, and ``runs`` every run's own figures, since the wall time of
    one run on a shared machine can be far from another's.

    ``baseline`` also times :mod:`benchmarks.etl_baseline`, the original extraction's approach, on the same input
    (slow: about 15k chartevents rows/s) and reports the whole ETL's speed-up against it; the ETL runs are then
    spread evenly over six points, before the baseline and after each of its five stages (:func:`spread_runs`),
    each run marked with its ``position``. Before each run, :func:`machine_check` and
    :func:`machine_check_all_cores` time a fixed workload, so that a slow moment of the machine shows.
    """
    if repeat < 1:
        raise MedfuseError(f"--repeat must be at least 1, got {repeat}")
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    logs = workdir / "bench_logs"
    logs.mkdir(exist_ok=True)
    generated = mimic_iv is None
    # The generator's settings describe the input only when this run generates it.
    report: dict[str, Any] = {"stays": stays if generated else None, "seed": seed if generated else None,
                              "fidelity": policy.as_dict(), "threads": threads, "cpus": os.cpu_count(),
                              "unrelated_chart_share": unrelated_chart_share if generated else None,
                              "stages": []}
    if generated:
        start = time.perf_counter()
        _synthesize(workdir / "synthetic", stays, seed, unrelated_chart_share)
        report["synth_seconds"] = round(time.perf_counter() - start, 3)
        # Write the generated files out now, so the timed stages do not compete with their write-back.
        if hasattr(os, "sync"):
            os.sync()
        mimic_iv, mimic_cxr = workdir / "synthetic" / "mimic-iv", workdir / "synthetic" / "mimic-cxr-jpg"
    from medfuse_bench.etl.layout import detect_layout

    report["input"] = {"mimic_iv": str(Path(mimic_iv).resolve()),
                       "mimic_cxr": str(Path(mimic_cxr).resolve()) if mimic_cxr is not None else None,
                       "generated": generated}
    layout = detect_layout(mimic_iv)
    chart_rows = _csv_rows(layout.files["chartevents"])
    lab_rows = _csv_rows(layout.files["labevents"])

    runs: list[dict[str, Any]] = []

    def run_etl(position: str | None) -> bool:
        log.info("bench: run %d of %d%s", len(runs) + 1, repeat, f" ({position})" if position else "")
        check, check_all = machine_check(), machine_check_all_cores()
        runs.append(_run_stages(mimic_iv, mimic_cxr, workdir, logs, policy, threads, chart_rows + lab_rows))
        runs[-1].update(position=position, machine_check_seconds=check, machine_check_all_cores_seconds=check_all)
        return all(s["exit_code"] == 0 for s in runs[-1]["stages"])

    if not baseline:
        for _ in range(repeat):
            if not run_etl(None):
                break
    else:
        from benchmarks.etl_baseline import BASELINE_STAGES, run_baseline

        # The baseline takes many minutes while the machine's speed drifts, so the ETL runs are spread over it:
        # before it and after its stages, each run at one of these points; the median run then meets the same
        # conditions as the baseline's total.
        points = ["before the baseline", *(f"after baseline {name}" for name in BASELINE_STAGES)]
        at = Counter(spread_runs(repeat, len(points)))
        failed = False

        def runs_at(point: int) -> None:
            nonlocal failed
            for _ in range(at[point]):
                failed = failed or not run_etl(points[point])

        runs_at(0)
        if not failed:
            log.info("bench: baseline (the original extraction's approach)")
            scratch = workdir / "baseline"
            if scratch.exists():
                shutil.rmtree(scratch)
            report["baseline"] = run_baseline(
                mimic_iv, scratch, progress=True,
                after_stage=lambda name: runs_at(1 + BASELINE_STAGES.index(name)),
            )
            shutil.rmtree(scratch, ignore_errors=True)
    report["stages"] = _median_stages([r["stages"] for r in runs])
    report["ingest_chartevents"] = {
        "rows_in": chart_rows,
        "rows_kept": runs[-1]["chartevents_rows_kept"],
        "seconds": _median([r["chartevents_seconds"] for r in runs]),
    }
    seconds = report["ingest_chartevents"]["seconds"]
    report["ingest_chartevents"]["rows_per_s"] = round(chart_rows / seconds) if seconds else None
    report["runs"] = [{"total_seconds": round(sum(s["seconds"] for s in r["stages"]), 3),
                       "position": r["position"], "machine_check_seconds": r["machine_check_seconds"],
                       "machine_check_all_cores_seconds": r["machine_check_all_cores_seconds"],
                       "stages": r["stages"]} for r in runs]
    total = _median([r["total_seconds"] for r in report["runs"]])
    report["etl_total"] = {
        "seconds": round(total, 3),
        "runs": len(runs),
        "chartevents_rows_per_s": round(chart_rows / total) if total else None,
        "original_chartevents_rows_per_s": ORIGINAL_ROWS_PER_S,
        "speedup_vs_original": round(chart_rows / total / ORIGINAL_ROWS_PER_S, 1) if total else None,
    }
    if "baseline" in report:
        result = report["baseline"]
        result["chartevents_rows_per_s"] = round(chart_rows / result["total_seconds"])
        result["speedup_of_etl"] = round(result["total_seconds"] / total, 1) if total else None
    out = Path(out) if out else workdir / "bench_etl.json"
    write_json(report, out)
    return report


#: The original extraction's throughput: its Python row loop reads chartevents at about 16k rows/s (some six
#: hours for MIMIC-IV's 330 M rows), before validation, episode splitting and task creation even start.
ORIGINAL_ROWS_PER_S = 16_000


def format_table(report: dict[str, Any]) -> str:
    """The report as an aligned text table."""
    lines = [f"{'stage':<32} {'rows':>12} {'seconds':>9} {'rows/s':>12} {'peak RSS MB':>12}  status"]
    for s in report["stages"]:
        status = "ok" if s["exit_code"] == 0 else f"exit {s['exit_code']}"
        lines.append(f"{s['stage']:<32} {s['rows']:>12,} {s['seconds']:>9.2f} {s['rows_per_s'] or 0:>12,} "
                     f"{s['peak_rss_mb']:>12.1f}  {status}")
    chart = report.get("ingest_chartevents")
    if chart:
        lines.append(f"chartevents scan + filter + write: {chart['rows_in']:,} rows in {chart['seconds']:.2f} s = "
                     f"{chart['rows_per_s'] or 0:,} rows/s ({chart['rows_kept']:,} kept); {report['cpus']} CPUs")
    total = report.get("etl_total")
    runs = total.get("runs", 1) if total else 1
    if runs > 1:
        each = ", ".join(f"{r['total_seconds']:.1f}" + (f" ({r['position']})" if r.get("position") else "")
                         for r in report["runs"])
        lines.append(f"stage seconds above: medians of {runs} runs; whole ETL per run: {each} s")
    one = [r["machine_check_seconds"] for r in report.get("runs", []) if "machine_check_seconds" in r]
    every = [r["machine_check_all_cores_seconds"] for r in report.get("runs", [])
             if "machine_check_all_cores_seconds" in r]
    if one:
        line = f"machine check before each run (a fixed workload; larger = slower machine): one core {_list(one)} s"
        if every:
            line += f"; on all {report['cpus']} cores at once, the slowest: {_list(every)} s"
        lines.append(line)
    if total and total["seconds"]:
        lines.append(f"whole ETL{' (median)' if runs > 1 else ''}: {total['seconds']:.1f} s = "
                     f"{total['chartevents_rows_per_s']:,} chartevents rows/s, "
                     f"{total['speedup_vs_original']}x the original extraction's ~{ORIGINAL_ROWS_PER_S:,} rows/s")
    base = report.get("baseline")
    if base:
        parts = ", ".join(f"{k} {v:.1f} s" for k, v in base["seconds"].items())
        lines.append(f"original approach (benchmarks.etl_baseline) on the same input: {base['total_seconds']:.1f} s "
                     f"({parts}) = {base['chartevents_rows_per_s']:,} chartevents rows/s; the whole ETL is "
                     f"{base['speedup_of_etl']}x faster")
        each = [base["total_seconds"] / r["total_seconds"] for r in report.get("runs", []) if r["total_seconds"]]
        if len(each) > 1:
            lines.append(f"speed-up of each run: {_list(each, '{:.1f}x')}")
    return "\n".join(lines)


def _list(values: list[float], form: str = "{:.2f}") -> str:
    return ", ".join(form.format(v) for v in values)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.etl",
                                description="Time the ETL stages on a synthetic dataset (rows/s, peak memory).")
    p.add_argument("--stays", type=int, default=2000, help="synthetic ICU stays to generate (default: 2000)")
    p.add_argument("--workdir", required=True, help="scratch folder for the synthetic data and the ETL outputs")
    p.add_argument("--seed", type=int, default=1002, help="seed of the synthetic dataset (default: 1002)")
    add_policy_arguments(p)
    p.add_argument("--threads", type=int, default=None,
                   help="threads of ingest: its --threads and POLARS_MAX_THREADS (default: all cores)")
    p.add_argument("--mimic-iv", default=None,
                   help="time an existing MIMIC-IV folder instead of generating one (needs --mimic-cxr)")
    p.add_argument("--mimic-cxr", default=None, help="the MIMIC-CXR-JPG folder that goes with --mimic-iv")
    p.add_argument("--unrelated-chart-share", type=float, default=None, metavar="SHARE",
                   help="make SHARE of the synthetic chartevents rows items outside the 17 variables, as in MIMIC "
                   "(about 0.82); default: the generator's own, about 0.05")
    p.add_argument("--baseline", action="store_true",
                   help="also time the original extraction's approach (row-by-row CSV reading, per-subject files, "
                   "pandas per subject and stay; benchmarks/etl_baseline.py) on the same input: slow, about 15k "
                   "chartevents rows/s")
    p.add_argument("--repeat", type=int, default=1,
                   help="run the ETL stages this many times and report each stage's median and the median total "
                   "(the baseline runs once; with --baseline the ETL runs are spread evenly from before it to "
                   "after its last stage, so that they meet the machine as the baseline does: 6 puts one before "
                   "it and one after each of its five stages) (default: 1)")
    p.add_argument("--out", default=None, help="output JSON of the timings (default: {workdir}/bench_etl.json)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if (args.mimic_iv is None) != (args.mimic_cxr is None):
            raise MedfuseError("--mimic-iv and --mimic-cxr go together; pass both or neither")
        report = bench_etl(args.stays, args.workdir, seed=args.seed, policy=policy_from_args(args),
                           threads=args.threads, mimic_iv=args.mimic_iv, mimic_cxr=args.mimic_cxr, out=args.out,
                           unrelated_chart_share=args.unrelated_chart_share, baseline=args.baseline,
                           repeat=args.repeat)
    except MedfuseError as exc:
        print(f"python -m benchmarks.etl: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
