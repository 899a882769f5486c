"""``medfuse-bench synth``: write the synthetic MIMIC-IV 2.2 + MIMIC-CXR-JPG 2.0.0 dataset."""

from __future__ import annotations

import argparse

from medfuse_bench.synth.dataset import generate


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="generate the synthetic MIMIC-IV 2.2 and MIMIC-CXR-JPG 2.0.0 files (real layouts, planted signal)",
        description="Write OUT/mimic-iv (hosp/, icu/) and OUT/mimic-cxr-jpg (tables and files/) with the column "
        "layout of the credentialed releases and a planted signal; the same seed gives the same bytes.",
    )
    p.add_argument("--out", required=True, help="output folder; receives mimic-iv/ and mimic-cxr-jpg/")
    p.add_argument("--stays", type=int, required=True, help="number of ICU stays to generate (> 0)")
    p.add_argument("--seed", type=int, default=1002, help="random seed (default: 1002)")
    p.add_argument(
        "--image-size", type=int, default=48, help="JPEG width in pixels; height is round(1.2 x width) (default: 48)"
    )
    p.add_argument(
        "--unrelated-chart-share", type=float, default=None, metavar="SHARE",
        help="add chartevents rows of items outside the 17 variables until they make SHARE of the table (MIMIC: "
        "about 0.82; default: none added, about 0.05); for benchmarks of the ingest's item filter",
    )
    p.add_argument("--force", action="store_true", help="replace existing non-empty mimic-iv/ and mimic-cxr-jpg/")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    generate(args.out, args.stays, args.seed, image_size=args.image_size, force=args.force,
             unrelated_chart_share=args.unrelated_chart_share)
    return 0
