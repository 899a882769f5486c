"""Report section: every model of the workdir against a reference model, paired on the same bootstrap resamples.

Per task and test set, the models with predictions are scored on the stays all of them predict, on the same
resamples (:mod:`medfuse_bench.evaluation.paired`); the table gives each model's macro AUROC / AUPRC, its difference
from the reference (``evaluation.paired_reference``) with the 95% paired interval and bootstrap p-value, and its
rank group (models in AUROC order share a group while the interval of the AUROC difference from the model above
holds 0).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from medfuse_bench.evaluation.metrics import METRICS
from medfuse_bench.evaluation.paired import PairedEvaluation, format_difference, paired_evaluation, rank_groups
from medfuse_bench.evaluation.predictions import Predictions
from medfuse_bench.report.experiments import TASK_TITLES, display_name
from medfuse_bench.report.markdown import MISSING, format_estimate, markdown_table

TEST_SETS: tuple[str, ...] = ("partial", "paired")


def common_stays(predictions: dict[str, Predictions]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The stays every file predicts (sorted) and, per file, the row of each of them.

    >>> p = lambda ids: Predictions(["y"], np.array(ids), np.zeros((len(ids), 1)), np.zeros((len(ids), 1)))
    >>> stays, rows = common_stays({"a": p([3, 1, 2]), "b": p([2, 3])})
    >>> stays.tolist(), rows["a"].tolist(), rows["b"].tolist()
    ([2, 3], [2, 0], [0, 1])
    """
    ids = [np.asarray(p.stay_id, dtype=np.int64) for p in predictions.values()]
    stays = ids[0]
    for other in ids[1:]:
        stays = np.intersect1d(stays, other)
    stays = np.unique(stays)
    rows = {}
    for name, own in zip(predictions, ids, strict=True):
        order = np.argsort(own, kind="stable")
        rows[name] = order[np.searchsorted(own[order], stays)]
    return stays, rows


def paired_models(predictions: dict[str, Predictions], n_resamples: int, seed: int) -> PairedEvaluation:
    """Every model of ``predictions`` on the stays they share, on the same resamples."""
    stays, rows = common_stays(predictions)
    first = next(iter(predictions))
    y = predictions[first].y_true[rows[first]]
    for name, p in predictions.items():
        if not np.array_equal(p.y_true[rows[name]], y):
            raise ValueError(f"prediction files '{first}' and '{name}' disagree on the truth of a stay")
    scores = {name: p.y_score[rows[name]] for name, p in predictions.items()}
    return paired_evaluation(y, scores, predictions[first].labels, n_resamples=n_resamples, seed=seed)


def paired_table(tasks: list[str], experiments, predictions, reference: str, n_resamples: int,
                 seed: int) -> pl.DataFrame:
    """One row per task, test set and model. ``experiments(task, test_set)`` lists the models with prediction
    files; ``predictions(task, experiment, test_set)`` reads one (or None)."""
    rows = []
    for task in tasks:
        for test_set in TEST_SETS:
            preds = {e: p for e in experiments(task, test_set) if (p := predictions(task, e, test_set)) is not None}
            if len(preds) < 2:
                continue
            paired = paired_models(preds, n_resamples, seed)
            order = sorted(preds, key=lambda e: (-np.nan_to_num(paired.evaluations[e].macro("auroc").value,
                                                                nan=-np.inf), e))
            groups = rank_groups(order, paired)
            diffs = paired.against(reference) if reference in preds else {}
            for e in order:
                row = {"task": task, "test_set": test_set, "experiment": e, "n": paired.n,
                       "reference": reference, "rank_group": groups[e]}
                for m in METRICS:
                    est = paired.evaluations[e].macro(m).to_dict()
                    row |= {m: est["value"], f"{m}_ci_low": est["ci_low"], f"{m}_ci_high": est["ci_high"]}
                    d = diffs[e][m].to_dict() if diffs else {}
                    row |= {f"{m}_diff": d.get("value"), f"{m}_diff_ci_low": d.get("ci_low"),
                            f"{m}_diff_ci_high": d.get("ci_high"), f"{m}_diff_p": d.get("p_value")}
                rows.append(row)
    return pl.DataFrame(rows, infer_schema_length=None)


def paired_markdown(frame: pl.DataFrame, reference: str, n_resamples: int) -> str:
    def diff(r: dict, m: str) -> str:
        if r["experiment"] == reference:
            return "reference"
        return format_difference({"value": r[f"{m}_diff"], "ci_low": r[f"{m}_diff_ci_low"],
                                  "ci_high": r[f"{m}_diff_ci_high"], "p_value": r[f"{m}_diff_p"],
                                  "resamples": n_resamples})

    rows = [[TASK_TITLES.get(r["task"], r["task"]), r["test_set"], display_name(r["experiment"]),
             MISSING if r["rank_group"] is None else str(r["rank_group"]), str(r["n"]),
             *(format_estimate(r[m], r[f"{m}_ci_low"], r[f"{m}_ci_high"]) for m in METRICS),
             *(diff(r, m) for m in METRICS)] for r in frame.iter_rows(named=True)]
    return "\n".join([
        "### Paired comparisons and rank groups",
        "",
        f"Every model against `{reference}` (`evaluation.paired_reference`; {display_name(reference)}), scored on "
        "the test stays all models predict and on the same bootstrap resamples, so the interval is that of the "
        "difference itself; p: two-sided bootstrap p-value (p<2/B: no resample on the other side of 0). Models in "
        "AUROC order share a group while the 95% interval of the paired AUROC difference from the model above holds "
        "0. Macro over labels for phenotyping.",
        "",
        markdown_table(["Task", "Test set", "Model", "Group", "n", "AUROC", "AUPRC", f"Δ AUROC vs {reference}",
                        f"Δ AUPRC vs {reference}"], rows, numeric_from=3),
    ]) + "\n"


def add_sections(report, wd, tasks: list[str], store, reference: str) -> None:
    """The paired-comparison table into ``report`` (a :class:`medfuse_bench.report.build.Report`)."""
    frame = paired_table(tasks, wd.prediction_experiments, store.predictions, reference, store.n_resamples,
                         store.seed)
    if frame.height:
        report.table("paired_comparisons", frame, paired_markdown(frame, reference, store.n_resamples))
    else:
        report.notes.append("Paired comparisons: skipped, fewer than two models with predictions on a test set.")
