"""Table A1: the learning rate selected for every experiment, read from its ``selected.json``.

The paper's rows come first, in its order (the Unified row follows the switch unified_row); then every other
experiment of this run that has a selection (MedFuse (OPTIMAL), the zeros variants, the sweep points, ...), and the
task-independent CheXpert pretraining under the table.
"""

from __future__ import annotations

import polars as pl

from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.report.experiments import TASK_TITLES, display_name
from medfuse_bench.paths import Workdir
from medfuse_bench.report.inputs import read_json
from medfuse_bench.report.markdown import MISSING, markdown_table
from medfuse_bench.report.policy import unified_experiment

#: Table A1 of the paper: (method, experiment); None stands for the Unified row.
PAPER_ROWS: tuple[tuple[str, str | None], ...] = (
    ("LSTM trained with EHR_PAIRED", "ehr-paired"),
    ("LSTM trained with EHR_PARTIAL", "ehr-partial"),
    ("Early trained with (EHR + CXR)_PARTIAL", "early-partial"),
    ("Early trained with (EHR + CXR)_PAIRED", "early-paired"),
    ("Joint trained with (EHR + CXR)_PARTIAL", "joint-partial"),
    ("Joint trained with (EHR + CXR)_PAIRED", "joint-paired"),
    ("MMTM", "mmtm"),
    ("DAFT", "daft"),
    ("Unified", None),
    ("MedFuse (Randomly initialized encoders)", "medfuse-ri"),
    ("MedFuse (Pre-trained encoders)", "medfuse-pt"),
)
#: Experiments listed after the paper's rows when they have a selection, in this order (then the sweep points).
EXTRA_ROWS: tuple[str, ...] = ("medfuse-optimal", "cxr-paired", "early-partial-zeros", "joint-partial-zeros",
                               "multihead-partial")
PRETRAIN = ("radiology", "cxr-pretrain")

_SCHEMA = {"method": pl.String(), "experiment": pl.String(), "task": pl.String(), "lr": pl.Float64(),
           "draw": pl.Int64(), "runs": pl.Int64(), "val_auroc": pl.Float64(), "source": pl.String()}


def _record(wd: Workdir, method: str, experiment: str, task: str) -> dict[str, object]:
    selected = read_json(wd.selected(task, experiment)) or {}
    source = selected.get("chosen_experiment")
    return {"method": method, "experiment": experiment, "task": task, "lr": selected.get("lr"),
            "draw": selected.get("draw"), "runs": len(selected["runs"]) if "runs" in selected else None,
            "val_auroc": selected.get("val_auroc"), "source": source}


def table_a1(wd: Workdir, tasks: list[str], policy: FidelityPolicy) -> pl.DataFrame:
    """One row per (method, task): the selected learning rate, its draw, how many runs were compared, validation
    AUROC, and for medfuse-optimal chosen from the sweep the sweep point it is (``source``); null when absent."""
    rows = [(m, e if e is not None else unified_experiment(policy)) for m, e in PAPER_ROWS]
    shown = {e for _, e in rows}
    sweep = sorted({e for t in tasks for _, e in wd.sweep(t)}, key=lambda e: int(e.removeprefix("medfuse-p")))
    for experiment in (*EXTRA_ROWS, *sweep):
        if experiment not in shown and any(wd.selected(t, experiment).exists() for t in tasks):
            rows.append((display_name(experiment), experiment))
            shown.add(experiment)
    records = [_record(wd, m, e, t) for m, e in rows for t in tasks]
    if wd.selected(*PRETRAIN).exists():
        records.append(_record(wd, "ResNet-34 pretrained on CXR_UNI", PRETRAIN[1], PRETRAIN[0]))
    return pl.DataFrame(records, schema=_SCHEMA)


def _lr(value: float | None) -> str:
    return MISSING if value is None else f"{value:.3e}"


def table_a1_markdown(frame: pl.DataFrame, tasks: list[str]) -> str:
    """Method, experiment, then the learning rate per task (paper order of the task columns)."""
    body = frame.filter(pl.col("task") != PRETRAIN[0])
    methods = body.select("method", "experiment").unique(maintain_order=True)
    rows = []
    for method, experiment in methods.iter_rows():
        cells = [method, f"`{experiment}`"]
        for task in tasks:
            hit = body.filter((pl.col("experiment") == experiment) & (pl.col("task") == task))
            row = hit.row(0, named=True) if hit.height else {}
            text = _lr(row.get("lr"))
            if row.get("source"):
                text += f" (`{row['source']}`)"
            cells.append(text)
        rows.append(cells)
    headers = ["Method", "Experiment", *(f"{TASK_TITLES[t]} learning rate" for t in tasks)]
    text = ("### Table A1: learning rates selected on validation AUROC\n\n"
            "The learning rate in each experiment's `selected.json`: the run with the best validation AUROC among "
            "its learning-rate draws. A MedFuse (OPTIMAL) chosen from the uni-modal sweep names its sweep point. "
            "CSV columns `runs` and `val_auroc`: how many runs were compared, and the chosen run's validation "
            "AUROC.\n\n")
    text += markdown_table(headers, rows, numeric_from=2)
    pretrain = frame.filter(pl.col("task") == PRETRAIN[0])
    if pretrain.height:
        text += f"\n\nCheXpert pretraining on CXR_UNI (`radiology/cxr-pretrain`, shared by both tasks): {_lr(pretrain['lr'][0])}."
    return text + "\n"
