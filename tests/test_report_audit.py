"""Report sections on leakage: the paired difference of two models on the same resamples, and the audit table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.report.policy import ReportPolicy
from medfuse_bench.evaluation.metrics import evaluate
from medfuse_bench.evaluation.predictions import Predictions
from medfuse_bench.report.audit import add_sections, paired_difference
from medfuse_bench.report.build import Report
from medfuse_bench.report.inputs import Workdir
from medfuse_bench.report.store import EvaluationStore
from medfuse_bench.resources import phenotype_labels


def _predictions(y: np.ndarray, score: np.ndarray, labels: list[str], stays: np.ndarray | None = None) -> Predictions:
    y, score = y.reshape(len(y), -1), score.reshape(len(score), -1)
    return Predictions(labels, np.arange(len(y)) if stays is None else stays, y.astype(np.int8), score)


def test_paired_difference_scores_both_models_on_the_same_resamples():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (120, 3))
    noisy = np.clip(y + rng.normal(0, 0.8, y.shape), -2, 3)
    sharp = np.clip(y + rng.normal(0, 0.3, y.shape), -2, 3)
    labels = ["a", "b", "c"]
    a, b = _predictions(y, noisy, labels), _predictions(y, sharp, labels)
    same = paired_difference(a, a, 300, seed=5)
    zero = same.difference["auroc"]
    assert zero.value == 0 and zero.ci_low == zero.ci_high == 0
    # each model's macro estimate is the evaluation module's, on the same resamples
    ev = evaluate(y, noisy, labels, n_resamples=300, seed=5)
    for m in ("auroc", "auprc"):
        assert same.a[m].value == pytest.approx(ev.macro(m).value)
        assert (same.a[m].ci_low, same.a[m].ci_high) == pytest.approx((ev.macro(m).ci_low, ev.macro(m).ci_high))
    better = paired_difference(a, b, 300, seed=5)
    d = better.difference["auroc"]
    assert d.value == pytest.approx(better.b["auroc"].value - better.a["auroc"].value) and 0 < d.ci_low < d.ci_high
    # rows are matched by stay, whatever their order in either file
    shuffled = np.random.default_rng(1).permutation(len(y))
    b_shuffled = _predictions(y[shuffled], sharp[shuffled], labels, stays=np.arange(len(y))[shuffled])
    assert paired_difference(a, b_shuffled, 300, seed=5) == better


def _write_predictions(path: Path, stays: np.ndarray, y: np.ndarray, score: np.ndarray, labels: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"stay_id": stays, **{f"target:{lab}": y[:, j].astype(np.int8) for j, lab in enumerate(labels)},
                  **{lab: score[:, j] for j, lab in enumerate(labels)}}).write_parquet(path)


def test_sections_show_the_audit_verdicts_and_the_window_table(tmp_path: Path):
    rng = np.random.default_rng(2)
    wd = Workdir.at(tmp_path)
    tasks = ["in-hospital-mortality", "phenotyping"]
    for task, labels in (("in-hospital-mortality", ["mortality"]), ("phenotyping", phenotype_labels())):
        y = rng.integers(0, 2, (80, len(labels)))
        for experiment, noise in (("ehr-partial", 1.0), ("ehr-partial-available", 0.5)):
            for test_set in ("paired", "partial"):
                _write_predictions(wd.predictions(task, experiment, test_set), np.arange(80), y,
                                   y + rng.normal(0, noise, y.shape), labels)
        for folder, window in (("", "charttime"), ("available", "storetime")):
            (tmp_path / "tasks" / task / folder).mkdir(parents=True, exist_ok=True)
            (tmp_path / "tasks" / task / folder / "normalizer.json").write_text(json.dumps({"window_by": window}))
    summary = {"verdict": "expected findings only", "window_by": "charttime", "cohort_preset": "medfuse",
               "findings": [{"check_id": "event_timing", "leakage_type": "AVAILABILITY_LAG", "severity": "HIGH",
                             "status": "fail", "message": "12 events charted before ...", "reading": "expected",
                             "reason": "the paper's window"}],
               "not_run": [{"check_id": "site_overlap", "needs": ["site_id"], "why": "one hospital"}],
               "facts": {"charted_in_window": 1000, "charted_in_window_stored_after_prediction": 12,
                         "stays_with_late_values": 9, "stays": 50}}
    (tmp_path / "audit" / "phenotyping").mkdir(parents=True)
    (tmp_path / "audit" / "phenotyping" / "summary.json").write_text(json.dumps(summary))
    report = Report(tmp_path / "report", ReportPolicy(FidelityPolicy.preset("corrected"), "config.resolved.yaml"))
    report.out_dir.mkdir()
    add_sections(report, wd, tasks, EvaluationStore(wd, 100, 3))
    text = "\n".join(report.sections)
    assert "[leakage.html](../audit/phenotyping/leakage.html)" in text
    assert "12 of 1,000 (1.2%), 9 of 50 stays" in text
    assert "not run: `site_overlap` needs site_id (one hospital)" in text
    table = pl.read_csv(report.out_dir / "window_by_availability.csv")
    assert table.height == 2 * 2 * 2
    assert set(table["window_a"]) == {"charttime"} and set(table["window_b"]) == {"storetime"}
    assert (table["difference_ci_low"] <= table["difference_value"]).all()
    assert "Difference (B - A)" in text and (report.out_dir / "leakage_audit.md").exists()
