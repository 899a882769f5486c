"""``medfuse-bench evaluate``: AUROC/AUPRC with bootstrap CIs of one prediction file, as JSON."""

from __future__ import annotations

import argparse
import logging

from medfuse_bench.evaluation.defaults import evaluation_default
from medfuse_bench.evaluation.metrics import evaluate
from medfuse_bench.evaluation.predictions import read_predictions
from medfuse_bench.io import write_json
from medfuse_bench.resources import TASKS, task_labels

logger = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "evaluate",
        help="AUROC/AUPRC (macro, micro, per label) with bootstrap CIs of one prediction file, as JSON",
        description="Score predictions/{task}/{experiment}/{test_set}.parquet against its target:<label> columns.",
    )
    p.add_argument("--predictions", required=True, help="prediction Parquet file (stay_id, target:<label>, <label>)")
    p.add_argument("--out", required=True,
                   help="JSON file to write, e.g. {workdir}/metrics/{task}/{experiment}/{test_set}.json")
    p.add_argument("--task", choices=TASKS, default=None,
                   help="task whose labels the file must hold (default: the labels of its target:<label> columns)")
    p.add_argument("--bootstrap", type=int, default=evaluation_default("bootstrap"),
                   help="bootstrap resamples for the 95%% CIs (default: %(default)s)")
    p.add_argument("--seed", type=int, default=evaluation_default("seed"),
                   help="seed of the bootstrap resamples (default: %(default)s)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    preds = read_predictions(args.predictions, task_labels(args.task) if args.task else None)
    ev = evaluate(preds.y_true, preds.y_score, preds.labels, n_resamples=args.bootstrap, seed=args.seed)
    write_json({"predictions": str(args.predictions), "task": args.task, **ev.to_dict()}, args.out)
    macro = {m: ev.macro(m).format() for m in ("auroc", "auprc")}
    logger.info("%s: n=%d AUROC %s AUPRC %s", args.predictions, ev.n, macro["auroc"], macro["auprc"])
    return 0
