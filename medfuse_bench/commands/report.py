"""``medfuse-bench report`` (rule report): the paper's tables (CSV + Markdown), figures (PNG) and report.md."""

from __future__ import annotations

import argparse
from pathlib import Path

from medfuse_bench.evaluation.defaults import evaluation_default
from medfuse_bench.report.settings import add_common_arguments, add_paired_arguments, resolve
from medfuse_bench.resources import TASKS


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "report",
        help="the paper's tables (CSV + Markdown), figures (PNG) and report.md from the workdir's prediction files",
        description="Tables 1-5, A2, A3 and Figures 4, A1-A3 with bootstrap CIs; absent experiments become missing rows.",
    )
    add_common_arguments(r)
    add_paired_arguments(r)
    r.add_argument("--subgroup-min-positives", type=int, default=None,
                   help="fewer positive (or negative) stays for a label in a subgroup: 'too small' (default: "
                        f"evaluation.subgroup_min_positives, {evaluation_default('subgroup_min_positives')})")
    r.add_argument("--subgroup-age-bands", type=int, nargs="+", default=None,
                   help="lower edges (years) of the subgroup table's age bands (default: "
                        "evaluation.subgroup_age_bands)")
    r.add_argument("--out-dir", default=None, help="output folder (default: {workdir}/report)")
    r.add_argument("--drop-fractions", type=float, nargs="+", default=None,
                   help="Figure A2: fractions of X-rays dropped from the paired test set "
                        "(default: evaluation.drop_fractions)")
    r.add_argument("--unimodal-test-fractions", type=float, nargs="+", default=None,
                   help="Figure A3: fractions of the unpaired test stays added to the paired test set "
                        "(default: evaluation.unimodal_test_fractions)")
    r.add_argument("--tasks", nargs="+", choices=TASKS, default=None,
                   help="tasks to report (default: every task with tasks/{task}/samples.parquet)")
    r.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from medfuse_bench.report.build import ReportSettings, build_report  # matplotlib: imported only when drawing

    workdir, s = resolve(args)
    out = Path(args.out_dir) if args.out_dir else workdir.report_dir
    settings = ReportSettings(
        n_resamples=s["bootstrap"],
        seed=s["seed"],
        drop_fractions=tuple(s["drop_fractions"]),
        unimodal_test_fractions=tuple(s["unimodal_test_fractions"]),
        tasks=tuple(args.tasks) if args.tasks else None,
        paired_reference=s["paired_reference"],
        calibration_bins=s["calibration_bins"],
        subgroup_min_positives=s["subgroup_min_positives"],
        subgroup_age_bands=tuple(s["subgroup_age_bands"]),
    )
    report = build_report(workdir.root, out, settings)
    print(f"wrote {len(report.files)} files to {out} (open {out / 'report.md'})")
    for note in report.notes:
        print(f"note: {note}")
    return 0
