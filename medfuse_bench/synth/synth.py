"""``medfuse-bench synth``: write the synthetic MIMIC-IV (1.0, 2.2 or 3.1) + MIMIC-CXR-JPG 2.0.0 dataset."""

from __future__ import annotations

import argparse

from medfuse_bench.synth.dataset import generate
from medfuse_bench.synth.release import Release
from medfuse_bench.synth.versions import DEFAULT_VERSION, MIMIC_VERSIONS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "synth",
        help="generate the synthetic MIMIC-IV and MIMIC-CXR-JPG 2.0.0 files (real layouts, planted signal)",
        description="Write OUT/mimic-iv (hosp/ and icu/; core/ too for 1.0) and OUT/mimic-cxr-jpg (tables and "
        "files/) with the column layout of the credentialed releases and a planted signal; the same arguments give "
        "the same bytes. With --added-stays / --removed-share, write a later release of the dataset that the same "
        "--stays and --seed make: the same patients with the same identifiers and times, plus new patients of a "
        "later period, minus a share of the earlier ones (see docs/version-bump.md).",
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
    p.add_argument(
        "--unrelated-lab-share", type=float, default=None, metavar="SHARE",
        help="the same for labevents (MIMIC-IV 3.1: about 0.965, 158 M rows for 94,458 ICU stays; default: none "
        "added)",
    )
    p.add_argument(
        "--gzip-level", type=int, default=6, choices=range(1, 10), metavar="LEVEL",
        help="gzip level of the event tables, 1 to 9 (default: 6); 1 writes faster, in larger files "
        "(benchmarks/README.md)",
    )
    p.add_argument(
        "--mimic-version", choices=MIMIC_VERSIONS, default=DEFAULT_VERSION,
        help=f"MIMIC-IV release whose layout and columns to write (default: {DEFAULT_VERSION})",
    )
    p.add_argument(
        "--added-stays", type=int, default=0, metavar="N",
        help="a later release: add new patients with N ICU stays in all (default: 0)",
    )
    p.add_argument(
        "--removed-share", type=float, default=0.0, metavar="SHARE",
        help="a later release: drop this share of the patients of --stays/--seed, in [0, 0.5] (default: 0)",
    )
    p.add_argument("--force", action="store_true", help="replace existing non-empty mimic-iv/ and mimic-cxr-jpg/")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    generate(args.out, args.stays, args.seed, image_size=args.image_size, force=args.force,
             unrelated_chart_share=args.unrelated_chart_share, unrelated_lab_share=args.unrelated_lab_share,
             gzip_level=args.gzip_level,
             mimic_version=args.mimic_version,
             release=Release(args.added_stays, args.removed_share))
    return 0
