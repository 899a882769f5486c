"""Leaderboards across groups: score files gathered from several folders, one ranking per cohort receipt.

Each group scores submissions against its own copy of the test set; the receipt (:mod:`medfuse_bench.etl.receipt`)
a score records says which one. Entries of one receipt were measured on the same test data and are ranked together;
entries of different receipts never are. Score files without a receipt (written before receipts existed, or in a
workdir without one) form a table of their own.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.io import read_json_object

logger = logging.getLogger(__name__)

REQUIRED_KEYS: tuple[str, ...] = ("name", "task", "test_set", "auroc", "auprc")
NO_RECEIPT = "no receipt"


def load_score_file(path: Path) -> dict[str, Any]:
    """A score file, checked to hold the keys every leaderboard entry needs."""
    entry = read_json_object(path, "delete it and re-run score", what="score file")
    if any(k not in entry for k in REQUIRED_KEYS):
        raise MedfuseError(f"score file '{path}' lacks name, task, test_set, auroc or auprc; re-run score")
    return entry


def is_score_file(path: Path) -> bool:
    """Whether a JSON file is meant as a score file (it has ``auroc`` or ``auprc``); unreadable ones count, so that
    :func:`load_score_file` names them."""
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return True
    return isinstance(data, dict) and bool({"auroc", "auprc"} & set(data))


def folder_scores(folders: Iterable[str | os.PathLike[str]], task: str, test_set: str) -> list[dict[str, Any]]:
    """The score files of ``task`` and ``test_set`` anywhere under each folder (other groups' ``scores/`` folders,
    or flat folders of score files); the same file content found twice counts once."""
    entries: list[dict[str, Any]] = []
    seen: set[str] = set()
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise MedfuseError(f"--scores folder '{folder}' does not exist or is not a folder")
        for path in sorted(folder.rglob("*.json")):
            if not is_score_file(path):
                continue  # a workdir's other JSON files (receipt, provenance, summaries) when a whole one is given
            entry = load_score_file(path)
            if (entry["task"], entry["test_set"]) != (task, test_set):
                continue
            key = json.dumps(entry, sort_keys=True)
            if key not in seen:
                seen.add(key)
                entries.append(entry)
    return entries


def receipt_key(entry: dict[str, Any]) -> str:
    """The receipt an entry was scored against (its SHA-256), or :data:`NO_RECEIPT`."""
    value = entry.get("receipt_sha256")
    return value if isinstance(value, str) and value else NO_RECEIPT


def group_by_receipt(entries: list[dict[str, Any]], local: str | None = None) -> list[tuple[str, list[dict[str, Any]]]]:
    """(receipt, entries) pairs: ``local`` (the workdir's receipt) first, then the others by id, no receipt last.

    >>> e = [{"name": "a", "receipt_sha256": "bb"}, {"name": "b"}, {"name": "c", "receipt_sha256": "aa"},
    ...      {"name": "d", "receipt_sha256": "bb"}]
    >>> [(k, [x["name"] for x in v]) for k, v in group_by_receipt(e, local="bb")]
    [('bb', ['a', 'd']), ('aa', ['c']), ('no receipt', ['b'])]
    """
    groups: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        groups.setdefault(receipt_key(entry), []).append(entry)
    order = sorted(groups, key=lambda k: (k != local, k == NO_RECEIPT, k))
    return [(k, groups[k]) for k in order]


def receipt_title(key: str, local: str | None) -> str:
    """``Receipt `a17b1f0ffca8` (this workdir)``: the first 12 hex digits name a receipt.

    >>> receipt_title("a17b1f0ffca8" + "0" * 52, None), receipt_title("no receipt", None)
    ('Receipt `a17b1f0ffca8`', 'Scores without a receipt')
    """
    if key == NO_RECEIPT:
        return "Scores without a receipt"
    return f"Receipt `{key[:12]}`" + (" (this workdir)" if key == local else "")


def duplicate_names(groups: list[tuple[str, list[dict[str, Any]]]]) -> list[str]:
    """Entry names that appear more than once within one receipt's table (two groups chose the same name)."""
    out = []
    for _, entries in groups:
        names = pl.Series([e["name"] for e in entries], dtype=pl.String)
        out += names.filter(names.is_duplicated()).unique(maintain_order=True).to_list()
    return out


def stack_boards(frames: list[tuple[str, pl.DataFrame]]) -> pl.DataFrame:
    """One CSV frame from the ranked frame of each receipt: ``receipt_sha256`` first, ranks restart per receipt."""
    parts = [frame.with_columns(pl.lit(None if key == NO_RECEIPT else key, dtype=pl.String).alias("receipt_sha256"))
             for key, frame in frames]
    if not parts:
        return pl.DataFrame()
    stacked = pl.concat(parts, how="vertical")
    return stacked.select("receipt_sha256", pl.exclude("receipt_sha256"))
