"""python -m benchmarks.etl: every stage runs and is timed, and the original extraction's approach, timed on the same input,
finds the same samples and labels as the pipeline under the ``original`` preset (with the normaliser fitted on the
train split, as the baseline builds it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from benchmarks.etl import _median, _median_stages, bench_etl, format_table
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.resources import phenotype_labels


#: The original preset, but the normaliser fitted on the train split: the baseline builds its normaliser as the
#: original's create_normalizer_state does, where the original's training loads a fixed MIMIC-III state.
BASELINE_POLICY = FidelityPolicy.from_switches("original", {"normalizer": "train_split"})


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    pytest.importorskip("pandas")
    workdir = tmp_path_factory.mktemp("bench-etl")
    return bench_etl(80, workdir, seed=5, policy=BASELINE_POLICY, threads=1, baseline=True, repeat=2), workdir


def test_every_stage_runs_and_is_timed(report: tuple[dict, Path]) -> None:
    result, workdir = report
    names = [s["stage"] for s in result["stages"]]
    assert names[:4] == ["ingest", "cohort", "variables", "phenotypes"] and len(names) == 10
    assert all(s["exit_code"] == 0 and s["seconds"] > 0 and s["peak_rss_mb"] > 0 for s in result["stages"])
    total, runs = result["etl_total"], result["runs"]
    assert total["runs"] == len(runs) == 2 and all(len(r["stages"]) == 10 for r in runs)
    # the two runs bracket the baseline: before it and after its last stage
    assert [r["position"] for r in runs] == ["before the baseline", "after baseline discretise"]
    assert all(r["machine_check_seconds"] > 0 and r["machine_check_all_cores_seconds"] > 0 for r in runs)
    for run in runs:
        assert run["total_seconds"] == pytest.approx(sum(s["seconds"] for s in run["stages"]), abs=0.01)
    assert total["seconds"] == pytest.approx(sum(r["total_seconds"] for r in runs) / 2, abs=0.01)
    for i, stage in enumerate(result["stages"]):
        assert stage["seconds"] == pytest.approx(sum(r["stages"][i]["seconds"] for r in runs) / 2, abs=0.01)
        assert stage["peak_rss_mb"] == max(r["stages"][i]["peak_rss_mb"] for r in runs)
    assert (workdir / "bench_etl.json").exists()
    text = format_table(result)
    assert "whole ETL (median)" in text and "original approach" in text and "medians of 2 runs" in text
    assert "(after baseline discretise)" in text and "machine check before each run" in text
    assert "speed-up of each run: " in text


def test_an_existing_folder_is_timed_and_recorded_as_given(report: tuple[dict, Path], tmp_path: Path) -> None:
    result, workdir = report
    assert result["input"]["generated"] is True and result["stays"] == 80 and result["seed"] == 5
    synthetic = workdir / "synthetic"
    again = bench_etl(2000, tmp_path, mimic_iv=synthetic / "mimic-iv", mimic_cxr=synthetic / "mimic-cxr-jpg",
                      policy=BASELINE_POLICY, threads=1)
    assert again["input"] == {"mimic_iv": str((synthetic / "mimic-iv").resolve()),
                              "mimic_cxr": str((synthetic / "mimic-cxr-jpg").resolve()), "generated": False}
    assert again["stays"] is None and again["seed"] is None  # not what was timed
    assert not (tmp_path / "synthetic").exists()
    assert [s["rows"] for s in again["stages"]] == [s["rows"] for s in result["stages"]]


def test_median_stages_take_the_middle_run_and_the_worst_memory_and_exit() -> None:
    def run(seconds: float, rss: float, code: int) -> list[dict]:
        return [{"stage": "ingest", "rows": 100, "seconds": seconds, "peak_rss_mb": rss, "exit_code": code,
                 "rows_per_s": 0}]

    (stage,) = _median_stages([run(4.0, 10.0, 0), run(1.0, 30.0, 0), run(2.0, 20.0, 3)])
    assert (stage["seconds"], stage["peak_rss_mb"], stage["exit_code"], stage["rows_per_s"]) == (2.0, 30.0, 3, 50)
    assert _median([1.0, 2.0, 4.0, 10.0]) == 3.0


def test_the_original_approach_finds_the_same_samples_and_labels(report: tuple[dict, Path]) -> None:
    result, workdir = report
    base = result["baseline"]
    assert set(base["seconds"]) == {"subjects", "validate", "episodes", "tasks", "discretise"}
    assert base["counts"]["event_rows_read"] >= result["ingest_chartevents"]["rows_in"]
    assert base["speedup_of_etl"] == pytest.approx(base["total_seconds"] / result["etl_total"]["seconds"], abs=0.06)
    for task, labels in (("in-hospital-mortality", ["mortality"]), ("phenotyping", phenotype_labels())):
        samples = pl.read_parquet(workdir / "tasks" / task / "samples.parquet")
        assert base["counts"]["samples"][task] == samples.height > 0
        assert base["counts"]["positives"][task] == {label: int(samples[label].sum()) for label in labels}
        # the original's discretiser gives each sample as many time steps as the time-series stage stores
        index = pl.read_parquet(workdir / "tasks" / task / "timeseries_index.parquet")
        assert base["counts"]["time_steps"][task] == index["length"].sum() > 0
    assert not (workdir / "baseline").exists()  # its scratch files are removed


def test_the_original_approach_computes_the_same_time_series(report: tuple[dict, Path], tmp_path: Path) -> None:
    """The baseline's discretiser and normaliser (ports of the original's) give the arrays the time-series stage
    stores under the original preset with ``normalizer: train_split``: the benchmark compares the same work."""
    from benchmarks import etl_baseline as baseline

    _, workdir = report
    scratch = tmp_path / "baseline"
    baseline.run_baseline(workdir / "synthetic" / "mimic-iv", scratch)  # keeps its scratch files
    train = baseline._train_subjects(scratch / "root")
    for task in ("in-hospital-mortality", "phenotyping"):
        theirs = baseline.discretise_task(scratch / "tasks", task, train)
        index = pl.read_parquet(workdir / "tasks" / task / "timeseries_index.parquet")
        assert sorted(theirs) == sorted(index["stay_id"])
        for stay_id, split, offset, length in index.iter_rows():
            ours = np.load(workdir / "tasks" / task / f"timeseries_{split}.npy", mmap_mode="r")[offset:offset + length]
            np.testing.assert_allclose(ours, theirs[stay_id], rtol=1e-5, atol=1e-5, err_msg=f"{task} {stay_id}")


def test_the_fidelity_report_counts_every_etl_switch(report: tuple[dict, Path]) -> None:
    """The measurement behind docs/fidelity.md runs on a bench workdir and covers every switch of the ETL."""
    from benchmarks.fidelity_report import fidelity_counts
    from medfuse_bench.fidelity import SWITCHES

    _, workdir = report
    counts = fidelity_counts(workdir / "etl" / "raw", workdir=workdir)
    assert set(counts["cohort"]["switch_alone"]) == {s.name for s in SWITCHES if s.stage == "cohort"}
    assert set(counts["variables_stage"]["switch_alone"]) == {s.name for s in SWITCHES if s.stage == "variables"}
    # the bench generator charts capillary refill under MIMIC-IV's items only
    assert counts["variables_stage"]["switch_alone"]["capillary_refill"]["Capillary refill rate"]["only_corrected"] > 0
    cxr_uni = pl.read_parquet(workdir / "cxr" / "cxr_uni.parquet")
    assert sum(counts["cxr_uni"]["official"].values()) == sum(counts["cxr_uni"]["all_train"].values()) == cxr_uni.height
    assert set(counts["normalizer"]) == {"in-hospital-mortality", "phenotyping"}
    death = counts["death_before_prediction"]
    # the bench ran the original preset, so its mortality table is the one that keeps every death
    kept = pl.read_parquet(workdir / "tasks" / "in-hospital-mortality" / "samples.parquet")
    assert death["kept"]["samples"] == kept.height
    left_out = death["death_at_prediction_time"] + death["death_before_prediction_time"]
    assert death["kept"]["samples"] - death["excluded"]["samples"] == left_out
    assert death["kept"]["positives"] - death["excluded"]["positives"] == left_out
    assert counts["normalizer"]["phenotyping"]["state_timestep_hours"] == 1.0
