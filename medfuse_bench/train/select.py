"""Model selection over learning-rate draws: the run with the best validation AUROC (ties: the lower draw).

The chosen run's ``checkpoint.pt`` is copied beside ``selected.json``, which names the copy: later steps
(predictions, encoders of other experiments) read only that, so the run folders' checkpoints can be deleted
once the selection is made (the workflow marks them temporary).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from medfuse_bench.errors import MedfuseError
from medfuse_bench.io import atomic_path, read_json_object, write_json
from medfuse_bench.train.metrics import selection_score


def read_result(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    path = Path(run_dir) / "result.json"
    result = read_json_object(path, "finish that training run first", what="run result")
    for key in ("draw", "lr", "val_auroc"):
        if key not in result:
            raise MedfuseError(f"run result '{path}' lacks the key '{key}'; rerun that training run")
    return result


def choose_run(results: list[dict[str, Any]]) -> int:
    """Index of the best result: highest val_auroc (null/NaN lowest), then the lowest draw.

    >>> choose_run([{"draw": 1, "val_auroc": 0.8}, {"draw": 0, "val_auroc": 0.8}, {"draw": 2, "val_auroc": None}])
    1
    """
    if not results:
        raise MedfuseError("select needs at least one run directory (--runs)")
    return min(range(len(results)), key=lambda i: (-selection_score(results[i]["val_auroc"]), results[i]["draw"]))


def select_runs(run_dirs: list[str | os.PathLike[str]], out: str | os.PathLike[str],
                checkpoint_out: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Copy the best run's checkpoint to ``checkpoint_out`` (default: ``checkpoint.pt`` beside ``out``), write
    ``selected.json`` naming the copy, and return its content."""
    results = [read_result(d) for d in run_dirs]
    best = choose_run(results)
    chosen = results[best]
    source = Path(run_dirs[best]) / "checkpoint.pt"
    if not source.is_file():
        raise MedfuseError(f"checkpoint '{source}' of the selected run does not exist; train that run again")
    target = Path(checkpoint_out) if checkpoint_out is not None else Path(out).parent / "checkpoint.pt"
    if not (target.exists() and target.samefile(source)):
        with atomic_path(target) as tmp:
            shutil.copyfile(source, tmp)
    selected = {
        "experiment": chosen.get("experiment"),
        "task": chosen.get("task"),
        "draw": chosen["draw"],
        "lr": chosen["lr"],
        "val_auroc": chosen["val_auroc"],
        "val_auprc": chosen.get("val_auprc"),
        "best_epoch": chosen.get("best_epoch"),
        "cxr_init": chosen.get("cxr_init"),  # how the CXR encoder started, for the report
        "checkpoint": str(target),
        "run": str(run_dirs[best]),
        "runs": [{k: r.get(k) for k in ("draw", "lr", "val_auroc", "val_auprc")} for r in results],
    }
    write_json(selected, out)
    return selected
