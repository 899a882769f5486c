"""Notes under the result tables for rows whose AUROC interval reaches 0.5, on a tiny hand-built workdir."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import yaml

from medfuse_bench.evaluation.predictions import target_column
from medfuse_bench.report import chance
from medfuse_bench.report.build import ReportSettings, build_report
from medfuse_bench.report.inputs import Workdir

TASK = "in-hospital-mortality"
# split: (stays, with an X-ray, positives among all, positives among those with an X-ray)
SIZES = {"train": (40, 20, 8, 4), "val": (30, 10, 7, 2), "test": (60, 40, 12, 10)}


def samples() -> pl.DataFrame:
    rows = []
    stay = 30_000_000
    for split, (n, paired, pos, pos_paired) in SIZES.items():
        for i in range(n):
            stay += 1
            has_xray = i < paired
            positive = i < pos_paired if has_xray else i - paired < pos - pos_paired
            rows.append({"subject_id": stay - 20_000_000, "stay_id": stay, "split": split,
                         "cxr_dicom_id": f"d{stay}" if has_xray else None, "age": 60, "mortality": int(positive)})
    return pl.DataFrame(rows, schema_overrides={"mortality": pl.Int8, "cxr_dicom_id": pl.String})


def write_predictions(wd: Workdir, frame: pl.DataFrame, experiment: str, scores: np.ndarray) -> None:
    test = frame.filter((pl.col("split") == "test") & pl.col("cxr_dicom_id").is_not_null())
    path = wd.predictions(TASK, experiment, "paired")
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"stay_id": test["stay_id"], target_column("mortality"): test["mortality"],
                  "mortality": scores}).write_parquet(path)


def make_workdir(root: Path, fidelity: str = "corrected") -> Workdir:
    wd = Workdir.at(root)
    frame = samples()
    wd.samples(TASK).parent.mkdir(parents=True)
    frame.write_parquet(wd.samples(TASK))
    y = frame.filter((pl.col("split") == "test") & pl.col("cxr_dicom_id").is_not_null())["mortality"].to_numpy()
    write_predictions(wd, frame, "early-paired", 0.2 + 0.6 * y)  # AUROC 1: no note
    write_predictions(wd, frame, "joint-partial", np.linspace(0.1, 0.9, y.size))  # positives come first: AUROC 0
    write_predictions(wd, frame, "mmtm", np.random.default_rng(0).random(y.size))  # about 0.5
    run = root / "models" / TASK / "joint-partial" / "runs" / "lr0"
    run.mkdir(parents=True)
    (run / "result.json").write_text(json.dumps({"epochs_run": 4, "best_epoch": 1, "val_samples": 30}))
    wd.selected(TASK, "joint-partial").write_text(json.dumps({
        "experiment": "joint-partial", "task": TASK, "draw": 0, "lr": 1e-3, "val_auroc": 0.859, "best_epoch": 1,
        "runs": [{"draw": 0, "lr": 1e-3, "val_auroc": 0.859}],
    }))
    wd.config_resolved.write_text(yaml.safe_dump({"fidelity": fidelity}))
    return wd


def test_rows_reaching_chance_get_a_note_with_test_and_validation_sizes(tmp_path: Path) -> None:
    make_workdir(tmp_path)
    build_report(tmp_path, tmp_path / "report", ReportSettings(n_resamples=50, drop_fractions=(0.0,),
                                                                 unimodal_test_fractions=(0.0,), tasks=(TASK,)))
    table2 = (tmp_path / "report" / "table2.md").read_text()
    notes = [line for line in table2.splitlines() if line.startswith("- ")]
    assert len(notes) == 2, table2
    joint = next(n for n in notes if n.startswith("- Joint (EHR + CXR)_PARTIAL"))
    # corrected partial models validate on every validation stay: 30 stays, 10 with an X-ray, 7 positives
    assert "AUROC 0.000 (0.000, 0.000) lies below 0.5; test set 40 stays, 10 positives;" in joint
    assert "kept epoch 1 of 4 for its validation AUROC 0.859 on 30 stays (10 with an X-ray), 7 positives." in joint
    mmtm = next(n for n in notes if n.startswith("- MMTM"))
    assert "contains 0.5; test set 40 stays, 10 positives." in mmtm  # no selected.json: no selection facts
    assert not any(n.startswith("- Early (EHR + CXR)_PAIRED") for n in notes)
    assert "- Joint (EHR + CXR)_PARTIAL" in (tmp_path / "report" / "report.md").read_text()


def test_original_fidelity_validates_partial_models_on_paired_stays(tmp_path: Path) -> None:
    wd = make_workdir(tmp_path, fidelity="original")
    facts = chance.selection_facts(wd, TASK, "joint-partial", samples(), "original")
    assert facts is not None
    assert (facts.val_stays, facts.val_with_xray, facts.val_positives) == (10, 10, (2,))
    assert chance.selection_text(facts).endswith("on 10 stays (all with an X-ray), 2 positives")


def test_untrained_or_unknown_experiments_have_no_selection(tmp_path: Path) -> None:
    wd = make_workdir(tmp_path)
    assert chance.selection_facts(wd, TASK, "mmtm", samples(), "corrected") is None  # no selected.json
    assert chance.selection_facts(wd, TASK, "ensemble", samples(), "corrected") is None
