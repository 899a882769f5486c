"""Report sections on leakage: the outside auditor's verdict per task, and what the paper's observation window is
worth (the LSTM trained on windows selected by charttime against the same LSTM on windows selected by storetime).

The paired difference of two models scores both on the same bootstrap resamples of the same test stays (the
counts of :mod:`medfuse_bench.evaluation.bootstrap` with the report's seed), so its interval is that of the
difference itself, narrower than the two models' intervals side by side.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from medfuse_bench.evaluation.metrics import METRICS, Estimate
from medfuse_bench.evaluation.paired import Difference, format_difference, paired_evaluation
from medfuse_bench.evaluation.predictions import Predictions
from medfuse_bench.io import read_json_object
from medfuse_bench.report.experiments import TASK_TITLES
from medfuse_bench.paths import Workdir
from medfuse_bench.report.markdown import MISSING, format_estimate, markdown_table

#: The experiments compared: the LSTM on the run's window, and on the window of values stored by its end.
WINDOW_PAIR: tuple[str, str] = ("ehr-partial", "ehr-partial-available")
WINDOW_TEST_SETS: tuple[str, ...] = ("paired", "partial")


@dataclass(frozen=True)
class PairedDifference:
    """Macro AUROC / AUPRC of models A and B on the same stays and of B - A, each with its 95% interval."""

    n: int
    a: dict[str, Estimate]
    b: dict[str, Estimate]
    difference: dict[str, Difference]


def aligned(a: Predictions, b: Predictions) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truth and both models' scores on the stays both predict, in ``a``'s order."""
    order = {int(s): i for i, s in enumerate(b.stay_id)}
    common = np.array([i for i, s in enumerate(a.stay_id) if int(s) in order], dtype=np.int64)
    rows_b = np.array([order[int(a.stay_id[i])] for i in common], dtype=np.int64)
    y = a.y_true[common]
    if not np.array_equal(y, b.y_true[rows_b]):
        raise ValueError("the two prediction files disagree on the truth of a stay")
    return y, a.y_score[common], b.y_score[rows_b]


def paired_difference(a: Predictions, b: Predictions, n_resamples: int, seed: int) -> PairedDifference:
    """Score ``b`` against ``a`` on the stays both predict (:mod:`medfuse_bench.evaluation.paired`); labels
    single-class on those stays are left out of the macro."""
    y, score_a, score_b = aligned(a, b)
    paired = paired_evaluation(y, {"a": score_a, "b": score_b}, a.labels, n_resamples=n_resamples, seed=seed)
    ev = paired.evaluations
    return PairedDifference(
        n=paired.n,
        a={m: ev["a"].macro(m) for m in METRICS},
        b={m: ev["b"].macro(m) for m in METRICS},
        difference={m: paired.difference("b", "a", m) for m in METRICS},
    )


def window_table(wd: Workdir, tasks: list[str], predictions, n_resamples: int, seed: int) -> pl.DataFrame:
    """One row per task, test set and metric; ``predictions(task, experiment, test_set)`` reads a file or None."""
    rows = []
    for task in tasks:
        windows = [_window_of(wd.root / "tasks" / task / folder) for folder in ("", "available")]
        for test_set in WINDOW_TEST_SETS:
            a, b = (predictions(task, e, test_set) for e in WINDOW_PAIR)
            if a is None or b is None:
                continue
            result = paired_difference(a, b, n_resamples, seed)
            for m in METRICS:
                rows.append({
                    "task": task, "test_set": test_set, "metric": m, "n": result.n,
                    "window_a": windows[0], "window_b": windows[1],
                    **{f"{k}_{f}": _none(getattr(getattr(result, k)[m], f))
                       for k in ("a", "b", "difference") for f in ("value", "ci_low", "ci_high")},
                    "difference_p_value": _none(result.difference[m].p_value),
                })
    return pl.DataFrame(rows, infer_schema_length=None)


def _none(x: float) -> float | None:
    return None if isinstance(x, float) and math.isnan(x) else x


def _window_of(folder: Path) -> str:
    path = folder / "normalizer.json"
    if not path.exists():
        return "?"
    return read_json_object(path, "rerun `medfuse-bench timeseries` for it").get("window_by", "charttime")


def window_markdown(frame: pl.DataFrame, resamples: int = 1000) -> str:
    def cell(r: dict, key: str) -> str:
        return format_estimate(r[f"{key}_value"], r[f"{key}_ci_low"], r[f"{key}_ci_high"])

    rows = [[TASK_TITLES.get(r["task"], r["task"]), r["test_set"], r["metric"].upper(), str(r["n"]),
             f"{cell(r, 'a')} ({r['window_a']})", f"{cell(r, 'b')} ({r['window_b']})",
             format_difference({f: r[f"difference_{f}"] for f in ("value", "ci_low", "ci_high", "p_value")}
                               | {"resamples": resamples})] for r in frame.iter_rows(named=True)]
    return "\n".join([
        "### Observation window: by charttime or by availability",
        "",
        "The LSTM on every train stay (EHR_PARTIAL) trained on time series whose window holds the values charted in "
        "it (`ehr-partial`, the paper's window under `window_by: charttime`) and on time series whose window holds "
        "only the values stored by its end (`ehr-partial-available`, `window_by: storetime`), scored on the same "
        "test stays. Difference = storetime - charttime; its 95% interval comes from the same bootstrap resamples "
        "for both models (paired), with its two-sided bootstrap p-value. Macro over labels for phenotyping.",
        "",
        markdown_table(["Task", "Test set", "Metric", "n", "LSTM, window A", "LSTM, window B", "Difference (B - A)"],
                       rows, numeric_from=3),
    ]) + "\n"


# --- the auditor's verdicts -------------------------------------------------------------------------------------


def read_audits(wd: Workdir, tasks: list[str]) -> dict[str, dict[str, Any]]:
    """``audit/{task}/summary.json`` of each task that has one."""
    out = {}
    for task in tasks:
        path = wd.root / "audit" / task / "summary.json"
        if path.exists():
            out[task] = read_json_object(path, f"rerun `medfuse-bench leakage-audit` for '{task}'")
    return out


def audit_frame(audits: dict[str, dict[str, Any]]) -> pl.DataFrame:
    rows = []
    for task, s in audits.items():
        readings = [f["reading"] for f in s["findings"]]
        facts = s.get("facts", {})
        rows.append({
            "task": task, "verdict": s["verdict"], "window_by": s.get("window_by"),
            "cohort_preset": s.get("cohort_preset"), "blocking": readings.count("blocking"),
            "expected": readings.count("expected"), "review": readings.count("review"), "not_run": len(s["not_run"]),
            "charted_in_window": facts.get("charted_in_window"),
            "stored_after_prediction": facts.get("charted_in_window_stored_after_prediction"),
            "stays_with_late_values": facts.get("stays_with_late_values"), "stays": facts.get("stays"),
        })
    return pl.DataFrame(rows, infer_schema_length=None)


def audit_markdown(audits: dict[str, dict[str, Any]], wd: Workdir, out_dir: Path) -> str:
    rows, notes = [], []
    for task, s in audits.items():
        html = wd.root / "audit" / task / "leakage.html"
        link = os.path.relpath(html, out_dir)
        readings = [f["reading"] for f in s["findings"]]
        facts = s.get("facts", {})
        charted, late = facts.get("charted_in_window"), facts.get("charted_in_window_stored_after_prediction")
        share = f"{late:,} of {charted:,} ({late / charted:.1%}), {facts.get('stays_with_late_values')} of " \
                f"{facts.get('stays')} stays" if charted else MISSING
        rows.append([TASK_TITLES.get(task, task), f"**{s['verdict']}**", str(readings.count("blocking")),
                     str(readings.count("expected")), str(readings.count("review")), str(len(s["not_run"])), share,
                     f"[{html.name}]({link})"])
        title = TASK_TITLES.get(task, task)
        for f in s["findings"]:
            notes.append(f"- {title}, {f['reading']}: {f['severity']} `{f['check_id']}`: {f['message']} "
                         f"({f['reason']})")
        for f in s["not_run"]:
            needs = ", ".join(f["needs"])
            why = f" ({f['why']})" if f["why"] else ""
            notes.append(f"- {title}, not run: `{f['check_id']}` needs {needs}{why}")
    return "\n".join([
        "### Leakage audit (icu-leakage-check)",
        "",
        "An outside tool audits each task's cohort with the pipeline's provenance (docs/leakage.md): events with "
        "charttime, storetime and source table, the linked X-ray, prediction, outcome and eligibility times, the "
        "splits, and the fitted normaliser. *Expected* findings are those the run's protocol has by design; a "
        "*blocking* one would have stopped the run. Late values: values charted inside the window but stored after "
        "the prediction time (in the window under `window_by: charttime`, left out under `storetime`).",
        "",
        markdown_table(["Task", "Verdict", "Blocking", "Expected", "To review", "Not run", "Late values", "Report"],
                       rows, numeric_from=2),
        "",
        *notes,
    ]) + "\n"


def add_sections(report, wd: Workdir, tasks: list[str], store) -> None:
    """The audit table and the window table into ``report`` (a :class:`medfuse_bench.report.build.Report`)."""
    audits = read_audits(wd, tasks)
    if audits:
        report.table("leakage_audit", audit_frame(audits), audit_markdown(audits, wd, report.out_dir))
    else:
        report.notes.append("Leakage audit: skipped, no audit/{task}/summary.json.")
    frame = window_table(wd, tasks, store.predictions, store.n_resamples, store.seed)
    if frame.height:
        report.table("window_by_availability", frame, window_markdown(frame, store.n_resamples))
    else:
        report.notes.append("Observation window table: skipped, no predictions of both "
                            + " and ".join(WINDOW_PAIR) + ".")
