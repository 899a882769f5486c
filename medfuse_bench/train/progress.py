"""Progress lines of a training run: per epoch its scores, its time and the time the run may still take.

A training job's output goes to its log file (``--quiet`` turns off the progress bars, not these lines), so
the log shows where a run stands without a terminal.
"""

from __future__ import annotations

import math
from typing import Any


def format_duration(seconds: float) -> str:
    """A duration for a progress line.

    >>> format_duration(12.34), format_duration(425), format_duration(7380)
    ('12.3 s', '7 min 05 s', '2 h 03 min')
    """
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def epochs_left(epoch: int, max_epochs: int, bad_epochs: int, patience: int | None, stopped: bool) -> tuple[int, int]:
    """The fewest and the most epochs a run can still train after ``epoch``: early stopping may end it after
    ``patience - bad_epochs`` more epochs without a gain, ``max_epochs`` ends it at the latest.

    >>> epochs_left(3, 50, 1, 15, False), epochs_left(49, 50, 0, 15, False), epochs_left(9, 50, 15, 15, True)
    ((14, 47), (1, 1), (0, 0))
    """
    if stopped:
        return 0, 0
    most = max(max_epochs - epoch, 0)
    if patience is None:  # no early stopping: the run goes to max_epochs
        return most, most
    return min(max(patience - bad_epochs, 0), most), most


def _score(value: float | None) -> str:
    return "nan" if value is None or math.isnan(value) else f"{value:.4f}"


def epoch_report(history: list[dict[str, Any]], state: dict[str, Any], max_epochs: int, patience: int | None) -> str:
    """The progress line of the last epoch of ``history``; the time left is the mean epoch time so far times
    the fewest and the most epochs left (``state`` holds the early-stopping counters).

    >>> row = {"epoch": 2, "train_loss": 0.5, "val_loss": 0.4, "val_auroc": 0.7, "val_auprc": 0.3, "seconds": 30.0}
    >>> state = {"best_auroc": 0.72, "best_epoch": 1, "bad_epochs": 1, "stopped": False}
    >>> epoch_report([{**row, "epoch": 1, "seconds": 50.0}, row], state, max_epochs=10, patience=3)
    'epoch 2/10: train loss 0.5000, val loss 0.4000, val AUROC 0.7000 (best 0.7200 at epoch 1), AUPRC 0.3000; 30.0 s; 1 min 20 s to 5 min 20 s left (2-8 epochs, early stopping decides)'
    """
    row = history[-1]
    fewest, most = epochs_left(row["epoch"], max_epochs, state["bad_epochs"], patience, state["stopped"])
    per_epoch = sum(r["seconds"] for r in history) / len(history)
    if state["stopped"]:
        left = f"stopping: no validation AUROC gain in {state['bad_epochs']} epochs"
    elif most == 0:
        left = "last epoch"
    elif fewest == most:
        left = f"{format_duration(per_epoch * most)} left ({most} epoch{'s' if most > 1 else ''})"
    else:
        left = (f"{format_duration(per_epoch * fewest)} to {format_duration(per_epoch * most)} left "
                f"({fewest}-{most} epochs, early stopping decides)")
    return (f"epoch {row['epoch']}/{max_epochs}: train loss {row['train_loss']:.4f}, val loss {_score(row['val_loss'])}, "
            f"val AUROC {_score(row['val_auroc'])} (best {_score(state['best_auroc'])} at epoch {state['best_epoch']}), "
            f"AUPRC {_score(row['val_auprc'])}; {format_duration(row['seconds'])}; {left}")
