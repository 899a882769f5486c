"""Notes under a result table for every row whose AUROC interval reaches 0.5, with the sizes behind it.

An interval that contains 0.5 means the test set cannot tell the model from a random ranking; one that lies
wholly below 0.5 means it ranks the classes the wrong way round beyond sampling noise. Either way the reader
needs the numbers behind the row: the test stays and positives the interval rests on, and how the model was
selected (the epoch kept of those run, by the validation AUROC on how many stays and positives). On small
sets (the smoke and demo scales) few validation positives make the kept epoch a noisy choice, and a model
kept after its first epochs can still hold a pathway whose sign is that of its random initialisation.

The validation set of an experiment is rebuilt from ``samples.parquet`` with the rule training uses
(:func:`medfuse_bench.train.experiments.validation_stays`); the kept epoch and the epochs run come from
``models/{task}/{experiment}/selected.json`` and ``runs/lr{draw}/result.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.evaluation.predictions import Predictions
from medfuse_bench.report.experiments import TASK_TITLES, TableSpec
from medfuse_bench.paths import Workdir
from medfuse_bench.report.inputs import read_json
from medfuse_bench.report.markdown import format_estimate
from medfuse_bench.resources import task_labels
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.train.experiments import get_experiment, validation_stays

CHANCE = 0.5


@dataclass(frozen=True)
class Selection:
    """How the reported model of an experiment was chosen."""

    epoch: int | None
    epochs_run: int | None
    draws: int
    val_auroc: float | None
    val_stays: int
    val_with_xray: int
    val_positives: tuple[int, ...]  # per label


def reaches_chance(auroc: float | None, low: float | None, high: float | None) -> bool:
    """True when the AUROC interval contains 0.5 or lies below it (the value itself without an interval).

    >>> reaches_chance(0.62, 0.49, 0.75), reaches_chance(0.62, 0.51, 0.75), reaches_chance(0.3, 0.1, 0.45)
    (True, False, True)
    >>> reaches_chance(0.48, None, None), reaches_chance(None, None, None)
    (True, False)
    """
    if auroc is None or np.isnan(auroc):
        return False
    if low is None or np.isnan(low):
        return auroc <= CHANCE
    return low <= CHANCE


def positives_text(counts: Sequence[int]) -> str:
    """Positives of one label, or their range over several.

    >>> positives_text([9]), positives_text([0, 4, 26, 1]), positives_text([3, 3])
    ('9 positives', '0-26 positives per label, 1 label with none', '3 positives per label')
    """
    if len(counts) == 1:
        return f"{counts[0]} positive{'' if counts[0] == 1 else 's'}"
    low, high = min(counts), max(counts)
    text = f"{low}-{high} positives per label" if low != high else f"{low} positives per label"
    none = sum(1 for c in counts if c == 0)
    if none:
        text += f", {none} label{'' if none == 1 else 's'} with none"
    return text


def selection_facts(wd: Workdir, task: str, experiment: str, samples: pl.DataFrame, fidelity: str) -> Selection | None:
    """The selection behind an experiment's predictions; None when it was not trained here (ensemble, an
    experiment this package does not know) or its selected.json is absent."""
    try:
        spec = get_experiment(experiment, task)
        stays = validation_stays(spec.training_set, FidelityPolicy.preset(fidelity).partial_validation)
    except MedfuseError:
        return None
    selected = read_json(wd.selected(task, experiment))
    if selected is None:
        return None
    draw = selected.get("draw")
    # the layout of the train rule: models/{task}/{experiment}/runs/lr{draw}/result.json
    result = read_json(wd.root / "models" / task / experiment / "runs" / f"lr{draw}" / "result.json") or {}
    val = samples.filter(pl.col("split") == "val")
    if stays == "paired":
        val = val.filter(pl.col("cxr_dicom_id").is_not_null())
    labels = task_labels(task)
    positives = val.select(pl.col(labels).fill_null(0).cast(pl.Int64).sum()).row(0)
    return Selection(
        epoch=selected.get("best_epoch"),
        epochs_run=result.get("epochs_run"),
        draws=len(selected.get("runs") or [None]),
        val_auroc=selected.get("val_auroc"),
        val_stays=val.height,
        val_with_xray=int(val["cxr_dicom_id"].is_not_null().sum()),
        val_positives=tuple(int(p) for p in positives),
    )


def selection_text(selection: Selection) -> str:
    """One sentence on how the model was kept.

    >>> print(selection_text(Selection(1, 4, 1, 0.859, 50, 16, (9,))))
    kept epoch 1 of 4 for its validation AUROC 0.859 on 50 stays (16 with an X-ray), 9 positives
    """
    epoch = "kept the epoch" if selection.epoch is None else f"kept epoch {selection.epoch}"
    if selection.epoch is not None and selection.epochs_run is not None:
        epoch += f" of {selection.epochs_run}"
    if selection.draws > 1:
        epoch += f" (best of {selection.draws} learning rates)"
    auroc = "" if selection.val_auroc is None else f" {selection.val_auroc:.3f}"
    xray = "all" if selection.val_with_xray == selection.val_stays else str(selection.val_with_xray)
    return (f"{epoch} for its validation AUROC{auroc} on {selection.val_stays} stays ({xray} with an X-ray), "
            f"{positives_text(selection.val_positives)}")


def chance_notes(
    spec: TableSpec,
    frame: pl.DataFrame,
    wd: Workdir,
    samples: dict[str, pl.DataFrame],
    predictions: Callable[[str, str, str], Predictions | None],
    fidelity: str,
) -> list[str]:
    """One note per row of ``frame`` (a :func:`medfuse_bench.report.tables.metric_table`) whose AUROC interval
    reaches 0.5: the row, its AUROC, the test stays and positives, and the selection behind the model."""
    notes = []
    tasks = frame["task"].unique(maintain_order=True).to_list()
    for i, row in enumerate(frame.iter_rows(named=True)):
        if not reaches_chance(row["auroc"], row["auroc_ci_low"], row["auroc_ci_high"]):
            continue
        task, experiment, test_set = row["task"], row["experiment"], row["prediction_set"]
        cells = spec.rows[i // len(tasks)].cells
        verdict = _verdict(row["auroc_ci_low"], row["auroc_ci_high"])
        text = (f"{', '.join(cells)}, {TASK_TITLES.get(task, task).lower()}: AUROC "
                f"{format_estimate(row['auroc'], row['auroc_ci_low'], row['auroc_ci_high'])} {verdict}")
        preds = predictions(task, experiment, test_set)
        if preds is not None:
            text += f"; test set {preds.y_true.shape[0]} stays, {positives_text(preds.y_true.sum(axis=0).tolist())}"
        selection = selection_facts(wd, task, experiment, samples[task], fidelity) if task in samples else None
        if selection is not None:
            text += f"; {selection_text(selection)}"
        notes.append(text + ".")
    return notes


def _verdict(low: float | None, high: float | None) -> str:
    if low is None or np.isnan(low):
        return "is not above 0.5"
    return "lies below 0.5" if high is not None and high < CHANCE else "contains 0.5"


def notes_markdown(notes: list[str]) -> str:
    """The notes as a paragraph and list under a table; empty without notes."""
    if not notes:
        return ""
    lines = ["", "AUROC intervals that reach 0.5 (not distinguishable from chance on this test set, or below it), "
             "with the positives they rest on and the validation set that chose the model:", ""]
    return "\n".join([*lines, *(f"- {n}" for n in notes)]) + "\n"
