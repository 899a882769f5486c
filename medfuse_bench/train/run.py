"""One training run of an experiment: its sets, its model (with pretrained encoders where the table says so),
then :func:`medfuse_bench.train.loop.fit`.

Validation sets: the same kind of set as training, except that partial training validates on
(EHR+CXR)_PARTIAL = every validation stay, or on the paired validation stays only with the switch
``partial_validation: paired_only`` (the original forces data_ratio 0 on validation). EHR_PARTIAL validates on
every stay in both. Encoder starts follow the policy (:func:`~medfuse_bench.train.experiments.get_experiment`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medfuse_bench.errors import MedfuseError
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.train.checkpoints import checkpoint_path, read_torch
from medfuse_bench.train.data import SampleSet, TaskData, cxr_uni_set, load_task_data, partial_set, split_set
from medfuse_bench.train.experiments import (
    CXR_PRETRAIN,
    RADIOLOGY,
    Experiment,
    get_experiment,
    labels_of,
    resolve_uni_fraction,
)
from medfuse_bench.train.loop import FitSettings, fit, seed_everything

log = logging.getLogger(__name__)


@dataclass
class RunInputs:
    """Input files of a run; paths a given experiment does not need may be None."""

    tasks_dir: Path | None = None
    cxr_uni: Path | None = None
    image_cache: Path | None = None
    ehr_init: Path | None = None
    cxr_init: Path | None = None
    cxr_weights: Path | None = None


def sets_for(spec: Experiment, data: TaskData, split: str, *, fraction: float | None, policy: FidelityPolicy,
             seed: int, training: bool) -> SampleSet:
    """The training (``training``) or validation set of an experiment in ``split``."""
    kind = spec.training_set
    if kind == "ehr_paired":
        return split_set(data, split, stays="paired", images=False, name=f"{split}:ehr_paired")
    if kind == "ehr_partial":
        return split_set(data, split, stays="all", images=False, name=f"{split}:ehr_partial")
    if kind == "cxr_paired":
        return split_set(data, split, stays="paired", ehr=False, name=f"{split}:cxr_paired")
    if kind == "fusion_paired":
        return split_set(data, split, stays="paired", name=f"{split}:fusion_paired")
    if kind == "fusion_partial":
        if training:
            return partial_set(data, split, fraction if fraction is not None else 1.0,
                               with_replacement=policy.unimodal_sampling == "with_replacement", seed=seed)
        if policy.partial_validation == "paired_only":
            return split_set(data, split, stays="paired", name=f"{split}:fusion_paired")
        return split_set(data, split, stays="all", name=f"{split}:partial")
    raise MedfuseError(f"experiment '{spec.name}' has no task sets (training set kind '{kind}')")


def test_set(spec: Experiment, data: TaskData, name: str) -> SampleSet:
    """A test set of an experiment: ``paired``, ``partial`` (every test stay) or ``paired_nocxr``."""
    ehr = spec.uses_ehr
    images = spec.uses_images
    if name == "paired":
        return split_set(data, "test", stays="paired", ehr=ehr, images=images, name="test:paired")
    if name == "partial":
        return split_set(data, "test", stays="all", ehr=ehr, images=images, name="test:partial")
    if name == "paired_nocxr":
        return split_set(data, "test", stays="paired", ehr=ehr, images=False, name="test:paired_nocxr")
    raise MedfuseError(f"unknown test set '{name}'; use paired, partial or paired_nocxr")


def _require_file(path: Path | None, flag: str, why: str) -> Path:
    if path is None:
        raise MedfuseError(f"{flag} is required {why}")
    if not Path(path).exists():
        raise MedfuseError(f"{flag} '{path}' does not exist")
    return Path(path)


def model_options(spec: Experiment, task: str, policy: FidelityPolicy, cxr_weights: Path | None) -> dict[str, Any]:
    """Options for build_model: the experiment's, plus padded_time_mean / cxr_weights where the family takes them."""
    from medfuse_bench.models import model_options as accepted_options

    accepted = accepted_options(spec.family)
    options = spec.model_options(task)
    if "padded_time_mean" in accepted:
        options["padded_time_mean"] = policy.padded_time_mean == "padded"
    if cxr_weights is not None:
        options["cxr_weights"] = str(cxr_weights)
    return options


def cxr_start(spec: Experiment, task: str, policy: FidelityPolicy,
              cxr_weights: Path | None) -> tuple[Path | None, str | None]:
    """The ImageNet weights file the model is built from (cxr-pretrain only) and how its CXR encoder starts, in
    words for result.json and the report; None for a model without a CXR encoder.

    Switch cxr_pretrain_init: ``imagenet`` starts the CXR_UNI pretraining from ``--cxr-weights`` (train.cxr_weights;
    nothing is downloaded) and, without that file, from random weights, which the returned text says;
    ``random`` starts it from random weights and refuses a weights file rather than ignore it.
    """
    if spec.name != CXR_PRETRAIN:
        if cxr_weights is not None:
            log.warning("--cxr-weights is used by radiology/cxr-pretrain only; ignored for %s", spec.name)
        if not spec.uses_images:
            return None, None
        if spec.cxr_init is not None:
            return None, f"{spec.cxr_init[0].replace('{task}', task)}/{spec.cxr_init[1]}"
        return None, "random"
    if policy.cxr_pretrain_init == "random":
        if cxr_weights is not None:
            raise MedfuseError(
                f"--cxr-weights '{cxr_weights}' was given but the fidelity switch cxr_pretrain_init is 'random'; set "
                "--switch cxr_pretrain_init=imagenet (config fidelity_switches) to start from it, or leave it out"
            )
        return None, "random"
    if cxr_weights is None:
        log.warning("cxr_pretrain_init is 'imagenet' but no ImageNet weights file was given (train.cxr_weights, "
                    "--cxr-weights): the CXR encoder starts from random weights")
        return None, "random (no ImageNet weights file)"
    return Path(cxr_weights), f"imagenet ({Path(cxr_weights).name})"


def load_pretrained(model: torch.nn.Module, which: str, source: Path) -> None:
    """Load the ``which`` encoder of a checkpoint (or of the one a selected.json names) into ``model``."""
    from medfuse_bench.models import load_encoder

    checkpoint = read_torch(checkpoint_path(source))
    load_encoder(model, which, checkpoint["model"])  # type: ignore[arg-type]
    log.info("%s encoder loaded from %s", which, source)


def train_run(
    task: str,
    experiment: str,
    inputs: RunInputs,
    out_dir: str | os.PathLike[str],
    settings: FitSettings,
    *,
    draw: int = 0,
    uni_fraction: float = 1.0,
    threads: int | None = None,
    model_overrides: dict[str, Any] | None = None,
    on_epoch_end: Any = None,
) -> dict[str, Any]:
    """Train ``experiment`` on ``task`` into ``out_dir``; returns result.json's content.

    ``model_overrides`` adds build_model options (e.g. smaller hidden sizes in tests).
    """
    from medfuse_bench.models import build_model, freeze_encoder

    policy = settings.policy
    spec = get_experiment(experiment, task, policy)
    labels = labels_of(task)
    if threads:
        torch.set_num_threads(threads)
    if spec.ehr_init is not None:
        _require_file(inputs.ehr_init, "--ehr-init", f"for experiment '{experiment}' (the selected.json of "
                      f"{spec.ehr_init[0].replace('{task}', task)}/{spec.ehr_init[1]})")
    if spec.cxr_init is not None:
        _require_file(inputs.cxr_init, "--cxr-init", f"for experiment '{experiment}' (the selected.json of "
                      f"{spec.cxr_init[0].replace('{task}', task)}/{spec.cxr_init[1]})")
    for which, given, source in (("ehr", inputs.ehr_init, spec.ehr_init), ("cxr", inputs.cxr_init, spec.cxr_init)):
        if given is not None and source is None:
            log.warning("--%s-init is ignored: %s/%s starts its %s encoder from random weights under this fidelity "
                        "policy", which, task, experiment, which.upper())
    if spec.uses_images:
        _require_file(inputs.image_cache, "--image-cache", f"for experiment '{experiment}'")
    fraction = resolve_uni_fraction(spec, uni_fraction)

    if task == RADIOLOGY:
        cxr_uni = _require_file(inputs.cxr_uni, "--cxr-uni", "for radiology/cxr-pretrain")
        train_set = cxr_uni_set(cxr_uni, inputs.image_cache, "train", labels)  # type: ignore[arg-type]
        val_set = cxr_uni_set(cxr_uni, inputs.image_cache, "val", labels)  # type: ignore[arg-type]
    else:
        tasks_dir = _require_file(inputs.tasks_dir, "--tasks-dir", f"for task '{task}'")
        data = load_task_data(tasks_dir, task, labels, inputs.image_cache if spec.uses_images else None,
                              spec.timeseries)
        common = {"fraction": fraction, "policy": policy, "seed": settings.seed}
        train_set = sets_for(spec, data, "train", training=True, **common)
        val_set = sets_for(spec, data, "val", training=False, **common)
    log.info("%s/%s: %d training samples per epoch, %d validation samples", task, experiment,
             train_set.epoch_size(), len(val_set))

    weights, cxr_init = cxr_start(spec, task, policy, inputs.cxr_weights)
    options = model_options(spec, task, policy, weights)
    options.update(model_overrides or {})
    seed_everything(settings.seed)
    model = build_model(spec.family, len(labels), **options)
    if spec.ehr_init is not None:
        load_pretrained(model, "ehr", inputs.ehr_init)  # type: ignore[arg-type]
    if spec.cxr_init is not None:
        load_pretrained(model, "cxr", inputs.cxr_init)  # type: ignore[arg-type]
    if spec.freeze_encoders:
        for which in ("ehr", "cxr"):
            freeze_encoder(model, which)  # type: ignore[arg-type]
    image_size = None if train_set.images is None else int(train_set.images.shape[1])
    if image_size is not None and settings.crop is not None and not 8 <= settings.crop <= image_size:
        raise MedfuseError(f"--crop {settings.crop} must lie between 8 and the cached image side {image_size}")
    settings.meta = {
        "task": task, "experiment": experiment, "family": spec.family, "num_classes": len(labels),
        "labels": labels, "draw": draw, "lr": settings.lr, "fidelity": policy.as_dict(), "cxr_init": cxr_init,
        "options": {k: v for k, v in options.items() if k != "cxr_weights"},
        "image_size": image_size, "crop": settings.crop or image_size, "uni_fraction": fraction,
    }
    return fit(model, train_set, val_set, settings, out_dir, on_epoch_end=on_epoch_end)
