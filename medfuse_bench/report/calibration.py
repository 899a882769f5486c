"""Report section: calibration of every model (ECE on equal-mass bins, Brier score, with 95% bootstrap intervals)
and reliability diagrams (:mod:`medfuse_bench.evaluation.calibration`).

The table covers both test sets; the diagrams, one PNG per task, the paired test set (the paper's), with the macro
curve over labels (the mean, per bin rank, of the labels' bin means) and, for phenotyping, each label's curve.
"""

from __future__ import annotations

import polars as pl

from medfuse_bench.evaluation.calibration import CALIBRATION_METRICS, Calibration, calibrate
from medfuse_bench.report import figures
from medfuse_bench.report.experiments import TASK_TITLES, display_name
from medfuse_bench.report.markdown import format_estimate, markdown_table

TEST_SETS: tuple[str, ...] = ("paired", "partial")
DIAGRAM_TEST_SET = "paired"


def calibration_of(preds, n_bins: int, n_resamples: int, seed: int) -> Calibration:
    return calibrate(preds.y_true, preds.y_score, preds.labels, n_bins=n_bins, n_resamples=n_resamples, seed=seed)


def calibration_frames(tasks: list[str], experiments, predictions, n_bins: int, n_resamples: int,
                       seed: int) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    """The table (one row per task, test set, model) and, per task, the reliability curves of the paired test set
    (rows per model, label incl. ``macro``, and bin)."""
    rows, curves = [], {}
    for task in tasks:
        for test_set in TEST_SETS:
            parts = []
            for e in experiments(task, test_set):
                preds = predictions(task, e, test_set)
                if preds is None:
                    continue
                cal = calibration_of(preds, n_bins, n_resamples, seed)
                row = {"task": task, "test_set": test_set, "experiment": e, "n": cal.n, "bins": n_bins}
                for m in CALIBRATION_METRICS:
                    est = cal.estimate(m).to_dict()
                    row |= {m: est["value"], f"{m}_ci_low": est["ci_low"], f"{m}_ci_high": est["ci_high"]}
                rows.append(row)
                if test_set == DIAGRAM_TEST_SET:
                    macro = cal.macro_reliability().with_columns(pl.lit("macro").alias("label"))
                    curve = pl.concat([cal.reliability.with_columns(pl.col("n").cast(pl.Float64)),
                                       macro.select(cal.reliability.columns)], how="vertical_relaxed")
                    parts.append(curve.with_columns(pl.lit(e).alias("experiment")))
            if parts:
                curves[task] = pl.concat(parts, how="vertical_relaxed").select(
                    "experiment", "label", "bin", "n", "mean_predicted", "observed")
    return pl.DataFrame(rows, infer_schema_length=None), curves


def calibration_markdown(frame: pl.DataFrame) -> str:
    rows = [[TASK_TITLES.get(r["task"], r["task"]), r["test_set"], display_name(r["experiment"]), str(r["n"]),
             *(format_estimate(r[m], r[f"{m}_ci_low"], r[f"{m}_ci_high"]) for m in CALIBRATION_METRICS)]
            for r in frame.iter_rows(named=True)]
    bins = frame["bins"][0] if frame.height else "?"
    return "\n".join([
        "### Calibration",
        "",
        f"Expected calibration error on {bins} equal-mass bins (`evaluation.calibration_bins`; each bin holds about "
        "n / bins test stays, sorted by predicted probability) and Brier score, with 95% bootstrap intervals on the "
        "AUROC's resamples (bins fixed on the test set). Macro over labels for phenotyping. Lower is better for both. "
        "Resampling adds noise to every bin's gap, which raises the resampled ECEs; ECE's interval is taken after "
        "shifting them down by their mean excess over the point value (the bootstrap's bias estimate).",
        "",
        markdown_table(["Task", "Test set", "Model", "n", "ECE", "Brier"], rows, numeric_from=3),
    ]) + "\n"


def add_sections(report, wd, tasks: list[str], store, n_bins: int) -> None:
    """The calibration table and one reliability figure per task into ``report``."""
    frame, curves = calibration_frames(tasks, wd.prediction_experiments, store.predictions, n_bins,
                                       store.n_resamples, store.seed)
    if not frame.height:
        report.notes.append("Calibration: skipped, no prediction files.")
        return
    report.table("calibration", frame, calibration_markdown(frame))
    for task, curve in curves.items():
        key = f"reliability_{task.replace('-', '_')}"
        title = f"Reliability diagrams: {TASK_TITLES.get(task, task)}, {DIAGRAM_TEST_SET} test set"
        figures.plot_reliability(curve, report.out_dir / f"{key}.png", title)
        caption = ("Observed rate against mean predicted probability in each equal-mass bin; blue: the macro over "
                   "labels, grey: each label (phenotyping); dotted: perfect calibration.")
        report.figure(key, curve, title, caption)
