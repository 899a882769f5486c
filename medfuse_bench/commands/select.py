"""``medfuse-bench select`` (rule select): keep the learning-rate draw with the best validation AUROC."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("select", help="pick the learning-rate draw with the best validation AUROC",
                       description="Read result.json of every run folder, copy the checkpoint.pt of the best "
                                   "validation AUROC (ties: the lower draw) to --checkpoint-out and write "
                                   "selected.json naming it.")
    p.add_argument("--runs", required=True, nargs="+", type=Path, help="run folders (models/T/E/runs/lrK)")
    p.add_argument("--out", required=True, type=Path, help="selected.json to write")
    p.add_argument("--checkpoint-out", type=Path, default=None,
                   help="where the selected checkpoint is copied (default: checkpoint.pt beside --out)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from medfuse_bench.train.select import select_runs

    selected = select_runs(args.runs, args.out, args.checkpoint_out)
    print(f"selected draw {selected['draw']} (lr {selected['lr']:.3g}, val AUROC {selected['val_auroc']})")
    return 0
