"""The whole Snakemake DAG on a small synthetic dataset (profile smoke), plus DAG-level checks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "workflow" / "Snakefile"), "--directory", str(ROOT)]


def snakemake(*args: str, timeout: int = 1800) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([*SNAKEMAKE, *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_dry_run_lists_every_stage(tmp_path):
    proc = snakemake("-n", "--cores", "2", "--config", f"workdir={tmp_path / 'w'}", "profile=smoke")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    out = proc.stdout + proc.stderr
    for rule in ("synth", "ingest", "cohort", "variables", "phenotypes", "splits", "cxr_uni", "task_tables",
                 "timeseries", "image_cache", "train", "select", "predict", "ensemble", "report", "leaderboard"):
        assert f"rule {rule}:" in out or f"localrule {rule}:" in out, f"rule {rule} missing from the DAG"


@pytest.mark.parametrize("fidelity, pretrained", [("original", False), ("corrected", True)])
def test_encoder_starts_follow_the_fidelity_policy(tmp_path, fidelity, pretrained):
    """cxr_paired_start: the original trains CXR_PAIRED from scratch, so cxr-paired needs no CheXpert pretraining;
    table_a2_protocol: the original's Table A2 rows start from ehr-partial and cxr-pretrain at lr 1e-4."""
    work = tmp_path / "w"

    def train_commands(experiment: str) -> list[str]:
        target = str(work / "models" / "in-hospital-mortality" / experiment / "selected.json")
        proc = snakemake(target, "-n", "-p", "--cores", "1", "--config", f"workdir={work}", "profile=smoke",
                         f"fidelity={fidelity}")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return [line for line in (proc.stdout + proc.stderr).splitlines() if "medfuse-bench train" in line]

    commands = train_commands("cxr-paired")
    assert any("--experiment cxr-pretrain" in c for c in commands) == pretrained
    assert ("--cxr-init" in next(c for c in commands if "--experiment cxr-paired" in c)) == pretrained
    joint = next(c for c in train_commands("joint-partial") if "--experiment joint-partial" in c)
    assert ("--lr 0.0001" in joint and "ehr-partial/selected.json" in joint) != pretrained


def test_bad_config_value_fails_at_start_naming_the_key(tmp_path):
    proc = snakemake("-n", "--cores", "1", "--config", f"workdir={tmp_path}", "profile=gigantic")
    assert proc.returncode != 0
    assert "profile" in proc.stderr + proc.stdout


@pytest.mark.skipif(shutil.which("sbatch") is not None, reason="a real SLURM cluster is present")
def test_slurm_profile_dry_run_resolves_resources(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    proc = snakemake("-n", "--profile", str(ROOT / "profiles" / "slurm"), "--config", f"workdir={tmp_path}",
                     "profile=smoke")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "gpu=1" in out  # training jobs ask the cluster for a GPU
    assert "mem_mb=8000" in out


@pytest.mark.slow
def test_whole_dag_on_smoke_profile(tmp_path):
    work = tmp_path / "results"
    proc = snakemake("--cores", "2", "--config", f"workdir={work}", "profile=smoke", timeout=1800)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]

    # ETL outputs per the contract
    for task, labels in (("in-hospital-mortality", 1), ("phenotyping", 25)):
        samples = pl.read_parquet(work / "tasks" / task / "samples.parquet")
        assert samples.columns[:6] == ["subject_id", "stay_id", "split", "cxr_dicom_id", "period_length", "age"]
        assert len(samples.columns) == 6 + labels
        assert set(samples["split"]) == {"train", "val", "test"}
        assert samples["cxr_dicom_id"].null_count() not in (0, samples.height)  # paired and unpaired stays
        index = pl.read_parquet(work / "tasks" / task / "timeseries_index.parquet")
        assert index.height == samples.height
    summary = json.loads((work / "tasks" / "summary.json").read_text())
    assert summary

    # every paper model has test predictions, and the report has every table and figure
    preds = work / "predictions" / "phenotyping" / "medfuse-optimal"
    assert {p.name for p in preds.glob("*.parquet")} == {"paired.parquet", "partial.parquet", "paired_nocxr.parquet"}
    report = work / "report"
    text = (report / "report.md").read_text()
    for name in ("Table 1", "Table 2", "Table 3", "Table 4", "Table 5"):
        assert name in text
    assert len(list(report.glob("*.png"))) >= 4
    assert (work / "leaderboard" / "phenotyping_partial.md").exists()

    # nothing is left to do: a second run is a no-op
    again = snakemake("-n", "--cores", "2", "--config", f"workdir={work}", "profile=smoke")
    assert "Nothing to be done" in again.stdout + again.stderr
