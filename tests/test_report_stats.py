"""Report sections on paired comparisons, calibration and subgroups, on fabricated prediction files."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from test_report import fabricate_workdir

from medfuse_bench.report.build import ReportSettings, build_report
from medfuse_bench.report.inputs import Workdir

BOOT = 40


@pytest.fixture(scope="module")
def stats_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workdir, Path]:
    root = tmp_path_factory.mktemp("wd")
    wd = fabricate_workdir(root, n=300)
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
