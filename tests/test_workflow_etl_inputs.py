"""etl_summary and check_splits declare every file they read, so that Snakemake reruns them when one changes
(built into a temporary directory, as tests/test_workflow.py does)."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from test_workflow import jobs_of, snakemake


def _job_inputs(output: str, rule: str) -> str:
    """The ``input:`` line of ``rule``'s job in a dry run's output."""
    match = re.search(rf"^rule {rule}:\n(?:    .*\n)*?    input: (.*)$", output, flags=re.MULTILINE)
    assert match, output[-3000:]
    return match.group(1)


@pytest.mark.slow
def test_changed_task_samples_rerun_the_summary_and_the_split_check(tmp_path: Path) -> None:
    work = tmp_path / "w"
    targets = [str(work / "tasks" / "summary.json"), str(work / "etl" / "split_check.txt")]
    config = ["--config", f"workdir={work}"]
    built = snakemake(tmp_path, *targets, "--cores", "2", *config)
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert "Nothing to be done" in snakemake(tmp_path, *targets, "-n", *config).stdout

    # Rewritten with other bytes, as a rebuilt table would be (Snakemake does not rerun for a newer file whose
    # checksum is unchanged).
    samples = work / "tasks" / "phenotyping" / "samples.parquet"
    pq.write_table(pq.read_table(samples), samples, compression="snappy")
    proc = snakemake(tmp_path, *targets, "-n", *config)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert jobs_of(proc.stdout) == {"etl_summary", "check_splits"}, proc.stdout[-3000:]
    # every file each one reads is a declared input, not found by the command in a workdir
    summary_inputs = _job_inputs(proc.stdout, "etl_summary")
    for name in ("samples.parquet", "cxr_uni.parquet", "stays.parquet", "events.parquet", "splits.parquet",
                 "cohort_counts.json", "variables_counts.json", "phenotype_mapping.json", "etl/raw"):
        assert name in summary_inputs, (name, summary_inputs)
    check_inputs = _job_inputs(proc.stdout, "check_splits")
    for name in ("in-hospital-mortality/samples.parquet", "phenotyping/samples.parquet", "cxr_uni.parquet",
                 "splits.parquet"):
        assert name in check_inputs, (name, check_inputs)
