"""The whole Snakemake DAG on a small synthetic dataset (the test configuration .test/config.yaml: scale smoke), plus
DAG-level checks.

Every Snakemake call runs in a temporary directory (`--directory`, with the repository's snakefile, config.yaml and
.test/config.yaml given by path), so its `.snakemake/` state and locks never land in the checkout. One smoke run of the
whole DAG is shared by the tests that inspect its results.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from dag_helpers import TEST_CONFIG

ROOT = Path(__file__).resolve().parents[1]
LIGHT_RULES = ("resolved_config", "check_splits", "etl_summary", "receipt", "subgroups", "select", "ensemble",
               "report", "leaderboard")


def snakemake(directory: Path, *args: str, configfiles: tuple[Path, ...] = ()) -> subprocess.CompletedProcess[str]:
    """The repository's workflow with its config.yaml, then the test configuration .test/config.yaml (synthetic data,
    scale smoke), then ``configfiles``, run in ``directory``; the jobs load this checkout's code."""
    directory.mkdir(parents=True, exist_ok=True)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}
    configs = [str(ROOT / "config.yaml"), str(TEST_CONFIG), *map(str, configfiles)]
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "workflow" / "Snakefile"),
               "--configfile", *configs, "--directory", str(directory), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=directory)


def jobs_of(output: str) -> set[str]:
    """The rules whose jobs a (dry) run announced."""
    return set(re.findall(r"^(?:local)?rule (\w+):$", output, flags=re.MULTILINE))


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    """One run of the whole DAG on the smoke scale: (Snakemake's directory, the workdir, the finished process)."""
    directory = tmp_path_factory.mktemp("smoke_dag")
    work = directory / "results"
    proc = snakemake(directory, "--cores", "2", "--config", f"workdir={work}")
    return directory, work, proc


def test_dry_run_lists_every_stage(tmp_path):
    proc = snakemake(tmp_path, "-n", "--cores", "2", "--config", f"workdir={tmp_path / 'w'}")
    assert proc.returncode == 0, proc.stderr + proc.stdout
    rules = jobs_of(proc.stdout + proc.stderr)
    for rule in ("synth", "ingest", "cohort", "variables", "phenotypes", "splits", "cxr_uni", "task_tables",
                 "timeseries", "receipt", "subgroups", "image_cache", "train", "select", "predict", "ensemble",
                 "report",
                 "leaderboard"):
        assert rule in rules, f"rule {rule} missing from the DAG"
    assert not (tmp_path / "w").exists()  # a dry run writes nothing
    assert (tmp_path / ".snakemake").is_dir()  # Snakemake's state lives in the directory it was given


@pytest.mark.parametrize("fidelity, pretrained", [("original", False), ("corrected", True)])
def test_encoder_starts_follow_the_fidelity_policy(tmp_path, fidelity, pretrained):
    """cxr_paired_start: the original trains CXR_PAIRED from scratch, so cxr-paired needs no CheXpert pretraining;
    table_a2_protocol: the original's Table A2 rows start from ehr-partial and cxr-pretrain at lr 1e-4."""
    work = tmp_path / "w"

    def train_commands(experiment: str) -> list[str]:
        target = str(work / "models" / "in-hospital-mortality" / experiment / "selected.json")
        proc = snakemake(tmp_path, target, "-n", "-p", "--cores", "1", "--config", f"workdir={work}",
                         f"fidelity={fidelity}")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return [line for line in (proc.stdout + proc.stderr).splitlines() if "medfuse-bench train" in line]

    commands = train_commands("cxr-paired")
    assert any("--experiment cxr-pretrain" in c for c in commands) == pretrained
    assert ("--cxr-init" in next(c for c in commands if "--experiment cxr-paired" in c)) == pretrained
    joint = next(c for c in train_commands("joint-partial") if "--experiment joint-partial" in c)
    assert ("--lr 0.0001" in joint and "ehr-partial/selected.json" in joint) != pretrained


def test_bad_config_value_fails_at_start_naming_the_key(tmp_path):
    proc = snakemake(tmp_path, "-n", "--cores", "1", "--config", f"workdir={tmp_path}", "scale=gigantic")
    assert proc.returncode != 0
    assert "key 'scale'" in proc.stderr + proc.stdout


@pytest.mark.skipif(shutil.which("sbatch") is not None, reason="a real SLURM cluster is present")
@pytest.mark.parametrize("device, gpus", [("auto", "gpu=0"), ("cuda", "gpu=1")])
def test_slurm_profile_asks_for_gpus_with_train_device_cuda_only(tmp_path, device, gpus):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    device_file = tmp_path / "device.yaml"
    device_file.write_text(f"train:\n  device: {device}\n")
    proc = snakemake(tmp_path, "-n", "--profile", str(ROOT / "profiles" / "slurm"), "--config",
                     f"workdir={tmp_path / 'w'}", configfiles=(device_file,))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # Training and prediction ask for a GPU exactly when train.device is cuda.
    blocks = re.findall(r"^rule (train|predict):\n(.*?)(?=^\S|\Z)", out, flags=re.MULTILINE | re.DOTALL)
    assert blocks
    for rule, block in blocks:
        assert gpus in block and "mem_mb=8000" in block, (rule, block)


def test_light_rules_run_where_snakemake_runs(tmp_path):
    """With a cluster executor, only the heavy rules are submitted (a dry run shows every job alike, so the
    workflow is loaded through Snakemake's API and asked which rules are local)."""
    script = f"""
import json
from pathlib import Path
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings, StorageSettings
with SnakemakeApi(OutputSettings(quiet=True)) as api:
    workflow = api.workflow(
        resource_settings=ResourceSettings(), storage_settings=StorageSettings(),
        config_settings=ConfigSettings(configfiles=[Path({str(ROOT / "config.yaml")!r}), Path({str(TEST_CONFIG)!r})],
                                       config={{"workdir": {str(tmp_path / "w")!r}}}),
        snakefile=Path({str(ROOT / "workflow" / "Snakefile")!r}), workdir=Path({str(tmp_path)!r}))._workflow
    print(json.dumps({{rule.name: rule.name in workflow._localrules for rule in workflow.rules}}))
"""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": path})
    assert proc.returncode == 0, proc.stderr
    local = json.loads(proc.stdout.strip().splitlines()[-1])
    for rule in LIGHT_RULES:
        assert local[rule], f"{rule} would be sent to the cluster"
    for rule in ("synth", "ingest", "variables", "timeseries", "image_cache", "train", "predict"):
        assert not local[rule], f"{rule} would run on the submitting machine"


@pytest.mark.slow
def test_whole_dag_on_smoke_scale(smoke_run):
    _, work, proc = smoke_run
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
    assert set(json.loads((work / "receipt.json").read_text())["tasks"]) == {"in-hospital-mortality", "phenotyping"}

    # every paper model has test predictions, and the report has every table and figure
    preds = work / "predictions" / "phenotyping" / "medfuse-optimal"
    assert {p.name for p in preds.glob("*.parquet")} == {"paired.parquet", "partial.parquet", "paired_nocxr.parquet"}
    report = work / "report"
    text = (report / "report.md").read_text()
    for name in ("Table 1", "Table 2", "Table 3", "Table 4", "Table 5"):
        assert name in text
    assert len(list(report.glob("*.png"))) >= 4
    assert (work / "leaderboard" / "phenotyping_partial.md").exists()


@pytest.mark.slow
def test_only_the_selected_checkpoints_stay(smoke_run):
    """The run folders' checkpoints are temporary: each experiment keeps the copy beside its selected.json."""
    _, work, proc = smoke_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    selections = sorted((work / "models").glob("*/*/selected.json"))
    assert len(selections) > 30
    for path in selections:
        selected = json.loads(path.read_text())
        assert Path(selected["checkpoint"]) == path.with_name("checkpoint.pt") and path.with_name("checkpoint.pt").is_file()
    runs = list((work / "models").glob("*/*/runs/lr*"))
    assert runs and all((run / "result.json").is_file() and (run / "history.csv").is_file() for run in runs)
    assert not list((work / "models").glob("*/*/runs/lr*/checkpoint.pt"))


@pytest.mark.slow
def test_training_reports_progress(smoke_run):
    """Each training job's log shows its epochs; the console shows each job's one-line summary when it ends."""
    _, work, proc = smoke_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    log = (work / "logs" / "train" / "in-hospital-mortality" / "ehr-partial" / "lr0.log").read_text()
    assert re.search(r"epoch 1/1: train loss [\d.]+, val loss [\d.]+, val AUROC", log), log
    summary = "in-hospital-mortality/ehr-partial draw 0 (lr "
    assert log.rstrip().splitlines()[-1].startswith(summary)
    assert summary in proc.stderr


def test_etl_stages_log_their_rate(smoke_run):
    """Every ETL stage ends its log with the rows it handled, its seconds and its rows/s."""
    _, work, proc = smoke_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    stages = ["ingest", "cohort", "variables", "phenotypes", "splits", "cxr_uni",
              *(f"{rule}_{task}" for rule in ("task_tables", "timeseries") for task in ("in-hospital-mortality",
                                                                                      "phenotyping"))]
    for stage in stages:
        text = (work / "logs" / f"{stage}.log").read_text()
        assert re.search(r": [\d,]+ [a-zA-Z -]+ in [\d.]+ s \([\d,]+ rows/s\)$", text.rstrip()), (stage, text[-500:])


@pytest.mark.slow
def test_second_run_has_nothing_to_do(smoke_run):
    directory, work, proc = smoke_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    again = snakemake(directory, "-n", "--cores", "2", "--config", f"workdir={work}")
    assert "Nothing to be done" in again.stdout + again.stderr, (again.stdout + again.stderr)[-3000:]


def job_block(output: str, rule: str) -> str:
    """The lines a (dry) run printed for the job of ``rule``."""
    match = re.search(rf"^(?:local)?rule {rule}:\n(.*?)(?:\n\n|\Z)", output, flags=re.MULTILINE | re.DOTALL)
    assert match, f"no job of rule {rule} in:\n{output[-3000:]}"
    return match.group(1)


@pytest.mark.slow
def test_a_changed_task_table_reruns_report_and_leaderboard(smoke_run):
    """report and leaderboard declare the files they read under the workdir: a changed samples table reruns both,
    as their own input. Snakemake compares the checksums of small inputs, so the table is rewritten (same rows, other
    bytes) rather than touched; it is restored afterwards."""
    directory, work, proc = smoke_run
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    samples = work / "tasks" / "phenotyping" / "samples.parquet"
    original, before = samples.read_bytes(), samples.stat()
    try:
        pl.read_parquet(samples).write_parquet(samples, compression="uncompressed")
        # only these two rules may run: otherwise they would rerun anyway, after the models retrained from the table
        dry = snakemake(directory, "-n", "--cores", "2", "--allowed-rules", "report", "leaderboard", "--config",
                        f"workdir={work}")
    finally:
        samples.write_bytes(original)
        os.utime(samples, ns=(before.st_atime_ns, before.st_mtime_ns))
    out = dry.stdout + dry.stderr
    assert dry.returncode == 0, out[-3000:]
    for rule in ("report", "leaderboard"):
        updated = re.search(r"Updated input files: ([^;\n]*)", job_block(out, rule))
        assert updated and str(samples) in updated.group(1).split(", "), job_block(out, rule)
