"""``medfuse-bench predict`` (rule predict): the test-set predictions of a selected model."""

from __future__ import annotations

import argparse
from pathlib import Path

from medfuse_bench.commands._shared import DEVICES
from medfuse_bench.config import config_default


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="write the test-set predictions of a selected model",
                       description="Write {test_set}.parquet (stay_id, target:<label>, <label>) for every test set "
                                   "the experiment lists (paired, partial, paired_nocxr).")
    p.add_argument("--selected", required=True, type=Path, help="models/T/E/selected.json (or a checkpoint.pt)")
    p.add_argument("--tasks-dir", required=True, type=Path, help="{workdir}/tasks")
    p.add_argument("--image-cache", type=Path, help="{workdir}/cache (needed by experiments that use X-rays)")
    p.add_argument("--task", required=True, help="in-hospital-mortality or phenotyping")
    p.add_argument("--experiment", required=True, help="experiment name")
    p.add_argument("--out-dir", required=True, type=Path, help="predictions/T/E")
    p.add_argument("--device", choices=DEVICES, default=config_default("train", "device"),
                   help="auto = CUDA when available (train.device, default %(default)s)")
    p.add_argument("--batch-size", type=int, default=64, help="prediction batch size (default 64)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from medfuse_bench.train.predict import predict_experiment

    predict_experiment(args.selected, args.tasks_dir, args.task, args.experiment, args.out_dir,
                       image_cache=args.image_cache, device=args.device, batch_size=args.batch_size, threads=args.threads)
    return 0
