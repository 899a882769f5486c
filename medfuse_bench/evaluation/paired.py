"""Paired bootstrap comparisons of models scored on the same stays, and rank groups that honour their intervals.

Every model is scored by :func:`medfuse_bench.evaluation.metrics.evaluate` with the same seed on the same rows in
the same order, so resample ``r`` draws the same stays for every model. The difference of two models' macro AUROC
(or AUPRC) on resample ``r`` is then a draw of the bootstrap distribution of the difference itself; its percentile
interval is narrower than the two models' intervals side by side, because both models meet the same hard and easy
stays. The macro of each resample follows :meth:`Evaluation.macro_samples` (a label undefined in a resample keeps
its test-set value), so point, interval and difference come from one statistic.

- **p-value**: two-sided, from the same distribution: ``min(1, 2 * min(share of d <= 0, share of d >= 0))`` over the
  valid resamples; it is below 0.05 exactly when the 95% percentile interval leaves out 0 (up to ties at 0). With
  ``B`` resamples the smallest value it can show is 0, read as ``< 2/B``.
- **Rank groups**: entries in leaderboard order (AUROC, then AUPRC); an entry shares the group of the one above when
  the 95% interval of their paired AUROC difference holds 0, and opens the next group otherwise. A group is a run of
  entries that the test set cannot tell apart step by step (the first and last of a long run may still differ).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from medfuse_bench.evaluation.bootstrap import percentile_interval
from medfuse_bench.evaluation.metrics import METRICS, Evaluation, evaluate


@dataclass(frozen=True)
class Difference:
    """``a - b`` of one metric: value, 95% paired bootstrap interval, two-sided bootstrap p-value."""

    value: float
    ci_low: float
    ci_high: float
    p_value: float
    valid_resamples: int
    resamples: int

    def to_dict(self) -> dict[str, float | int | None]:
        def none(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return {"value": none(self.value), "ci_low": none(self.ci_low), "ci_high": none(self.ci_high),
                "p_value": none(self.p_value), "valid_resamples": self.valid_resamples}

    @property
    def holds_zero(self) -> bool:
        """Whether the interval holds 0 (True when it is undefined: no evidence of a difference)."""
        return not (self.ci_low > 0 or self.ci_high < 0)


def bootstrap_p_value(samples: np.ndarray) -> float:
    """Two-sided bootstrap p-value of a difference from its resampled values (NaN ignored; NaN when none is valid).

    >>> bootstrap_p_value(np.array([0.1, 0.2, -0.1, 0.3])), bootstrap_p_value(np.array([0.1, 0.2]))
    (0.5, 0.0)
    """
    valid = samples[~np.isnan(samples)]
    if valid.size == 0:
        return float("nan")
    return float(min(1.0, 2.0 * min(np.mean(valid <= 0), np.mean(valid >= 0))))


def difference(point_a: float, samples_a: np.ndarray, point_b: float, samples_b: np.ndarray) -> Difference:
    """``a - b`` from two models' point values and bootstrap distributions on the same resamples."""
    if math.isnan(point_a) or math.isnan(point_b):
        nan = float("nan")
        return Difference(nan, nan, nan, nan, 0, samples_a.size)
    samples = samples_a - samples_b
    low, high, valid = percentile_interval(samples)
    return Difference(point_a - point_b, low, high, bootstrap_p_value(samples), valid, samples.size)


@dataclass
class PairedEvaluation:
    """Macro point values and bootstrap distributions ``[resamples]`` of several models on the same resamples."""

    names: list[str]
    n: int
    n_resamples: int
    evaluations: dict[str, Evaluation]

    def macro(self, name: str, metric: str) -> tuple[float, np.ndarray]:
        return self.evaluations[name].macro_samples(metric)

    def difference(self, a: str, b: str, metric: str) -> Difference:
        """Macro ``metric`` of ``a`` minus that of ``b``."""
        return difference(*self.macro(a, metric), *self.macro(b, metric))

    def against(self, reference: str) -> dict[str, dict[str, Difference]]:
        """Every model's difference from ``reference`` (``model - reference``) per metric."""
        return {name: {m: self.difference(name, reference, m) for m in METRICS} for name in self.names}


def paired_evaluation(
    y_true: np.ndarray,
    scores: Mapping[str, np.ndarray],
    labels: Sequence[str],
    *,
    n_resamples: int,
    seed: int,
) -> PairedEvaluation:
    """Score every model of ``scores`` (name -> ``[n, labels]`` probabilities, rows aligned with ``y_true``) on
    the same seeded resamples. Vectorised per model (see :mod:`.metrics`); no micro average."""
    evaluations = {
        name: evaluate(y_true, y_score, list(labels), n_resamples=n_resamples, seed=seed, micro=False, warn=False)
        for name, y_score in scores.items()
    }
    n = int(np.asarray(y_true).shape[0])
    return PairedEvaluation(list(scores), n, n_resamples, evaluations)


def rank_groups(ordered: Sequence[str], paired: PairedEvaluation, metric: str = "auroc") -> dict[str, int]:
    """Rank group of each name of ``ordered`` (best first): the group of the one above while the interval of their
    paired ``metric`` difference holds 0, the next group otherwise.

    >>> y = np.array([0, 1] * 50)
    >>> good, bad = y * 0.8 + 0.1, np.linspace(0, 1, 100)
    >>> p = paired_evaluation(y, {"good": good, "good2": good, "bad": bad}, ["y"], n_resamples=200, seed=0)
    >>> rank_groups(["good", "good2", "bad"], p)
    {'good': 1, 'good2': 1, 'bad': 2}
    """
    groups: dict[str, int] = {}
    group = 1
    for i, name in enumerate(ordered):
        if i and not paired.difference(ordered[i - 1], name, metric).holds_zero:
            group += 1
        groups[name] = group
    return groups


def format_difference(d: Mapping[str, float | None] | Difference, digits: int = 3) -> str:
    """``+0.012 (-0.004, +0.027), p=0.14``; ``—`` without a value.

    >>> format_difference({"value": 0.0123, "ci_low": -0.004, "ci_high": 0.027, "p_value": 0.14})
    '+0.012 (-0.004, +0.027), p=0.14'
    >>> format_difference({"value": -0.05, "ci_low": -0.08, "ci_high": -0.02, "p_value": 0.0})
    '-0.050 (-0.080, -0.020), p<0.002'
    """
    if isinstance(d, Difference):
        d = {**d.to_dict(), "resamples": d.resamples}
    value = d.get("value")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = f"{value:+.{digits}f}"
    low, high = d.get("ci_low"), d.get("ci_high")
    if low is not None and high is not None:
        text += f" ({low:+.{digits}f}, {high:+.{digits}f})"
    p = d.get("p_value")
    if p is not None:
        resamples = d.get("resamples") or 1000
        text += f", p<{2 / resamples:.3g}" if p == 0 else f", p={p:.2g}"
    return text
