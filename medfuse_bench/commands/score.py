"""``medfuse-bench score``: check a leaderboard submission against the held-out test labels and score it."""

from __future__ import annotations

import argparse

from medfuse_bench.report.leaderboard import LEADERBOARD_TEST_SETS, score_submission
from medfuse_bench.report.markdown import format_estimate
from medfuse_bench.report.settings import add_common_arguments, resolve
from medfuse_bench.resources import TASKS


def register(sub: argparse._SubParsersAction) -> None:
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
    add_common_arguments(s)
    s.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    workdir, s = resolve(args)
    result, path = score_submission(args.submission, args.task, args.test_set, workdir, metadata=args.metadata,
                                    name=args.name, n_resamples=s["bootstrap"], seed=s["seed"])
    print(f"{result['name']} ({args.task}, {args.test_set} test set, n={result['n']}):")
    for title, est in (("AUROC", result["auroc"]), ("AUPRC", result["auprc"])):
        text = format_estimate(est["value"], est["ci_low"], est["ci_high"], valid=est["valid_resamples"],
                               resamples=result["bootstrap"])
        print(f"  {title} {text}")
    print(f"score written to {path}")
    return 0
