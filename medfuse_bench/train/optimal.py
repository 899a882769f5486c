"""MedFuse (OPTIMAL) chosen on validation: the uni-modal sweep point with the best validation AUROC.

The paper fine-tunes MedFuse (PT) with the paired training stays plus N % of the uni-modal (EHR-only) ones for a
sweep of N, and keeps the N with the best validation AUROC (appendix A.3, Figure A1); it ran the sweep at MedFuse
(PT)'s selected learning rate. Under the fidelity switch ``optimal_fraction: sweep_best`` the workflow does the
same: ``select-optimal`` reads the sweep points' ``selected.json`` and writes ``models/{task}/medfuse-optimal/
selected.json`` naming the chosen point's checkpoint, so MedFuse (OPTIMAL) is not trained on its own. Under
``paper_fixed`` medfuse-optimal is trained at ``train.uni_modal_fraction`` (the paper's 0.1 / 0.2) instead.

Rule: the highest validation AUROC wins; on a tie the smaller fraction wins (fewer uni-modal stays for the same
validation score); a missing or NaN AUROC ranks last.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from medfuse_bench.errors import MedfuseError
from medfuse_bench.io import atomic_path, read_json_object, write_json
from medfuse_bench.train.experiments import OPTIMAL, sweep_name, sweep_percent
from medfuse_bench.train.metrics import selection_score

TIE_RULE = "best validation AUROC; ties: the smaller fraction; a missing AUROC ranks last"


def sweep_fractions(sweep: Sequence[float], configured: Iterable[float], optimal_fraction: str) -> list[float]:
    """Fractions of the uni-modal sweep, ascending, one per experiment name.

    Under ``sweep_best`` the configured fractions (``train.uni_modal_fraction``, the paper's 0.1 and 0.2) join the
    sweep, so OPTIMAL is always chosen among them too and a short sweep cannot hide the paper's choice.

    >>> sweep_fractions([1.0, 0.0], [0.1, 0.2], "sweep_best")
    [0.0, 0.1, 0.2, 1.0]
    >>> sweep_fractions([1.0, 0.0], [0.1, 0.2], "paper_fixed")
    [0.0, 1.0]
    """
    fractions = list(sweep) + (list(configured) if optimal_fraction == "sweep_best" else [])
    by_name = {sweep_name(f): round(f * 100) / 100 for f in fractions}
    return sorted(by_name.values())


def choose_point(points: Sequence[Mapping[str, Any]]) -> int:
    """Index of the chosen sweep point: highest ``val_auroc``, then the smallest ``fraction``.

    >>> choose_point([{"fraction": 0.0, "val_auroc": 0.80}, {"fraction": 0.2, "val_auroc": 0.85},
    ...               {"fraction": 0.1, "val_auroc": 0.85}, {"fraction": 1.0, "val_auroc": None}])
    2
    """
    if not points:
        raise MedfuseError("select-optimal needs at least one sweep point (--points)")
    return min(range(len(points)),
               key=lambda i: (-selection_score(points[i]["val_auroc"]), float(points[i]["fraction"])))


def _read(path: Path) -> dict[str, Any]:
    data = read_json_object(path, "run `medfuse-bench select` for it first", what="selection file")
    for key in ("lr", "val_auroc", "checkpoint"):
        if key not in data:
            raise MedfuseError(f"selection file '{path}' lacks the key '{key}'; rerun `medfuse-bench select`")
    return data


def selected_lr(path: str | os.PathLike[str]) -> float:
    """The learning rate a ``selected.json`` chose (``train --lr-from``)."""
    return float(_read(Path(path))["lr"])


def selected_uni_fraction(path: str | os.PathLike[str]) -> float | None:
    """The uni-modal fraction a ``selected.json`` names (MedFuse (OPTIMAL) chosen from the sweep), else None."""
    value = _read(Path(path)).get("uni_fraction")
    return None if value is None else float(value)


def read_point(path: str | os.PathLike[str]) -> dict[str, Any]:
    """One sweep point from ``models/{task}/medfuse-p{N}/selected.json``; the fraction comes from the folder name."""
    path = Path(path)
    percent = sweep_percent(path.parent.name)
    if percent is None:
        raise MedfuseError(f"'{path}' is not the selection of a sweep point (models/{{task}}/medfuse-p{{N}}/selected.json)")
    data = _read(path)
    if data.get("experiment") not in (None, path.parent.name):
        raise MedfuseError(f"'{path}' holds experiment '{data['experiment']}', not '{path.parent.name}'")
    checkpoint = Path(data["checkpoint"])
    if not checkpoint.is_absolute() and not checkpoint.exists() and (path.parent / checkpoint).exists():
        checkpoint = path.parent / checkpoint  # as checkpoints.checkpoint_path resolves it
    return {**data, "experiment": path.parent.name, "fraction": percent / 100, "checkpoint": str(checkpoint),
            "selected": str(path)}


def select_optimal(
    point_paths: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    sweep_lr: str,
    pt_selected: str | os.PathLike[str] | None = None,
    checkpoint_out: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Write medfuse-optimal's ``selected.json`` for the best sweep point and return it.

    With ``pt_selected`` (protocol ``sweep_lr: medfuse_pt_best``) every point must have been trained at MedFuse
    (PT)'s selected learning rate; a point trained at another one is an error naming it.
    """
    points = sorted((read_point(p) for p in point_paths), key=lambda p: p["fraction"])
    tasks = {p.get("task") for p in points} - {None}
    if len(tasks) > 1:
        raise MedfuseError(f"select-optimal: the sweep points belong to different tasks ({', '.join(sorted(tasks))})")
    lr_source = None
    if pt_selected is not None:
        pt = _read(Path(pt_selected))
        lr_source = {"selected": str(pt_selected), "lr": pt["lr"]}
        for p in points:
            if not math.isclose(float(p["lr"]), float(pt["lr"]), rel_tol=1e-9):
                raise MedfuseError(
                    f"sweep point '{p['selected']}' was trained at lr {p['lr']:.6g}, not at MedFuse (PT)'s "
                    f"{pt['lr']:.6g} ('{pt_selected}'); rerun that sweep point"
                )
    chosen = points[choose_point(points)]
    if checkpoint_out is not None:  # a copy beside selected.json, as `select` keeps one for every experiment
        with atomic_path(Path(checkpoint_out)) as tmp:
            shutil.copyfile(chosen["checkpoint"], tmp)
        chosen = {**chosen, "checkpoint": str(checkpoint_out)}
    selected = {
        "experiment": OPTIMAL,
        "task": chosen.get("task"),
        "chosen_experiment": chosen["experiment"],
        "uni_fraction": chosen["fraction"],
        "draw": chosen.get("draw"),
        "lr": chosen["lr"],
        "val_auroc": chosen["val_auroc"],
        "val_auprc": chosen.get("val_auprc"),
        "best_epoch": chosen.get("best_epoch"),
        "checkpoint": chosen["checkpoint"],
        "runs": chosen.get("runs", []),
        "protocol": {"optimal_fraction": "sweep_best", "sweep_lr": sweep_lr},
        "rule": TIE_RULE,
        "lr_source": lr_source,
        "sweep": [{k: p.get(k) for k in ("experiment", "fraction", "lr", "draw", "val_auroc", "val_auprc")}
                  for p in points],
    }
    write_json(selected, out)
    return selected
