"""The DAG of train.seeds (dry runs of the test configuration): per-seed train/predict jobs of the Tables 1-3
experiments."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from test_workflow import jobs_of, snakemake

from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.report.seeds import headline_experiments


def _dry_run(tmp_path: Path, seeds: list[int]) -> str:
    override = tmp_path / "seeds.yaml"
    override.write_text(f"train:\n  seeds: {seeds}\n")
    proc = snakemake(tmp_path, "-n", "-p", "--cores", "1", "--config", f"workdir={tmp_path / 'w'}",
                     configfiles=(override,))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc.stdout + proc.stderr


def _commands(out: str, program: str) -> list[str]:
    """The shell commands of seed runs: ``program`` writing under models/.../seeds/ or seed_predictions/."""
    return [line for line in out.splitlines()
            if f"medfuse-bench {program} " in line and ("/seeds/seed" in line or "/seed_predictions/" in line)]


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> str:
    # 1002 is the top-level seed of config.yaml: the original run, not trained again
    return _dry_run(tmp_path_factory.mktemp("seeds"), [1, 2, 1002])


def test_seeds_plan_a_train_and_predict_job_per_headline_experiment_and_seed(planned):
    assert {"train_seed", "predict_seed"} <= jobs_of(planned)
    experiments = headline_experiments(FidelityPolicy.preset("corrected"))
    trains = _commands(planned, "train")
    predicts = _commands(planned, "predict")
    planned_runs = {(m.group(1), m.group(2), m.group(3)) for c in trains
                    for m in [re.search(r"--task (\S+) --experiment (\S+) .*--seed (\d+) ", c)]}
    expected = {(t, e, s) for t in ("in-hospital-mortality", "phenotyping") for e in experiments for s in ("1", "2")}
    assert planned_runs == expected
    assert len(trains) == len(predicts) == len(expected)
    assert all(f"/seeds/seed{s}/checkpoint.pt" in c for c in predicts for s in [re.search(r"seed(\d+)/", c).group(1)])


def test_seed_runs_start_from_the_selected_learning_rate_and_encoders(planned):
    optimal = next(c for c in _commands(planned, "train") if "--task phenotyping --experiment medfuse-optimal " in c)
    assert "--lr-from " in optimal and "/models/phenotyping/medfuse-optimal/selected.json" in optimal
    assert "/models/phenotyping/ehr-partial/selected.json" in optimal  # the selected EHR encoder
    assert "/models/radiology/cxr-pretrain/selected.json" in optimal  # the selected CXR encoder
    assert "--uni-fraction" not in optimal  # sweep_best: the fraction the selection names
    assert " --lr " not in optimal and "--draw" not in optimal
    ehr = next(c for c in _commands(planned, "train") if "--experiment ehr-paired " in c)
    assert "--uni-fraction" in ehr


def test_no_listed_seed_plans_no_seed_job(tmp_path):
    out = _dry_run(tmp_path, [])
    assert not {"train_seed", "predict_seed"} & jobs_of(out)
    assert "seed_predictions" not in out and "/seeds/seed" not in out
