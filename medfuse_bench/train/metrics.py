"""Validation metrics for model selection: macro AUROC and AUPRC over the labels.

A label whose validation set holds a single class has no AUROC; it is left out of the macro mean, and a
set where every label is single-class scores NaN (model selection then treats it as no gain).
"""

from __future__ import annotations

import math

import numpy as np


def macro_scores(targets: np.ndarray, probabilities: np.ndarray) -> tuple[float, float]:
    """(macro AUROC, macro AUPRC) over the columns of [n, C] targets and probabilities.

    >>> macro_scores(np.array([[0], [1], [1]]), np.array([[0.1], [0.8], [0.7]]))
    (1.0, 1.0)
    >>> macro_scores(np.array([[1], [1]]), np.array([[0.1], [0.8]]))
    (nan, nan)
    """
    # Imported here: `select`, one short process per experiment, needs only selection_score, and importing
    # scikit-learn takes most of its run time.
    from sklearn.metrics import average_precision_score, roc_auc_score

    targets = np.asarray(targets).reshape(len(targets), -1)
    probabilities = np.asarray(probabilities, dtype=np.float64).reshape(targets.shape)
    aurocs, auprcs = [], []
    for column in range(targets.shape[1]):
        y = targets[:, column]
        if y.size == 0 or y.min() == y.max():
            continue
        aurocs.append(roc_auc_score(y, probabilities[:, column]))
        auprcs.append(average_precision_score(y, probabilities[:, column]))
    if not aurocs:
        return math.nan, math.nan
    return float(np.mean(aurocs)), float(np.mean(auprcs))


def selection_score(auroc: float | None) -> float:
    """A validation AUROC as a comparable number: NaN / None rank below every real score."""
    return -math.inf if auroc is None or math.isnan(auroc) else float(auroc)
