"""What a user sees when the workflow cannot start or a stage fails, and how an interrupted run is resumed.
Every run happens in a temporary directory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from dag_helpers import ROOT, SNAKEFILE, TEST_CONFIG, snakemake
from etl_raw_tree import base_tables, write_mimic_cxr, write_mimic_iv


def test_unknown_config_key_at_workflow_start_is_one_line(tmp_path):
    proc = snakemake(tmp_path, "-n", config={"scal": "smoke"})
    assert proc.returncode != 0
    assert "unknown key 'scal'; did you mean 'scale'?" in proc.stdout
    assert len(proc.stdout.splitlines()) < 10, proc.stdout  # not the schema


def test_old_profile_key_at_workflow_start_names_its_new_name(tmp_path):
    proc = snakemake(tmp_path, "-n", config={"profile": "smoke"})
    assert proc.returncode != 0
    assert ("config key 'profile' was renamed to 'scale'; write 'scale: smoke' "
            "(on Snakemake's command line: --config scale=smoke)") in proc.stdout
    assert len(proc.stdout.splitlines()) < 10, proc.stdout


def test_unknown_nested_key_in_config_file_names_the_closest_key(tmp_path):
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    config["etl"]["cohort_prest"] = config["etl"].pop("cohort_preset")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(tmp_path, "-n")
    assert proc.returncode != 0
    assert "unknown key 'etl.cohort_prest'; did you mean 'etl.cohort_preset'?" in proc.stdout
    assert len(proc.stdout.splitlines()) < 10, proc.stdout


def test_failed_stage_shows_its_reason_on_the_console(tmp_path):
    tables = base_tables()
    tables["admissions"] = tables["admissions"].drop("race")
    iv = write_mimic_iv(tmp_path / "iv", tables=tables)
    cxr = write_mimic_cxr(tmp_path / "cxr")
    proc = snakemake(tmp_path / "w", "--cores", "1", "results/etl/provenance.json",
                     config={"mimic_iv_dir": iv, "mimic_cxr_dir": cxr})
    assert proc.returncode != 0
    assert "Error in rule ingest" in proc.stdout
    assert f"medfuse-bench: error: '{iv / 'hosp' / 'admissions.csv.gz'}' has no column 'race' or 'ethnicity'" \
        in proc.stdout
    assert "workflow/profiles/default" in proc.stdout  # the workflow profile that shows it


def test_slurm_profile_works_beside_the_workflow_profile(tmp_path):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    proc = snakemake(tmp_path, "-n", "--profile", str(ROOT / "profiles" / "slurm"), "etl",
                     configfiles=(TEST_CONFIG,))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert f"Using profiles {ROOT / 'profiles' / 'slurm'} and workflow specific profile" in proc.stdout


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every process below it, as `kill -9` on a job's process group would."""
    parent = psutil.Process(pid)
    for process in [*parent.children(recursive=True), parent]:
        try:
            process.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    parent.wait()


@pytest.mark.slow
def test_killed_run_resumes_after_unlock_and_rerun_incomplete(tmp_path):
    snakemake(tmp_path, "--version")  # puts config.yaml in place
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(tmp_path),
               "--cores", "1", "synth", "--configfile", str(TEST_CONFIG)]
    run = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    leftover = tmp_path / "results" / "synthetic" / ".synth.tmp"
    while run.poll() is None and not (leftover / "mimic-iv").exists():  # the generator is writing
        time.sleep(0.05)
    assert run.poll() is None, "synth finished before it could be interrupted"
    _kill_tree(run.pid)
    assert leftover.exists()

    blocked = snakemake(tmp_path, "--cores", "1", "synth", configfiles=(TEST_CONFIG,))
    assert blocked.returncode != 0 and "--unlock" in blocked.stdout

    # The sequence docs/troubleshooting.md gives after an interrupted run.
    assert snakemake(tmp_path, "--unlock", configfiles=(TEST_CONFIG,)).returncode == 0
    proc = snakemake(tmp_path, "--cores", "all", "--rerun-incomplete", "synth", configfiles=(TEST_CONFIG,))
    assert proc.returncode == 0, proc.stdout[-3000:]
    synthetic = tmp_path / "results" / "synthetic"
    assert sorted(p.name for p in synthetic.iterdir()) == ["mimic-cxr-jpg", "mimic-iv"]
    assert (synthetic / "mimic-iv" / "hosp" / "admissions.csv.gz").exists()
