"""The DAG of MedFuse (OPTIMAL) under the switches optimal_fraction and sweep_lr (dry runs of the test
configuration)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from dag_helpers import TEST_CONFIG

ROOT = Path(__file__).resolve().parents[1]


def dry_run(tmp_path: Path, *config: str) -> str:
    cmd = [sys.executable, "-m", "snakemake", "-n", "-p", "--snakefile", str(ROOT / "workflow" / "Snakefile"),
           "--directory", str(tmp_path), "--configfile", str(ROOT / "config.yaml"), str(TEST_CONFIG),
           "--cores", "1", "--config", f"workdir={tmp_path / 'w'}", *config]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc.stdout + proc.stderr


def _train_commands(out: str, experiment: str) -> list[str]:
    return [line for line in out.splitlines()
            if "medfuse-bench train " in line and f"--experiment {experiment} " in line]


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory) -> str:
    return dry_run(tmp_path_factory.mktemp("dag"), "fidelity=original")


def test_original_chooses_optimal_from_a_sweep_at_medfuse_pt_lr(original):
    assert not _train_commands(original, "medfuse-optimal")  # chosen, not trained
    assert re.search(r"medfuse-bench select-optimal .*--sweep-lr medfuse_pt_best .*--pt-selected \S+/medfuse-pt/"
                     r"selected.json", original)
    # the smoke sweep [0, 1] plus the paper's fractions, one run each at MedFuse (PT)'s learning rate
    for percent in (0, 10, 20, 100):
        commands = _train_commands(original, f"medfuse-p{percent}")
        assert len(commands) == 2 and all("--lr-from " in c and "/medfuse-pt/selected.json" in c for c in commands)


def test_paper_fixed_trains_optimal_at_the_configured_fraction(tmp_path):
    out = dry_run(tmp_path, "fidelity=original", "fidelity_switches={optimal_fraction: paper_fixed}")
    assert "select-optimal" not in out
    commands = _train_commands(out, "medfuse-optimal")
    assert {re.search(r"--uni-fraction (\S+)", c).group(1) for c in commands} == {"0.1", "0.2"}
    assert not _train_commands(out, "medfuse-p10")  # the sweep is the configured one only


def test_corrected_sweep_points_search_their_own_learning_rate(tmp_path):
    out = dry_run(tmp_path, "fidelity=corrected")
    assert re.search(r"select-optimal .*--sweep-lr own_search\s", out)
    assert _train_commands(out, "medfuse-p10") and not any("--lr-from" in c for c in _train_commands(out, "medfuse-p10"))
