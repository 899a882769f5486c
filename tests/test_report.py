"""Report tables and figures on fabricated prediction files of both tasks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from medfuse_bench.evaluation.metrics import evaluate
from medfuse_bench.evaluation.predictions import read_predictions, target_column
from medfuse_bench.report import ablations, tables
from medfuse_bench.report.build import ReportSettings, build_report
from medfuse_bench.report.experiments import TABLE1, TABLE2
from medfuse_bench.report.inputs import Workdir, select_test_set
from medfuse_bench.report.provenance import TASK_DEFINITION_KEY, data_flags, task_definitions
from medfuse_bench.resources import phenotypes, task_labels

PAIRED_ONLY = ["ehr-paired", "cxr-paired", "early-paired", "joint-paired", "mmtm", "daft"]
PARTIAL_CAPABLE = ["early-partial", "early-partial-zeros", "joint-partial", "joint-partial-zeros", "multihead-partial",
                   "medfuse-ri", "medfuse-pt", "medfuse-optimal"]
BOOT = 60


def fabricate_samples(task: str, n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    labels = task_labels(task)
    split = rng.choice(["train", "val", "test"], size=n, p=[0.55, 0.1, 0.35])
    paired = rng.random(n) < 0.4
    frame = pl.DataFrame({
        "subject_id": np.arange(n) + 10_000,
        "stay_id": np.arange(n) * 7 + 30_000_000,
        "split": split,
        "cxr_dicom_id": pl.Series([f"d{i}" if p else None for i, p in enumerate(paired)], dtype=pl.String),
        "period_length": rng.uniform(48, 200, n),
        "age": rng.uniform(18, 95, n),
    })
    prevalence = rng.uniform(0.12, 0.4, len(labels))
    y = (rng.random((n, len(labels))) < prevalence).astype(np.int8)
    return frame.with_columns(pl.Series(lab, y[:, j], dtype=pl.Int8) for j, lab in enumerate(labels))


def prediction_frame(samples: pl.DataFrame, task: str, test_set: str, strength: float, seed: int) -> pl.DataFrame:
    labels = task_labels(task)
    test = select_test_set(samples, test_set)
    rng = np.random.default_rng(seed)
    y = test.select(labels).to_numpy()
    scores = 1 / (1 + np.exp(-(rng.normal(0, 1, y.shape) + strength * (2 * y - 1))))
    scores = np.round(scores, 2)  # ties, as real probabilities rounded by a model can have
    return pl.DataFrame({"stay_id": test["stay_id"]}).with_columns(
        *(pl.Series(target_column(lab), y[:, j], dtype=pl.Int8) for j, lab in enumerate(labels)),
        *(pl.Series(lab, scores[:, j], dtype=pl.Float64) for j, lab in enumerate(labels)),
    )


def fabricate_workdir(root: Path, *, skip: tuple[str, ...] = (), n: int = 500, preset: str = "medfuse") -> Workdir:
    wd = Workdir.at(root)
    for t, task in enumerate(("in-hospital-mortality", "phenotyping")):
        samples = fabricate_samples(task, n, seed=t)
        wd.samples(task).parent.mkdir(parents=True, exist_ok=True)
        samples.write_parquet(wd.samples(task))
        for e, experiment in enumerate(PAIRED_ONLY + PARTIAL_CAPABLE + ["ehr-partial", "ensemble"]):
            if experiment in skip:
                continue
            sets = ["paired"]
            if experiment in PARTIAL_CAPABLE:
                sets += ["partial", "paired_nocxr"]
            if experiment in ("ehr-partial", "ensemble"):
                sets += ["partial"]
            for s, test_set in enumerate(sets):
                strength = 0.4 + 0.05 * e - (0.3 if test_set == "paired_nocxr" else 0)
                path = wd.predictions(task, experiment, test_set)
                path.parent.mkdir(parents=True, exist_ok=True)
                prediction_frame(samples, task, test_set, strength, seed=100 * t + 10 * e + s).write_parquet(path)
        for percent, auroc in ((0, 0.80), (20, 0.83), (100, 0.81)):
            path = wd.selected(task, f"medfuse-p{percent}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"experiment": f"medfuse-p{percent}", "task": task, "val_auroc": auroc + 0.01 * t,
                                        "val_auprc": 0.4}))
    wd.config_resolved.write_text(yaml.safe_dump({"workdir": str(root), "seed": 1002, "fidelity": "corrected",
                                                  "scale": "smoke", "etl": {"cohort_preset": preset},
                                                  "synthetic": {"enabled": True, "stays": n}}))
    wd.provenance.parent.mkdir(parents=True, exist_ok=True)
    wd.provenance.write_text(json.dumps({"mimic_iv": {"version": "synthetic-1.0"}, "rows": {"icustays": n}}))
    wd.summary.write_text(json.dumps({"tasks": {}}))
    return wd


@pytest.fixture(scope="module")
def full_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workdir, Path]:
    root = tmp_path_factory.mktemp("wd")
    wd = fabricate_workdir(root, preset="medfuse-2022")
    out = root / "report"
    build_report(root, out, ReportSettings(n_resamples=BOOT, seed=5, drop_fractions=(0.0, 0.5, 1.0),
                                           unimodal_test_fractions=(0.0, 0.5, 1.0)))
    return wd, out


def test_every_artifact_is_written(full_report: tuple[Workdir, Path]) -> None:
    _, out = full_report
    for key in ("table1", "table2", "table3", "table4", "table5", "table_a2", "table_a3"):
        assert (out / f"{key}.csv").stat().st_size > 0
        assert (out / f"{key}.md").stat().st_size > 0
    for key in ("figure4", "figure_a1", "figure_a2", "figure_a3"):
        assert (out / f"{key}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / f"{key}.csv").exists()
    text = (out / "report.md").read_text()
    assert "WARNING: leaky task data" in text and "WARNING: synthetic data" in text
    assert "config sha256" in text and "synthetic-1.0" in text and "Data set sizes" in text


def test_table_values_equal_the_metric_functions(full_report: tuple[Workdir, Path]) -> None:
    wd, out = full_report
    frame = pl.read_csv(out / "table2.csv")
    for task in ("phenotyping", "in-hospital-mortality"):
        preds = read_predictions(wd.predictions(task, "medfuse-optimal", "paired"), task_labels(task))
        ev = evaluate(preds.y_true, preds.y_score, preds.labels, n_resamples=BOOT, seed=5)
        row = frame.filter((pl.col("task") == task) & (pl.col("experiment") == "medfuse-optimal")).row(0, named=True)
        for m in ("auroc", "auprc"):
            est = ev.macro(m)
            assert row[m] == pytest.approx(est.value, abs=1e-12)
            assert row[f"{m}_ci_low"] == pytest.approx(est.ci_low, abs=1e-12)
            assert row[f"{m}_ci_high"] == pytest.approx(est.ci_high, abs=1e-12)
        assert row["n"] == preds.stay_id.size


def test_markdown_uses_the_paper_ci_format(full_report: tuple[Workdir, Path]) -> None:
    wd, out = full_report
    frame = pl.read_csv(out / "table1.csv").filter(
        (pl.col("task") == "in-hospital-mortality") & (pl.col("experiment") == "medfuse-optimal")
        & (pl.col("prediction_set") == "paired")
    ).row(0, named=True)
    expected = f"{frame['auroc']:.3f} ({frame['auroc_ci_low']:.3f}, {frame['auroc_ci_high']:.3f})"
    md = (out / "table1.md").read_text()
    assert expected in md
    assert "| Model | Training set | Test set | Phenotyping AUROC |" in md
    assert frame["auroc_valid_resamples"] == frame["auroc_resamples"] == BOOT
    assert "[k/N]" not in md and f"/{BOOT}]" not in md  # every resample valid: no count, no note


def test_table4_and_table5_layout(full_report: tuple[Workdir, Path]) -> None:
    wd, out = full_report
    t4 = pl.read_csv(out / "table4.csv")
    assert t4.height == 26 and t4["label"][-1] == "Average"
    assert t4["type"][:25].to_list() == [p["group"] for p in phenotypes()]
    samples = pl.read_parquet(wd.samples("phenotyping"))
    label = phenotypes()[3]["name"]
    train_prev = samples.filter(pl.col("split") == "train")[label].mean()
    assert t4.filter(pl.col("label") == label)["prevalence_train"][0] == pytest.approx(train_prev)
    t5 = pl.read_csv(out / "table5.csv")
    assert t5["age_group"].to_list() == ["18-40", "40-60", "60-80", "> 80"]
    paired = select_test_set(pl.read_parquet(wd.samples("in-hospital-mortality")), "paired")
    assert t5["n"].sum() == paired.height
    md = (out / "table5.md").read_text()
    first = t5.row(0, named=True)
    assert f"{first['positive_fraction']:.3f} ({first['positives']}/{first['n']})" in md


def test_figure_data(full_report: tuple[Workdir, Path]) -> None:
    _, out = full_report
    a1 = pl.read_csv(out / "figure_a1.csv")
    assert sorted(a1["percent"].unique().to_list()) == [0, 20, 100] and a1["task"].n_unique() == 2
    a2 = pl.read_csv(out / "figure_a2.csv")
    assert set(a2["fraction"].to_list()) == {0.0, 0.5, 1.0}
    all_dropped = a2.filter(pl.col("fraction") == 1.0)
    assert all_dropped["stays_changed"].to_list() == all_dropped["n"].to_list()
    a3 = pl.read_csv(out / "figure_a3.csv")
    medfuse = a3.filter((pl.col("task") == "phenotyping") & (pl.col("experiment") == "medfuse-optimal"))
    n_by_fraction = medfuse.sort("fraction")["n"]
    assert n_by_fraction.is_sorted() and n_by_fraction[0] < n_by_fraction[-1]
    f4 = pl.read_csv(out / "figure4.csv")
    assert f4.height == 6 and set(f4["group"]) == {"acute", "mixed", "chronic"}


def test_drop_fraction_endpoints_match_the_files(full_report: tuple[Workdir, Path]) -> None:
    """0% dropped = paired.parquet, 100% dropped = paired_nocxr.parquet."""
    wd, out = full_report
    a2 = pl.read_csv(out / "figure_a2.csv").filter(
        (pl.col("task") == "in-hospital-mortality") & (pl.col("experiment") == "medfuse-optimal"))
    for fraction, test_set in ((0.0, "paired"), (1.0, "paired_nocxr")):
        preds = read_predictions(wd.predictions("in-hospital-mortality", "medfuse-optimal", test_set))
        ev = evaluate(preds.y_true, preds.y_score, preds.labels, n_resamples=BOOT, seed=5)
        assert a2.filter(pl.col("fraction") == fraction)["auroc"][0] == pytest.approx(ev.macro("auroc").value)


def test_missing_experiments_do_not_crash(tmp_path: Path) -> None:
    fabricate_workdir(tmp_path, skip=("mmtm", "ensemble", "ehr-paired", "joint-partial-zeros"), n=300)
    report = build_report(tmp_path, tmp_path / "report", ReportSettings(n_resamples=20, drop_fractions=(0.0, 1.0),
                                                                        unimodal_test_fractions=(0.0, 1.0)))
    t2 = pl.read_csv(tmp_path / "report" / "table2.csv")
    mmtm = t2.filter(pl.col("experiment") == "mmtm")
    assert mmtm.height == 2 and not mmtm["available"].any() and mmtm["auroc"].is_null().all()
    assert "| MMTM | — | — | — | — |" in (tmp_path / "report" / "table2.md").read_text()
    t4 = pl.read_csv(tmp_path / "report" / "table4.csv")
    assert t4["ehr_paired_auroc"].is_null().all() and t4["medfuse_optimal_auroc"].is_not_null().all()
    assert any("mmtm" in n for n in report.notes)
    assert "WARNING: leaky" not in (tmp_path / "report" / "report.md").read_text()


def test_empty_workdir_gives_a_report_with_notes(tmp_path: Path) -> None:
    report = build_report(tmp_path, tmp_path / "out", ReportSettings(n_resamples=10))
    assert (tmp_path / "out" / "report.md").exists() and report.notes


def test_metric_table_marks_absent_rows() -> None:
    frame = tables.metric_table(TABLE1, ["in-hospital-mortality"], lambda *key: None)
    assert frame.height == len(TABLE1.rows) and not frame["available"].any()
    md = tables.metric_table_markdown(TABLE1, frame, ["in-hospital-mortality"])
    assert md.count("—") >= 2 * len(TABLE1.rows)


def test_bold_marks_the_best_row() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    evs = {e: evaluate(y, np.clip(y * k / 10 + rng.random(200), 0, 2), ["mortality"], n_resamples=20)
           for k, e in enumerate(r.experiment for r in TABLE2.rows)}
    frame = tables.metric_table(TABLE2, ["in-hospital-mortality"], lambda t, e, s: evs[e])
    md = tables.metric_table_markdown(TABLE2, frame, ["in-hospital-mortality"])
    best = frame.sort("auroc", descending=True)["experiment"][0]
    best_name = next(r.cells[0] for r in TABLE2.rows if r.experiment == best)
    best_line = next(line for line in md.splitlines() if line.startswith(f"| {best_name} |"))
    assert best_line.split(" | ")[1].startswith("**")  # its AUROC cell
    auroc_cells = [line.split(" | ")[1] for line in md.splitlines() if line.startswith("| ") and "Method" not in line]
    assert sum(c.startswith("**") for c in auroc_cells) == 1


def test_intervals_on_few_valid_resamples_show_their_count() -> None:
    """An interval resting on fewer than 95% of the resamples carries [k/N] in the Markdown, explained below the
    table; the CSV holds valid_resamples and resamples for every estimate."""
    rng = np.random.default_rng(3)
    n = 60
    common = (rng.random(n) < 0.4).astype(np.int8)
    rare = np.zeros(n, dtype=np.int8)
    rare[7] = 1  # one positive: drawn in about 63% of the resamples
    evs = {}
    for row in TABLE2.rows:
        y = rare if row.experiment == "medfuse-optimal" else common
        evs[row.experiment] = evaluate(y, rng.random(n), ["mortality"], n_resamples=200, seed=1)
    frame = tables.metric_table(TABLE2, ["in-hospital-mortality"], lambda t, e, s: evs[e])
    md = tables.metric_table_markdown(TABLE2, frame, ["in-hospital-mortality"])
    optimal = frame.filter(pl.col("experiment") == "medfuse-optimal").row(0, named=True)
    valid = optimal["auroc_valid_resamples"]
    assert 100 < valid < 0.95 * 200 and optimal["auroc_resamples"] == 200
    assert valid == evs["medfuse-optimal"].label("auroc", "mortality").valid_resamples
    name = next(r.cells[0] for r in TABLE2.rows if r.experiment == "medfuse-optimal")
    line = next(line for line in md.splitlines() if line.startswith(f"| {name} |"))
    assert line.count(f"[{valid}/200]") == 2  # AUROC and AUPRC
    assert md.count("/200]") == 2 and "[k/N] after an interval" in md
    assert (frame.filter(pl.col("experiment") != "medfuse-optimal")["auroc_valid_resamples"] == 200).all()


def test_mix_and_unimodal_subsets_are_nested() -> None:
    order = ablations.seeded_order(np.arange(100), seed=1, stream=2)
    assert set(ablations.take_first(order, 0.2)) <= set(ablations.take_first(order, 0.5))
    assert ablations.take_first(order, 1.0).size == 100 and ablations.take_first(order, 0.0).size == 0


def test_leak_flag_from_the_samples_metadata(tmp_path: Path) -> None:
    """A samples table written by task-tables carries its task definition; a leaky one raises the banner."""
    fabricate_workdir(tmp_path, n=200)
    path = Workdir.at(tmp_path).samples("in-hospital-mortality")
    definition = {"task": "in-hospital-mortality", "preset": "medfuse-2022", "leaky": True}
    pl.read_parquet(path).write_parquet(path, metadata={TASK_DEFINITION_KEY: json.dumps(definition)})
    assert task_definitions([path]) == [definition]
    settings = ReportSettings(n_resamples=10, drop_fractions=(0.0,), unimodal_test_fractions=(0.0,))
    build_report(tmp_path, tmp_path / "r", settings)
    assert "WARNING: leaky task data" in (tmp_path / "r" / "report.md").read_text()


def test_data_flags_sources() -> None:
    assert data_flags({"etl": {"cohort_preset": "medfuse-2022"}}, None, None, []).leaky
    assert data_flags(None, {"leaky": True}, None, []).leaky
    assert not data_flags({"synthetic": {"enabled": False}}, None, None, []).synthetic
    assert data_flags(None, None, {"mimic_iv": {"root": "/w/synthetic/mimic-iv"}}, []).synthetic
    assert not data_flags(None, None, {"mimic_iv": {"root": "/data/mimic-iv-2.2"}}, []).synthetic


def test_doctests() -> None:
    import doctest

    from medfuse_bench.report import experiments, inputs, markdown, provenance

    for module in (ablations, tables, markdown, inputs, provenance, experiments):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_nan_free_csv(full_report: tuple[Workdir, Path]) -> None:
    _, out = full_report
    for value in pl.read_csv(out / "table3.csv")["auroc"].to_list():
        assert value is not None and not math.isnan(value)


def test_report_lists_the_etl_exclusions_most_rows_first():
    from medfuse_bench.report.cohort import exclusions_markdown

    summary = {"exclusions": [
        {"stage": "cohort", "file": "icustays", "column": "outtime", "reason": "outtime before intime",
         "action": "dropped", "rows": 2, "example": "stay_id 7"},
        {"stage": "variables", "file": "chartevents", "column": "value", "reason": "not a number",
         "action": "dropped", "rows": 1234, "example": "'abc'"},
    ]}
    text = exclusions_markdown(summary, "results/tasks/summary.md")
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| Stage | File |")
    assert "not a number" in lines[1] and "1,234" in lines[1] and "outtime before intime" in lines[2]
    assert "results/tasks/summary.md" in text
    assert exclusions_markdown({"exclusions": []}) == "" and exclusions_markdown(None) == ""
