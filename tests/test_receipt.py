"""The cohort receipt: the same data give the same bytes whatever the row order, chunking or number of threads,
and a change to one stay changes exactly its task's and split's hash."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from medfuse_bench.cli import build_parser, main
from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl import receipt, receipt_compare, receipt_hash, timeseries
from medfuse_bench.etl.task_tables import METADATA_KEY
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.resources import SPLITS, TASKS, task_labels

from etl_world import make_world

ROOT = Path(__file__).resolve().parents[1]
IHM, PHENO = TASKS
PROVENANCE = {"format": 1, "package_version": "0.1.0", "mimic_iv": {"root": "/somewhere/mimic-iv", "layout": "2.x/3.x",
                                                                   "version": "2.2"}}


def _samples(world: dict[str, pl.DataFrame], task: str, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    stays = world["stays"]
    n = stays.height
    table = stays.select(
        "subject_id", "stay_id",
        pl.Series("split", np.array(SPLITS)[rng.integers(0, 3, n)]),
        pl.Series("cxr_dicom_id", [f"d{i}" if rng.random() < 0.5 else None for i in range(n)], dtype=pl.String),
        pl.col("los_hours").clip(upper_bound=48.0).alias("period_length"),
        "age",
    )
    labels = stays.select("stay_id", "mortality") if task == IHM else world["phenotypes"]
    table = table.join(labels, on="stay_id", how="left")
    rank = pl.col("split").replace_strict({s: i for i, s in enumerate(SPLITS)}, return_dtype=pl.Int8)
    return table.sort([rank, pl.col("stay_id")])


def build_workdir(root: Path, n_stays: int = 45, seed: int = 2) -> Path:
    """etl/provenance.json, events and both tasks' samples tables and time series, as the ETL leaves them."""
    world = make_world(n_stays, seed=seed)
    (root / "etl").mkdir(parents=True)
    (root / "etl" / "provenance.json").write_text(json.dumps(PROVENANCE))
    world["events"].write_parquet(root / "etl" / "events.parquet")
    for t, task in enumerate(TASKS):
        folder = root / "tasks" / task
        folder.mkdir(parents=True)
        samples = _samples(world, task, seed + t)
        definition = {"task": task, "preset": "medfuse", "leaky": False}
        samples.write_parquet(folder / "samples.parquet", metadata={METADATA_KEY: json.dumps(definition)})
        timeseries.write_timeseries(world["events"], samples, folder, 2.0, chunk_rows=100)
    return root


def write_receipt(workdir: Path, out: Path | None = None, threads: int | None = None) -> bytes:
    out = out or workdir / "receipt.json"
    args = ["receipt", "--workdir", str(workdir), "--out", str(out), "--preset", "medfuse", "--synthetic"]
    if threads is None:
        assert main(args) == 0
    else:  # Polars sizes its thread pool at import: a process of its own per thread count
        env = {**os.environ, "POLARS_MAX_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
        proc = subprocess.run([sys.executable, "-m", "medfuse_bench.cli", *args], env=env, capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr
    return out.read_bytes()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_workdir(tmp_path_factory.mktemp("receipt") / "w")


@pytest.fixture(scope="module")
def reference(workdir: Path) -> bytes:
    return write_receipt(workdir)


def _copy(workdir: Path, target: Path) -> Path:
    shutil.copytree(workdir, target, ignore=shutil.ignore_patterns("receipt.json"))
    return target


def _shuffle_task(folder: Path, seed: int) -> None:
    """Rewrite a task's samples table and time series with the stays in a random order (offsets kept consistent)."""
    path = folder / "samples.parquet"
    metadata = pl.read_parquet_metadata(path)
    samples = pl.read_parquet(path).sample(fraction=1.0, shuffle=True, seed=seed)
    samples.write_parquet(path, metadata={METADATA_KEY: metadata[METADATA_KEY]})
    index = pl.read_parquet(folder / "timeseries_index.parquet")
    parts = []
    for s, split in enumerate(SPLITS):
        array = np.load(folder / f"timeseries_{split}.npy")
        rows = index.filter(pl.col("split") == split).sample(fraction=1.0, shuffle=True, seed=seed + s)
        pieces = [array[o:o + n] for o, n in rows.select("offset", "length").iter_rows()]
        np.save(folder / f"timeseries_{split}.npy", np.concatenate(pieces) if pieces else array[:0])
        lengths = rows["length"].to_numpy()
        parts.append(rows.with_columns(pl.Series("offset", np.cumsum(lengths) - lengths)))
    pl.concat(parts).write_parquet(folder / "timeseries_index.parquet")


def test_receipt_records_counts_settings_and_no_paths(workdir: Path, reference: bytes) -> None:
    data = json.loads(reference)
    assert data["package_version"] and data["mimic_iv"] == {"version": "2.2", "layout": "2.x/3.x"}
    assert data["cohort_preset"] == "medfuse" and data["leaky"] is False and data["data"] == "synthetic"
    assert data["fidelity"]["preset"] == "corrected" and "age" in data["fidelity"]["switches"]
    assert "mmtm_step" not in data["fidelity"]["switches"]  # a training switch does not shape the data
    assert str(workdir) not in reference.decode() and "/somewhere" not in reference.decode()
    for task in TASKS:
        samples = pl.read_parquet(workdir / "tasks" / task / "samples.parquet")
        record = data["tasks"][task]
        assert record["timestep_hours"] == 2.0 and record["labels"] == task_labels(task)
        for split in SPLITS:
            part = samples.filter(pl.col("split") == split)
            got = record["splits"][split]
            assert got["stays"] == part.height and got["subjects"] == part["subject_id"].n_unique()
            assert got["paired"] == part["cxr_dicom_id"].is_not_null().sum()
            assert got["positives"] == {lab: int(part[lab].sum()) for lab in task_labels(task)}
            assert len(got["table_sha256"]) == len(got["timeseries_sha256"]) == 64


def test_shuffled_rows_and_thread_counts_give_the_same_bytes(workdir: Path, reference: bytes, tmp_path: Path) -> None:
    shuffled = _copy(workdir, tmp_path / "shuffled")
    for t, task in enumerate(TASKS):
        _shuffle_task(shuffled / "tasks" / task, seed=10 + t)
    assert pl.read_parquet(shuffled / "tasks" / IHM / "samples.parquet")["stay_id"].to_list() != \
        pl.read_parquet(workdir / "tasks" / IHM / "samples.parquet")["stay_id"].to_list()
    assert write_receipt(shuffled, threads=1) == reference
    assert write_receipt(shuffled, tmp_path / "two.json", threads=2) == reference


def test_time_series_rebuilt_with_other_chunks_and_threads_give_the_same_bytes(
    workdir: Path, reference: bytes, tmp_path: Path
) -> None:
    copies = []
    for threads, chunk in ((1, 37), (2, 250_000)):
        copy = _copy(workdir, tmp_path / f"t{threads}")
        for task in TASKS:
            folder = copy / "tasks" / task
            env = {**os.environ, "POLARS_MAX_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
            proc = subprocess.run(
                [sys.executable, "-m", "medfuse_bench.cli", "timeseries", "--events", str(copy / "etl/events.parquet"),
                 "--samples", str(folder / "samples.parquet"), "--out-dir", str(folder), "--timestep", "2.0",
                 "--chunk-rows", str(chunk)], env=env, capture_output=True, text=True)
            assert proc.returncode == 0, proc.stderr
        copies.append(write_receipt(copy, threads=threads))
    assert copies[0] == copies[1] == reference


def test_one_changed_label_changes_exactly_its_task_and_split(workdir: Path, reference: bytes, tmp_path: Path) -> None:
    changed = _copy(workdir, tmp_path / "changed")
    path = changed / "tasks" / PHENO / "samples.parquet"
    metadata = pl.read_parquet_metadata(path)
    samples = pl.read_parquet(path)
    row = samples.with_row_index().filter(pl.col("split") == "val")["index"][0]
    samples = samples.with_columns(
        pl.when(pl.int_range(pl.len()) == row).then(1 - pl.col("Shock")).otherwise(pl.col("Shock")).cast(pl.Int8)
        .alias("Shock"))
    samples.write_parquet(path, metadata={METADATA_KEY: metadata[METADATA_KEY]})
    before, after = json.loads(reference), json.loads(write_receipt(changed))
    assert after["tasks"][IHM] == before["tasks"][IHM]
    old, new = before["tasks"][PHENO], after["tasks"][PHENO]
    assert old["sha256"] != new["sha256"]
    for split in SPLITS:
        same = split != "val"
        assert (old["splits"][split]["table_sha256"] == new["splits"][split]["table_sha256"]) is same
        assert old["splits"][split]["timeseries_sha256"] == new["splits"][split]["timeseries_sha256"]
    assert abs(new["splits"]["val"]["positives"]["Shock"] - old["splits"]["val"]["positives"]["Shock"]) == 1
    lines = receipt_compare.compare_receipts(before, after)
    assert lines == [
        f"{PHENO} / val: positives of 'Shock' {_arrow(old, new)}",
        f"{PHENO} / val: samples table hash differs ({old['splits']['val']['table_sha256'][:12]}... vs "
        f"{new['splits']['val']['table_sha256'][:12]}...)",
    ]


def _arrow(old: dict, new: dict) -> str:
    a, b = old["splits"]["val"]["positives"]["Shock"], new["splits"]["val"]["positives"]["Shock"]
    return f"{a} -> {b} ({b - a:+d})"


def test_one_changed_time_step_changes_the_time_series_hash_only(workdir: Path, reference: bytes,
                                                                 tmp_path: Path) -> None:
    changed = _copy(workdir, tmp_path / "ts")
    path = changed / "tasks" / IHM / "timeseries_test.npy"
    array = np.load(path)
    array[-1, 0] += 1.0
    np.save(path, array)
    before, after = json.loads(reference), json.loads(write_receipt(changed))
    old, new = before["tasks"][IHM]["splits"], after["tasks"][IHM]["splits"]
    assert old["test"]["timeseries_sha256"] != new["test"]["timeseries_sha256"]
    assert old["test"]["table_sha256"] == new["test"]["table_sha256"]
    assert old["train"] == new["train"] and before["tasks"][PHENO] == after["tasks"][PHENO]


def test_compare_command_names_the_differences(workdir: Path, reference: bytes, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    other = json.loads(reference)
    other["package_version"] = "9.9"
    other["fidelity"]["switches"]["age"] = "anchor_age"
    other["tasks"][IHM]["splits"]["test"]["stays"] += 2
    path = tmp_path / "other.json"
    path.write_text(json.dumps(other))
    assert main(["receipt", "--compare", str(workdir / "receipt.json"), str(path)]) == 1
    out = capsys.readouterr().out
    assert "package version: 0.1.0 -> 9.9" in out
    assert "fidelity switch age: age_at_stay -> anchor_age" in out
    assert f"{IHM} / test: stays" in out and "(+2)" in out
    assert main(["receipt", "--compare", str(workdir), str(workdir / "receipt.json")]) == 0
    assert "identical receipts" in capsys.readouterr().out


@pytest.mark.parametrize("case", ["missing_provenance", "not_a_receipt", "index_mismatch", "wrong_preset"])
def test_bad_input_is_one_error_naming_the_file(case: str, workdir: Path, tmp_path: Path) -> None:
    copy = _copy(workdir, tmp_path / "bad")
    args = ["receipt", "--workdir", str(copy)]
    if case == "missing_provenance":
        (copy / "etl" / "provenance.json").unlink()
        words = ["provenance.json", "does not exist"]
    elif case == "not_a_receipt":
        (tmp_path / "x.json").write_text("{}")
        args = ["receipt", "--compare", str(tmp_path / "x.json"), str(tmp_path / "x.json")]
        words = ["x.json", "is not a cohort receipt"]
    elif case == "index_mismatch":
        index = pl.read_parquet(copy / "tasks" / IHM / "timeseries_index.parquet")
        index.with_columns(pl.col("length") + (pl.int_range(pl.len()) == 0)).write_parquet(
            copy / "tasks" / IHM / "timeseries_index.parquet")
        words = ["timeseries_train.npy", "do not cover"]
    else:
        args += ["--preset", "medfuse-2022"]
        words = ["built with cohort preset 'medfuse', not 'medfuse-2022'"]
    with pytest.raises(MedfuseError) as info:
        receipt.main(build_parser("receipt").parse_args(args))
    for word in words:
        assert word in str(info.value)
    assert not (copy / "receipt.json").exists()


def test_policy_args_carry_only_etl_switches() -> None:
    policy = FidelityPolicy.from_switches("original", {"outliers": "range", "train_crop": "random"})
    assert receipt.policy_args(policy) == "--fidelity original --switch outliers=range"


def test_timeseries_hash_rejects_overlapping_rows() -> None:
    index = pl.DataFrame({"stay_id": [1, 2], "offset": [0, 1], "length": [2, 2]})
    with pytest.raises(MedfuseError, match="once each"):
        receipt_hash.timeseries_hash(np.zeros((3, 2), dtype=np.float32), index, "a.npy")
