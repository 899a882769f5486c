"""``medfuse-bench select-optimal`` (rule select_optimal): MedFuse (OPTIMAL) = the uni-modal sweep point with the
best validation AUROC (fidelity switch optimal_fraction: sweep_best)."""

from __future__ import annotations

import argparse
from pathlib import Path

from medfuse_bench.errors import MedfuseError
from medfuse_bench.train.optimal import TIE_RULE, select_optimal


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("select-optimal", help="MedFuse (OPTIMAL) = the uni-modal sweep point with the best validation AUROC",
                       description="Read the selected.json of every sweep point (models/T/medfuse-pN) and write "
                                   "models/T/medfuse-optimal/selected.json naming the best point's checkpoint, its "
                                   f"fraction and every point's validation AUROC ({TIE_RULE}).")
    p.add_argument("--points", required=True, nargs="+", type=Path, help="models/T/medfuse-pN/selected.json files")
    p.add_argument("--out", required=True, type=Path, help="models/T/medfuse-optimal/selected.json")
    p.add_argument("--sweep-lr", choices=("medfuse_pt_best", "own_search"), required=True,
                   help="how the sweep points got their learning rate (fidelity switch sweep_lr), recorded in the output")
    p.add_argument("--pt-selected", type=Path, default=None,
                   help="models/T/medfuse-pt/selected.json; with --sweep-lr medfuse_pt_best every point must use its lr")
    p.add_argument("--checkpoint-out", type=Path, default=None,
                   help="copy the chosen point's checkpoint here and name the copy in --out")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.sweep_lr == "medfuse_pt_best" and args.pt_selected is None:
        raise MedfuseError("--sweep-lr medfuse_pt_best needs --pt-selected (models/T/medfuse-pt/selected.json)")
    selected = select_optimal(args.points, args.out, sweep_lr=args.sweep_lr,
                              pt_selected=args.pt_selected if args.sweep_lr == "medfuse_pt_best" else None,
                              checkpoint_out=args.checkpoint_out)
    aurocs = ", ".join(f"{round(p['fraction'] * 100)}%: {p['val_auroc']}" for p in selected["sweep"])
    print(f"MedFuse (OPTIMAL) = {selected['chosen_experiment']} (val AUROC {selected['val_auroc']}; sweep {aurocs})")
    return 0
