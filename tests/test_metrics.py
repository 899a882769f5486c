"""Vectorised bootstrap AUROC / AUPRC against scikit-learn on the same resample indices."""

from __future__ import annotations

import doctest
import json
import logging
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from medfuse_bench.cli import main
from medfuse_bench.errors import MedfuseError
from medfuse_bench.evaluation import bootstrap, metrics, predictions
from medfuse_bench.evaluation.bootstrap import indices_to_counts, iter_resample_counts, resample_indices
from medfuse_bench.evaluation.metrics import Estimate, bootstrap_resamples, evaluate
from medfuse_bench.evaluation.predictions import read_predictions

TOL = 1e-9


def tied_imbalanced(n: int, prevalences: list[float], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels with very different prevalences; scores on a coarse grid so that many are tied."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(prevalences))) < prevalences).astype(np.int8)
    scores = np.clip(rng.normal(0.4 + 0.2 * y, 0.25), 0, 1).round(1)
    return y, scores


def sklearn_per_resample(y: np.ndarray, s: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    auroc = np.full((y.shape[1], len(indices)), np.nan)
    ap = np.full_like(auroc, np.nan)
    for r, idx in enumerate(indices):
        for j in range(y.shape[1]):
            if 0 < y[idx, j].sum() < idx.size:
                auroc[j, r] = roc_auc_score(y[idx, j], s[idx, j])
                ap[j, r] = average_precision_score(y[idx, j], s[idx, j])
    return auroc, ap


@pytest.fixture(scope="module")
def case() -> dict:
    y, s = tied_imbalanced(160, [0.03, 0.1, 0.3, 0.5], seed=3)
    y[:, 0] = 0
    y[[5, 77], 0] = 1  # two positives: about 1 resample in 7 has none (degenerate)
    indices = resample_indices(160, 150, seed=11)
    ref_auroc, ref_ap = sklearn_per_resample(y, s, indices)
    return {"y": y, "s": s, "indices": indices, "auroc": ref_auroc, "ap": ref_ap}


def test_every_resample_equals_sklearn(case: dict) -> None:
    auroc, ap = bootstrap_resamples(case["y"], case["s"], indices_to_counts(case["indices"], 160))
    assert np.array_equal(np.isnan(auroc), np.isnan(case["auroc"]))
    np.testing.assert_allclose(auroc, case["auroc"], atol=TOL, rtol=0)
    np.testing.assert_allclose(ap, case["ap"], atol=TOL, rtol=0)
    assert np.isnan(case["auroc"][0]).any(), "the rare label must produce degenerate resamples"


def test_evaluate_uses_the_same_resamples(case: dict) -> None:
    ev = evaluate(case["y"], case["s"], list("abcd"), n_resamples=150, seed=11)
    np.testing.assert_allclose(ev.boot["auroc"], case["auroc"], atol=TOL, rtol=0)
    np.testing.assert_allclose(ev.boot["auprc"], case["ap"], atol=TOL, rtol=0)
    for j, lab in enumerate("abcd"):
        assert ev.point["auroc"][j] == pytest.approx(roc_auc_score(case["y"][:, j], case["s"][:, j]), abs=TOL)
        assert ev.point["auprc"][j] == pytest.approx(average_precision_score(case["y"][:, j], case["s"][:, j]), abs=TOL)
        est = ev.label("auroc", lab)
        valid = case["auroc"][j][~np.isnan(case["auroc"][j])]
        assert est.valid_resamples == valid.size
        assert (est.ci_low, est.ci_high) == pytest.approx(tuple(np.percentile(valid, [2.5, 97.5])), abs=TOL)


def test_macro_ci_is_the_percentile_of_the_per_resample_macro(case: dict) -> None:
    """Each resample's macro = the mean over the labels, an undefined label at its test-set value (sklearn values)."""
    ev = evaluate(case["y"], case["s"], list("abcd"), n_resamples=150, seed=11)
    for metric, ref in (("auroc", case["auroc"]), ("auprc", case["ap"])):
        score = roc_auc_score if metric == "auroc" else average_precision_score
        point = np.array([score(case["y"][:, j], case["s"][:, j]) for j in range(4)])
        macro_boot = np.where(np.isnan(ref), point[:, None], ref).mean(axis=0)
        est = ev.macro(metric)
        assert est.valid_resamples == 150  # every resample: a label is always defined
        assert est.resamples == 150
        assert (est.ci_low, est.ci_high) == pytest.approx(tuple(np.percentile(macro_boot, [2.5, 97.5])), abs=TOL)
        assert est.value == pytest.approx(point.mean(), abs=TOL)
        assert est.ci_low <= est.value <= est.ci_high
        per_label_bounds = np.mean([ev.label(metric, lab).ci_low for lab in "abcd"])
        assert est.ci_low != pytest.approx(per_label_bounds, abs=1e-6)  # not the original's mean of bounds
    complete = ~np.isnan(case["auroc"]).any(axis=0)
    assert 0 < complete.sum() < 150  # the rare label is missing from some resamples
    assert ev.macro_complete_resamples() == complete.sum() == ev.to_dict()["macro_complete_resamples"]


def rare_rows_ranked_last(n_rare: int = 6, n_common: int = 6, n: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Rare labels whose one positive each (rows 0..n_rare-1, ranked first for that label) is also a positive of every
    common label, ranked last there; each common label has 15 more positives, ranked above its negatives on average."""
    rng = np.random.default_rng(0)
    labels = n_rare + n_common
    y = np.zeros((n, labels), dtype=np.int8)
    s = rng.random((n, labels))
    for i in range(n_rare):
        y[i, i], s[i, i] = 1, 2.0
    for c in range(n_rare, labels):
        y[:n_rare, c], s[:n_rare, c] = 1, -1.0 - rng.random(n_rare)
        others = rng.choice(np.arange(n_rare, n), 15, replace=False)
        y[others, c] = 1
        s[others, c] += 1.0
    return y, s


def test_point_estimate_inside_its_interval_with_rare_labels() -> None:
    """Keeping only the resamples where every rare label is defined (65 of 1000 here) over-draws the rows the common
    labels rank last, and that interval (0.743, 0.848) missed the macro AUROC 0.857; every resample counts now."""
    y, s = rare_rows_ranked_last()
    labels = [f"l{j}" for j in range(y.shape[1])]
    ev = evaluate(y, s, labels, n_resamples=1000, seed=0)
    for metric in ("auroc", "auprc"):
        est = ev.macro(metric)
        assert 0 <= est.ci_low <= est.value <= est.ci_high <= 1, (metric, est)
        assert est.valid_resamples == 1000
        for lab in labels:
            one = ev.label(metric, lab)
            assert one.ci_low <= one.value <= one.ci_high, (metric, lab, one)
    assert ev.macro_complete_resamples() < 100


def test_a_label_missing_from_a_resample_does_not_move_the_macro_by_its_level() -> None:
    """A perfectly ranked common label (AUPRC 1 in every resample) and a rare one ranked low (AUPRC 1/6): where the
    rare label draws no positive, the macro stays at the test-set value instead of jumping to the common label's 1."""
    n = 60
    y = np.zeros((n, 2), dtype=np.int8)
    y[:20, 0] = 1
    y[0, 1] = 1
    s = np.column_stack([np.linspace(1, 0, n), np.linspace(0, 1, n)])
    s[0, 1] = s[-5, 1] - 1e-6  # the rare positive below 5 negatives: AUPRC 1/6
    ev = evaluate(y, s, ["common", "rare"], n_resamples=400, seed=0)
    est = ev.macro("auprc")
    assert est.valid_resamples == 400 and est.ci_low <= est.value <= est.ci_high
    value, samples = ev.macro_samples("auprc")
    assert value == pytest.approx((1 + 1 / 6) / 2)
    rare_missing = np.isnan(ev.boot["auprc"][1])
    assert 0.25 < rare_missing.mean() < 0.5  # (59/60)^60 = 0.37
    np.testing.assert_allclose(samples[rare_missing], value, atol=TOL)  # the rare label held at 1/6, not left out


def auroc_coverage(n: int, prevalences: list[float], shifts: list[float], repetitions: int, n_resamples: int) -> int:
    """How many of ``repetitions`` simulated test sets have a 95% macro AUROC interval that holds the true macro AUROC.

    Scores are N(shift, 1) for positives and N(0, 1) for negatives, so a label's AUROC is Phi(shift / sqrt(2)).
    """
    true = float(np.mean([0.5 * (1 + math.erf(shift / 2)) for shift in shifts]))  # Phi(shift / sqrt(2))
    rng = np.random.default_rng(20240601)
    labels = [f"l{j}" for j in range(len(prevalences))]
    covered = 0
    for r in range(repetitions):
        y = (rng.random((n, len(prevalences))) < prevalences).astype(np.int8)
        y[r % n] = 1  # every label defined in the test set: the macro is always over the same labels
        y[(r + 1) % n] = 0
        scores = rng.normal(y * np.asarray(shifts), 1.0)
        est = evaluate(y, scores, labels, n_resamples=n_resamples, seed=r, micro=False).macro("auroc")
        covered += est.ci_low <= true <= est.ci_high
    return covered


def test_auroc_interval_covers_the_true_auroc_about_95_percent() -> None:
    covered = auroc_coverage(300, [0.3], [1.0], repetitions=200, n_resamples=500)
    assert 180 <= covered <= 198, f"{covered}/200"


def test_macro_interval_covers_the_true_macro_about_95_percent() -> None:
    """Three labels of different prevalence and AUROC (0.64, 0.76, 0.86), the rarest with about 8 positives."""
    covered = auroc_coverage(160, [0.05, 0.2, 0.4], [0.5, 1.0, 1.5], repetitions=200, n_resamples=500)
    assert 180 <= covered <= 198, f"{covered}/200"


def test_micro_equals_sklearn(case: dict) -> None:
    y, s, indices = case["y"], case["s"], case["indices"]
    ev = evaluate(y, s, list("abcd"), n_resamples=150, seed=11)
    assert ev.micro("auroc").value == pytest.approx(roc_auc_score(y, s, average="micro"), abs=TOL)
    assert ev.micro("auprc").value == pytest.approx(average_precision_score(y, s, average="micro"), abs=TOL)
    for r in (0, 7, 149):
        idx = indices[r]
        assert ev.micro_boot["auroc"][r] == pytest.approx(roc_auc_score(y[idx], s[idx], average="micro"), abs=TOL)
        assert ev.micro_boot["auprc"][r] == pytest.approx(average_precision_score(y[idx], s[idx], average="micro"), abs=TOL)


def test_zero_weight_top_positive() -> None:
    """The highest-scored positive drawn zero times must not turn AP into NaN."""
    y = np.array([1, 0, 1, 0, 1])
    s = np.array([0.9, 0.8, 0.8, 0.3, 0.1])
    idx = np.array([[1, 2, 2, 3, 4]])
    auroc, ap = bootstrap_resamples(y, s, indices_to_counts(idx, 5))
    assert auroc[0, 0] == pytest.approx(roc_auc_score(y[idx[0]], s[idx[0]]), abs=TOL)
    assert ap[0, 0] == pytest.approx(average_precision_score(y[idx[0]], s[idx[0]]), abs=TOL)


def test_single_class_label_is_nan_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    y, s = tied_imbalanced(80, [0.3, 0.4], seed=1)
    y[:, 1] = 0
    with caplog.at_level(logging.WARNING):
        ev = evaluate(y, s, ["a", "b"], n_resamples=30, seed=0)
    assert "only one class" in caplog.text
    est = ev.label("auroc", "b")
    assert np.isnan(est.value) and est.valid_resamples == 0 and est.format() == "n/a"
    assert ev.macro("auroc").value == pytest.approx(ev.label("auroc", "a").value)
    assert ev.macro_excluded == ["b"]
    assert json.dumps(ev.to_dict(), allow_nan=False)  # NaN is written as null


def test_all_resamples_degenerate_gives_nan_interval() -> None:
    y = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    s = np.linspace(0, 1, 10)
    est = evaluate(y, s, ["m"], n_resamples=5, seed=0).label("auroc", "m")
    assert est.value == 0.0 and 0 <= est.valid_resamples <= 5


def test_chunking_does_not_change_the_resamples() -> None:
    whole = indices_to_counts(resample_indices(37, 23, seed=4), 37)
    for chunk in (1, 5, 23, 100):
        np.testing.assert_array_equal(np.concatenate(list(iter_resample_counts(37, 23, 4, chunk))), whole)


def test_estimate_format() -> None:
    assert Estimate(0.8654, 0.8461, 0.8839, 1000).format() == "0.865 (0.846, 0.884)"
    assert Estimate(float("nan"), float("nan"), float("nan"), 0).format() == "n/a"
    assert Estimate(0.5, 0.4, 0.6, 951, 1000).format() == "0.500 (0.400, 0.600)"
    assert Estimate(0.5, 0.4, 0.6, 949, 1000).format() == "0.500 (0.400, 0.600) [949/1000]"


def test_prediction_file_checks(tmp_path: Path) -> None:
    frame = pl.DataFrame({"stay_id": [1, 2, 3], "target:mortality": pl.Series([0, 1, 0], dtype=pl.Int8),
                          "mortality": [0.1, 0.8, 0.3]})
    frame.write_parquet(tmp_path / "ok.parquet")
    preds = read_predictions(tmp_path / "ok.parquet")
    assert preds.labels == ["mortality"] and preds.y_score.shape == (3, 1)
    frame.drop("mortality").write_parquet(tmp_path / "bad.parquet")
    with pytest.raises(MedfuseError, match="missing column 'mortality'"):
        read_predictions(tmp_path / "bad.parquet", ["mortality"])
    frame.with_columns(pl.lit(None, dtype=pl.Float64).alias("mortality")).write_parquet(tmp_path / "nan.parquet")
    with pytest.raises(MedfuseError, match="column 'mortality' has 3 missing"):
        read_predictions(tmp_path / "nan.parquet")


def test_evaluate_command(tmp_path: Path) -> None:
    y, s = tied_imbalanced(50, [0.3], seed=2)
    pl.DataFrame({"stay_id": np.arange(50), "target:mortality": pl.Series(y[:, 0], dtype=pl.Int8),
                  "mortality": s[:, 0]}).write_parquet(tmp_path / "paired.parquet")
    out = tmp_path / "metrics" / "paired.json"
    args = ["evaluate", "--predictions", str(tmp_path / "paired.parquet"), "--out", str(out),
            "--task", "in-hospital-mortality", "--bootstrap", "40", "--seed", "1"]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["macro"]["auroc"]["value"] == pytest.approx(roc_auc_score(y[:, 0], s[:, 0]))
    assert result["bootstrap"] == 40 and set(result["per_label"]) == {"mortality"}


def test_bench_metrics_command(capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.metrics import main as bench_metrics

    assert bench_metrics([ "--n", "120", "--labels", "3", "--bootstrap", "30", "--sklearn-resamples", "5"]) == 0
    out = capsys.readouterr().out
    assert "speed-up" in out
    diff = float(out.split("max |difference| vs sklearn:")[1].split()[0])
    assert diff < TOL


def test_doctests() -> None:
    for module in (bootstrap, metrics, predictions):
        assert doctest.testmod(module).failed == 0, module.__name__
