"""``medfuse-bench cxr-uni`` (rule ``cxr_uni``): CXR_UNI, every labelled X-ray with its split.

The set is built by :func:`medfuse_bench.etl.cxr.build_cxr_uni` (labels U-zeros; split by switch ``cxr_uni_split``,
no image of an EHR val/test patient in train); the images it leaves out are recorded in the file's metadata.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from medfuse_bench.etl import cxr, exclusions
from medfuse_bench.etl.splits import CXR_TABLES
from medfuse_bench.etl.stage_io import log_rate, plain, read_parquet
from medfuse_bench.fidelity import add_policy_arguments, policy_from_args
from medfuse_bench.io import atomic_path


log = logging.getLogger(__name__)

def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("cxr-uni", help="CXR_UNI: every labelled X-ray with its split",
                       description=plain(cxr.__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--raw-dir", required=True, help="ingest folder holding cxr_metadata/cxr_chexpert/cxr_split.parquet")
    p.add_argument("--splits", required=True, help="splits.parquet (EHR patients' splits)")
    p.add_argument("--out", required=True, help="output cxr_uni.parquet")
    add_policy_arguments(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    raw = Path(args.raw_dir)
    hint = "run `medfuse-bench ingest` with the MIMIC-CXR-JPG tables"
    frames = {t: read_parquet(raw / f"{t}.parquet", hint) for t in CXR_TABLES}
    patient_splits = read_parquet(args.splits, "run `medfuse-bench splits` first")
    out = cxr.build_cxr_uni(frames["cxr_metadata"], frames["cxr_chexpert"], frames["cxr_split"], patient_splits,
                            cxr_uni_split=policy_from_args(args).cxr_uni_split)
    excluded = cxr.cxr_uni_exclusions(frames["cxr_metadata"], frames["cxr_chexpert"], frames["cxr_split"])
    with atomic_path(args.out) as tmp:
        out.write_parquet(tmp, compression="zstd", metadata=exclusions.to_metadata(excluded))
    log_rate(log, "cxr-uni", frames["cxr_metadata"].height, "X-ray records", started)
    return 0
