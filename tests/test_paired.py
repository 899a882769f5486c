"""Paired bootstrap differences and rank groups (medfuse_bench.evaluation.paired)."""

from __future__ import annotations

import numpy as np
import pytest

from medfuse_bench.evaluation.bootstrap import resample_indices
from medfuse_bench.evaluation.paired import bootstrap_p_value, paired_evaluation, rank_groups

sklearn_metrics = pytest.importorskip("sklearn.metrics")


def _data(n: int = 300, labels: int = 4, seed: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random((n, labels)) < 0.3).astype(np.int8)
    a = np.clip(rng.normal(0.3 + 0.3 * y, 0.2), 0, 1).round(2)  # rounded: ties
    b = np.clip(rng.normal(0.35 + 0.2 * y, 0.2), 0, 1).round(2)
    return y, a, b


def test_macro_difference_equals_a_scikit_learn_loop_on_the_same_resample_indices():
    y, a, b = _data()
    n_resamples, seed = 120, 11
    paired = paired_evaluation(y, {"a": a, "b": b}, ["l0", "l1", "l2", "l3"], n_resamples=n_resamples, seed=seed)
    expected = {"auroc": [], "auprc": []}
    for idx in resample_indices(y.shape[0], n_resamples, seed):
        assert all(0 < y[idx, j].sum() < idx.size for j in range(y.shape[1]))  # every label defined: plain means
        for metric, fn in (("auroc", sklearn_metrics.roc_auc_score), ("auprc", sklearn_metrics.average_precision_score)):
            macro = [np.mean([fn(y[idx, j], s[idx, j]) for j in range(y.shape[1])]) for s in (a, b)]
            expected[metric].append(macro[0] - macro[1])
    for metric in ("auroc", "auprc"):
        _, samples_a = paired.macro("a", metric)
        _, samples_b = paired.macro("b", metric)
        np.testing.assert_allclose(samples_a - samples_b, expected[metric], rtol=0, atol=1e-9)
        d = paired.difference("a", "b", metric)
        point = np.mean([sklearn_metrics.roc_auc_score(y[:, j], a[:, j]) if metric == "auroc" else
                         sklearn_metrics.average_precision_score(y[:, j], a[:, j]) for j in range(4)]) - np.mean(
                        [sklearn_metrics.roc_auc_score(y[:, j], b[:, j]) if metric == "auroc" else
                         sklearn_metrics.average_precision_score(y[:, j], b[:, j]) for j in range(4)])
        assert d.value == pytest.approx(point, abs=1e-12)
        assert d.ci_low == pytest.approx(np.percentile(expected[metric], 2.5), abs=1e-9)
        assert d.ci_high == pytest.approx(np.percentile(expected[metric], 97.5), abs=1e-9)


def test_a_model_against_itself_differs_by_zero_with_p_one():
    y, a, _ = _data()
    paired = paired_evaluation(y, {"a": a, "same": a.copy()}, list("wxyz"), n_resamples=50, seed=1)
    d = paired.difference("a", "same", "auroc")
    assert (d.value, d.ci_low, d.ci_high, d.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert d.holds_zero


def test_the_paired_interval_is_narrower_than_the_two_models_intervals():
    y, a, b = _data(n=400, labels=1)
    paired = paired_evaluation(y, {"a": a, "b": a * 0.9 + b * 0.1}, ["y"], n_resamples=300, seed=2)
    d = paired.difference("a", "b", "auroc")
    single = paired.evaluations["a"].macro("auroc")
    assert d.ci_high - d.ci_low < (single.ci_high - single.ci_low) / 2


def test_p_value_is_two_sided_and_matches_the_interval():
    assert bootstrap_p_value(np.array([1.0] * 99 + [-1.0])) == pytest.approx(0.02)
    assert bootstrap_p_value(np.array([-1.0] * 99 + [1.0])) == pytest.approx(0.02)
    assert bootstrap_p_value(np.array([np.nan, 1.0, 2.0])) == 0.0
    assert np.isnan(bootstrap_p_value(np.array([np.nan])))


def test_rank_groups_on_a_planted_example():
    # Two near-perfect models that the test set cannot tell apart, two mediocre ones alike, one at chance.
    rng = np.random.default_rng(0)
    n = 600
    y = (rng.random(n) < 0.4).astype(np.int8)
    noise = rng.normal(0, 1, size=(5, n))
    strong = y * 3.0 + noise[0]
    scores = {
        "strong": strong,
        "strong-twin": strong + 1e-3 * noise[1],  # same ranking almost everywhere: difference ~ 0
        "medium": y * 1.0 + noise[2],
        "medium-twin": y * 1.0 + noise[2] + 0.05 * noise[3],
        "chance": noise[4],
    }
    paired = paired_evaluation(y, scores, ["y"], n_resamples=400, seed=7)
    order = sorted(scores, key=lambda k: -paired.evaluations[k].macro("auroc").value)
    groups = rank_groups(order, paired)
    assert groups["strong"] == groups["strong-twin"] == 1
    assert groups["medium"] == groups["medium-twin"] == 2
    assert groups["chance"] == 3
