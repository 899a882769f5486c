"""Patient splits: a pure function of the salted id, stable as data grows; split-list import; the split check."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl import check_splits, splits

SALT = "medfuse-bench-v1"

# Run the real entry point with only this area's subcommands registered, so the test does not depend on others.
CLI = "import sys; from medfuse_bench import cli; sys.exit(cli.main(sys.argv[1:]))"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CLI, *args], capture_output=True, text=True)


def test_hash_is_pinned():
    # These numbers define the split of every patient: changing the hash would move patients between splits.
    u = splits.hash_uniform(np.array([10000032, 10000980, 19999987, 1]), SALT)
    np.testing.assert_allclose(u, [0.19726449, 0.97300468, 0.83658945, 0.76939489], atol=1e-8)
    assert splits.assign_splits([10000032, 10000980, 19999987, 1], SALT).rows() == [
        (1, "val"), (10000032, "train"), (10000980, "test"), (19999987, "test")]


def test_fractions_on_20k_ids_and_salt_matters():
    ids = np.arange(10000000, 10000000 + 20000 * 13, 13)
    out = splits.assign_splits(pl.Series(ids), SALT, 0.7, 0.1)
    share = out.group_by("split").len().with_columns(pl.col("len") / out.height)
    got = dict(share.iter_rows())
    assert got["train"] == pytest.approx(0.7, abs=0.015)
    assert got["val"] == pytest.approx(0.1, abs=0.015)
    assert got["test"] == pytest.approx(0.2, abs=0.015)
    other = splits.assign_splits(pl.Series(ids), "another-salt", 0.7, 0.1)
    assert (other["split"] != out["split"]).mean() > 0.3


def test_old_subjects_keep_their_split_when_new_subjects_arrive():
    old = np.arange(1, 10001) * 17
    new = np.arange(1, 5001) * 19 + 3
    before = splits.assign_splits(old, SALT)
    after = splits.assign_splits(np.concatenate([new, old]), SALT)
    assert_frame_equal(after.join(before.select("subject_id"), on="subject_id", how="semi"), before)
    newcomers = after.join(before, on="subject_id", how="anti")
    assert newcomers.height > 4000
    assert (newcomers["split"] == "train").mean() == pytest.approx(0.7, abs=0.03)


def test_invalid_fractions_are_rejected():
    with pytest.raises(MedfuseError, match="etl.split.train"):
        splits.assign_splits([1, 2], SALT, 0.8, 0.3)


def test_build_splits_covers_ehr_and_cxr_subjects_with_ehr_flag():
    out = splits.build_splits(pl.Series([5, 3, 3]), [pl.Series([3, 9]), pl.Series([11])], SALT)
    assert out["subject_id"].to_list() == [3, 5, 9, 11]
    assert out["ehr"].to_list() == [True, True, False, False]
    assert_frame_equal(out.select("subject_id", "split"), splits.assign_splits([3, 5, 9, 11], SALT))


def test_original_split_lists_override_the_hash_for_listed_subjects(tmp_path):
    (tmp_path / "testset_iv.csv").write_text("1,1\n2,0\n3,0\n4,0\n")
    (tmp_path / "valset_iv.csv").write_text("2,1\n3,0\n")
    test_list = splits.read_split_list(tmp_path / "testset_iv.csv", "--test-list")
    val_list = splits.read_split_list(tmp_path / "valset_iv.csv", "--val-list")
    ids = [1, 2, 3, 4, 10000032, 10000980]
    hashed = splits.assign_splits(ids, SALT)
    got = splits.apply_split_lists(hashed, test_list, val_list)
    # 4 is listed (flag 0) in the test list only: train, as in the original; unlisted subjects keep the hash.
    assert got.rows() == [(1, "test"), (2, "val"), (3, "train"), (4, "train"), (10000032, "train"), (10000980, "test")]
    both = pl.DataFrame({"subject_id": [1], "flag": [1]})
    with pytest.raises(MedfuseError, match="both the test list and the val list"):
        splits.apply_split_lists(hashed, both, both)


def test_bad_split_list_is_named(tmp_path):
    (tmp_path / "bad.csv").write_text("1,2\n")
    with pytest.raises(MedfuseError, match="--test-list .*bad.csv"):
        splits.read_split_list(tmp_path / "bad.csv", "--test-list")


def _frame(rows: list[tuple[int, str]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"subject_id": pl.Int64, "split": pl.String}, orient="row")


def test_check_splits_counts_and_failures():
    ihm = _frame([(1, "train"), (1, "train"), (2, "val"), (3, "test")])
    uni = _frame([(1, "train"), (2, "val"), (2, "val"), (4, "test")])
    table = check_splits.check_splits({"in-hospital-mortality": ihm, "cxr_uni": uni}, cxr_uni="cxr_uni")
    assert table.rows() == [
        ("cxr_uni", "train", 1, 1), ("cxr_uni", "val", 2, 1), ("cxr_uni", "test", 1, 1),
        ("in-hospital-mortality", "train", 2, 1), ("in-hospital-mortality", "val", 1, 1),
        ("in-hospital-mortality", "test", 1, 1),
    ]
    overlap = _frame([(1, "train"), (1, "test"), (2, "val"), (2, "train"), (3, "test")])
    with pytest.raises(MedfuseError, match="dataset 'phenotyping': 2 subject"):
        check_splits.check_splits({"phenotyping": overlap})
    leak = _frame([(3, "train")])
    with pytest.raises(MedfuseError, match="dataset 'cxr_uni': 1 subject.* val/test sets of 'in-hospital-mortality'"):
        check_splits.check_splits({"in-hospital-mortality": ihm, "cxr_uni": leak}, cxr_uni="cxr_uni")
    reference = _frame([(1, "train"), (2, "train"), (3, "test")])
    with pytest.raises(MedfuseError, match="other than in splits.parquet"):
        check_splits.check_splits({"in-hospital-mortality": ihm}, reference=reference)


def _write_samples(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    _frame(rows).with_columns(stay_id=pl.int_range(pl.len())).write_parquet(path)


def test_check_splits_cli_fails_on_a_planted_overlap_and_passes_otherwise(tmp_path):
    work = tmp_path / "w"
    _write_samples(work / "tasks" / "in-hospital-mortality" / "samples.parquet", [(1, "train"), (2, "val")])
    _write_samples(work / "tasks" / "phenotyping" / "samples.parquet", [(1, "train"), (2, "val"), (3, "test")])
    _write_samples(work / "cxr" / "cxr_uni.parquet", [(1, "train"), (2, "val"), (5, "train")])
    ok = run_cli("check-splits", "--workdir", str(work), "--out", str(work / "etl" / "split_check.txt"))
    assert ok.returncode == 0, ok.stderr
    assert "phenotyping" in ok.stdout and "cxr_uni" in ok.stdout
    assert (work / "etl" / "split_check.txt").read_text() == ok.stdout

    _write_samples(work / "tasks" / "phenotyping" / "samples.parquet",
                   [(1, "train"), (2, "val"), (3, "test"), (3, "train"), (7, "val"), (7, "test")])
    bad = run_cli("check-splits", "--workdir", str(work))
    assert bad.returncode == 2
    assert "medfuse-bench: error:" in bad.stderr
    assert "dataset 'phenotyping': 2 subject(s) appear in more than one split" in bad.stderr


def test_check_splits_cli_checks_the_files_it_is_given(tmp_path):
    ihm, uni = tmp_path / "a" / "ihm.parquet", tmp_path / "b" / "uni.parquet"
    _write_samples(ihm, [(1, "train"), (2, "val")])
    _write_samples(uni, [(1, "train"), (2, "val")])
    ok = run_cli("check-splits", "--samples", f"in-hospital-mortality={ihm}", "--cxr-uni", str(uni))
    assert ok.returncode == 0, ok.stderr
    assert "in-hospital-mortality" in ok.stdout and "cxr_uni" in ok.stdout
    _write_samples(uni, [(1, "train"), (2, "train")])  # a val patient of the task with an image in train
    assert run_cli("check-splits", "--samples", f"in-hospital-mortality={ihm}", "--cxr-uni", str(uni)).returncode == 2
    missing = run_cli("check-splits", "--samples", f"in-hospital-mortality={ihm}", "--splits", str(tmp_path / "no"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_splits_cli_writes_every_subject(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    pl.DataFrame({"subject_id": [1, 2, 2], "stay_id": [10, 20, 21]}).write_parquet(tmp_path / "stays.parquet")
    pl.DataFrame({"subject_id": [2, 3], "dicom_id": ["a", "b"]}).write_parquet(raw / "cxr_metadata.parquet")
    pl.DataFrame({"subject_id": [4], "study_id": [1]}).write_parquet(raw / "cxr_chexpert.parquet")
    (tmp_path / "test.csv").write_text("1,1\n")
    out = tmp_path / "splits.parquet"
    res = run_cli("splits", "--stays", str(tmp_path / "stays.parquet"), "--raw-dir", str(raw), "--out", str(out),
                  "--salt", "s", "--test-list", str(tmp_path / "test.csv"))
    assert res.returncode == 0, res.stderr
    got = pl.read_parquet(out)
    assert got["subject_id"].to_list() == [1, 2, 3, 4]
    assert got["ehr"].to_list() == [True, True, False, False]
    assert got["split"][0] == "test"


def test_split_lists_absent_on_a_large_cohort_keeps_hashed_splits():
    """Regression: a filter on literal-only predicates failed on frames of tens of thousands of subjects."""
    import numpy as np

    from medfuse_bench.etl.splits import apply_split_lists, assign_splits

    ids = pl.Series("subject_id", np.arange(10_000_000, 10_016_708))
    hashed = assign_splits(ids, "medfuse-bench-v1")
    assert apply_split_lists(hashed).equals(hashed.with_columns(pl.col("subject_id").cast(pl.Int64)))
