"""``medfuse-bench etl-summary`` (rule ``etl_summary``): samples per split, paired vs partial, label prevalence,
cohort and ICD-mapping counts, the rows each stage dropped, and the sample counts under each preset, as JSON and
Markdown (built by :mod:`.summary`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl import exclusions, presets, summary, task_tables
from medfuse_bench.etl.stage_io import plain, read_parquet, task_paths
from medfuse_bench.fidelity import add_policy_arguments, policy_from_args
from medfuse_bench.io import read_json_object, write_json, write_text
from medfuse_bench.resources import TASKS

log = logging.getLogger(__name__)

#: The inputs besides the samples, each an argument of the subcommand, and where the workflow writes them.
INPUTS: dict[str, str] = {
    "cxr_uni": "cxr/cxr_uni.parquet",
    "stays": "etl/stays.parquet",
    "events": "etl/events.parquet",
    "splits": "etl/splits.parquet",
    "cxr_metadata": "etl/raw/cxr_metadata.parquet",
    "cohort_counts": "etl/cohort_counts.json",
    "phenotype_mapping": "etl/phenotype_mapping.json",
    "variables_counts": "etl/variables_counts.json",
}
#: The inputs the sample counts under each preset need, all or none.
PRESET_INPUTS = ("stays", "events", "splits", "cxr_metadata")


def resolve_inputs(args: argparse.Namespace) -> tuple[dict[str, Path], dict[str, Path | None]]:
    """The samples (in task order) and every other input: the path given, else with ``--workdir`` the workdir's
    file when it exists, else None (that part of the summary is left out)."""
    workdir = Path(args.workdir) if args.workdir else None
    samples = task_paths(args.samples)
    if not samples and workdir is not None:
        samples = {t: workdir / "tasks" / t / "samples.parquet" for t in TASKS}
        samples = {t: p for t, p in samples.items() if p.exists()}
    if not samples:
        where = f" under '{workdir}'" if workdir else ""
        raise MedfuseError(f"no tasks/<task>/samples.parquet{where}; run `medfuse-bench task-tables` first, or pass "
                           "--samples TASK=PATH")
    inputs: dict[str, Path | None] = {}
    for name, relative in INPUTS.items():
        given = getattr(args, name)
        fallback = workdir / relative if workdir is not None else None
        inputs[name] = Path(given) if given else (fallback if fallback is not None and fallback.exists() else None)
    return {t: samples[t] for t in TASKS if t in samples}, inputs


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("etl-summary", help="samples, paired vs partial, prevalence, preset counts (JSON + Markdown)",
                       description=plain(summary.__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--samples", nargs="*", default=None, metavar="TASK=PATH", help="tasks/<task>/samples.parquet")
    p.add_argument("--cxr-uni", default=None, help="cxr_uni.parquet")
    p.add_argument("--stays", default=None, help="stays.parquet, for the preset counts")
    p.add_argument("--events", default=None, help="events.parquet, for the preset counts")
    p.add_argument("--splits", default=None, help="splits.parquet, for the preset counts")
    p.add_argument("--cxr-metadata", default=None, help="raw cxr_metadata.parquet, for the preset counts")
    p.add_argument("--cohort-counts", default=None, help="cohort_counts.json, the --counts of `cohort`")
    p.add_argument("--phenotype-mapping", default=None, help="phenotype_mapping.json, the --stats of `phenotypes`")
    p.add_argument("--variables-counts", default=None, help="variables_counts.json, the --stats of `variables`")
    p.add_argument("--workdir", default=None,
                   help="pipeline workdir: every input not given above is its file (tasks/<task>/samples.parquet, "
                        "cxr/, etl/, etl/raw/) when present, and the outputs default to its tasks/summary.{json,md}")
    p.add_argument("--out-json", default=None, help="output JSON (default {workdir}/tasks/summary.json)")
    p.add_argument("--out-md", default=None, help="output Markdown (default {workdir}/tasks/summary.md)")
    p.add_argument("--presets-out", default=None, help="also write the per-preset sample counts to this JSON file")
    add_policy_arguments(p)  # the task_tables switches, for the preset counts
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.workdir is None and not (args.out_json and args.out_md):
        raise MedfuseError("etl-summary needs --out-json and --out-md (or --workdir to write into its tasks/)")
    samples, paths = resolve_inputs(args)
    tasks = {}
    for task, path in samples.items():
        tasks[task] = (read_parquet(path, "run `medfuse-bench task-tables` first"),
                       task_tables.read_task_definition(path))
        if tasks[task][1] is not None:
            presets.warn_if_leaky(tasks[task][1])
    cxr_path = paths["cxr_uni"]
    cxr_uni = read_parquet(cxr_path, "run `medfuse-bench cxr-uni` first") if cxr_path is not None else None
    preset_part = None
    missing = [name for name in PRESET_INPUTS if paths[name] is None]
    if not missing:
        preset_part = summary.preset_counts(
            read_parquet(paths["stays"], "run `medfuse-bench cohort` first"),
            task_tables.first_event_hours(pl.scan_parquet(paths["events"])),
            read_parquet(paths["splits"], "run `medfuse-bench splits` first"),
            read_parquet(paths["cxr_metadata"], "run `medfuse-bench ingest` with the MIMIC-CXR-JPG tables"),
            list(samples),
            policy_from_args(args),
        )
    else:
        log.warning("preset counts skipped: no %s", ", ".join(missing))
    counts: dict[str, Any] = {}
    for name, step in (("cohort_counts", "cohort"), ("phenotype_mapping", "phenotypes"),
                       ("variables_counts", "variables")):
        given = paths[name]
        counts[name] = read_json_object(given, f"rerun `medfuse-bench {step}`") if given is not None else None
    excluded = [*exclusions.from_json(counts["cohort_counts"]), *exclusions.from_json(counts["variables_counts"]),
                *exclusions.from_json(counts["phenotype_mapping"])]
    if cxr_path is not None:
        excluded += exclusions.from_parquet(cxr_path)
    for path in samples.values():
        excluded += exclusions.from_parquet(path)
    result = summary.build_summary(tasks, cxr_uni, counts["cohort_counts"], counts["phenotype_mapping"], preset_part,
                                   excluded)
    workdir = Path(args.workdir) if args.workdir else None
    write_json(result, args.out_json or workdir / "tasks" / "summary.json")
    write_text(summary.render_markdown(result), args.out_md or workdir / "tasks" / "summary.md")
    if args.presets_out and preset_part is not None:
        write_json(preset_part, args.presets_out)
    return 0
