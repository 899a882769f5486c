"""Leaderboard: score a submission against the workdir's held-out test labels, and rank every score.

A score file ``{workdir}/scores/<name>.json`` holds ``name``, ``task``, ``test_set``, ``n``, ``auroc`` and
``auprc`` (each ``{"value", "ci_low", "ci_high"}``; macro over labels for phenotyping), ``micro``,
``per_label`` (phenotyping), ``bootstrap``, ``seed``, ``metadata`` and the submission's sha256. It has no
timestamp, so scoring the same file twice gives the same bytes.

The leaderboard of a task and test set ranks those score files by AUROC (then AUPRC) together with the
pipeline's own models, scored the same way from ``predictions/{task}/*/{test_set}.parquet`` and marked as
baselines.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.evaluation.metrics import METRICS, Estimate, evaluate
from medfuse_bench.io import atomic_path, write_json, write_text
from medfuse_bench.report.experiments import TASK_TITLES, display_name
from medfuse_bench.report.inputs import Workdir, read_samples, select_test_set
from medfuse_bench.report.markdown import format_estimate, markdown_table
from medfuse_bench.report.submission import check_submission, default_metadata_path, read_metadata, read_submission
from medfuse_bench.resources import task_labels

logger = logging.getLogger(__name__)

LEADERBOARD_TEST_SETS: tuple[str, ...] = ("partial", "paired")


def _interval(est: Estimate) -> dict[str, float | None]:
    d = est.to_dict()
    return {"value": d["value"], "ci_low": d["ci_low"], "ci_high": d["ci_high"]}


def held_out_truth(workdir: Workdir, task: str, test_set: str) -> pl.DataFrame:
    """stay_id and the 0/1 labels of the held-out test set."""
    if test_set not in LEADERBOARD_TEST_SETS:
        raise MedfuseError(f"unknown test set '{test_set}'; expected one of {', '.join(LEADERBOARD_TEST_SETS)}")
    samples = read_samples(workdir.samples(task), task)
    return select_test_set(samples, test_set).select("stay_id", *task_labels(task))


def score_probabilities(
    probabilities: pl.DataFrame, truth: pl.DataFrame, labels: list[str], n_resamples: int, seed: int
) -> dict[str, Any]:
    """Metrics of probabilities aligned row by row with ``truth`` (as :func:`check_submission` returns them)."""
    y_true = truth.select(labels).to_numpy().astype(np.int8)
    y_score = probabilities.select(labels).to_numpy()
    ev = evaluate(y_true, y_score, labels, n_resamples=n_resamples, seed=seed)
    result: dict[str, Any] = {"n": ev.n}
    result |= {m: _interval(ev.macro(m)) for m in METRICS}
    result["micro"] = {m: _interval(ev.micro(m)) for m in METRICS}
    if len(labels) > 1:
        result["per_label"] = {lab: {m: _interval(ev.label(m, lab)) for m in METRICS} for lab in labels}
    result |= {"bootstrap": n_resamples, "seed": seed}
    return result


def score_submission(
    submission: str | os.PathLike[str],
    task: str,
    test_set: str,
    workdir: Workdir,
    *,
    metadata: str | os.PathLike[str] | None = None,
    name: str | None = None,
    n_resamples: int = 1000,
    seed: int = 2022,
) -> tuple[dict[str, Any], Path]:
    """Check and score a submission; write ``{workdir}/scores/<name>.json`` (name = the file's stem by default)."""
    submission = Path(submission)
    labels = task_labels(task)
    frame = read_submission(submission)
    truth = held_out_truth(workdir, task, test_set)
    probabilities = check_submission(frame, truth, labels, str(submission))
    meta = read_metadata(metadata if metadata is not None else default_metadata_path(submission))
    name = name or submission.stem
    result = {"name": name, "task": task, "test_set": test_set, "baseline": False}
    result |= score_probabilities(probabilities, truth, labels, n_resamples, seed)
    result |= {"metadata": meta, "submission_sha256": hashlib.sha256(submission.read_bytes()).hexdigest()}
    path = workdir.scores / f"{name}.json"
    write_json(result, path)
    return result, path


def baseline_scores(workdir: Workdir, task: str, test_set: str, n_resamples: int, seed: int) -> list[dict[str, Any]]:
    """The pipeline's models as leaderboard entries: every prediction file of the task and test set, scored as a
    submission (a file that fails the checks is left out with a warning)."""
    labels = task_labels(task)
    truth = held_out_truth(workdir, task, test_set)
    entries = []
    for experiment in workdir.prediction_experiments(task, test_set):
        path = workdir.predictions(task, experiment, test_set)
        try:
            probabilities = check_submission(read_submission(path), truth, labels, str(path))
        except MedfuseError as exc:
            logger.warning("baseline left out of the leaderboard: %s", exc)
            continue
        entry = {"name": experiment, "task": task, "test_set": test_set, "baseline": True}
        entry |= score_probabilities(probabilities, truth, labels, n_resamples, seed)
        entry["metadata"] = {"name": display_name(experiment), "authors": "medfuse-bench baseline",
                             "description": f"experiment '{experiment}' of this workdir", "code_url": ""}
        entries.append(entry)
    return entries


def submitted_scores(workdir: Workdir, task: str, test_set: str) -> list[dict[str, Any]]:
    """Score files of ``{workdir}/scores`` for the task and test set."""
    entries = []
    for path in sorted(workdir.scores.glob("*.json")):
        try:
            entry = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise MedfuseError(f"score file '{path}' is not valid JSON; delete it and re-run score") from exc
        if not isinstance(entry, dict) or any(k not in entry for k in ("task", "test_set", "auroc", "auprc")):
            raise MedfuseError(f"score file '{path}' lacks task, test_set, auroc or auprc; re-run score")
        if entry["task"] == task and entry["test_set"] == test_set:
            entries.append(entry)
    return entries


_LEADERBOARD_SCHEMA = {
    "rank": pl.Int64(),
    "name": pl.String(),
    "model": pl.String(),
    "authors": pl.String(),
    "baseline": pl.Boolean(),
    "n": pl.Int64(),
    **{f"{m}{s}": pl.Float64() for m in METRICS for s in ("", "_ci_low", "_ci_high")},
    "code_url": pl.String(),
}


def rank_entries(entries: list[dict[str, Any]]) -> pl.DataFrame:
    """Entries ranked by AUROC, then AUPRC (higher first; undefined last), then name.

    >>> e = lambda name, a, p: {"name": name, "auroc": {"value": a}, "auprc": {"value": p}, "metadata": {}}
    >>> rank_entries([e("a", 0.8, 0.4), e("b", 0.9, 0.3), e("c", 0.8, 0.5)]).select("rank", "name").rows()
    [(1, 'b'), (2, 'c'), (3, 'a')]
    """
    records = []
    for entry in entries:
        meta = entry.get("metadata") or {}
        authors = meta.get("authors", "")
        record = {
            "rank": None,
            "name": entry["name"],
            "model": str(meta.get("name", entry["name"])),
            "authors": ", ".join(map(str, authors)) if isinstance(authors, list) else str(authors),
            "baseline": bool(entry.get("baseline", False)),
            "n": entry.get("n"),
            "code_url": str(meta.get("code_url", "")),
        }
        for m in METRICS:
            est = entry[m]
            record |= {m: est.get("value"), f"{m}_ci_low": est.get("ci_low"), f"{m}_ci_high": est.get("ci_high")}
        records.append(record)
    frame = pl.DataFrame(records, schema=_LEADERBOARD_SCHEMA)
    frame = frame.sort(["auroc", "auprc", "name"], descending=[True, True, False], nulls_last=True)
    return frame.with_columns(pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("rank"))


def leaderboard_markdown(frame: pl.DataFrame, task: str, test_set: str) -> str:
    rows = [
        [
            str(r["rank"]),
            r["model"] + (" (baseline)" if r["baseline"] else ""),
            r["authors"],
            format_estimate(r["auroc"], r["auroc_ci_low"], r["auroc_ci_high"]),
            format_estimate(r["auprc"], r["auprc_ci_low"], r["auprc_ci_high"]),
            "" if r["n"] is None else str(r["n"]),
            r["code_url"],
        ]
        for r in frame.iter_rows(named=True)
    ]
    title = f"## Leaderboard: {TASK_TITLES.get(task, task)}, {test_set} test set\n\n"
    intro = ("Ranked by AUROC (macro over labels for phenotyping), then AUPRC; 95% bootstrap percentile intervals.\n\n")
    return title + intro + markdown_table(["Rank", "Model", "Authors", "AUROC", "AUPRC", "n", "Code"], rows) + "\n"


def write_leaderboard(
    workdir: Workdir, task: str, test_set: str, n_resamples: int, seed: int
) -> tuple[pl.DataFrame, list[Path]]:
    """Rank submissions and baselines; write ``{workdir}/leaderboard/{task}_{test_set}.md`` and ``.csv``."""
    entries = submitted_scores(workdir, task, test_set) + baseline_scores(workdir, task, test_set, n_resamples, seed)
    frame = rank_entries(entries)
    md = workdir.leaderboard / f"{task}_{test_set}.md"
    csv = workdir.leaderboard / f"{task}_{test_set}.csv"
    write_text(leaderboard_markdown(frame, task, test_set), md)
    with atomic_path(csv) as tmp:
        frame.write_csv(tmp)
    return frame, [md, csv]
