"""The training loop: fit with Adam, validate every epoch, keep the best checkpoint, stop early, resume.

Per epoch: train on shuffled batches (augmented images), validate (macro AUROC/AUPRC over the labels, mean
BCE), step ReduceLROnPlateau(factor 0.5, patience 10) on the validation loss, save ``checkpoint.pt`` when the
validation AUROC improves, append to ``history.csv`` and save the resume state ``last.pt``. Training stops
after ``max_epochs`` or ``patience`` epochs without a gain (never early with ``patience=None``); ``result.json``
is written at the end. Rerunning a killed run continues after its last finished epoch and ends in the same
state as an uninterrupted run: the data order and augmentations of an epoch are pure functions of
(seed, epoch), and the global RNG states (dropout) are saved with each epoch.

The fidelity policy's training switches (``FitSettings.policy``, docs/models.md) read here: ``train_crop``
(centre or random crop after augmentation), ``frozen_encoders`` (frozen encoders' BatchNorm and dropout in
training or eval mode) and ``mmtm_daft_scheduler`` (the MMTM/DAFT scheduler never stepped, or stepped);
``adam_betas`` and ``mmtm_step`` choose the optimizer step (:mod:`medfuse_bench.train.steps`). Every run
validates after each training epoch and steps the scheduler on validation only (the original validates before
training, so its last epoch is never validated, and also steps the scheduler while testing; neither is
reproduced).
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm import tqdm

from medfuse_bench.errors import MedfuseError
from medfuse_bench.fidelity import SWITCHES, FidelityPolicy
from medfuse_bench.io import atomic_path, write_json
from medfuse_bench.train.augment import ImageTransform
from medfuse_bench.train.batches import BatchLoader
from medfuse_bench.train.checkpoints import RESUME_BEST, link_or_copy, read_torch, restore_best, save_torch
from medfuse_bench.train.data import SampleSet
from medfuse_bench.train.metrics import macro_scores, selection_score
from medfuse_bench.train.progress import epoch_report
from medfuse_bench.train.steps import make_step

log = logging.getLogger(__name__)

HISTORY_COLUMNS: tuple[str, ...] = ("epoch", "train_loss", "val_loss", "val_auroc", "val_auprc", "lr", "seconds")
_STREAM_AUGMENT = 0x617567
#: The switches a training run reads; they enter its resume fingerprint.
TRAIN_SWITCHES: tuple[str, ...] = tuple(s.name for s in SWITCHES if s.stage == "train")


@dataclass
class FitSettings:
    """Everything that shapes a training run besides the data and the model."""

    lr: float
    max_epochs: int = 50
    #: Epochs without a validation AUROC gain before stopping; None = no early stopping.
    patience: int | None = 15
    batch_size: int = 16
    eval_batch_size: int = 64
    policy: FidelityPolicy = field(default_factory=lambda: FidelityPolicy.preset("corrected"))
    seed: int = 1002
    device: str = "auto"
    bf16: bool = False
    crop: int | None = None
    augment: bool = True
    progress: bool = True
    #: Keep ``last.pt`` once the run has finished; it is only needed to resume a killed run, and the optimizer
    #: state of a ResNet model triples the checkpoint's size on disk.
    keep_resume_state: bool = True
    #: Identity of the run for resume checks and result.json (experiment, task, draw, ...).
    meta: dict[str, Any] = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    """``auto`` = CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise MedfuseError("--device cuda was asked for but no CUDA device is available; use --device auto or cpu")
    if name not in ("cpu", "cuda"):
        raise MedfuseError(f"--device must be auto, cpu or cuda, got '{name}'")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _derived_seed(seed: int, epoch: int, stream: int) -> int:
    return int(np.random.default_rng([int(seed) % 2**63, int(epoch), stream]).integers(2**62))


def model_inputs(batch: dict[str, Tensor], transform: ImageTransform | None, device: torch.device,
                 generator: torch.Generator | None) -> dict[str, Tensor]:
    """A collated CPU batch -> the model's input dict on ``device`` (images transformed there)."""
    inputs = {
        "ehr": batch["ehr"].to(device, non_blocking=True),
        "ehr_lengths": batch["ehr_lengths"],
        "has_cxr": batch["has_cxr"].to(device, non_blocking=True),
    }
    if transform is not None and batch["cxr_uint8"].shape[0]:
        inputs["cxr"] = transform(batch["cxr_uint8"], generator, device)
    return inputs


def _autocast(device: torch.device, bf16: bool) -> Any:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")


@torch.no_grad()
def predict(model: nn.Module, sample_set: SampleSet, *, device: torch.device, crop: int | None,
            batch_size: int = 64, bf16: bool = False, progress: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """Probabilities [n, C] of the main logits, the targets [n, C] and the mean BCE, in set order."""
    model.eval()
    transform = _eval_transform(sample_set, crop)
    key = getattr(model, "prediction_key", "logits")
    probabilities, targets = [], []
    loss_sum = 0.0
    loader = BatchLoader(sample_set, batch_size, shuffle=False, drop_last=False, pin_memory=device.type == "cuda")
    total = -(-len(sample_set) // batch_size)
    for batch in tqdm(loader.epoch(0), total=total, desc=f"predict {sample_set.name}", unit="batch", leave=False,
                      disable=not progress):
        with _autocast(device, bf16):
            logits = model(model_inputs(batch, transform, device, None))[key].float()
        labels = batch["labels"].to(device)
        loss_sum += float(F.binary_cross_entropy_with_logits(logits, labels.reshape(logits.shape), reduction="sum"))
        probabilities.append(torch.sigmoid(logits).cpu().numpy())
        targets.append(batch["labels"].numpy())
    n_values = max(len(sample_set) * sample_set.labels.shape[1], 1)
    if not probabilities:
        empty = np.zeros((0, sample_set.labels.shape[1]), np.float32)
        return empty, empty, math.nan
    return np.concatenate(probabilities), np.concatenate(targets), loss_sum / n_values


def _image_side(sample_set: SampleSet) -> int | None:
    return None if sample_set.images is None else int(sample_set.images.shape[1])


def _eval_transform(sample_set: SampleSet, crop: int | None) -> ImageTransform | None:
    side = _image_side(sample_set)
    return None if side is None else ImageTransform(crop or side, train=False)


def _rng_state(device: torch.device) -> dict[str, Any]:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _fingerprint(settings: FitSettings, train_set: SampleSet, val_set: SampleSet) -> dict[str, Any]:
    return {
        **{k: settings.meta.get(k) for k in ("task", "experiment", "family")},
        "lr": settings.lr,
        "seed": settings.seed,
        **{name: getattr(settings.policy, name) for name in TRAIN_SWITCHES},
        "batch_size": settings.batch_size,
        "crop": settings.crop,
        "augment": settings.augment,
        "train_samples": train_set.epoch_size(),
        "val_samples": len(val_set),
    }


def write_history(history: list[dict[str, Any]], path: Path) -> None:
    frame = pl.DataFrame(history, schema={c: (pl.Int64 if c == "epoch" else pl.Float64) for c in HISTORY_COLUMNS})
    with atomic_path(path) as tmp:
        frame.write_csv(tmp)


def _set_frozen_mode(model: nn.Module, policy: FidelityPolicy) -> None:
    """frozen_encoders=train_mode: as the original's model.train(), frozen encoders train their BatchNorm
    statistics and run their dropout too."""
    if policy.frozen_encoders == "train_mode":
        for which in getattr(model, "frozen_encoders", ()):
            getattr(model, f"{which}_encoder").train()


def fit(
    model: nn.Module,
    train_set: SampleSet,
    val_set: SampleSet,
    settings: FitSettings,
    out_dir: str | os.PathLike[str],
    *,
    on_epoch_end: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train ``model`` and write checkpoint.pt, last.pt, history.csv and result.json into ``out_dir``.

    ``on_epoch_end(epoch)`` runs after an epoch's files are saved (tests use it to simulate a kill).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if len(train_set) == 0:
        raise MedfuseError(f"the training set '{train_set.name}' is empty; check the task tables and the experiment")
    if len(val_set) == 0:
        raise MedfuseError(f"the validation set '{val_set.name}' is empty; check the task tables and the experiment")
    device = resolve_device(settings.device)
    model.to(device)
    policy = settings.policy
    step = make_step(model, settings.lr, policy)
    main_optimizer = step.optimizers[-1]
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(main_optimizer, mode="min", factor=0.5, patience=10)
    step_scheduler = not (getattr(model, "scheduler_switch", False) and policy.mmtm_daft_scheduler == "never_stepped")
    side = _image_side(train_set)
    crop = settings.crop or side
    train_transform = None if side is None else ImageTransform(
        crop, train=True, augment=settings.augment, random_crop=policy.train_crop == "random"
    )
    loader = BatchLoader(train_set, settings.batch_size, shuffle=True, drop_last=True, seed=settings.seed,
                         pin_memory=device.type == "cuda")
    fingerprint = _fingerprint(settings, train_set, val_set)

    last_path, best_path = out_dir / "last.pt", out_dir / "checkpoint.pt"
    # The best weights also live beside the resume state, outside the rule's outputs: Snakemake deletes an
    # incomplete job's outputs (checkpoint.pt) before it reruns, and a resumed run may never improve again.
    best_copy = out_dir / RESUME_BEST
    state: dict[str, Any] = {"epoch": 0, "history": [], "best_epoch": None, "best_auroc": math.nan,
                             "best_auprc": math.nan, "bad_epochs": 0, "stopped": False}
    if last_path.exists():
        saved = read_torch(last_path)
        changed = {k: (saved["fingerprint"].get(k), v) for k, v in fingerprint.items() if saved["fingerprint"].get(k) != v}
        if changed:
            details = ", ".join(f"{k}: {a} -> {b}" for k, (a, b) in changed.items())
            raise MedfuseError(f"'{last_path}' belongs to a run with other settings ({details}); delete '{out_dir}' to start over")
        model.load_state_dict(saved["model"])
        for optimizer, optimizer_state in zip(step.optimizers, saved["optimizers"]):
            optimizer.load_state_dict(optimizer_state)
        scheduler.load_state_dict(saved["scheduler"])
        _set_rng_state(saved["rng"])
        state = saved["loop"]
        restore_best(best_copy, best_path, state["best_epoch"])
        log.info("resuming %s after epoch %d", out_dir, state["epoch"])
    autocast = _autocast(device, settings.bf16)
    log.info("training on %s: lr %.3g, batch size %d, up to %d epochs (early stop after %d without a validation "
             "AUROC gain)", device, settings.lr, settings.batch_size, settings.max_epochs, settings.patience)

    while not state["stopped"] and state["epoch"] < settings.max_epochs:
        epoch = state["epoch"] + 1
        started = time.perf_counter()
        lr_now = main_optimizer.param_groups[0]["lr"]
        model.train()
        _set_frozen_mode(model, policy)
        generator = torch.Generator().manual_seed(_derived_seed(settings.seed, epoch, _STREAM_AUGMENT))
        batches = loader.epoch_batches(epoch)
        total, seen = 0.0, 0
        bar = tqdm(total=len(batches), desc=f"epoch {epoch}/{settings.max_epochs}", unit="batch",
                   leave=False, mininterval=1.0, disable=not settings.progress)
        for batch in loader.epoch(epoch):
            inputs = model_inputs(batch, train_transform, device, generator)
            loss = step(inputs, batch["labels"].to(device, non_blocking=True), autocast)
            total += loss * batch["labels"].shape[0]
            seen += batch["labels"].shape[0]
            bar.update(1)
            bar.set_postfix(loss=f"{total / max(seen, 1):.4f}", refresh=False)
        bar.close()
        probabilities, targets, val_loss = predict(
            model, val_set, device=device, crop=crop, batch_size=settings.eval_batch_size, bf16=settings.bf16
        )
        auroc, auprc = macro_scores(targets, probabilities)
        if step_scheduler and not math.isnan(val_loss):
            scheduler.step(val_loss)
        improved = state["best_epoch"] is None or selection_score(auroc) > selection_score(state["best_auroc"])
        if improved:
            state.update(best_epoch=epoch, best_auroc=auroc, best_auprc=auprc, bad_epochs=0)
            save_torch({"model": model.state_dict(), "meta": settings.meta, "epoch": epoch,
                        "val_auroc": auroc, "val_auprc": auprc}, best_copy)
            link_or_copy(best_copy, best_path)
        else:
            state["bad_epochs"] += 1
        seconds = time.perf_counter() - started
        state["history"].append({"epoch": epoch, "train_loss": total / max(seen, 1), "val_loss": val_loss,
                                 "val_auroc": auroc, "val_auprc": auprc, "lr": lr_now, "seconds": seconds})
        state["epoch"] = epoch
        state["stopped"] = settings.patience is not None and state["bad_epochs"] >= settings.patience
        log.info("%s", epoch_report(state["history"], state, settings.max_epochs, settings.patience))
        write_history(state["history"], out_dir / "history.csv")
        save_torch({"model": model.state_dict(), "optimizers": [o.state_dict() for o in step.optimizers],
                    "scheduler": scheduler.state_dict(), "rng": _rng_state(device), "loop": state,
                    "fingerprint": fingerprint, "meta": settings.meta}, last_path)
        if on_epoch_end is not None:
            on_epoch_end(epoch)

    result = {
        "experiment": settings.meta.get("experiment"),
        "task": settings.meta.get("task"),
        "draw": settings.meta.get("draw"),
        "lr": settings.lr,
        "cxr_init": settings.meta.get("cxr_init"),
        "best_epoch": state["best_epoch"],
        "val_auroc": state["best_auroc"],
        "val_auprc": state["best_auprc"],
        "epochs_run": state["epoch"],
        "train_samples": fingerprint["train_samples"],
        "val_samples": fingerprint["val_samples"],
        "seconds": float(sum(row["seconds"] for row in state["history"])),
    }
    write_json(_json_safe(result), out_dir / "result.json")
    restore_best(best_copy, best_path, state["best_epoch"])
    if not settings.keep_resume_state:
        last_path.unlink(missing_ok=True)
        best_copy.unlink(missing_ok=True)
    return result


def _json_safe(obj: dict[str, Any]) -> dict[str, Any]:
    """NaN scores (single-class validation sets) as null, so the JSON stays standard."""
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in obj.items()}
