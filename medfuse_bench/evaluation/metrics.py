"""AUROC and AUPRC (average precision) with 95% bootstrap intervals: per label, macro and micro.

Every resample is a vector of multiplicities over the test rows (see :mod:`.bootstrap`). Sorting the scores
once per label and grouping tied scores turns both metrics into weighted sums over the sorted groups, so all
resamples of a chunk are scored together as ``[resamples, groups]`` matrices with cumulative sums:

- AUROC is the Mann-Whitney statistic with ties counted one half (= scikit-learn's ``roc_auc_score``):
  ``sum_g P_g * (N_below_g + N_g / 2) / (P * N)``.
- AUPRC is average precision exactly as scikit-learn's ``average_precision_score``: the step-wise sum over
  distinct thresholds of recall increase times precision, ``sum_g (P_g / P) * TP_g / (TP_g + FP_g)``.

Here ``P_g`` / ``N_g`` are the positive / negative weights of group ``g`` (scores in descending order) and
``TP_g`` / ``FP_g`` their cumulative sums. With integer multiplicities the sums are exact, so the results
equal scikit-learn's on the same resample indices up to floating-point rounding.

Degenerate data (a policy, never an exception):

- A resample that holds one class only for a label has no AUROC or AUPRC: its value is NaN and it is left out
  of that label's percentile interval; ``Estimate.valid_resamples`` says how many resamples were used.
- A label that is single-class in the whole test set has NaN as value and interval (with a logged warning) and
  is left out of the macro average.

The macro average is the unweighted mean over the labels kept in it, and its interval the percentile interval of
that same mean over the resamples (not the mean of the per-label bounds that the original code reports). A resample
in which a rare label draws no positive (or no negative) says nothing about that label's metric, so there the label
keeps its test-set value: each resample's macro is ``mean_j (metric_j(r) if defined in r else metric_j)``. On the
test set itself this is the point value, so point and interval come from one statistic; every resample in which at
least one label is defined counts (``valid_resamples``; ``macro_complete_resamples`` counts those with every label
defined), and the macro stays an average of values in [0, 1]. The two obvious alternatives fail on rare labels:

- Keeping only the resamples in which every label is defined leaves a small subset when several labels are rare,
  and a biased one: it over-draws the rare labels' positive rows, and so shifts every other label those rows belong
  to (the interval can miss the point value; see ``tests/test_metrics.py``).
- Averaging, per resample, only the labels defined in it moves the macro by a missing label's own level: AUPRC
  follows prevalence, so the average rises whenever a rare, low-AUPRC label drops out.

A bias that no choice here removes: average precision on a resample counts the copies of a drawn positive as tied,
which raises it, most for labels with few positives. On test sets of a few dozen stays the bootstrap distribution of
a macro AUPRC over many such labels can then sit almost wholly above the point value.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medfuse_bench.evaluation.bootstrap import iter_resample_counts, percentile_interval

logger = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("auroc", "auprc")

#: Elements of one weight matrix (resamples x entries) per step: small enough to stay in cache (8 MB of int32).
_CHUNK_ELEMENTS = 2_000_000


#: Below this share of valid resamples an interval is shown with its count, e.g. ``[612/1000]``.
FEW_VALID_SHARE = 0.95


def few_valid(valid: int | None, resamples: int | None) -> bool:
    """Whether an interval rests on fewer than :data:`FEW_VALID_SHARE` of the resamples (False when unknown).

    >>> few_valid(940, 1000), few_valid(950, 1000), few_valid(10, None)
    (True, False, False)
    """
    return valid is not None and bool(resamples) and valid < FEW_VALID_SHARE * resamples


@dataclass(frozen=True)
class Estimate:
    """A metric value with its 95% bootstrap percentile interval, computed from ``valid_resamples`` of
    ``resamples`` bootstrap resamples (0 = not known)."""

    value: float
    ci_low: float
    ci_high: float
    valid_resamples: int
    resamples: int = 0

    def format(self, digits: int = 3) -> str:
        """The paper's notation, e.g. ``0.865 (0.846, 0.884)``; ``n/a`` for an undefined metric; the count of valid
        resamples when it is below 95% of them.

        >>> Estimate(0.8654, 0.8461, 0.884, 1000, 1000).format(), Estimate(0.5, 0.4, 0.6, 612, 1000).format()
        ('0.865 (0.846, 0.884)', '0.500 (0.400, 0.600) [612/1000]')
        """
        if math.isnan(self.value):
            return "n/a"
        if math.isnan(self.ci_low):
            return f"{self.value:.{digits}f}"
        text = f"{self.value:.{digits}f} ({self.ci_low:.{digits}f}, {self.ci_high:.{digits}f})"
        if few_valid(self.valid_resamples, self.resamples):
            text += f" [{self.valid_resamples}/{self.resamples}]"
        return text

    def to_dict(self) -> dict[str, float | int | None]:
        """JSON-ready: NaN becomes null."""
        return {
            "value": _none_if_nan(self.value),
            "ci_low": _none_if_nan(self.ci_low),
            "ci_high": _none_if_nan(self.ci_high),
            "valid_resamples": self.valid_resamples,
        }


def _none_if_nan(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


class SortedScores:
    """One binary problem prepared for weighted scoring: scores sorted once, ties located once.

    Positives and negatives are kept apart, each in descending score order. For positive ``i`` three counts are
    fixed by the scores alone: negatives scoring strictly higher (``neg_above``), negatives scoring at least as
    high (``neg_at_or_above``) and positives scoring at least as high (``pos_at_or_above``). A resample then only
    needs cumulative sums of its weights, read at those positions. ``unit[i]`` is the resampled row that entry
    ``i`` belongs to (the row itself for one label; the stay for the pooled entries of the micro average), so a
    resample's weights are ``counts[:, unit]``.
    """

    def __init__(self, y_true: np.ndarray, y_score: np.ndarray, unit: np.ndarray | None = None) -> None:
        y_true = np.asarray(y_true).ravel() == 1
        y_score = np.asarray(y_score, dtype=np.float64).ravel()
        unit = np.arange(y_score.size) if unit is None else np.asarray(unit).ravel()
        order = np.argsort(-y_score, kind="stable")
        pos = order[y_true[order]]
        neg = order[~y_true[order]]
        self.pos_unit, self.neg_unit = unit[pos], unit[neg]
        pos_desc, neg_asc = -y_score[pos], -y_score[neg]  # ascending in negated score
        self.neg_above = np.searchsorted(neg_asc, pos_desc, side="left")
        self.neg_at_or_above = np.searchsorted(neg_asc, pos_desc, side="right")
        self.pos_at_or_above = np.searchsorted(pos_desc, pos_desc, side="right")
        self.size = y_score.size

    def weighted(self, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """AUROC and average precision of every resample: integer ``counts`` ``[rows, units]`` -> two arrays ``[rows]``.

        Weights and their cumulative sums stay integers (exact, and twice as fast to gather as floats); the
        AUROC numerator is an exact integer too.
        """
        rows = counts.shape[0]
        w_pos = np.take(counts, self.pos_unit, axis=1)
        cum_pos = np.zeros((rows, self.pos_unit.size + 1), dtype=np.int32)
        np.cumsum(w_pos, axis=1, out=cum_pos[:, 1:])
        cum_neg = np.zeros((rows, self.neg_unit.size + 1), dtype=np.int32)
        np.cumsum(np.take(counts, self.neg_unit, axis=1), axis=1, out=cum_neg[:, 1:])
        n_pos, n_neg = cum_pos[:, -1].astype(np.int64), cum_neg[:, -1].astype(np.int64)
        fp_above = np.take(cum_neg, self.neg_above, axis=1)
        fp_at = np.take(cum_neg, self.neg_at_or_above, axis=1)
        tp_at = np.take(cum_pos, self.pos_at_or_above, axis=1)
        # Mann-Whitney, doubled to stay integer: negatives below count two, tied negatives one.
        u_twice = np.sum(w_pos * (2 * n_neg[:, None] - fp_above - fp_at), axis=1)  # int64: no overflow
        # Step-wise AP: recall rises by w / P at each positive, at the precision of its score threshold
        # (a zero-weight positive above every weighted entry has 0 / 0 precision; it contributes nothing).
        precision = tp_at / np.maximum(tp_at + fp_at, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            auroc = u_twice / (2.0 * n_pos * n_neg)
            ap = np.sum(w_pos * precision, axis=1) / n_pos
        degenerate = (n_pos == 0) | (n_neg == 0)
        auroc[degenerate] = np.nan
        ap[degenerate] = np.nan
        return auroc, ap

    def point(self) -> tuple[float, float]:
        """AUROC and average precision of the data as given (every entry weight one)."""
        units = int(max(self.pos_unit.max(initial=-1), self.neg_unit.max(initial=-1))) + 1
        auroc, ap = self.weighted(np.ones((1, units), dtype=np.int32))
        return float(auroc[0]), float(ap[0])


def auroc_score(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """AUROC of one binary label (NaN when only one class is present).

    >>> auroc_score(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8]))
    0.75
    """
    return SortedScores(y_true, y_score).point()[0]


def average_precision(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Average precision (AUPRC) of one binary label, as scikit-learn's (NaN when only one class is present).

    >>> round(average_precision(np.array([0, 0, 1, 1]), np.array([0.1, 0.4, 0.35, 0.8])), 6)
    0.833333
    """
    return SortedScores(y_true, y_score).point()[1]


def bootstrap_resamples(
    y_true: np.ndarray, y_score: np.ndarray, counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """AUROC and AP of each label on each resample given as multiplicities ``[resamples, n]``.

    ``y_true`` and ``y_score`` are ``[n]`` or ``[n, labels]``; returns two arrays ``[labels, resamples]``.
    """
    y_true, y_score = _as_matrix(y_true), _as_matrix(y_score)
    out = np.empty((2, y_true.shape[1], counts.shape[0]))
    for j in range(y_true.shape[1]):
        out[0, j], out[1, j] = SortedScores(y_true[:, j], y_score[:, j]).weighted(counts)
    return out[0], out[1]


def _as_matrix(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a[:, None] if a.ndim == 1 else a


@dataclass
class Evaluation:
    """Point values and bootstrap distributions of every label, the micro average and (on demand) macro averages."""

    labels: list[str]
    n: int
    positives: np.ndarray
    n_resamples: int
    seed: int
    point: dict[str, np.ndarray]
    boot: dict[str, np.ndarray]
    micro_point: dict[str, float]
    micro_boot: dict[str, np.ndarray]
    macro_excluded: list[str] = field(default_factory=list)

    def label(self, metric: str, label: str) -> Estimate:
        j = self.labels.index(label)
        return _estimate(float(self.point[metric][j]), self.boot[metric][j])

    def _macro_index(self, labels: list[str] | None) -> list[int]:
        chosen = self.labels if labels is None else labels
        return [self.labels.index(lab) for lab in chosen if lab not in self.macro_excluded]

    def macro_samples(self, metric: str, labels: list[str] | None = None) -> tuple[float, np.ndarray]:
        """The macro over ``labels`` (default all; single-class labels of the test set left out) and its bootstrap
        distribution: per resample, the mean over those labels, each undefined one at its test-set value (NaN where
        none is defined; see the module's notes)."""
        idx = self._macro_index(labels)
        if not idx:
            return float("nan"), np.full(self.n_resamples, np.nan)
        point = self.point[metric][idx]
        boot = self.boot[metric][idx]
        samples = np.where(np.isnan(boot), point[:, None], boot).mean(axis=0)
        samples[np.isnan(boot).all(axis=0)] = np.nan  # no label defined: the resample says nothing
        return float(np.mean(point)), samples

    def macro(self, metric: str, labels: list[str] | None = None) -> Estimate:
        """Unweighted mean over ``labels`` (default all), leaving out labels that are single-class in the test set,
        with the percentile interval of :meth:`macro_samples`."""
        return _estimate(*self.macro_samples(metric, labels))

    def macro_complete_resamples(self, labels: list[str] | None = None) -> int:
        """Resamples in which every label of the macro is defined (in the others, some label holds its test-set value)."""
        idx = self._macro_index(labels)
        if not idx or self.n == 0:
            return 0
        return int((~np.isnan(self.boot["auroc"][idx])).all(axis=0).sum())

    def micro(self, metric: str) -> Estimate:
        return _estimate(self.micro_point[metric], self.micro_boot[metric])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: macro, micro and per-label estimates with prevalence."""
        return {
            "n": self.n,
            "bootstrap": self.n_resamples,
            "seed": self.seed,
            "labels": list(self.labels),
            "macro": {m: self.macro(m).to_dict() for m in METRICS},
            "micro": {m: self.micro(m).to_dict() for m in METRICS},
            "macro_excluded_labels": list(self.macro_excluded),
            "macro_complete_resamples": self.macro_complete_resamples(),
            "per_label": {
                lab: {
                    "positives": int(self.positives[j]),
                    "prevalence": float(self.positives[j] / self.n) if self.n else None,
                    **{m: self.label(m, lab).to_dict() for m in METRICS},
                }
                for j, lab in enumerate(self.labels)
            },
        }


def _estimate(value: float, samples: np.ndarray) -> Estimate:
    if math.isnan(value):
        return Estimate(float("nan"), float("nan"), float("nan"), 0, samples.size)
    low, high, valid = percentile_interval(samples)
    return Estimate(value, low, high, valid, samples.size)


def evaluate(
    y_true: np.ndarray,
    y_score: np.ndarray,
    labels: list[str],
    *,
    n_resamples: int = 1000,
    seed: int = 2022,
    micro: bool = True,
    warn: bool = True,
) -> Evaluation:
    """Score predictions ``[n, labels]`` (or ``[n]``) against 0/1 truth with a seeded bootstrap.

    Every label (and the micro average, which pools all labels of a stay) uses the same resamples, drawn as in
    :func:`medfuse_bench.evaluation.bootstrap.resample_indices` with ``seed``. ``warn=False`` leaves the warning
    about single-class labels to a caller that scores many files of one test set (``macro_excluded`` lists them).

    >>> ev = evaluate(np.array([0, 1, 0, 1, 1]), np.array([0.2, 0.9, 0.4, 0.3, 0.8]), ["mortality"], n_resamples=50)
    >>> ev.macro("auroc").value
    0.8333333333333334
    """
    y_true, y_score = _as_matrix(y_true).astype(np.float64), _as_matrix(y_score).astype(np.float64)
    if y_true.shape != y_score.shape or y_true.shape[1] != len(labels):
        raise ValueError(f"shapes {y_true.shape} / {y_score.shape} do not match {len(labels)} labels")
    n, n_labels = y_true.shape
    prepared = [SortedScores(y_true[:, j], y_score[:, j]) for j in range(n_labels)]
    pooled = SortedScores(y_true, y_score, unit=np.repeat(np.arange(n), n_labels)) if micro and n_labels > 1 else None

    point = {m: np.empty(n_labels) for m in METRICS}
    for j, p in enumerate(prepared):
        point["auroc"][j], point["auprc"][j] = p.point()
    positives = y_true.sum(axis=0)
    excluded = [labels[j] for j in range(n_labels) if np.isnan(point["auroc"][j])]
    if excluded and warn:
        logger.warning(
            "only one class in the test set for %d label(s) (%s): AUROC/AUPRC undefined, left out of the macro",
            len(excluded),
            ", ".join(excluded[:5]) + (" ..." if len(excluded) > 5 else ""),
        )

    boot = {m: np.empty((n_labels, n_resamples)) for m in METRICS}
    micro_boot = {m: np.empty(n_resamples) for m in METRICS}
    chunk = max(1, _CHUNK_ELEMENTS // max(n, 1))
    start = 0
    if n == 0:  # nothing to resample: every metric is undefined
        for m in METRICS:
            boot[m][:] = np.nan
            micro_boot[m][:] = np.nan
    for counts in iter_resample_counts(n, n_resamples if n else 0, seed, chunk):
        stop = start + counts.shape[0]
        for j, p in enumerate(prepared):
            boot["auroc"][j, start:stop], boot["auprc"][j, start:stop] = p.weighted(counts)
        if pooled is not None:  # the pooled entries are labels times wider: score them in slices of resamples
            step = max(1, _CHUNK_ELEMENTS // pooled.size)
            for lo in range(0, counts.shape[0], step):
                hi = min(lo + step, counts.shape[0])
                micro_boot["auroc"][start + lo : start + hi], micro_boot["auprc"][start + lo : start + hi] = (
                    pooled.weighted(counts[lo:hi])
                )
        start = stop

    if pooled is not None:
        micro_point = dict(zip(METRICS, pooled.point(), strict=True))
    else:  # one label: the micro average is the label's metric
        micro_point = {m: float(point[m][0]) for m in METRICS}
        micro_boot = {m: boot[m][0].copy() for m in METRICS}
    return Evaluation(
        labels=list(labels),
        n=n,
        positives=positives,
        n_resamples=n_resamples,
        seed=seed,
        point=point,
        boot=boot,
        micro_point=micro_point,
        micro_boot=micro_boot,
        macro_excluded=excluded,
    )
