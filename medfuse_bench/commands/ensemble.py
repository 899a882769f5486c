"""``medfuse-bench ensemble`` (rule ensemble): MedFuse where an X-ray exists, the EHR-only LSTM elsewhere."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ensemble", help="MedFuse where an X-ray exists, the EHR-only LSTM elsewhere (appendix A.7)",
                       description="Combine the paired and partial predictions of medfuse-optimal and ehr-partial.")
    p.add_argument("--fusion-dir", required=True, type=Path, help="predictions/T/medfuse-optimal")
    p.add_argument("--ehr-dir", required=True, type=Path, help="predictions/T/ehr-partial")
    p.add_argument("--tasks-dir", required=True, type=Path, help="{workdir}/tasks")
    p.add_argument("--task", required=True, help="in-hospital-mortality or phenotyping")
    p.add_argument("--out-dir", required=True, type=Path, help="predictions/T/ensemble")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from medfuse_bench.train.predict import ensemble_predictions

    ensemble_predictions(args.fusion_dir, args.ehr_dir, args.tasks_dir, args.task, args.out_dir)
    return 0
