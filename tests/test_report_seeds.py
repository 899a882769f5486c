"""Seed variance vs sampling variance (report.seeds) on hand-built predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from medfuse_bench.evaluation.metrics import auroc_score, evaluate
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.report import seeds
from medfuse_bench.report.build import Report
from medfuse_bench.report.inputs import Workdir
from medfuse_bench.report.policy import ReportPolicy
from medfuse_bench.report.store import EvaluationStore

TASK = "in-hospital-mortality"
RNG = np.random.default_rng(0)
Y = (RNG.random(200) < 0.3).astype(int)
SCORE_A = np.clip(0.3 * Y + RNG.random(200) * 0.7, 0, 1)
SCORE_B = np.clip(0.1 * Y + RNG.random(200) * 0.9, 0, 1)


def _write(path: Path, score: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"stay_id": np.arange(Y.size), "target:mortality": Y, "mortality": score}).write_parquet(path)


def _lookup(scores: dict[int, np.ndarray], experiment_run: str = "ehr-paired"):
    def lookup(task, experiment, test_set, seed):
        if seed not in scores or experiment != experiment_run:
            return None
        return evaluate(Y[:, None], scores[seed][:, None], ["mortality"], n_resamples=200, seed=7)
    return lookup


def test_identical_seeds_have_no_seed_variance():
    stats = seeds.seed_statistics([0.8, 0.8, 0.8], [np.array([0.7, 0.9, np.nan])] * 3)
    assert stats["seeds"] == 3 and stats["mean"] == pytest.approx(0.8)
    assert stats["seed_sd"] == 0.0 and stats["ratio"] == 0.0
    assert stats["sampling_sd"] == pytest.approx(np.std([0.7, 0.9], ddof=1))  # NaN resample left out


def test_statistics_of_differing_seeds():
    boot = [np.array([0.6, 0.7, 0.8]), np.array([0.7, 0.9, 1.1])]
    stats = seeds.seed_statistics([0.7, 0.9], boot)
    assert stats["mean"] == pytest.approx(0.8)
    assert stats["seed_sd"] == pytest.approx(np.std([0.7, 0.9], ddof=1))
    assert stats["sampling_sd"] == pytest.approx((0.1 + 0.2) / 2)
    assert stats["ratio"] == pytest.approx(stats["seed_sd"] / 0.15)


def test_one_defined_seed_gives_no_spread():
    stats = seeds.seed_statistics([0.7, float("nan")], [np.array([0.6, 0.8]), np.array([np.nan, np.nan])])
    assert stats["seeds"] == 1 and stats["mean"] == pytest.approx(0.7)
    assert stats["seed_sd"] is None and stats["ratio"] is None


def test_table_of_identical_and_differing_predictions():
    rows = [("ehr-paired", "paired")]
    same = seeds.seed_table(rows, [TASK], [1002, 1], _lookup({1002: SCORE_A, 1: SCORE_A}))
    assert same.height == 2 and set(same["metric"]) == {"auroc", "auprc"}
    assert (same["seed_sd"] == 0).all() and (same["sampling_sd"] > 0).all() and (same["ratio"] == 0).all()
    assert same["seed_list"].to_list() == ["1002 1", "1002 1"]

    differ = seeds.seed_table(rows, [TASK], [1002, 1], _lookup({1002: SCORE_A, 1: SCORE_B}))
    auroc = differ.filter(pl.col("metric") == "auroc").row(0, named=True)
    a, b = auroc_score(Y, SCORE_A), auroc_score(Y, SCORE_B)
    assert auroc["mean"] == pytest.approx((a + b) / 2)
    assert auroc["seed_sd"] == pytest.approx(abs(a - b) / np.sqrt(2))


def test_missing_runs_are_left_out():
    rows = [("ehr-paired", "paired"), ("mmtm", "paired")]
    frame = seeds.seed_table(rows, [TASK], [1002, 1, 2], _lookup({1002: SCORE_A, 2: SCORE_B}))
    assert set(frame["experiment"]) == {"ehr-paired"}  # mmtm has no run at all
    assert frame["seeds"].to_list() == [2, 2] and frame["seed_list"][0] == "1002 2"


def test_headline_experiments_follow_the_unified_switch():
    corrected = seeds.headline_experiments(FidelityPolicy.preset("corrected"))
    multi = seeds.headline_experiments(FidelityPolicy.from_switches("corrected", {"unified_row": "multi_head"}))
    assert "unified" not in corrected and "ensemble" not in corrected
    assert "medfuse-optimal" in corrected and "ehr-paired" in corrected
    assert ("multihead-partial" in multi) and ("multihead-partial" not in corrected)
    assert ("medfuse-optimal", "paired_nocxr") in seeds.headline_rows(FidelityPolicy.preset("corrected"))


def _report(tmp_path: Path, config: dict | None) -> Report:
    wd = Workdir.at(tmp_path / "w")
    _write(wd.predictions(TASK, "ehr-paired", "paired"), SCORE_A)
    _write(wd.seed_predictions(TASK, "ehr-paired", 1, "paired"), SCORE_B)
    report = Report(tmp_path / "out", ReportPolicy(FidelityPolicy.preset("corrected"), None))
    report.out_dir.mkdir()
    seeds.add_section(report, wd.root, [TASK], EvaluationStore(wd, 100, 3), config)
    return report


def test_section_reads_the_original_run_and_the_seed_runs(tmp_path):
    report = _report(tmp_path, {"seed": 1002, "train": {"seeds": [1, 1002]}})
    frame = pl.read_csv(tmp_path / "out" / "seed_variance.csv")
    row = frame.filter(pl.col("metric") == "auroc").row(0, named=True)
    assert row["seeds"] == 2 and row["seed_list"] == "1002 1"
    assert row["seed_sd"] == pytest.approx(abs(auroc_score(Y, SCORE_A) - auroc_score(Y, SCORE_B)) / np.sqrt(2))
    assert "Seed variance vs sampling variance" in report.sections[0] and "How to read it" in report.sections[0]


@pytest.mark.parametrize("config", [{"seed": 1002, "train": {"seeds": []}}, {"seed": 1, "train": {"seeds": [1]}},
                                    None])
def test_no_extra_seed_no_section(tmp_path, config):
    report = _report(tmp_path, config)
    assert not report.sections and not (tmp_path / "out" / "seed_variance.csv").exists()


def test_seeds_listed_but_not_predicted_is_a_note(tmp_path):
    report = _report(tmp_path, {"seed": 1002, "train": {"seeds": [5]}})
    assert not report.sections and "fewer than two seeds" in report.notes[0]
