"""``medfuse-bench evaluate`` (metrics of one prediction file) and ``medfuse-bench bench-metrics`` (bootstrap timing)."""

from __future__ import annotations

import argparse
import logging

from medfuse_bench.evaluation.benchmark import run_benchmark
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
    p.set_defaults(func=run_evaluate)

    b = sub.add_parser(
        "bench-metrics",
        help="time the vectorised bootstrap against a loop of scikit-learn calls and check they agree",
        description="Synthetic imbalanced labels with tied scores; prints both timings, the speed-up and the "
                    "largest difference.",
    )
    b.add_argument("--n", type=int, default=2000, help="test rows (default: %(default)s)")
    b.add_argument("--labels", type=int, default=25, help="labels (default: %(default)s, as phenotyping)")
    b.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default: %(default)s)")
    b.add_argument("--sklearn-resamples", type=int, default=200,
                   help="resamples the scikit-learn loop runs; its time is scaled to --bootstrap (default: %(default)s)")
    b.add_argument("--prevalence", type=float, default=0.15, help="positive fraction per label (default: %(default)s)")
    b.add_argument("--seed", type=int, default=2022, help="seed of data and resamples (default: %(default)s)")
    b.set_defaults(func=run_bench)


def run_evaluate(args: argparse.Namespace) -> int:
    preds = read_predictions(args.predictions, task_labels(args.task) if args.task else None)
    ev = evaluate(preds.y_true, preds.y_score, preds.labels, n_resamples=args.bootstrap, seed=args.seed)
    write_json({"predictions": str(args.predictions), "task": args.task, **ev.to_dict()}, args.out)
    macro = {m: ev.macro(m).format() for m in ("auroc", "auprc")}
    logger.info("%s: n=%d AUROC %s AUPRC %s", args.predictions, ev.n, macro["auroc"], macro["auprc"])
    return 0


def run_bench(args: argparse.Namespace) -> int:
    r = run_benchmark(args.n, args.labels, args.bootstrap, args.sklearn_resamples, args.prevalence, args.seed)
    print(f"data: n={r.n}, labels={r.labels}, resamples={r.n_resamples} (AUROC + AUPRC per label and resample)")
    print(f"vectorised bootstrap:        {r.vectorised_s:8.2f} s")
    scaled = ""
    if r.sklearn_resamples != r.n_resamples:
        scaled = f" (measured {r.sklearn_s:.2f} s on {r.sklearn_resamples} resamples, scaled)"
    print(f"scikit-learn loop:           {r.sklearn_extrapolated_s:8.2f} s{scaled}")
    print(f"speed-up:                    {r.speedup:8.1f}x")
    print(f"max |difference| vs sklearn: {r.max_abs_diff:.2e}")
    return 0
