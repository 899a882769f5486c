"""The version-bump drift report: its statistics on tiny hand-built frames, the command on hand-built workdirs, the
report's link, and the ETL on two releases (MIMIC-IV 1.0 and 3.1) of one synthetic world."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from medfuse_bench import cli
from medfuse_bench.drift import compare, models, report_link
from medfuse_bench.drift.build import build_drift
from medfuse_bench.evaluation.bootstrap import resample_indices
from medfuse_bench.evaluation.metrics import auroc_score, average_precision
from medfuse_bench.errors import MedfuseError
from medfuse_bench.report.inputs import Workdir
from medfuse_bench.synth import generate
from medfuse_bench.synth.release import Release

IHM = "in-hospital-mortality"


def _samples(stays: list[tuple[int, int, str, str | None, int]]) -> pl.DataFrame:
    """Mortality samples from (subject_id, stay_id, split, cxr_dicom_id, mortality)."""
    subject, stay, split, cxr, label = zip(*stays)
    return pl.DataFrame({
        "subject_id": list(subject), "stay_id": list(stay), "split": list(split),
        "cxr_dicom_id": pl.Series(list(cxr), dtype=pl.String), "period_length": [48.0] * len(stay),
        "age": [60] * len(stay), "mortality": pl.Series(list(label), dtype=pl.Int8),
    })


def _predictions(stay_id: list[int], truth: list[int], score: list[float]) -> pl.DataFrame:
    return pl.DataFrame({"stay_id": stay_id, "target:mortality": pl.Series(truth, dtype=pl.Int8),
                         "mortality": score})


# --- statistics -----------------------------------------------------------------------------------------------------


def test_wilson_interval() -> None:
    share, low, high = compare.wilson(0, 10)
    assert share == 0.0 and low == 0.0 and high == pytest.approx(compare.Z95**2 / (10 + compare.Z95**2))
    share, low, high = compare.wilson(10, 10)
    assert share == 1.0 and high == pytest.approx(1.0) and low == pytest.approx(10 / (10 + compare.Z95**2))
    assert compare.wilson(0, 0) == (None, None, None)


def test_split_stability_lists_the_patients_that_moved() -> None:
    previous = pl.DataFrame({"subject_id": [1, 2, 3, 5], "split": ["train", "val", "test", "train"]})
    current = pl.DataFrame({"subject_id": [2, 3, 4, 5], "split": ["val", "train", "train", "train"]})
    out = compare.split_stability(previous, current)
    assert (out["kept_patients"], out["same_split"], out["moved"]) == (3, 2, 1)
    assert out["share_same_split"] == pytest.approx(2 / 3)
    assert out["moved_patients"] == [{"subject_id": 3, "previous": "test", "current": "train"}]


def test_kept_rows_name_the_columns_that_changed() -> None:
    previous = _samples([(1, 10, "train", None, 0), (2, 20, "test", "x", 1), (3, 30, "test", None, 0),
                         (4, 40, "val", "y", 0)])
    current = _samples([(1, 10, "train", "new", 0), (2, 20, "test", "x", 0), (3, 30, "test", None, 0),
                        (5, 50, "val", None, 1)])
    out = compare.kept_rows(IHM, previous, current)
    assert (out["kept_stays"], out["identical"], out["changed"]) == (3, 1, 2)
    assert out["changed_by_column"] == {"cxr_dicom_id": 1, "mortality": 1}
    assert out["changed_stays"] == [10, 20]
    assert (out["gained_xray"], out["lost_xray"], out["other_xray"]) == (1, 0, 0)
    counts = {r["split"]: r for r in compare.cohort_counts(IHM, previous, current)}
    assert (counts["test"]["previous_partial"], counts["test"]["previous_paired"]) == (2, 1)
    assert (counts["train"]["current_paired"], counts["val"]["current_paired"]) == (1, 0)
    assert counts["test"]["previous_paired_share"] == 0.5


def test_prevalence_change_is_a_patient_bootstrap_of_both_releases() -> None:
    # patient 1 has two stays; patient 6 only in the current release, patient 4 only in the previous one
    previous = _samples([(1, 10, "train", None, 1), (1, 11, "train", None, 1), (2, 20, "test", None, 0),
                         (3, 30, "test", None, 0), (4, 40, "val", None, 1)])
    current = _samples([(1, 10, "train", None, 1), (1, 11, "train", None, 0), (2, 20, "test", None, 0),
                        (3, 30, "test", None, 1), (6, 60, "val", None, 1)])
    (row,) = compare.prevalence_change(IHM, previous, current, n_resamples=300, seed=5)
    assert row["previous"] == pytest.approx(3 / 5) and row["current"] == pytest.approx(3 / 5)
    assert row["change"] == pytest.approx(0.0)
    assert (row["kept_became_positive"], row["kept_became_negative"]) == (1, 1)
    # the same resamples by hand: subjects 1, 2, 3, 4, 6 drawn with replacement, stays follow their patient
    subjects = [1, 2, 3, 4, 6]
    diffs = []
    for draw in resample_indices(len(subjects), 300, seed=5):
        chosen = [subjects[i] for i in draw]
        prev = [previous.filter(pl.col("subject_id") == s)["mortality"].to_list() for s in chosen]
        curr = [current.filter(pl.col("subject_id") == s)["mortality"].to_list() for s in chosen]
        a, b = sum(prev, []), sum(curr, [])
        diffs.append(np.mean(b) - np.mean(a) if a and b else np.nan)
    low, high = np.nanpercentile(diffs, [2.5, 97.5])
    assert row["change_ci"] == [pytest.approx(low), pytest.approx(high)]
    assert low < 0 < high


def test_identical_releases_have_no_change() -> None:
    frame = _samples([(1, 10, "train", None, 1), (2, 20, "test", None, 0), (3, 30, "test", "x", 1)])
    (row,) = compare.prevalence_change(IHM, frame, frame, n_resamples=100, seed=0)
    assert row["change"] == 0.0 and row["change_ci"] == [0.0, 0.0]
    assert compare.kept_rows(IHM, frame, frame)["changed"] == 0


def test_paired_difference_of_new_labels_is_the_metric_difference() -> None:
    y_old = np.array([0, 1, 0, 1, 1, 0, 0, 1])
    y_new = y_old.copy()
    y_new[2] = 1  # one kept stay became positive
    score = np.array([0.1, 0.8, 0.7, 0.6, 0.9, 0.2, 0.3, 0.4])
    out = models.paired_difference(y_old, score, y_new, score, ["mortality"], 200, 1)
    d = out["auroc"]["difference"]["value"]
    assert d == pytest.approx(auroc_score(y_new, score) - auroc_score(y_old, score)) and d != 0
    assert out["auprc"]["difference"]["value"] == pytest.approx(
        average_precision(y_new, score) - average_precision(y_old, score))
    assert out["auroc"]["previous"]["value"] == pytest.approx(auroc_score(y_old, score))
    low, high = out["auroc"]["difference"]["ci_low"], out["auroc"]["difference"]["ci_high"]
    assert low <= d <= high


# --- the command on hand-built workdirs ----------------------------------------------------------------------------


def _workdir(root: Path, samples: pl.DataFrame, predictions: pl.DataFrame | None = None) -> Path:
    (root / "tasks" / IHM).mkdir(parents=True)
    (root / "etl").mkdir()
    samples.write_parquet(root / "tasks" / IHM / "samples.parquet")
    samples.select("subject_id", "split").unique().sort("subject_id").write_parquet(root / "etl" / "splits.parquet")
    samples.select("subject_id", "stay_id").write_parquet(root / "etl" / "stays.parquet")
    if predictions is not None:
        path = root / "predictions" / IHM / "ehr-partial" / "partial.parquet"
        path.parent.mkdir(parents=True)
        predictions.write_parquet(path)
    return root


@pytest.fixture
def two_workdirs(tmp_path: Path) -> tuple[Path, Path]:
    """Previous: 8 test stays with predictions; current: 6 of them kept (one relabelled), 2 removed, 2 added."""
    rows = [(i, 100 + i, "test", "img" if i % 2 else None, int(i in (1, 4, 6))) for i in range(1, 9)]
    rows += [(20, 120, "train", None, 0)]
    previous = _samples(rows)
    kept = [r for r in rows if r[0] not in (7, 8)]
    kept[1] = (2, 102, "test", None, 1)  # relabelled in the new release
    current = _samples(kept + [(30, 130, "test", None, 1), (31, 131, "test", "img", 0)])
    test = [r for r in rows if r[2] == "test"]
    scores = [0.9, 0.3, 0.2, 0.7, 0.4, 0.6, 0.1, 0.5]
    a = _workdir(tmp_path / "a", previous,
                 _predictions([r[1] for r in test], [r[4] for r in test], scores))
    new_test = [r for r in kept + [(30, 130, "test", None, 1), (31, 131, "test", "img", 0)] if r[2] == "test"]
    b = _workdir(tmp_path / "b", current,
                 _predictions([r[1] for r in new_test], [r[4] for r in new_test], [0.8] * 3 + [0.2] * 5))
    return a, b


def test_compare_models_on_the_kept_test_stays(two_workdirs: tuple[Path, Path]) -> None:
    a, b = two_workdirs
    current = pl.read_parquet(b / "tasks" / IHM / "samples.parquet")
    (row,) = models.compare_models(IHM, Workdir(a), current, None, n_resamples=100, seed=0)
    assert (row["test_set"], row["previous_stays"], row["current_stays"], row["kept_stays"]) == ("partial", 8, 8, 6)
    assert row["labels_changed"] == 1 and list(row["comparisons"]) == ["new_labels"]
    kept = np.array([101, 102, 103, 104, 105, 106])
    score = np.array([0.9, 0.3, 0.2, 0.7, 0.4, 0.6])
    old, new = np.array([1, 0, 0, 1, 0, 1]), np.array([1, 1, 0, 1, 0, 1])
    assert row["comparisons"]["new_labels"]["auroc"]["previous"]["value"] == pytest.approx(auroc_score(old, score))
    assert row["comparisons"]["new_labels"]["auroc"]["current"]["value"] == pytest.approx(auroc_score(new, score))
    (row,) = models.compare_models(IHM, Workdir(a), current, Workdir(b), n_resamples=100, seed=0)
    retrained = row["comparisons"]["new_model"]["auroc"]
    assert retrained["current"]["value"] == pytest.approx(auroc_score(new, np.array([0.8, 0.8, 0.8, 0.2, 0.2, 0.2])))
    assert len(kept) == row["kept_stays"]


def test_drift_command_writes_json_and_markdown(two_workdirs: tuple[Path, Path]) -> None:
    a, b = two_workdirs
    assert cli.main(["drift", "--previous-workdir", str(a), "--workdir", str(b), "--bootstrap", "50"]) == 0
    record = json.loads((b / "drift" / "drift.json").read_text())
    assert record["splits"]["share_same_split"] == 1.0 and record["splits"]["moved"] == 0
    assert record["tasks"][IHM]["stays"] == {"previous": 9, "current": 9, "kept": 7, "removed": 2, "added": 2}
    assert record["membership"]["cohort patients"]["kept"] == 7
    assert record["tasks"][IHM]["kept_rows"]["changed_by_column"] == {"mortality": 1}
    assert [m["experiment"] for m in record["models"]] == ["ehr-partial"]
    text = (b / "drift" / "drift.md").read_text()
    assert "7 of 7 kept patients kept their split (100.0%)" in text
    assert "| in-hospital-mortality | ehr-partial | partial | 6 of 8 / 8 | 1 |" in text
    assert "### The previous models on the previous and on the current labels" in text
    assert "Not compared: drift.new_models is off." in text


def test_drift_errors_name_what_is_wrong(two_workdirs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    a, b = two_workdirs
    with pytest.raises(MedfuseError, match="is the current one"):
        build_drift(b, b)
    (a / "etl" / "splits.parquet").unlink()
    assert cli.main(["drift", "--previous-workdir", str(a), "--workdir", str(b)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "splits.parquet" in err[0] and "splits step" in err[0]
    assert not (b / "drift").exists()


def test_report_links_the_drift_report(two_workdirs: tuple[Path, Path]) -> None:
    from medfuse_bench.report.build import ReportSettings, build_report

    _, b = two_workdirs
    assert report_link(b, b / "report") == []
    assert cli.main(["drift", "--previous-workdir", str(two_workdirs[0]), "--workdir", str(b), "--bootstrap",
                     "20"]) == 0
    assert "](../drift/drift.md)" in "\n".join(report_link(b, b / "report"))
    build_report(b, b / "report", ReportSettings(n_resamples=20))
    report = (b / "report" / "report.md").read_text()
    assert "## Drift from the previous release" in report and "](../drift/drift.md)" in report


def test_drift_doctests() -> None:
    import medfuse_bench.drift.compare as compare_module
    import medfuse_bench.drift.data as data_module

    for module in (compare_module, data_module, models):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0


# --- the ETL on two releases of one world ---------------------------------------------------------------------------

STAYS, SEED = 150, 21


def _etl(data: Path, work: Path, *, fidelity: str = "corrected") -> None:
    """The ETL stages up to the task tables, in-process, as the rules call them."""
    raw, etl = work / "etl" / "raw", work / "etl"
    steps = [
        ["ingest", "--mimic-iv", data / "mimic-iv", "--mimic-cxr", data / "mimic-cxr-jpg", "--out-dir", raw,
         "--provenance", etl / "provenance.json", "--threads", "1"],
        ["cohort", "--raw-dir", raw, "--out", etl / "stays.parquet", "--fidelity", fidelity],
        ["variables", "--raw-dir", raw, "--stays", etl / "stays.parquet", "--out", etl / "events.parquet"],
        ["phenotypes", "--raw-dir", raw, "--stays", etl / "stays.parquet", "--out", etl / "phenotypes.parquet",
         "--stats", etl / "phenotype_mapping.json"],
        ["splits", "--stays", etl / "stays.parquet", "--raw-dir", raw, "--out", etl / "splits.parquet"],
        *(["task-tables", "--stays", etl / "stays.parquet", "--events", etl / "events.parquet", "--phenotypes",
           etl / "phenotypes.parquet", "--splits", etl / "splits.parquet", "--cxr-metadata",
           raw / "cxr_metadata.parquet", "--task", task, "--out", work / "tasks" / task / "samples.parquet"]
          for task in (IHM, "phenotyping")),
    ]
    for step in steps:
        assert cli.main([str(x) for x in step]) == 0, step[0]


@pytest.fixture(scope="module")
def bumped(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """MIMIC-IV 1.0 of a world and its next release in 3.1 (30 stays added, 2% of the patients removed), each
    through the ETL; folder names carry the versions, as PhysioNet's downloads do."""
    root = tmp_path_factory.mktemp("bump")
    generate(root / "v1.0", STAYS, SEED, image_size=16, progress=False, mimic_version="1.0")
    generate(root / "v3.1", STAYS, SEED, image_size=16, progress=False, mimic_version="3.1",
             release=Release(added_stays=30, removed_share=0.02))
    for version in ("1.0", "3.1"):
        _etl(root / f"v{version}", root / f"work-{version}")
    return {"root": root, "a": root / "work-1.0", "b": root / "work-3.1"}


def test_kept_patients_keep_their_split_and_kept_stays_their_task_rows(bumped: dict[str, Path]) -> None:
    a, b = bumped["a"], bumped["b"]
    assert json.loads((a / "etl/provenance.json").read_text())["mimic_iv"]["version"] == "1.0"
    assert json.loads((b / "etl/provenance.json").read_text())["mimic_iv"]["version"] == "3.1"
    splits = pl.read_parquet(a / "etl/splits.parquet").join(pl.read_parquet(b / "etl/splits.parquet"),
                                                             on="subject_id", suffix="_b")
    assert splits.height > 100 and (splits["split"] == splits["split_b"]).all()
    for task in (IHM, "phenotyping"):
        old = pl.read_parquet(a / "tasks" / task / "samples.parquet")
        new = pl.read_parquet(b / "tasks" / task / "samples.parquet")
        kept = old.join(new.select("stay_id"), on="stay_id").sort("stay_id")
        assert kept.height >= 0.9 * old.height and new.height > old.height
        # raw rows of the kept stays are equal in both releases (the versions differ in spelling only, and in dod,
        # which the default mortality switch does not read): so are their task rows
        assert new.join(kept.select("stay_id"), on="stay_id").sort("stay_id").equals(kept), task


def test_mortality_differs_only_where_the_raw_dod_does(bumped: dict[str, Path]) -> None:
    a, b = bumped["a"], bumped["b"]
    for work in (a, b):  # the original's mortality reads dod, whose meaning 2.0 widened
        assert cli.main(["cohort", "--raw-dir", str(work / "etl/raw"), "--out", str(work / "stays_original.parquet"),
                         "--fidelity", "original"]) == 0
    old = pl.read_parquet(a / "stays_original.parquet")
    new = pl.read_parquet(b / "stays_original.parquet")
    both = old.join(new, on="stay_id", suffix="_b")
    differs = both.filter(pl.col("mortality") != pl.col("mortality_b"))
    assert (differs["dod"].ne_missing(differs["dod_b"])).all()
    same_dod = both.filter(pl.col("dod").eq_missing(pl.col("dod_b")))
    assert (same_dod["mortality"] == same_dod["mortality_b"]).all()
    assert both.filter(pl.col("dod").ne_missing(pl.col("dod_b"))).height > 0  # 3.1 adds deaths after discharge


def test_drift_report_of_the_version_bump(bumped: dict[str, Path]) -> None:
    a, b = bumped["a"], bumped["b"]
    record = build_drift(a, b, n_resamples=100, seed=0)
    assert record["versions"]["previous"].startswith("MIMIC-IV 1.0")
    assert record["versions"]["current"].startswith("MIMIC-IV 3.1")
    assert record["splits"]["share_same_split"] == 1.0
    raw = record["membership"]["raw ICU stays"]
    assert raw["added"] == 30 and raw["removed"] > 0 and raw["kept"] + raw["removed"] == STAYS
    for task, t in record["tasks"].items():
        assert t["kept_rows"]["changed"] == 0 and t["kept_rows"]["identical"] == t["stays"]["kept"], task
        # the new patients have no X-ray in MIMIC-CXR-JPG: the linked share cannot rise
        for row in t["counts"]:
            assert row["current_paired"] == row["previous_paired"] - _removed_paired(a, b, task, row["split"])


def _removed_paired(a: Path, b: Path, task: str, split: str) -> int:
    """Samples of ``split`` with a linked X-ray in ``a`` whose stay is gone from ``b``."""
    new = pl.read_parquet(b / "tasks" / task / "samples.parquet")["stay_id"]
    old = pl.read_parquet(a / "tasks" / task / "samples.parquet")
    return old.filter((pl.col("split") == split) & pl.col("cxr_dicom_id").is_not_null()
                      & ~pl.col("stay_id").is_in(new.implode())).height
