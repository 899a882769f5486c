"""Checkpoint files: writing them atomically, reading them with a clear error, rebuilding their model.

``checkpoint.pt`` (the best epoch) holds ``model`` (state dict), ``meta`` (family, num_classes, options,
labels, task, experiment, fidelity (the policy's switches), cxr_init, image_size, crop, draw, lr), ``epoch``,
``val_auroc`` and ``val_auprc``.
``last.pt`` (resume state) adds the optimizer(s), the scheduler, RNG states, the history and the
early-stopping state. ``best.resume.pt`` (:data:`RESUME_BEST`) is the best epoch's file under a name that is no
rule's output, kept while a run can still be resumed; ``checkpoint.pt`` is a hard link to it (a copy where links
are not possible). A ``selected.json`` names the checkpoint of the chosen learning-rate draw.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import torch

from medfuse_bench.errors import MedfuseError
from medfuse_bench.io import atomic_path, read_json_object


def save_torch(obj: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """``torch.save`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


#: The best epoch's weights beside ``last.pt``: Snakemake deletes an incomplete job's outputs, ``checkpoint.pt``
#: among them, before it reruns the job, and a resumed run that never improves again would be left without one.
RESUME_BEST = "best.resume.pt"


def link_or_copy(source: Path, target: Path) -> None:
    """Make ``target`` a hard link to ``source`` (a copy where the file system has none), replacing it atomically."""
    tmp = target.with_name(f".{target.name}.link")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def restore_best(copy: Path, best: Path, best_epoch: int | None) -> None:
    """Put back ``best`` (checkpoint.pt) from its resume copy when a run that already has a best epoch lacks it."""
    if best_epoch is None or best.exists():
        return
    if not copy.exists():
        raise MedfuseError(f"'{best.parent}' holds the resume state of a run whose best checkpoint (epoch "
                           f"{best_epoch}) is gone; delete '{best.parent}' to start that run over")
    link_or_copy(copy, best)


def read_torch(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint written by this package (CPU tensors)."""
    path = Path(path)
    if not path.is_file():
        raise MedfuseError(f"checkpoint '{path}' does not exist; train that run first")
    try:
        # Our own files hold numpy RNG states and plain Python objects besides tensors.
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for corrupt files
        raise MedfuseError(f"checkpoint '{path}' cannot be read ({exc}); delete it and train again") from exc
    if not isinstance(obj, dict) or "model" not in obj:
        raise MedfuseError(f"checkpoint '{path}' is not a medfuse-bench checkpoint (no 'model' entry)")
    return obj


def read_selected(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``selected.json``."""
    selected = read_json_object(path, "run `medfuse-bench select` first", what="selection file")
    if "checkpoint" not in selected:
        raise MedfuseError(f"selection file '{path}' lacks the key 'checkpoint'; rerun `medfuse-bench select`")
    return selected


def checkpoint_path(path: str | os.PathLike[str]) -> Path:
    """The checkpoint a path stands for: a ``.pt`` file itself, or the one a ``selected.json`` names.

    A relative checkpoint path in a selection is taken as written when it exists (relative to the working
    directory, as the workflow runs), else relative to the selection file's folder.
    """
    path = Path(path)
    if path.suffix != ".json":
        return path
    named = Path(read_selected(path)["checkpoint"])
    if named.is_absolute() or named.exists():
        return named
    return path.parent / named


def build_from_checkpoint(checkpoint: dict[str, Any]) -> torch.nn.Module:
    """Rebuild the model a checkpoint was trained as and load its weights."""
    from medfuse_bench.models import build_model

    meta = checkpoint.get("meta") or {}
    if "family" not in meta:
        raise MedfuseError("checkpoint lacks its model description ('meta'); it was not written by `medfuse-bench train`")
    model = build_model(meta["family"], int(meta["num_classes"]), **meta.get("options", {}))
    model.load_state_dict(checkpoint["model"])
    return model
