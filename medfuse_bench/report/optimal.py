"""What MedFuse (OPTIMAL) stands for in a report: the uni-modal fraction per task, and how it was fixed.

Under ``optimal_fraction: sweep_best``, ``models/{task}/medfuse-optimal/selected.json`` names the sweep point chosen
on validation AUROC (``chosen_experiment``, written by ``select-optimal``); that file is what predict used, so it
is read rather than the config. Under ``paper_fixed`` medfuse-optimal was trained at ``train.uni_modal_fraction``
of the resolved config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.report.experiments import TASK_TITLES
from medfuse_bench.paths import Workdir
from medfuse_bench.report.inputs import read_json

OPTIMAL = "medfuse-optimal"


@dataclass(frozen=True)
class OptimalChoice:
    task: str
    #: Percent of the uni-modal train stays; None when unknown (no selection file and no configured fraction).
    percent: int | None
    #: sweep_best (chosen on validation) or paper_fixed (the configured fraction).
    how: str
    chosen_experiment: str | None = None
    val_auroc: float | None = None
    sweep_lr: str | None = None
    #: Percent -> validation AUROC of every sweep point the choice compared.
    sweep: tuple[tuple[int, float | None], ...] = ()
    #: A mismatch between the selection file and the policy, said in the note.
    warning: str | None = None


def _percent(fraction: Any) -> int | None:
    return None if fraction is None else round(float(fraction) * 100)


def optimal_choice(wd: Workdir, task: str, policy: FidelityPolicy, config: dict[str, Any] | None) -> OptimalChoice:
    """The fraction behind MedFuse (OPTIMAL) of one task, from its selection file or the config."""
    selected = read_json(wd.selected(task, OPTIMAL)) or {}
    if "chosen_experiment" in selected:
        protocol = selected.get("protocol") or {}
        warning = None
        if policy.optimal_fraction != "sweep_best":
            warning = (f"models/{task}/{OPTIMAL}/selected.json was chosen from the sweep, but the policy says "
                       f"optimal_fraction={policy.optimal_fraction}; rerun the workflow")
        sweep = tuple((_percent(p.get("fraction")), p.get("val_auroc")) for p in selected.get("sweep", []))
        return OptimalChoice(task, _percent(selected.get("uni_fraction")), "sweep_best", selected["chosen_experiment"],
                             selected.get("val_auroc"), protocol.get("sweep_lr"), sweep, warning)
    configured = ((config or {}).get("train") or {}).get("uni_modal_fraction") or {}
    warning = None
    if selected and policy.optimal_fraction == "sweep_best":
        warning = (f"models/{task}/{OPTIMAL}/selected.json was not chosen from the sweep, but the policy says "
                   "optimal_fraction=sweep_best; rerun the workflow")
    return OptimalChoice(task, _percent(configured.get(task)), "paper_fixed", warning=warning)


def optimal_choices(wd: Workdir, tasks: list[str], policy: FidelityPolicy,
                    config: dict[str, Any] | None) -> dict[str, OptimalChoice]:
    return {t: optimal_choice(wd, t, policy, config) for t in tasks}


def _describe(choice: OptimalChoice, brief: bool) -> str:
    title = TASK_TITLES.get(choice.task, choice.task)
    if choice.percent is None:
        return f"{title}: unknown (no models/{choice.task}/{OPTIMAL}/selected.json)"
    if brief:
        how = (f"`{choice.chosen_experiment}`, the sweep point with the best validation AUROC, Figure A1"
               if choice.how == "sweep_best" else "train.uni_modal_fraction, fixed, not chosen on validation")
        text = f"{title}: **{choice.percent}%** uni-modal ({how})"
    elif choice.how == "sweep_best":
        points = ", ".join(f"{p}%: {'—' if a is None else f'{a:.3f}'}" for p, a in choice.sweep)
        lr = {"medfuse_pt_best": "every point at MedFuse (PT)'s learning rate",
              "own_search": "each point with its own learning-rate search"}.get(choice.sweep_lr or "", "")
        auroc = "—" if choice.val_auroc is None else f"{choice.val_auroc:.3f}"
        text = (f"{title}: **{choice.percent}%** uni-modal (`{choice.chosen_experiment}`, validation AUROC {auroc}, "
                f"the best of the sweep {points}; {lr})")
    else:
        text = (f"{title}: **{choice.percent}%** uni-modal, fixed by train.uni_modal_fraction (the paper's choice), "
                "not chosen on this run's validation")
    return text + (f" — **{choice.warning}**" if choice.warning else "")


def optimal_note(choices: dict[str, OptimalChoice], *, brief: bool = False) -> str:
    """The sentence under a table with MedFuse (OPTIMAL); ``brief`` leaves the sweep's values to Figure A1.

    >>> print(optimal_note({"phenotyping": OptimalChoice("phenotyping", 20, "paper_fixed")}))
    MedFuse (OPTIMAL) = Phenotyping: **20%** uni-modal, fixed by train.uni_modal_fraction (the paper's choice), not chosen on this run's validation.
    >>> print(optimal_note({"phenotyping": OptimalChoice("phenotyping", 10, "sweep_best", "medfuse-p10")}, brief=True))
    MedFuse (OPTIMAL) = Phenotyping: **10%** uni-modal (`medfuse-p10`, the sweep point with the best validation AUROC, Figure A1).
    """
    if not choices:
        return ""
    rule = "" if brief or all(c.how != "sweep_best" for c in choices.values()) else " Ties go to the smaller fraction."
    return "MedFuse (OPTIMAL) = " + "; ".join(_describe(c, brief) for c in choices.values()) + "." + rule


def mark_chosen(frame: pl.DataFrame, choices: dict[str, OptimalChoice]) -> pl.DataFrame:
    """Figure A1 data with a ``chosen`` column: the sweep point that MedFuse (OPTIMAL) is (or uses the fraction of).

    >>> f = pl.DataFrame({"task": ["t", "t"], "percent": [0, 20]})
    >>> mark_chosen(f, {"t": OptimalChoice("t", 20, "sweep_best")})["chosen"].to_list()
    [False, True]
    """
    chosen = pl.DataFrame({"task": list(choices), "chosen_percent": [c.percent for c in choices.values()]},
                          schema={"task": pl.String(), "chosen_percent": pl.Int64()})
    return (frame.join(chosen, on="task", how="left", maintain_order="left")
            .with_columns((pl.col("percent") == pl.col("chosen_percent")).fill_null(False).alias("chosen"))
            .drop("chosen_percent"))
