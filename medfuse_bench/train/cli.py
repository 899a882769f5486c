"""``medfuse-bench image-cache | train | select | predict | ensemble | bench-train``: thin wrappers over
:mod:`medfuse_bench.train`. Defaults are the config schema's (train.*, images.*)."""

from __future__ import annotations

import argparse
from pathlib import Path

from medfuse_bench.config import load_schema
from medfuse_bench.errors import MedfuseError
from medfuse_bench.fidelity import add_policy_arguments, policy_from_args
from medfuse_bench.resources import TASKS
from medfuse_bench.train.experiments import lr_for_draw

_DEVICES = ("auto", "cpu", "cuda")


def _schema_default(*keys: str) -> object:
    node = load_schema()
    for key in keys:
        node = node["properties"][key]
    return node.get("default")


def register(sub: argparse._SubParsersAction) -> None:
    _register_image_cache(sub)
    _register_train(sub)
    _register_select(sub)
    _register_predict(sub)
    _register_ensemble(sub)
    _register_bench(sub)


def _register_image_cache(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--skip-unreadable", action="store_true",
                   help="skip missing or undecodable images (zero rows, 'readable' false in the index, counted in the "
                        "log; training treats them as no image) instead of stopping (images.skip_unreadable)")
    p.set_defaults(func=_run_image_cache)


def _run_image_cache(args: argparse.Namespace) -> int:
    from medfuse_bench.train.image_cache import build_image_cache

    build_image_cache(args.cxr_uni, args.mimic_cxr, args.size, args.out_dir, workers=max(1, args.workers),
                      samples_paths=args.samples, metadata_path=args.cxr_metadata,
                      skip_unreadable=args.skip_unreadable)
    return 0


def _register_train(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--lr-min", type=float, default=1e-5, help="train.lr_min (default %(default)s, the paper's)")
    p.add_argument("--lr-max", type=float, default=1e-3, help="train.lr_max (default %(default)s, the paper's)")
    p.add_argument("--out-dir", required=True, type=Path, help="run folder, e.g. {workdir}/models/T/E/runs/lrK")
    p.add_argument("--max-epochs", type=int, default=50, help="train.max_epochs (default 50, the paper's)")
    p.add_argument("--patience", type=int, default=15,
                   help="epochs without validation AUROC gain before stopping (default 15; 0 = no early stopping)")
    p.add_argument("--batch-size", type=int, default=_schema_default("train", "batch_size"), help="mini-batch size (default %(default)s)")
    p.add_argument("--eval-batch-size", type=int, default=64, help="batch size of validation (default 64; no effect on results)")
    p.add_argument("--device", choices=_DEVICES, default=_schema_default("train", "device"), help="auto = CUDA when available")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast on CUDA")
    p.add_argument("--crop", type=int, default=None, help="crop side fed to the ResNet (images.crop; default: the cache side, no crop)")
    p.add_argument("--no-augment", action="store_true", help="no flip/affine augmentation of training images")
    p.add_argument("--uni-fraction", type=float, default=None,
                   help="fraction of EHR-only train stays for medfuse-optimal (train.uni_modal_fraction[task]; "
                        "default 0.1 mortality, 0.2 phenotyping)")
    p.add_argument("--seed", type=int, default=_schema_default("seed"), help="seed of weights, data order, augmentation, draws")
    add_policy_arguments(p, default_preset=str(_schema_default("fidelity")))
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--ehr-init", type=Path, help="selected.json (or checkpoint.pt) whose EHR encoder starts this model")
    p.add_argument("--cxr-init", type=Path, help="selected.json (or checkpoint.pt) whose CXR encoder starts this model")
    p.add_argument("--cxr-weights", type=Path, help="torchvision ResNet-34 state dict starting radiology/cxr-pretrain (train.cxr_weights)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--keep-resume-state", action="store_true",
                   help="keep last.pt (optimizer and RNG state) after the run finishes; by default it is deleted then, "
                        "as it only serves to resume a killed run")
    p.set_defaults(func=_run_train)


def _run_train(args: argparse.Namespace) -> int:
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
        uni_fraction = _schema_default("train", "uni_modal_fraction", args.task) if args.task in TASKS else 1.0
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


def _register_select(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("select", help="pick the learning-rate draw with the best validation AUROC",
                       description="Read result.json of every run folder, copy the checkpoint.pt of the best "
                                   "validation AUROC (ties: the lower draw) to --checkpoint-out and write "
                                   "selected.json naming it.")
    p.add_argument("--runs", required=True, nargs="+", type=Path, help="run folders (models/T/E/runs/lrK)")
    p.add_argument("--out", required=True, type=Path, help="selected.json to write")
    p.add_argument("--checkpoint-out", type=Path, default=None,
                   help="where the selected checkpoint is copied (default: checkpoint.pt beside --out)")
    p.set_defaults(func=_run_select)


def _run_select(args: argparse.Namespace) -> int:
    from medfuse_bench.train.select import select_runs

    selected = select_runs(args.runs, args.out, args.checkpoint_out)
    print(f"selected draw {selected['draw']} (lr {selected['lr']:.3g}, val AUROC {selected['val_auroc']})")
    return 0


def _register_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="write the test-set predictions of a selected model",
                       description="Write {test_set}.parquet (stay_id, target:<label>, <label>) for every test set "
                                   "the experiment lists (paired, partial, paired_nocxr).")
    p.add_argument("--selected", required=True, type=Path, help="models/T/E/selected.json (or a checkpoint.pt)")
    p.add_argument("--tasks-dir", required=True, type=Path, help="{workdir}/tasks")
    p.add_argument("--image-cache", type=Path, help="{workdir}/cache (needed by experiments that use X-rays)")
    p.add_argument("--task", required=True, help="in-hospital-mortality or phenotyping")
    p.add_argument("--experiment", required=True, help="experiment name")
    p.add_argument("--out-dir", required=True, type=Path, help="predictions/T/E")
    p.add_argument("--device", choices=_DEVICES, default="auto", help="auto = CUDA when available")
    p.add_argument("--batch-size", type=int, default=64, help="prediction batch size (default 64)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.set_defaults(func=_run_predict)


def _run_predict(args: argparse.Namespace) -> int:
    from medfuse_bench.train.predict import predict_experiment

    predict_experiment(args.selected, args.tasks_dir, args.task, args.experiment, args.out_dir,
                       image_cache=args.image_cache, device=args.device, batch_size=args.batch_size, threads=args.threads)
    return 0


def _register_ensemble(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ensemble", help="MedFuse where an X-ray exists, the EHR-only LSTM elsewhere (appendix A.7)",
                       description="Combine the paired and partial predictions of medfuse-optimal and ehr-partial.")
    p.add_argument("--fusion-dir", required=True, type=Path, help="predictions/T/medfuse-optimal")
    p.add_argument("--ehr-dir", required=True, type=Path, help="predictions/T/ehr-partial")
    p.add_argument("--tasks-dir", required=True, type=Path, help="{workdir}/tasks")
    p.add_argument("--task", required=True, help="in-hospital-mortality or phenotyping")
    p.add_argument("--out-dir", required=True, type=Path, help="predictions/T/ensemble")
    p.set_defaults(func=_run_ensemble)


def _run_ensemble(args: argparse.Namespace) -> int:
    from medfuse_bench.train.predict import ensemble_predictions

    ensemble_predictions(args.fusion_dir, args.ehr_dir, args.tasks_dir, args.task, args.out_dir)
    return 0


def _register_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench-train", help="training and loader throughput per model family",
                       description="Time a few training steps of every model family (data / forward / backward / "
                                   "optimizer) and the batch loader alone; print a table and optionally write JSON.")
    p.add_argument("--tasks-dir", required=True, type=Path, help="{workdir}/tasks")
    p.add_argument("--image-cache", required=True, type=Path, help="{workdir}/cache")
    p.add_argument("--task", required=True, help="in-hospital-mortality or phenotyping")
    p.add_argument("--models", nargs="+", default=None, help="model families (default: all eight)")
    p.add_argument("--steps", type=int, default=20, help="timed steps per family (default 20)")
    p.add_argument("--device", choices=_DEVICES, default="auto", help="auto = CUDA when available")
    p.add_argument("--batch-size", type=int, default=16, help="mini-batch size (default 16)")
    p.add_argument("--crop", type=int, default=None, help="crop side (default: the cache side)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast on CUDA")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    add_policy_arguments(p)
    p.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    p.set_defaults(func=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from medfuse_bench.train.bench import REPRESENTATIVE, bench_training

    unknown = sorted(set(args.models or []) - set(REPRESENTATIVE))
    if unknown:
        raise MedfuseError(f"--models: unknown famil(ies) {unknown}; use {', '.join(REPRESENTATIVE)}")
    if args.steps < 1:
        raise MedfuseError(f"--steps must be at least 1, got {args.steps}")
    bench_training(args.tasks_dir, args.image_cache, args.task, families=args.models, steps=args.steps,
                   device=args.device, batch_size=args.batch_size, crop=args.crop, bf16=args.bf16,
                   threads=args.threads, policy=policy_from_args(args), out=args.out)
    return 0
