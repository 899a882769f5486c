"""The `etl` target at several sizes: wall time, each stage's time and peak memory, disk, growth exponents.

    python -m benchmarks.etl_scale run --data D/raw --workdir D/w --out D/etl.json [--cores 2]
    python -m benchmarks.etl_scale table D1/etl.json D2/etl.json ...

``run`` runs the workflow's own `etl` target through Snakemake on a generated (or real) dataset, in a folder of its
own, and reads each stage's seconds and peak RSS from the rules' ``benchmark:`` files. ``table`` puts several runs
side by side as Markdown, with the exponent k of time ~ stays^k and memory ~ stays^k fitted over the sizes
(benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from medfuse_bench.paths import Workdir

from benchmarks.machine import machine_check

ROOT = Path(__file__).resolve().parents[1]


def _disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


def _stays(data: Path) -> int:
    import duckdb

    found = sorted((data / "mimic-iv").rglob("icustays.csv*"))
    if not found:
        raise SystemExit(f"no icustays.csv(.gz) under '{data / 'mimic-iv'}'; pass --data the folder holding "
                         "mimic-iv/ and mimic-cxr-jpg/")
    return int(duckdb.sql(f"SELECT count(*) FROM read_csv('{found[0]}', header = true)").fetchall()[0][0])


def stage_figures(workdir: Path) -> dict[str, dict[str, float]]:
    """Seconds and peak RSS (MB) of each job, from the rules' benchmark files under ``workdir/benchmarks``."""
    out: dict[str, dict[str, float]] = {}
    pattern = Workdir.at(workdir).benchmark("*")  # the layout's benchmarks/<job>.tsv
    for path in sorted(pattern.parent.glob(pattern.name)):
        with path.open() as handle:
            row = next(csv.DictReader(handle, delimiter="\t"))
        rss = row.get("max_rss", "NA")
        out[path.stem] = {"s": round(float(row["s"]), 1), "max_rss_mb": None if rss == "NA" else round(float(rss))}
    return out


def run(args: argparse.Namespace) -> int:
    data, workdir = args.data.resolve(), args.workdir.resolve()
    config = [f"workdir={workdir}", f"mimic_iv_dir={data / 'mimic-iv'}", f"mimic_cxr_dir={data / 'mimic-cxr-jpg'}",
              *args.config]
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "workflow" / "Snakefile"),
               "--cores", str(args.cores), "--directory", str(workdir.parent), "--config", *config, "--", "etl"]
    workdir.parent.mkdir(parents=True, exist_ok=True)
    if not (workdir.parent / "config.yaml").exists():  # the Snakefile's configfile, relative to --directory
        shutil.copy(ROOT / "config.yaml", workdir.parent / "config.yaml")
    check = machine_check()
    started = time.perf_counter()
    done = subprocess.run(command, cwd=workdir.parent, text=True, capture_output=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"the etl target failed (exit {done.returncode}); its logs are under {workdir / 'logs'}")
    result: dict[str, Any] = {
        "stays": _stays(data), "cores": args.cores, "wall_s": round(wall, 1), "machine_check_s": check,
        "raw_bytes": _disk_bytes(data), "workdir_bytes": _disk_bytes(workdir), "cpus": os.cpu_count(),
        "stages": stage_figures(workdir),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(args.out)
    print(json.dumps({k: v for k, v in result.items() if k != "stages"}))
    return 0


def exponent(sizes: list[float], values: list[float | None]) -> float | None:
    """Least-squares slope of log(value) on log(size); None with fewer than two positive values.

    >>> round(exponent([1, 2, 4], [3, 6, 12]), 3)
    1.0
    """
    points = [(math.log(s), math.log(v)) for s, v in zip(sizes, values) if v and v > 0]
    if len(points) < 2:
        return None
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else None


def table(args: argparse.Namespace) -> int:
    runs = sorted((json.loads(Path(p).read_text()) for p in args.results), key=lambda r: r["stays"])
    sizes = [r["stays"] for r in runs]
    stages = sorted({s for r in runs for s in r["stages"]})
    head = " | ".join(f"{n:,} stays: s / peak MB" for n in sizes)
    lines = [f"| stage | {head} | time exponent | memory exponent |", "|---|" + "--:|" * (len(sizes) + 2)]

    def fmt(value: float | None, digits: int = 2) -> str:
        return "n/a" if value is None else f"{value:.{digits}f}"

    for stage in stages:
        cells, seconds, peaks = [], [], []
        for r in runs:
            f = r["stages"].get(stage)
            seconds.append(f and f["s"])
            peaks.append(f and f["max_rss_mb"])
            peak = "n/a" if f is None or f["max_rss_mb"] is None else f"{f['max_rss_mb']:,}"
            cells.append("-" if f is None else f"{f['s']:.1f} / {peak}")
        lines.append(f"| {stage} | {' | '.join(cells)} | {fmt(exponent(sizes, seconds))} | "
                     f"{fmt(exponent(sizes, peaks))} |")
    walls = [r["wall_s"] for r in runs]
    lines.append(f"| **`etl` target, wall** | {' | '.join(f'**{w:.1f}**' for w in walls)} | "
                 f"{fmt(exponent(sizes, walls))} | |")
    lines.append("")
    lines.append("Work directory: " + ", ".join(f"{r['workdir_bytes'] / 1e9:.2f} GB" for r in runs)
                 + "; raw data: " + ", ".join(f"{r['raw_bytes'] / 1e9:.2f} GB" for r in runs)
                 + "; machine check: " + ", ".join(f"{r['machine_check_s']} s" for r in runs) + ".")
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.etl_scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(required=True)
    p = sub.add_parser("run", help="run the etl target on one dataset and record its figures")
    p.add_argument("--data", type=Path, required=True, help="folder holding mimic-iv/ and mimic-cxr-jpg/")
    p.add_argument("--workdir", type=Path, required=True, help="the run's work directory (created)")
    p.add_argument("--out", type=Path, required=True, help="JSON file of the figures")
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--config", nargs="*", default=[], help="more KEY=VALUE config for Snakemake")
    p.set_defaults(func=run)
    t = sub.add_parser("table", help="Markdown table of several runs with growth exponents")
    t.add_argument("results", nargs="+", help="JSON files written by `run`")
    t.set_defaults(func=table)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
