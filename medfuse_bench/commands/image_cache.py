"""``medfuse-bench image-cache`` (rule image_cache): decode every CXR_UNI X-ray once into a memory-mapped array."""

from __future__ import annotations

import argparse
from pathlib import Path

from medfuse_bench.config import config_default


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("image-cache", help="decode every CXR_UNI X-ray once into a memory-mapped uint8 array",
                       description="Write images.npy (uint8 [N, R, R]: grayscale, shorter side resized to R, centre "
                                   "square) and images_index.parquet (dicom_id, row) for every row of cxr_uni.parquet.")
    p.add_argument("--cxr-uni", required=True, type=Path, help="cxr/cxr_uni.parquet (written by `cxr-uni`)")
    p.add_argument("--mimic-cxr", required=True, type=Path, help="MIMIC-CXR-JPG root; cxr_uni's path column is relative to it")
    p.add_argument("--size", required=True, type=int, help="side R of the cached square images in pixels (images.resize; paper 256)")
    p.add_argument("--out-dir", required=True, type=Path, help="output folder, e.g. {workdir}/cache")
    p.add_argument("--workers", type=int, default=1, help="decoding processes (default 1)")
    p.add_argument("--samples", nargs="+", type=Path, default=None,
                   help="tasks/{task}/samples.parquet files: also cache their linked X-rays that have no CheXpert row")
    p.add_argument("--cxr-metadata", type=Path, default=None,
                   help="etl/raw/cxr_metadata.parquet (locates the images named by --samples)")
    p.add_argument("--skip-unreadable", action="store_true", default=bool(config_default("images", "skip_unreadable")),
                   help="skip missing or undecodable images (zero rows, 'readable' false in the index, counted in the "
                        "log; training treats them as no image) instead of stopping (images.skip_unreadable)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from medfuse_bench.train.image_cache import build_image_cache

    build_image_cache(args.cxr_uni, args.mimic_cxr, args.size, args.out_dir, workers=max(1, args.workers),
                      samples_paths=args.samples, metadata_path=args.cxr_metadata,
                      skip_unreadable=args.skip_unreadable)
    return 0
