"""``medfuse-bench report`` (paper tables, figures, report.md), ``score`` (check and score a leaderboard
submission) and ``leaderboard`` (rank scores and baselines).

Settings not given as flags come from, in order: ``--config`` when it is read (no ``--workdir``), the
workdir's ``config.resolved.yaml``, the config schema's defaults.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from medfuse_bench.config import load_config
from medfuse_bench.evaluation.defaults import evaluation_default
from medfuse_bench.report.inputs import Workdir
from medfuse_bench.report.leaderboard import (
    LEADERBOARD_TEST_SETS,
    local_receipt,
    score_submission,
    warn_old_score_files,
    write_leaderboard,
)
from medfuse_bench.report.leaderboard_page import write_leaderboard_page
from medfuse_bench.report.markdown import format_estimate
from medfuse_bench.report.provenance import read_yaml
from medfuse_bench.resources import TASKS

logger = logging.getLogger(__name__)


def _paired(p: argparse.ArgumentParser) -> None:
    p.add_argument("--paired-reference", default=None,
                   help="experiment the paired differences are taken against (default: evaluation.paired_reference, "
                        f"{evaluation_default('paired_reference')})")
    p.add_argument("--calibration-bins", type=int, default=None,
                   help="equal-mass bins of the ECE and reliability diagrams (default: evaluation.calibration_bins, "
                        f"{evaluation_default('calibration_bins')})")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workdir", default=None,
                   help="pipeline output folder (default: 'workdir' of --config)")
    p.add_argument("--config", default="config.yaml",
                   help="config file read for the workdir and evaluation settings when --workdir is not given "
                        "(default: %(default)s)")
    p.add_argument("--bootstrap", type=int, default=None,
                   help="bootstrap resamples for the 95%% CIs (default: evaluation.bootstrap of the config, "
                        f"{evaluation_default('bootstrap')})")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the bootstrap resamples (default: evaluation.seed of the config, "
                        f"{evaluation_default('seed')})")


def register(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser(
        "report",
        help="the paper's tables (CSV + Markdown), figures (PNG) and report.md from the workdir's prediction files",
        description="Tables 1-5, A2, A3 and Figures 4, A1-A3 with bootstrap CIs; absent experiments become missing rows.",
    )
    _common(r)
    _paired(r)
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
    r.set_defaults(func=run_report)

    s = sub.add_parser(
        "score",
        help="check a leaderboard submission against the held-out test labels and score it",
        description="Check SUBMISSION (Parquet or CSV: stay_id and one probability column per label, named as in "
                    "tasks/{task}/samples.parquet, one row per stay of the test set) and its metadata file against "
                    "the workdir's held-out test labels; print AUROC and AUPRC with 95% bootstrap intervals and "
                    "write {workdir}/scores/{task}/{test_set}/<name>.json, which also records what the score was "
                    "measured on: the sha256 of {workdir}/receipt.json (the cohort receipt), of the resolved config "
                    "and of the submission, and the package version. A bad file gives one error line and exit code 2.",
    )
    s.add_argument("submission", metavar="SUBMISSION", help="the prediction file (.parquet or .csv)")
    s.add_argument("--task", required=True, choices=TASKS, help="task the predictions are for")
    s.add_argument("--test-set", choices=LEADERBOARD_TEST_SETS, default="partial",
                   help="partial = every test stay; paired = test stays with a linked X-ray (default: %(default)s)")
    s.add_argument("--metadata", default=None,
                   help="metadata YAML/JSON with name, authors, description, code_url "
                        "(default: <submission stem>.meta.yaml)")
    s.add_argument("--name", default=None,
                   help="entry name, also the score file's name: letters, digits, spaces, '.', '+', '-', '_' "
                        "(default: the submission's file stem)")
    _common(s)
    s.set_defaults(func=run_score)

    b = sub.add_parser(
        "leaderboard",
        help="rank the score files and the pipeline's own models; write {workdir}/leaderboard/{task}_{test_set}.{md,csv}",
        description="For each task and test set, rank the scored submissions ({workdir}/scores/{task}/{test_set}/"
                    "*.json, written by 'medfuse-bench score') together with the pipeline's own models (every "
                    "predictions/{task}/*/{test_set}.parquet, scored the same way and marked as baselines) by AUROC, "
                    "then AUPRC, with 95% bootstrap intervals, together with the score files of other groups "
                    "(--scores); entries scored against different cohort receipts (different test data) are ranked in "
                    "separate tables. Write {workdir}/leaderboard/{task}_{test_set}.md and .csv, the page "
                    "{workdir}/leaderboard/index.html, and print the Markdown.",
    )
    _common(b)
    b.add_argument("--task", nargs="+", choices=TASKS, default=None,
                   help="task(s) (default: every task with tasks/{task}/samples.parquet)")
    b.add_argument("--test-set", nargs="+", choices=LEADERBOARD_TEST_SETS, default=None,
                   help="test set(s) (default: partial and paired)")
    b.add_argument("--scores", action="append", default=[], metavar="DIR",
                   help="a folder of other groups' score files (any depth, e.g. their scores/ folder), ranked with "
                        "this workdir's entries of the same cohort receipt; repeatable")
    _paired(b)
    b.set_defaults(func=run_leaderboard)


def _resolve(args: argparse.Namespace) -> tuple[Workdir, dict[str, Any]]:
    """The workdir and the evaluation settings (flag > config > workdir's resolved config > schema default)."""
    if args.workdir is None:
        config = load_config(args.config)
        workdir = Workdir.at(config["workdir"])
    else:
        workdir = Workdir.at(args.workdir)
        config = read_yaml(workdir.config_resolved) or {}
    evaluation = config.get("evaluation") or {}
    settings = {}
    for key in ("bootstrap", "seed", "drop_fractions", "unimodal_test_fractions", "paired_reference",
                "calibration_bins", "subgroup_min_positives", "subgroup_age_bands"):
        flag = getattr(args, key, None)
        settings[key] = flag if flag is not None else evaluation.get(key, evaluation_default(key))
    return workdir, settings


def run_report(args: argparse.Namespace) -> int:
    from medfuse_bench.report.build import ReportSettings, build_report  # matplotlib: imported only when drawing

    workdir, s = _resolve(args)
    out = Path(args.out_dir) if args.out_dir else workdir.root / "report"
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


def run_score(args: argparse.Namespace) -> int:
    workdir, s = _resolve(args)
    result, path = score_submission(args.submission, args.task, args.test_set, workdir, metadata=args.metadata,
                                    name=args.name, n_resamples=s["bootstrap"], seed=s["seed"])
    print(f"{result['name']} ({args.task}, {args.test_set} test set, n={result['n']}):")
    for title, est in (("AUROC", result["auroc"]), ("AUPRC", result["auprc"])):
        text = format_estimate(est["value"], est["ci_low"], est["ci_high"], valid=est["valid_resamples"],
                               resamples=result["bootstrap"])
        print(f"  {title} {text}")
    print(f"score written to {path}")
    return 0


def run_leaderboard(args: argparse.Namespace) -> int:
    workdir, s = _resolve(args)
    warn_old_score_files(workdir)
    tasks = args.task or workdir.tasks_present()
    if not tasks:
        logger.warning("no tasks/{task}/samples.parquet under %s: no leaderboard to render", workdir.root)
    boards = []
    for task in tasks:
        for test_set in args.test_set or LEADERBOARD_TEST_SETS:
            frame, paths = write_leaderboard(workdir, task, test_set, s["bootstrap"], s["seed"],
                                             tuple(Path(p) for p in args.scores),
                                             reference=s["paired_reference"], n_bins=s["calibration_bins"])
            boards.append((task, test_set, frame))
            print(paths[0].read_text())
            print(f"({frame.height} entries; written to {paths[0]} and {paths[1]})\n")
    page = write_leaderboard_page(boards, local_receipt(workdir), workdir.leaderboard / "index.html")
    print(f"leaderboard page: {page}")
    return 0
