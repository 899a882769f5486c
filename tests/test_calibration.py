"""ECE, Brier and their bootstrap (medfuse_bench.evaluation.calibration)."""

from __future__ import annotations

import numpy as np
import pytest

from medfuse_bench.evaluation.bootstrap import resample_indices
from medfuse_bench.evaluation.calibration import calibrate, equal_mass_bins, expected_calibration_error


def test_ece_against_a_hand_computation():
    y = np.array([0, 0, 1, 0, 1, 1])
    p = np.array([0.1, 0.3, 0.2, 0.6, 0.8, 0.9])
    # three equal-mass bins by score: {0.1, 0.2}, {0.3, 0.6}, {0.8, 0.9}
    # bin means: predicted 0.15 / 0.45 / 0.85, observed 0.5 / 0 / 1; each bin 2 of 6 rows
    hand = (2 / 6) * abs(0.5 - 0.15) + (2 / 6) * abs(0.0 - 0.45) + (2 / 6) * abs(1.0 - 0.85)
    assert expected_calibration_error(y, p, 3) == pytest.approx(hand, abs=1e-12)
    cal = calibrate(y, p, ["y"], n_bins=3, n_resamples=10)
    assert cal.estimate("ece").value == pytest.approx(hand, abs=1e-12)
    assert cal.estimate("brier").value == pytest.approx(np.mean((p - y) ** 2), abs=1e-12)
    rel = cal.reliability
    assert rel["n"].to_list() == [2, 2, 2]
    assert rel["mean_predicted"].to_list() == pytest.approx([0.15, 0.45, 0.85])
    assert rel["observed"].to_list() == pytest.approx([0.5, 0.0, 1.0])


def test_equal_mass_bins_hold_near_equal_counts_and_follow_the_scores():
    p = np.random.default_rng(0).random(103) ** 4  # bunched near 0: equal-width bins would be mostly empty
    bins = equal_mass_bins(p, 10)
    counts = np.bincount(bins)
    assert counts.size == 10 and counts.max() - counts.min() <= 1
    order = np.argsort(p)
    assert np.all(np.diff(bins[order]) >= 0)


def test_bootstrap_equals_a_loop_over_the_same_resample_indices():
    rng = np.random.default_rng(4)
    y = (rng.random((80, 3)) < 0.3).astype(np.int8)
    p = rng.random((80, 3))
    cal = calibrate(y, p, ["a", "b", "c"], n_bins=5, n_resamples=30, seed=9)
    bins = np.stack([equal_mass_bins(p[:, j], 5) for j in range(3)], axis=1)
    for r, idx in enumerate(resample_indices(80, 30, 9)):
        for j in range(3):
            gap = np.bincount(bins[idx, j], weights=y[idx, j] - p[idx, j], minlength=5)  # bins of the test set
            assert cal.boot["ece"][j, r] == pytest.approx(np.abs(gap).sum() / 80, abs=1e-12)
            assert cal.boot["brier"][j, r] == pytest.approx(np.mean((p[idx, j] - y[idx, j]) ** 2), abs=1e-12)
    macro = cal.estimate("ece")
    assert macro.value == pytest.approx(cal.point["ece"].mean())
    assert macro.ci_low <= macro.value <= macro.ci_high


def test_a_perfectly_calibrated_step_has_zero_ece():
    y = np.array([0, 0, 1, 1])
    assert expected_calibration_error(y, y.astype(float), 2) == 0.0


def test_ece_interval_is_bias_corrected_and_holds_its_point_value():
    """Scores of 0.5 with every bin half positive: the test set's ECE is 0, every resample's is above it, so a plain
    percentile interval would miss the point value; the bias-corrected one holds it."""
    from medfuse_bench.evaluation.bootstrap import percentile_interval

    p = np.full(40, 0.5)
    y = np.tile([0, 1], 20)
    cal = calibrate(y, p, ["y"], n_bins=10, n_resamples=400, seed=1)
    value = float(cal.point["ece"][0])
    assert value == 0.0
    assert percentile_interval(cal.boot["ece"][0])[0] > value  # the bias this corrects
    est = cal.estimate("ece", "y")
    assert est.ci_low <= value <= est.ci_high and est.ci_low >= 0 and est.ci_high > 0
