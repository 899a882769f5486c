"""``medfuse-bench train`` (rule train): one learning-rate draw of an experiment; a killed run resumes.

Defaults not given as flags are the config's: the schema's defaults, and for the budget keys that the schema
leaves to the scale (train.lr_min, lr_max, max_epochs, patience) the paper scale's values.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medfuse_bench.commands._shared import DEVICES
from medfuse_bench.config import config_default
from medfuse_bench.errors import MedfuseError
from medfuse_bench.fidelity import add_policy_arguments, policy_from_args
from medfuse_bench.resources import TASKS
from medfuse_bench.train.experiments import lr_for_draw


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one learning-rate draw of an experiment (resumes a killed run)",
                       description="Train one run of an experiment (docs/models.md) and write checkpoint.pt, last.pt, "
                                   "history.csv and result.json into --out-dir. Rerunning continues after the last "
                                   "finished epoch.")
    p.add_argument("--tasks-dir", type=Path, help="{workdir}/tasks (not needed for radiology/cxr-pretrain)")
    p.add_argument("--cxr-uni", type=Path, help="cxr/cxr_uni.parquet (needed for radiology/cxr-pretrain)")
    p.add_argument("--image-cache", type=Path, help="{workdir}/cache (needed by every experiment that uses X-rays)")
    p.add_argument("--task", required=True, help="in-hospital-mortality, phenotyping, or radiology (with cxr-pretrain)")
    p.add_argument("--experiment", required=True, help="experiment name, e.g. medfuse-optimal, ehr-partial, medfuse-p20")
    p.add_argument("--draw", type=int, default=0, help="learning-rate draw number k (default 0)")
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate; default: draw k's log-uniform value in [--lr-min, --lr-max] from --seed")
    p.add_argument("--lr-from", type=Path, default=None,
                   help="selected.json whose learning rate this run takes (the uni-modal sweep at MedFuse (PT)'s, "
                        "fidelity switch sweep_lr: medfuse_pt_best; retraining with other seeds), and its uni-modal "
                        "fraction when it names one and --uni-fraction is not given; read when the run starts")
    p.add_argument("--lr-min", type=float, default=config_default("train", "lr_min"),
                   help="train.lr_min (default %(default)s, the paper's)")
    p.add_argument("--lr-max", type=float, default=config_default("train", "lr_max"),
                   help="train.lr_max (default %(default)s, the paper's)")
    p.add_argument("--out-dir", required=True, type=Path, help="run folder, e.g. {workdir}/models/T/E/runs/lrK")
    p.add_argument("--max-epochs", type=int, default=config_default("train", "max_epochs"),
                   help="train.max_epochs (default %(default)s, the paper's)")
    p.add_argument("--patience", type=int, default=config_default("train", "patience"),
                   help="epochs without validation AUROC gain before stopping (train.patience, default %(default)s, "
                        "the paper's; 0 = no early stopping)")
    p.add_argument("--batch-size", type=int, default=config_default("train", "batch_size"),
                   help="mini-batch size (train.batch_size, default %(default)s)")
    p.add_argument("--eval-batch-size", type=int, default=64, help="batch size of validation (default 64; no effect on results)")
    p.add_argument("--device", choices=DEVICES, default=config_default("train", "device"),
                   help="auto = CUDA when available (train.device, default %(default)s)")
    p.add_argument("--bf16", action="store_true", default=bool(config_default("train", "bf16")),
                   help="bfloat16 autocast on CUDA (train.bf16)")
    p.add_argument("--crop", type=int, default=None, help="crop side fed to the ResNet (images.crop; default: the cache side, no crop)")
    p.add_argument("--no-augment", action="store_true", help="no flip/affine augmentation of training images")
    p.add_argument("--uni-fraction", type=float, default=None,
                   help="fraction of EHR-only train stays for medfuse-optimal (train.uni_modal_fraction[task]; "
                        "default 0.1 mortality, 0.2 phenotyping)")
    p.add_argument("--seed", type=int, default=config_default("seed"),
                   help="seed of weights, data order, augmentation, draws (seed, default %(default)s)")
    add_policy_arguments(p, default_preset=str(config_default("fidelity")))
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--ehr-init", type=Path, help="selected.json (or checkpoint.pt) whose EHR encoder starts this model")
    p.add_argument("--cxr-init", type=Path, help="selected.json (or checkpoint.pt) whose CXR encoder starts this model")
    p.add_argument("--cxr-weights", type=Path, help="torchvision ResNet-34 state dict starting radiology/cxr-pretrain (train.cxr_weights)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--keep-resume-state", action="store_true",
                   help="keep last.pt (optimizer and RNG state) after the run finishes; by default it is deleted then, "
                        "as it only serves to resume a killed run")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from medfuse_bench.train.loop import FitSettings
    from medfuse_bench.train.progress import format_duration
    from medfuse_bench.train.run import RunInputs, train_run

    for flag, value in (("--max-epochs", args.max_epochs), ("--batch-size", args.batch_size)):
        if value < 1:
            raise MedfuseError(f"{flag} must be at least 1, got {value}")
    if args.patience < 0:
        raise MedfuseError(f"--patience must be at least 0 (0 = no early stopping), got {args.patience}")
    if args.lr is not None and args.lr_from is not None:
        raise MedfuseError("give --lr or --lr-from, not both")
    if args.lr_from is not None:
        from medfuse_bench.train.optimal import selected_lr

        args.lr = selected_lr(args.lr_from)
    lr = args.lr if args.lr is not None else lr_for_draw(args.seed, args.draw, args.lr_min, args.lr_max)
    uni_fraction = args.uni_fraction
    if uni_fraction is None and args.lr_from is not None:
        from medfuse_bench.train.optimal import selected_uni_fraction

        uni_fraction = selected_uni_fraction(args.lr_from)
    if uni_fraction is None:
        uni_fraction = config_default("train", "uni_modal_fraction", args.task) if args.task in TASKS else 1.0
    settings = FitSettings(
        lr=lr, max_epochs=args.max_epochs, patience=args.patience or None, batch_size=args.batch_size,
        eval_batch_size=args.eval_batch_size, policy=policy_from_args(args), seed=args.seed, device=args.device,
        bf16=args.bf16, crop=args.crop, augment=not args.no_augment, progress=not args.quiet,
        keep_resume_state=args.keep_resume_state,
    )
    inputs = RunInputs(tasks_dir=args.tasks_dir, cxr_uni=args.cxr_uni, image_cache=args.image_cache,
                       ehr_init=args.ehr_init, cxr_init=args.cxr_init, cxr_weights=args.cxr_weights)
    result = train_run(args.task, args.experiment, inputs, args.out_dir, settings, draw=args.draw,
                       uni_fraction=float(uni_fraction), threads=args.threads)
    print(f"{args.task}/{args.experiment} draw {args.draw} (lr {lr:.3g}): best val AUROC {result['val_auroc']} "
          f"at epoch {result['best_epoch']} of {result['epochs_run']} ({format_duration(result['seconds'])})")
    return 0
