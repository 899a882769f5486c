"""The leaderboard's paired columns: each entry's difference from a reference model, rank groups, calibration.

Every entry whose probabilities are at hand (the pipeline's prediction files, and each submission's probabilities
kept beside its score file by ``score``) is scored on the same bootstrap resamples of the same held-out stays
(:mod:`medfuse_bench.evaluation.paired`), so:

- ``auroc_diff`` / ``auprc_diff``: entry - reference (``evaluation.paired_reference``, an experiment of the
  workdir), macro for phenotyping, with the 95% interval and two-sided p-value of the paired difference;
- ``rank_group``: in leaderboard order, an entry shares the group of the entry above when the interval of their
  paired AUROC difference holds 0 (entries without probabilities are left out of the groups);
- ``ece`` / ``brier``: calibration (:mod:`medfuse_bench.evaluation.calibration`), macro over labels.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.evaluation.calibration import CALIBRATION_METRICS, calibrate
from medfuse_bench.evaluation.metrics import METRICS
from medfuse_bench.evaluation.paired import format_difference, paired_evaluation, rank_groups
from medfuse_bench.io import atomic_path
from medfuse_bench.report.inputs import Workdir
from medfuse_bench.report.submission import check_submission, read_submission

logger = logging.getLogger(__name__)

PAIRED_SCHEMA: dict[str, pl.DataType] = {
    "rank_group": pl.Int64(),
    **{f"{m}_diff{s}": pl.Float64() for m in METRICS for s in ("", "_ci_low", "_ci_high", "_p")},
    **{f"{m}{s}": pl.Float64() for m in CALIBRATION_METRICS for s in ("", "_ci_low", "_ci_high")},
}


def probabilities_path(score_file: Path) -> Path:
    """Where ``score`` keeps a submission's probabilities, aligned with the held-out stays: beside its score file."""
    return score_file.with_suffix(".parquet")


def write_probabilities(probabilities: pl.DataFrame, truth: pl.DataFrame, score_file: Path) -> Path:
    """Keep ``stay_id`` and the probabilities of a checked submission, row for row with ``truth``."""
    path = probabilities_path(score_file)
    frame = pl.concat([truth.select("stay_id"), probabilities.drop("stay_id", strict=False)], how="horizontal")
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp)
    return path


def entry_key(name: str, baseline: bool) -> str:
    """A submission may carry an experiment's name: keys keep them apart."""
    return f"{'baseline' if baseline else 'submission'}:{name}"


def collect_probabilities(workdir: Workdir, task: str, test_set: str, truth: pl.DataFrame, labels: list[str],
                          frame: pl.DataFrame) -> dict[str, np.ndarray]:
    """Probabilities ``[n, labels]`` aligned with ``truth`` for every entry of the ranked ``frame`` that has them."""
    out = {}
    for name, baseline in frame.select("name", "baseline").iter_rows():
        if baseline:
            path = workdir.predictions(task, name, test_set)
        else:
            path = probabilities_path(workdir.scores / task / test_set / f"{name}.json")
        if not path.exists():
            continue
        try:
            probs = check_submission(read_submission(path), truth, labels, str(path))
        except MedfuseError as exc:
            logger.warning("left out of the paired columns: %s", exc)
            continue
        out[entry_key(name, baseline)] = probs.select(labels).to_numpy().astype(np.float64)
    return out


def add_paired_columns(frame: pl.DataFrame, probabilities: dict[str, np.ndarray], y_true: np.ndarray,
                       labels: list[str], *, reference: str, n_resamples: int, seed: int,
                       n_bins: int) -> pl.DataFrame:
    """``frame`` (ranked, from :func:`rank_entries`) with the columns of :data:`PAIRED_SCHEMA`."""
    keys = [entry_key(n, b) for n, b in frame.select("name", "baseline").iter_rows()]
    present = [k for k in keys if k in probabilities]
    rows: dict[str, dict[str, float | int | None]] = {k: {} for k in keys}
    if present:
        paired = paired_evaluation(y_true, {k: probabilities[k] for k in present}, labels,
                                   n_resamples=n_resamples, seed=seed)
        ref = entry_key(reference, True)
        if ref in probabilities:
            for key, diffs in paired.against(ref).items():
                for m, d in diffs.items():
                    rows[key] |= {f"{m}_diff": d.to_dict()["value"], f"{m}_diff_ci_low": d.to_dict()["ci_low"],
                                  f"{m}_diff_ci_high": d.to_dict()["ci_high"], f"{m}_diff_p": d.to_dict()["p_value"]}
        for key, group in rank_groups(present, paired).items():
            rows[key]["rank_group"] = group
        for key in present:
            cal = calibrate(y_true, probabilities[key], labels, n_bins=n_bins, n_resamples=n_resamples, seed=seed)
            for m in CALIBRATION_METRICS:
                est = cal.estimate(m).to_dict()
                rows[key] |= {m: est["value"], f"{m}_ci_low": est["ci_low"], f"{m}_ci_high": est["ci_high"]}
    extra = pl.DataFrame([{c: rows[k].get(c) for c in PAIRED_SCHEMA} for k in keys], schema=PAIRED_SCHEMA)
    return pl.concat([frame.drop([c for c in PAIRED_SCHEMA if c in frame.columns]), extra], how="horizontal")


def difference_cell(row: dict, metric: str, resamples: int | None) -> str:
    """The Markdown cell of an entry's difference from the reference."""
    return format_difference({"value": row.get(f"{metric}_diff"), "ci_low": row.get(f"{metric}_diff_ci_low"),
                              "ci_high": row.get(f"{metric}_diff_ci_high"), "p_value": row.get(f"{metric}_diff_p"),
                              "resamples": resamples})


def paired_intro(reference: str, present: bool) -> str:
    """The sentences under the leaderboard's title that explain its paired columns."""
    ref = (f"Δ AUROC: difference from `{reference}` on the same bootstrap resamples of the same stays (paired), "
           "95% interval and two-sided bootstrap p-value" if present else
           f"Δ AUROC: no predictions of the reference `{reference}` (evaluation.paired_reference) in this workdir")
    return (f"{ref}. Group: entries share a group with the one above while the interval of their paired AUROC "
            "difference holds 0. ECE: expected calibration error on equal-mass bins (macro over labels), with its "
            "95% interval.")
