"""Report sections on paired comparisons, calibration and subgroups, on fabricated prediction files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from test_report import fabricate_workdir

from medfuse_bench.evaluation.metrics import evaluate
from medfuse_bench.evaluation.predictions import Predictions
from medfuse_bench.report import subgroups
from medfuse_bench.report.build import ReportSettings, build_report
from medfuse_bench.report.inputs import Workdir

BOOT = 40


@pytest.fixture(scope="module")
def stats_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workdir, Path]:
    root = tmp_path_factory.mktemp("wd")
    wd = fabricate_workdir(root, n=300)
    for t, task in enumerate(("in-hospital-mortality", "phenotyping")):
        samples = pl.read_parquet(wd.samples(task))
        rng = np.random.default_rng(t)
        n = samples.height
        samples.select(
            "stay_id",
            pl.Series("sex", rng.choice(["F", "M"], n)),
            pl.col("age").cast(pl.Float64),
            pl.Series("race", rng.choice(["WHITE", "BLACK/AFRICAN AMERICAN", "ASIAN"], n, p=[0.7, 0.25, 0.05])),
            pl.Series("race_group", ["White"] * n),
            pl.Series("insurance", rng.choice(["Medicare", "Other"], n)),
            pl.col("cxr_dicom_id").is_not_null().alias("cxr_linked"),
            pl.when(pl.col("cxr_dicom_id").is_not_null()).then(pl.lit(10.0)).alias("cxr_age_hours"),
        ).write_parquet(wd.root / "tasks" / task / "subgroups.parquet")
    out = root / "report"
    build_report(root, out, ReportSettings(n_resamples=BOOT, seed=5, drop_fractions=(0.0, 1.0),
                                           unimodal_test_fractions=(0.0, 1.0), calibration_bins=5))
    return wd, out


def test_paired_table_compares_every_model_with_the_reference(stats_report: tuple[Workdir, Path]) -> None:
    _, out = stats_report
    frame = pl.read_csv(out / "paired_comparisons.csv")
    ref = frame.filter(pl.col("experiment") == "ehr-partial")
    assert ref.height == 4  # two tasks x two test sets
    assert ref["auroc_diff"].to_list() == [0.0] * 4 and ref["auroc_diff_p"].to_list() == [1.0] * 4
    for (_, _), part in frame.group_by("task", "test_set"):
        assert part["auroc"].is_sorted(descending=True)
        groups = part["rank_group"].to_list()
        assert groups[0] == 1 and all(b - a in (0, 1) for a, b in zip(groups, groups[1:], strict=False))
    text = (out / "report.md").read_text()
    assert "### Paired comparisons and rank groups" in text and "Δ AUROC vs ehr-partial" in text


def test_calibration_table_and_reliability_diagrams(stats_report: tuple[Workdir, Path]) -> None:
    _, out = stats_report
    frame = pl.read_csv(out / "calibration.csv")
    assert set(frame["test_set"]) == {"paired", "partial"}
    # ECE's interval may sit above its point (see evaluation.calibration); Brier is a mean and brackets it here
    assert (frame["ece_ci_low"] <= frame["ece_ci_high"]).all() and (frame["ece"] > 0).all()
    assert ((frame["brier_ci_low"] <= frame["brier"]) & (frame["brier"] <= frame["brier_ci_high"])).all()
    for task in ("phenotyping", "in_hospital_mortality"):
        assert (out / f"reliability_{task}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curve = pl.read_csv(out / "reliability_phenotyping.csv")
    assert {"macro", "acute_myocardial_infarction"} <= set(curve["label"]) or "macro" in set(curve["label"])
    assert curve.filter(pl.col("label") == "macro")["bin"].n_unique() == 5
    text = (out / "report.md").read_text()
    assert "### Calibration" in text and "![Reliability diagrams: Phenotyping, paired test set]" in text


def test_subgroup_tables(stats_report: tuple[Workdir, Path]) -> None:
    _, out = stats_report
    frame = pl.read_csv(out / "subgroups.csv")
    assert set(frame["attribute"]) == set(subgroups.ATTRIBUTES)
    mortality = frame.filter(pl.col("task") == "in-hospital-mortality", pl.col("test_set") == "partial",
                             pl.col("experiment") == "ehr-partial")
    linked = mortality.filter(pl.col("attribute") == "cxr_linked")
    assert sorted(linked["group"]) == ["X-ray", "no X-ray"]
    assert linked["n"].sum() == mortality.filter(pl.col("attribute") == "sex")["n"].sum()
    gaps = pl.read_csv(out / "subgroup_gaps.csv")
    assert {"worst_auroc", "worst_group", "largest_gap", "largest_gap_between"} <= set(gaps.columns)
    text = (out / "report.md").read_text()
    assert "### Subgroups" in text and "Worst AUROC" in text


def _preds(y: np.ndarray, scores: np.ndarray, labels: list[str]) -> Predictions:
    return Predictions(labels, np.arange(y.shape[0]) + 1, y, scores)


def test_a_group_with_too_few_positives_is_reported_as_too_small_not_as_a_number() -> None:
    rng = np.random.default_rng(0)
    n = 120
    sex = np.array(["F"] * 100 + ["M"] * 20)
    y = np.zeros((n, 1), dtype=np.int8)
    y[:40, 0] = 1  # F: 40 positives, 60 negatives
    y[100:103, 0] = 1  # M: 3 positives, 17 negatives
    preds = _preds(y, rng.random((n, 1)), ["mortality"])
    groups = pl.DataFrame({"stay_id": np.arange(n) + 1, "sex": sex, "age_band": ["18-39"] * n,
                           "race_group": ["White"] * n, "insurance": ["Other"] * n, "cxr_linked": ["X-ray"] * n,
                           "cxr_age": ["0-12 h"] * n})
    rows = subgroups.subgroup_rows(preds, groups, lambda p: evaluate(p.y_true, p.y_score, p.labels, n_resamples=20,
                                                                     micro=False), min_count=5)
    by = {(r["attribute"], r["group"]): r for r in rows}
    assert by[("sex", "M")]["too_small"] and "auroc" not in by[("sex", "M")]
    assert not by[("sex", "F")]["too_small"] and 0 <= by[("sex", "F")]["auroc"] <= 1
    assert subgroups._cell(by[("sex", "M")], "auroc") == "too small"
    frame = pl.DataFrame([{"task": "t", "test_set": "s", "experiment": "e", **r,
                           **({} if "auroc" in r else {"auroc": None, "auroc_ci_low": None, "auroc_ci_high": None,
                                                       "auprc": None, "auprc_ci_low": None, "auprc_ci_high": None})}
                          for r in rows], infer_schema_length=None)
    summary = subgroups.worst_groups(frame)
    assert summary["worst_group"][0] != "sex: M"  # a too-small group is never the worst group


def test_phenotyping_macro_leaves_out_labels_too_small_in_the_group() -> None:
    rng = np.random.default_rng(1)
    n = 200
    y = np.zeros((n, 2), dtype=np.int8)
    y[:80, 0] = 1
    y[:2, 1] = 1  # label b: 2 positives, too small
    scores = rng.random((n, 2))
    groups = pl.DataFrame({"stay_id": np.arange(n) + 1, **{a: ["all"] * n for a in subgroups.ATTRIBUTES}})
    rows = subgroups.subgroup_rows(_preds(y, scores, ["a", "b"]), groups,
                                   lambda p: evaluate(p.y_true, p.y_score, p.labels, n_resamples=20, micro=False), 5)
    alone = evaluate(y[:, :1], scores[:, :1], ["a"], n_resamples=20).macro("auroc").value
    assert rows[0]["labels_scored"] == 1 and rows[0]["auroc"] == pytest.approx(alone)


def test_no_worst_group_when_every_group_is_too_small() -> None:
    frame = pl.DataFrame({"task": ["t"], "test_set": ["s"], "experiment": ["e"], "attribute": ["sex"], "group": ["F"],
                          "n": [3], "positives": [1], "labels_scored": [0], "too_small": [True],
                          **{f"{m}{x}": pl.Series([None], dtype=pl.Float64) for m in ("auroc", "auprc")
                             for x in ("", "_ci_low", "_ci_high")}})
    summary = subgroups.worst_groups(frame)
    assert summary.height == 0
    text = subgroups.subgroup_markdown(frame, summary, ["e"], 10)
    assert "every group is too small" in text and "| sex | F | 3 | 1 | 0 | too small | too small |" in text
