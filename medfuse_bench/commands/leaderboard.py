"""``medfuse-bench leaderboard`` (rule leaderboard): rank the score files and the pipeline's own models."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from medfuse_bench.report.leaderboard import (
    LEADERBOARD_TEST_SETS,
    local_receipt,
    warn_old_score_files,
    write_leaderboard,
)
from medfuse_bench.report.leaderboard_page import write_leaderboard_page
from medfuse_bench.report.settings import add_common_arguments, add_paired_arguments, resolve
from medfuse_bench.resources import TASKS

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
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
    add_common_arguments(b)
    b.add_argument("--task", nargs="+", choices=TASKS, default=None,
                   help="task(s) (default: every task with tasks/{task}/samples.parquet)")
    b.add_argument("--test-set", nargs="+", choices=LEADERBOARD_TEST_SETS, default=None,
                   help="test set(s) (default: partial and paired)")
    b.add_argument("--scores", action="append", default=[], metavar="DIR",
                   help="a folder of other groups' score files (any depth, e.g. their scores/ folder), ranked with "
                        "this workdir's entries of the same cohort receipt; repeatable")
    add_paired_arguments(b)
    b.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    workdir, s = resolve(args)
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
