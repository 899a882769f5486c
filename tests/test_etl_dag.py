"""The ETL part of the DAG: what the rules declare as inputs, so that Snakemake notices edited raw files."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import pytest

from medfuse_bench.synth import generate

from dag_helpers import TEST_CONFIG, planned_rules, snakemake

ETL_RULES = {"ingest", "cohort", "variables", "phenotypes", "splits", "cxr_uni", "task_tables", "timeseries",
             "subgroups", "etl_summary", "check_splits"}


def _correct(path: Path) -> None:
    """Rewrite the gzip CSV at ``path`` in place with its last field of the first row changed, as a corrected
    download would be. (Snakemake does not rerun for a newer file whose checksum is unchanged.)"""
    lines = gzip.decompress(path.read_bytes()).decode().split("\n")
    head, _, _ = lines[1].rpartition(",")
    lines[1] = head + ",0"
    path.write_bytes(gzip.compress("\n".join(lines).encode()))


def _age_raw_files(root: Path) -> None:
    """Date every raw file back before the outputs (undoes the edits of an earlier test)."""
    for path in (root / "raw").rglob("*"):
        if path.is_file():
            os.utime(path, (1e9, 1e9))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A small dataset in the real layouts, given as real data (mimic_iv_dir set), with the `etl` target built."""
    root = tmp_path_factory.mktemp("etl_dag")
    generate(root / "raw", 60, 7, image_size=16, progress=False)
    # the test configuration's scale without its synthetic data (.test/config.yaml sets both)
    config = {"mimic_iv_dir": root / "raw" / "mimic-iv", "mimic_cxr_dir": root / "raw" / "mimic-cxr-jpg",
              "scale": "smoke"}
    proc = snakemake(root / "w", "--cores", "2", "etl", config=config)
    assert proc.returncode == 0, proc.stdout[-5000:]
    return root, config


@pytest.mark.slow
def test_raw_file_edited_in_place_reruns_ingest_and_what_follows(built):
    root, config = built
    work = root / "w"
    proc = snakemake(work, "-n", "etl", config=config)
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout, proc.stdout[-3000:]

    _correct(root / "raw" / "mimic-iv" / "hosp" / "admissions.csv.gz")
    proc = snakemake(work, "-n", "etl", config=config)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert ETL_RULES <= planned_rules(proc.stdout), proc.stdout[-3000:]
    assert "admissions.csv.gz" in proc.stdout  # named as the input that changed


@pytest.mark.slow
def test_cxr_metadata_edit_reruns_ingest(built):
    root, config = built
    work = root / "w"
    _age_raw_files(root)
    assert "Nothing to be done" in snakemake(work, "-n", "etl", config=config).stdout
    _correct(root / "raw" / "mimic-cxr-jpg" / "mimic-cxr-2.0.0-metadata.csv.gz")
    proc = snakemake(work, "-n", "etl", config=config)
    assert {"ingest", "task_tables", "cxr_uni"} <= planned_rules(proc.stdout), proc.stdout[-3000:]


@pytest.mark.slow
def test_raw_table_replaced_by_another_file_reruns_ingest(built):
    root, config = built
    work = root / "w"
    _age_raw_files(root)
    assert "Nothing to be done" in snakemake(work, "-n", "etl", config=config).stdout
    # chartevents.csv.gz replaced by a plain chartevents.csv (a new file name with the same rows)
    icu = root / "raw" / "mimic-iv" / "icu"
    with gzip.open(icu / "chartevents.csv.gz", "rb") as src, open(icu / "chartevents.csv", "wb") as dst:
        shutil.copyfileobj(src, dst)
    (icu / "chartevents.csv.gz").rename(icu / "chartevents.csv.gz.bak")
    try:
        proc = snakemake(work, "-n", "etl", config=config)
    finally:
        (icu / "chartevents.csv").unlink()
        (icu / "chartevents.csv.gz.bak").rename(icu / "chartevents.csv.gz")
    assert "ingest" in planned_rules(proc.stdout), proc.stdout[-3000:]
    assert "chartevents.csv" in proc.stdout


@pytest.mark.slow
def test_image_cache_declares_the_cxr_metadata_table(built):
    root, config = built
    proc = snakemake(root / "w", "-n", "results/cache/images.npy", config=config)
    assert proc.returncode == 0, proc.stdout[-3000:]
    job = proc.stdout[proc.stdout.index("rule image_cache:"):].splitlines()[1]
    assert str(root / "raw" / "mimic-cxr-jpg" / "mimic-cxr-2.0.0-metadata.csv.gz") in job


def test_synthetic_data_feed_ingest_through_the_synth_rule(tmp_path):
    proc = snakemake(tmp_path, "-n", "etl", configfiles=(TEST_CONFIG,))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert {"synth", "ingest"} <= planned_rules(proc.stdout)
    ingest = proc.stdout[proc.stdout.index("rule ingest:"):]
    assert "input: results/synthetic/mimic-iv, results/synthetic/mimic-cxr-jpg" in ingest.splitlines()[1]


def test_missing_raw_folder_is_one_message_naming_it(tmp_path):
    proc = snakemake(tmp_path, "-n", "etl",
                     config={"mimic_iv_dir": tmp_path / "nowhere", "mimic_cxr_dir": tmp_path / "cxr"})
    assert proc.returncode != 0
    assert f"MIMIC-IV folder '{tmp_path / 'nowhere'}' does not exist" in proc.stdout
