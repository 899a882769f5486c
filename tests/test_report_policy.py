"""The report's policy lines, the Unified row, MedFuse (OPTIMAL)'s fraction, Table A1 and Figure 1's counts."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from test_report import fabricate_workdir  # noqa: E402

from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.report.build import ReportSettings, build_report
from medfuse_bench.report.cohort import cohort_counts, cohort_markdown, cxr_uni_images
from medfuse_bench.report.experiments import TABLE2
from medfuse_bench.report.inputs import Workdir
from medfuse_bench.report.optimal import optimal_choice
from medfuse_bench.report.policy import ReportPolicy, resolve_spec
from medfuse_bench.report.table_a1 import table_a1, table_a1_markdown

TASKS = ["phenotyping", "in-hospital-mortality"]


def _unified(policy: FidelityPolicy) -> tuple[tuple[str, ...], str, str]:
    row = next(r for r in resolve_spec(TABLE2, policy).rows if r.cells == ("Unified",))
    return row.cells, row.experiment, row.test_set


def test_unified_row_is_the_joint_network_on_paired_data_unless_multi_head():
    for preset in ("original", "corrected"):
        assert _unified(FidelityPolicy.preset(preset)) == (("Unified",), "joint-partial-zeros", "paired")
    multi = FidelityPolicy.from_switches("original", {"unified_row": "multi_head"})
    assert _unified(multi) == (("Unified",), "multihead-partial", "paired")
    # the other rows are untouched
    others = [r for r in resolve_spec(TABLE2, multi).rows if r.cells != ("Unified",)]
    assert [r.experiment for r in others] == [r.experiment for r in TABLE2.rows if r.cells != ("Unified",)]


def test_policy_line_names_the_preset_and_flags_a_changed_switch():
    line = ReportPolicy(FidelityPolicy.from_switches("corrected", {"optimal_fraction": "paper_fixed"}), "c.yaml").line()
    assert "fidelity policy: corrected, with optimal_fraction=paper_fixed" in line
    assert "**Differs from the corrected preset: optimal_fraction.**" in line
    assert "Differs" not in ReportPolicy(FidelityPolicy.preset("original"), "c.yaml").line()
    assert "assumed" in ReportPolicy.from_config(None, "c.yaml").line()


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def test_table_a1_reads_every_selection(tmp_path):
    wd = Workdir.at(tmp_path)
    for task, scale in (("phenotyping", 1.0), ("in-hospital-mortality", 2.0)):
        _write(wd.selected(task, "ehr-paired"), {"lr": 1e-4 * scale, "draw": 3, "val_auroc": 0.7, "runs": [{}] * 10})
        _write(wd.selected(task, "joint-partial-zeros"), {"lr": 2e-4 * scale, "draw": 0, "val_auroc": 0.7})
        _write(wd.selected(task, "multihead-partial"), {"lr": 4e-4 * scale, "draw": 0, "val_auroc": 0.7})
        _write(wd.selected(task, "medfuse-optimal"), {"lr": 3e-4, "draw": 0, "val_auroc": 0.8,
                                                      "chosen_experiment": "medfuse-p10"})
        _write(wd.selected(task, "medfuse-p10"), {"lr": 3e-4, "draw": 0, "val_auroc": 0.8})
    _write(wd.selected("radiology", "cxr-pretrain"), {"lr": 5e-5, "draw": 1, "val_auroc": 0.6})

    frame = table_a1(wd, TASKS, FidelityPolicy.preset("original"))
    cell = {(r["method"], r["task"]): r for r in frame.iter_rows(named=True)}
    assert cell[("LSTM trained with EHR_PAIRED", "in-hospital-mortality")]["lr"] == pytest.approx(2e-4)
    assert cell[("LSTM trained with EHR_PAIRED", "phenotyping")]["runs"] == 10
    assert cell[("Unified", "phenotyping")]["experiment"] == "joint-partial-zeros"
    assert cell[("Unified", "phenotyping")]["lr"] == pytest.approx(2e-4)
    assert cell[("MMTM", "phenotyping")]["lr"] is None  # not trained: a missing cell, not an error
    assert cell[("MedFuse (OPTIMAL)", "phenotyping")]["source"] == "medfuse-p10"
    assert cell[("Multi-head (EHR + CXR)_PARTIAL", "phenotyping")]["lr"] == pytest.approx(4e-4)
    assert cell[("ResNet-34 pretrained on CXR_UNI", "radiology")]["lr"] == pytest.approx(5e-5)
    # joint-partial-zeros fills the Unified row, so it is not listed a second time
    assert frame.filter(pl.col("experiment") == "joint-partial-zeros")["method"].unique().to_list() == ["Unified"]
    md = table_a1_markdown(frame, TASKS)
    assert "| Unified | `joint-partial-zeros` | 2.000e-04 | 4.000e-04 |" in md
    assert "3.000e-04 (`medfuse-p10`)" in md and "`radiology/cxr-pretrain`, shared by both tasks): 5.000e-05" in md

    multi = table_a1(wd, TASKS, FidelityPolicy.from_switches("original", {"unified_row": "multi_head"}))
    assert multi.filter(pl.col("method") == "Unified")["experiment"].unique().to_list() == ["multihead-partial"]


def test_cohort_counts_of_figure_1():
    samples = pl.DataFrame({
        "split": ["train", "train", "train", "val", "test", "test"],
        "cxr_dicom_id": ["a", None, "b", None, "c", None],
        "mortality": [1, 1, 0, 0, 1, 0],
    })
    frame = cohort_counts(samples, "in-hospital-mortality")
    assert frame.select("split", "partial", "paired", "partial_positives", "paired_positives").rows() == [
        ("train", 3, 2, 2, 1), ("val", 1, 0, 0, 0), ("test", 2, 1, 1, 1)]
    pheno = cohort_counts(samples.drop("mortality"), "phenotyping")
    assert pheno["partial_positives"].null_count() == 3
    md = cohort_markdown(frame, cxr_uni_images({"cxr_uni": {"images": {"train": 9, "val": 2, "test": 3}}}))
    assert "| in-hospital-mortality | train | 3 | 2 | 0.667 | 2 (66.7%) | 1 (50.0%) |" in md
    assert "train 9, val 2, test 3" in md
    assert cxr_uni_images({"cxr_uni": None}) is None


def test_optimal_choice_follows_the_selection_file_or_the_config(tmp_path):
    wd = Workdir.at(tmp_path)
    config = {"train": {"uni_modal_fraction": {"phenotyping": 0.2}}}
    fixed = FidelityPolicy.from_switches("original", {"optimal_fraction": "paper_fixed"})
    assert optimal_choice(wd, "phenotyping", fixed, config).percent == 20
    _write(wd.selected("phenotyping", "medfuse-optimal"), {"lr": 1e-4, "val_auroc": 0.8})
    assert optimal_choice(wd, "phenotyping", fixed, config).warning is None
    # a file trained at the fixed fraction under a sweep_best policy is flagged
    assert "rerun" in optimal_choice(wd, "phenotyping", FidelityPolicy.preset("original"), config).warning
    _write(wd.selected("phenotyping", "medfuse-optimal"), {"lr": 1e-4, "val_auroc": 0.8, "uni_fraction": 0.1,
                                                           "chosen_experiment": "medfuse-p10"})
    choice = optimal_choice(wd, "phenotyping", FidelityPolicy.preset("original"), config)
    assert (choice.percent, choice.how, choice.chosen_experiment, choice.warning) == (10, "sweep_best", "medfuse-p10",
                                                                                       None)


@pytest.fixture(scope="module")
def policy_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report of a run under fidelity original with unified_row=multi_head, OPTIMAL chosen as medfuse-p20."""
    root = tmp_path_factory.mktemp("policy")
    wd = fabricate_workdir(root, n=200)
    config = yaml.safe_load(wd.config_resolved.read_text())
    config |= {"fidelity": "original", "fidelity_switches": {"unified_row": "multi_head"}}
    wd.config_resolved.write_text(yaml.safe_dump(config))
    for task in TASKS:
        _write(wd.selected(task, "medfuse-optimal"), {
            "lr": 1e-4, "draw": 0, "val_auroc": 0.83, "uni_fraction": 0.2, "chosen_experiment": "medfuse-p20",
            "protocol": {"optimal_fraction": "sweep_best", "sweep_lr": "medfuse_pt_best"},
            "sweep": [{"fraction": 0.0, "val_auroc": 0.80}, {"fraction": 0.2, "val_auroc": 0.83},
                      {"fraction": 1.0, "val_auroc": 0.81}]})
    out = root / "report"
    build_report(root, out, ReportSettings(n_resamples=20, seed=1, drop_fractions=(0.0, 1.0),
                                           unimodal_test_fractions=(0.0, 1.0)))
    return out


def test_every_table_and_figure_states_the_policy(policy_report: Path):
    text = (policy_report / "report.md").read_text()
    sections = text.split("\n### ")[1:]
    assert len(sections) >= 12
    for section in sections:
        assert "Produced under fidelity policy: original, with unified_row=multi_head" in section, section[:60]
        assert "**Differs from the original preset: unified_row.**" in section
    assert "| fidelity policy | fidelity policy: original, with unified_row=multi_head" in text
    assert "Produced under fidelity policy: original" in (policy_report / "table2.md").read_text()


def test_report_says_which_fraction_optimal_is_and_which_model_unified_is(policy_report: Path):
    table1 = (policy_report / "table1.md").read_text()
    assert "MedFuse (OPTIMAL) = Phenotyping: **20%** uni-modal (`medfuse-p20`" in table1
    table2 = (policy_report / "table2.md").read_text()
    assert "Unified (switch unified_row = multi_head): `multihead-partial`" in table2
    unified = pl.read_csv(policy_report / "table2.csv").filter(pl.col("method") == "Unified")
    assert unified["experiment"].unique().to_list() == ["multihead-partial"]
    sweep = pl.read_csv(policy_report / "figure_a1.csv")
    assert sweep.filter(pl.col("chosen"))["percent"].unique().to_list() == [20]
    text = (policy_report / "report.md").read_text()
    assert "Table A1: learning rates" in text and "Data set sizes (Figure 1)" in text and "Deaths in PAIRED" in text
