"""Leaderboard: score a submission against the workdir's held-out test labels, and rank every score.

A score file ``{workdir}/scores/{task}/{test_set}/<name>.json`` (one per entry, task and test set) holds ``name``,
``task``, ``test_set``, ``n``, ``auroc`` and ``auprc`` (each ``{"value", "ci_low", "ci_high", "valid_resamples"}``;
macro over labels for phenotyping), ``micro``,
``per_label`` (phenotyping), ``bootstrap``, ``seed``, ``metadata``, the submission's sha256 and what it was
measured on (:mod:`medfuse_bench.report.manifest`: the cohort receipt's sha256, the config's sha256, the package
version and the data's preset). It has no timestamp, so scoring the same file twice gives the same bytes.

The leaderboard of a task and test set ranks those score files by AUROC (then AUPRC) together with the
pipeline's own models, scored the same way from ``predictions/{task}/*/{test_set}.parquet`` and marked as
baselines, and with the score files of other groups (``--scores``): one ranking per cohort receipt
(:mod:`medfuse_bench.report.board`), never two receipts in one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.receipt import receipt_id
from medfuse_bench.evaluation.metrics import METRICS, evaluate
from medfuse_bench.io import atomic_path, write_json, write_text
from medfuse_bench.report.board import (
    NO_RECEIPT,
    duplicate_names,
    folder_scores,
    group_by_receipt,
    load_score_file,
    receipt_title,
    stack_boards,
)
from medfuse_bench.report.experiments import TASK_TITLES, display_name
from medfuse_bench.paths import Workdir
from medfuse_bench.report.inputs import read_samples, select_test_set
from medfuse_bench.report.leaderboard_stats import (
    add_paired_columns,
    collect_probabilities,
    difference_cell,
    paired_intro,
    probabilities_path,  # noqa: F401 - where score keeps a submission's probabilities
    write_probabilities,
)
from medfuse_bench.report.manifest import data_description, is_leaky, manifest, receipt_path
from medfuse_bench.report.markdown import MISSING, few_valid_note, format_estimate, markdown_table
from medfuse_bench.report.submission import check_submission, default_metadata_path, read_metadata, read_submission
from medfuse_bench.resources import task_labels

logger = logging.getLogger(__name__)

LEADERBOARD_TEST_SETS: tuple[str, ...] = ("partial", "paired")

#: An entry name is a plain file name: it names the score file, so no folders, no leading dot, no shell specials.
_NAME = re.compile(r"^\w[\w .+-]{0,199}$")


def check_name(name: str) -> str:
    """An entry name usable as the score file's name, or one error saying why not.

    >>> check_name("my-model v2")
    'my-model v2'
    >>> check_name("../../x")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    medfuse_bench.errors.MedfuseError: entry name '../../x' is not a plain file name: use letters, digits, ...
    """
    if not _NAME.fullmatch(name) or name.endswith((".", " ")):
        raise MedfuseError(
            f"entry name '{name}' is not a plain file name: use letters, digits, spaces, '.', '+', '-' and '_', "
            "starting with a letter or digit, at most 200 characters (--name sets it; default: the submission's "
            "file stem)"
        )
    return name


def score_path(workdir: Workdir, task: str, test_set: str, name: str) -> Path:
    """``{workdir}/scores/{task}/{test_set}/<name>.json``: one file per entry, task and test set."""
    return workdir.scores / task / test_set / f"{check_name(name)}.json"


def held_out_truth(workdir: Workdir, task: str, test_set: str) -> pl.DataFrame:
    """stay_id and the 0/1 labels of the held-out test set."""
    if test_set not in LEADERBOARD_TEST_SETS:
        raise MedfuseError(f"unknown test set '{test_set}'; expected one of {', '.join(LEADERBOARD_TEST_SETS)}")
    samples = read_samples(workdir.samples(task), task)
    return select_test_set(samples, test_set).select("stay_id", *task_labels(task))


def score_probabilities(
    probabilities: pl.DataFrame,
    truth: pl.DataFrame,
    labels: list[str],
    n_resamples: int,
    seed: int,
    *,
    warn: bool = True,
) -> dict[str, Any]:
    """Metrics of probabilities aligned row by row with ``truth`` (as :func:`check_submission` returns them);
    ``warn=False`` leaves the warning about single-class labels to the caller (see :func:`single_class_labels`)."""
    y_true = truth.select(labels).to_numpy().astype(np.int8)
    y_score = probabilities.select(labels).to_numpy()
    ev = evaluate(y_true, y_score, labels, n_resamples=n_resamples, seed=seed, warn=warn)
    result: dict[str, Any] = {"n": ev.n}
    result |= {m: ev.macro(m).to_dict() for m in METRICS}
    result["micro"] = {m: ev.micro(m).to_dict() for m in METRICS}
    if len(labels) > 1:
        result["per_label"] = {lab: {m: ev.label(m, lab).to_dict() for m in METRICS} for lab in labels}
        result["macro_excluded_labels"] = list(ev.macro_excluded)
        result["macro_complete_resamples"] = ev.macro_complete_resamples()
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
    """Check and score a submission; write :func:`score_path` (name = the file's stem by default)."""
    submission = Path(submission)
    name = check_name(name if name is not None else submission.stem)
    labels = task_labels(task)
    frame = read_submission(submission)
    truth = held_out_truth(workdir, task, test_set)
    probabilities = check_submission(frame, truth, labels, str(submission))
    meta = read_metadata(metadata if metadata is not None else default_metadata_path(submission))
    result = {"name": name, "task": task, "test_set": test_set, "baseline": False}
    result |= score_probabilities(probabilities, truth, labels, n_resamples, seed)
    result |= {"metadata": meta, "submission_sha256": hashlib.sha256(submission.read_bytes()).hexdigest()}
    result |= manifest(workdir, task)
    path = score_path(workdir, task, test_set, name)
    write_probabilities(probabilities, truth, path)  # for the leaderboard's paired columns
    write_json(result, path)
    return result, path


def baseline_scores(workdir: Workdir, task: str, test_set: str, n_resamples: int, seed: int) -> list[dict[str, Any]]:
    """The pipeline's models as leaderboard entries: every prediction file of the task and test set, scored as a
    submission (a file that fails the checks is left out with a warning)."""
    labels = task_labels(task)
    truth = held_out_truth(workdir, task, test_set)
    entries = []
    measured_on = manifest(workdir, task) if workdir.prediction_experiments(task, test_set) else {}
    for experiment in workdir.prediction_experiments(task, test_set):
        path = workdir.predictions(task, experiment, test_set)
        try:
            probabilities = check_submission(read_submission(path), truth, labels, str(path))
        except MedfuseError as exc:
            logger.warning("baseline left out of the leaderboard: %s", exc)
            continue
        entry = {"name": experiment, "task": task, "test_set": test_set, "baseline": True}
        entry |= score_probabilities(probabilities, truth, labels, n_resamples, seed, warn=False)
        entry["metadata"] = {"name": display_name(experiment), "authors": "medfuse-bench baseline",
                             "description": f"experiment '{experiment}' of this workdir", "code_url": ""}
        entry |= measured_on
        entries.append(entry)
    return entries


def single_class_labels(truth: pl.DataFrame, labels: list[str]) -> list[str]:
    """Labels with a single class (or no rows) in the test set: undefined for every entry.

    >>> single_class_labels(pl.DataFrame({"a": [0, 1], "b": [0, 0]}), ["a", "b"])
    ['b']
    """
    return [lab for lab in labels if truth[lab].n_unique() < 2]


def local_receipt(workdir: Workdir) -> str | None:
    """The sha256 of the workdir's receipt.json, None without one."""
    path = receipt_path(workdir)
    return receipt_id(path) if path.exists() else None


def warn_old_score_files(workdir: Workdir) -> list[Path]:
    """Score files of the earlier flat layout ``{workdir}/scores/<name>.json``, which no leaderboard reads: one
    warning naming them."""
    old = sorted(workdir.scores.glob("*.json"))
    if old:
        logger.warning(
            "%d score file(s) directly in %s (%s) are ignored: score files now live in "
            "scores/{task}/{test_set}/<name>.json; score those submissions again",
            len(old), workdir.scores, ", ".join(p.name for p in old[:3]) + (", ..." if len(old) > 3 else ""),
        )
    return old


def submitted_scores(workdir: Workdir, task: str, test_set: str) -> list[dict[str, Any]]:
    """Score files ``{workdir}/scores/{task}/{test_set}/*.json``."""
    entries = []
    for path in sorted((workdir.scores / task / test_set).glob("*.json")):
        entry = load_score_file(path)
        if (entry["task"], entry["test_set"]) != (task, test_set):
            raise MedfuseError(f"score file '{path}' is for task '{entry['task']}' and test set '{entry['test_set']}', "
                               f"not for the folder it is in ({task}/{test_set}); delete it and re-run score")
        entries.append(entry)
    return entries


_LEADERBOARD_SCHEMA = {
    "rank": pl.Int64(),
    "name": pl.String(),
    "model": pl.String(),
    "authors": pl.String(),
    "baseline": pl.Boolean(),
    "leaky": pl.Boolean(),
    "data": pl.String(),
    "n": pl.Int64(),
    "bootstrap": pl.Int64(),
    **{f"{m}{s}": pl.Int64() if s == "_valid_resamples" else pl.Float64()
       for m in METRICS for s in ("", "_ci_low", "_ci_high", "_valid_resamples")},
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
            "leaky": is_leaky(entry),
            "data": data_description(entry),
            "n": entry.get("n"),
            "bootstrap": entry.get("bootstrap"),
            "code_url": str(meta.get("code_url", "")),
        }
        for m in METRICS:
            est = entry[m]
            record |= {m: est.get("value"), f"{m}_ci_low": est.get("ci_low"), f"{m}_ci_high": est.get("ci_high"),
                       f"{m}_valid_resamples": est.get("valid_resamples")}
        records.append(record)
    frame = pl.DataFrame(records, schema=_LEADERBOARD_SCHEMA)
    frame = frame.sort(["auroc", "auprc", "name"], descending=[True, True, False], nulls_last=True)
    return frame.with_columns(pl.int_range(1, frame.height + 1, dtype=pl.Int64).alias("rank"))


#: Marks a leaderboard table of entries scored on a leaky task definition, as the report's banner does.
LEAKY_NOTE = ("> **WARNING: leaky task data.** Marked entries were scored on a leaky task definition (cohort preset "
              "`medfuse-2022`: in-hospital-mortality X-rays may be taken after the 48-hour prediction time); do not "
              "compare them with leak-free results.")


def _data_line(frame: pl.DataFrame) -> str:
    described = frame["data"].drop_nulls().unique(maintain_order=True).to_list() if frame.height else []
    return f"Data: {'; '.join(described)}.\n\n" if described else ""


def leaderboard_table(frame: pl.DataFrame, reference: str | None = None) -> str:
    """The Markdown table of one receipt's ranked entries (with the note on few valid resamples, and the leak
    warning when an entry was scored on a leaky task definition); with ``reference`` (and the columns of
    :func:`add_paired_columns`) also the paired difference from it, the rank group and the ECE."""
    paired = reference is not None and "rank_group" in frame.columns
    rows = [
        [
            str(r["rank"]),
            r["model"] + (" (baseline)" if r["baseline"] else "") + (" (leaky)" if r["leaky"] else ""),
            r["authors"],
            *(format_estimate(r[m], r[f"{m}_ci_low"], r[f"{m}_ci_high"], valid=r[f"{m}_valid_resamples"],
                              resamples=r["bootstrap"]) for m in METRICS),
            *([difference_cell(r, "auroc", r["bootstrap"]),
               MISSING if r["rank_group"] is None else str(r["rank_group"]),
               format_estimate(r["ece"], r["ece_ci_low"], r["ece_ci_high"])] if paired else []),
            "" if r["n"] is None else str(r["n"]),
            r["code_url"],
        ]
        for r in frame.iter_rows(named=True)
    ]
    headers = ["Rank", "Model", "Authors", "AUROC", "AUPRC"]
    intro = ""
    if paired:
        has_reference = frame.filter(pl.col("name") == reference, pl.col("baseline")).height > 0
        intro = paired_intro(reference, has_reference) + "\n\n"
        headers += [f"Δ AUROC vs {reference}", "Group", "ECE"]
    table = markdown_table([*headers, "n", "Code"], rows)
    leaky = LEAKY_NOTE + "\n\n" if frame.height and frame["leaky"].any() else ""
    return intro + leaky + table + few_valid_note(rows) + "\n"


def leaderboard_markdown(boards: list[tuple[str, pl.DataFrame]], task: str, test_set: str, local: str | None,
                         reference: str | None = None) -> str:
    """The leaderboard of a task and test set: one ranked table per cohort receipt (``local``: the workdir's,
    whose table alone has the paired columns against ``reference``)."""
    title = f"## Leaderboard: {TASK_TITLES.get(task, task)}, {test_set} test set\n\n"
    intro = ("Ranked by AUROC (macro over labels for phenotyping), then AUPRC; 95% bootstrap percentile intervals. "
             "Entries scored against different cohort receipts were measured on different test data: each receipt "
             "has a ranking of its own.\n")
    sections = [f"\n### {receipt_title(key, local)}\n\n" + _data_line(frame)
                + leaderboard_table(frame, reference if key == (local or NO_RECEIPT) else None)
                for key, frame in boards]
    return title + intro + "".join(sections)


def write_leaderboard(
    workdir: Workdir, task: str, test_set: str, n_resamples: int, seed: int, score_folders: tuple[Path, ...] = (),
    *, reference: str = "ehr-partial", n_bins: int = 10,
) -> tuple[pl.DataFrame, list[Path]]:
    """Rank submissions, baselines and the score files under ``score_folders``, one ranking per receipt; write
    ``{workdir}/leaderboard/{task}_{test_set}.md`` and ``.csv`` (column ``receipt_sha256``, ranks per receipt). The
    table of the workdir's receipt also has the paired columns of :mod:`.leaderboard_stats` (differences from
    ``reference``, rank groups, calibration) for the entries whose probabilities this workdir holds; those of
    other receipts were measured on other test data, so they have none."""
    own = submitted_scores(workdir, task, test_set) + baseline_scores(workdir, task, test_set, n_resamples, seed)
    entries = list(own)
    known = {json.dumps(e, sort_keys=True) for e in entries}
    entries += [e for e in folder_scores(score_folders, task, test_set) if json.dumps(e, sort_keys=True) not in known]
    single = single_class_labels(held_out_truth(workdir, task, test_set), task_labels(task))
    if single and entries:  # the same labels for every entry: one warning, not one per entry
        logger.warning(
            "%s, %s test set: only one class for %d label(s) (%s): AUROC/AUPRC undefined, left out of the macro "
            "of all %d entries",
            task, test_set, len(single), ", ".join(single[:5]) + (" ..." if len(single) > 5 else ""), len(entries),
        )
    local = local_receipt(workdir)
    groups = group_by_receipt(entries, local)
    for name in duplicate_names(groups):
        logger.warning("%s, %s test set: entry name '%s' appears more than once in one receipt's table", task,
                       test_set, name)
    truth = held_out_truth(workdir, task, test_set)
    labels = task_labels(task)
    y_true = truth.select(labels).to_numpy().astype(np.int8)
    ours = {(e["name"], bool(e.get("baseline"))) for e in own}
    boards = []
    for key, group in groups or [(local or NO_RECEIPT, [])]:
        frame = rank_entries(group)
        probabilities = {}
        if key == (local or NO_RECEIPT):  # this workdir's test set: its own entries' probabilities are here
            mine = frame.join(pl.DataFrame(sorted(ours), schema={"name": pl.String, "baseline": pl.Boolean},
                                           orient="row"), on=["name", "baseline"], how="semi")
            probabilities = collect_probabilities(workdir, task, test_set, truth, labels, mine)
        frame = add_paired_columns(frame, probabilities, y_true, labels, reference=reference,
                                   n_resamples=n_resamples, seed=seed, n_bins=n_bins)
        boards.append((key, frame))
    frame = stack_boards(boards)
    md = workdir.leaderboard / f"{task}_{test_set}.md"
    csv = workdir.leaderboard / f"{task}_{test_set}.csv"
    write_text(leaderboard_markdown(boards, task, test_set, local, reference), md)
    with atomic_path(csv) as tmp:
        frame.write_csv(tmp)
    return frame, [md, csv]
