"""The leakage audit and both time-series windows in the DAG (dry runs)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dag_helpers import TEST_CONFIG

ROOT = Path(__file__).resolve().parents[1]


def _dry_run(tmp_path: Path, *config: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "workflow" / "Snakefile"), "--directory",
         str(tmp_path), "--configfile", str(ROOT / "config.yaml"), str(TEST_CONFIG), "-n", "-p", "--cores", "2",
         "--config", f"workdir={tmp_path / 'w'}", *config],
        capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_every_run_audits_both_tasks_and_trains_on_both_windows(tmp_path: Path):
    out = _dry_run(tmp_path)
    for task in ("in-hospital-mortality", "phenotyping"):
        assert f"medfuse-bench leakage-audit --task {task}" in out
        assert f"tasks/{task}/available --timestep 2.0 --fidelity corrected --switch window_by=storetime" in out
        assert f"models/{task}/ehr-partial-available/runs/lr0/result.json" in out
    # the paper's window by default: the main arrays and the audit carry no window switch
    assert "tasks/phenotyping --timestep 2.0 --fidelity corrected >" in out


def test_window_by_storetime_reaches_the_time_series_and_the_audit(tmp_path: Path):
    out = _dry_run(tmp_path, 'fidelity_switches={"window_by": "storetime"}')
    assert "tasks/phenotyping --timestep 2.0 --fidelity corrected --switch window_by=storetime >" in out
    assert "audit/phenotyping --seed 1002 --fidelity corrected --switch window_by=storetime" in out


def test_death_before_prediction_reaches_the_task_tables_the_summary_and_the_audit(tmp_path: Path):
    out = _dry_run(tmp_path, 'fidelity_switches={"death_before_prediction": "kept"}')
    switch = "--fidelity corrected --switch death_before_prediction=kept"
    assert f"tasks/in-hospital-mortality/samples.parquet {switch} >" in out  # task-tables
    assert f"summary.md {switch} >" in out  # etl-summary's preset counts
    assert f"audit/in-hospital-mortality --seed 1002 {switch}" in out  # the audit's reading
    assert "tasks/phenotyping --timestep 2.0 --fidelity corrected >" in out  # not a time-series switch
