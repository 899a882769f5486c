"""What a score was measured on: the workdir's cohort receipt, config and package version.

Every score file and leaderboard entry carries ``receipt_sha256`` (the SHA-256 of ``{workdir}/receipt.json``, see
:mod:`medfuse_bench.etl.receipt`), ``config_sha256`` (of ``config.resolved.yaml``), ``package_version`` and
``data`` (cohort preset, whether it is leaky, synthetic or MIMIC data). Scores of two receipts were measured on
different test sets, so the leaderboard never ranks them together. Before it is recorded, the receipt is checked
against the samples table being scored, so a receipt left behind by an earlier ETL run is never attached to a score.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from medfuse_bench import __version__
from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.receipt import read_receipt, receipt_id
from medfuse_bench.etl.receipt_hash import table_hash
from medfuse_bench.report.inputs import Workdir, read_samples
from medfuse_bench.report.provenance import sha256_file, task_definitions
from medfuse_bench.resources import task_labels

logger = logging.getLogger(__name__)

#: The keys :func:`manifest` adds to a score file or leaderboard entry.
MANIFEST_KEYS: tuple[str, ...] = ("receipt_sha256", "config_sha256", "package_version", "data")


def receipt_path(workdir: Workdir) -> Path:
    return workdir.root / "receipt.json"


def checked_receipt(workdir: Workdir, task: str) -> dict[str, Any] | None:
    """The workdir's receipt, None (with a warning) when there is none; an error when its test split of ``task``
    does not match ``tasks/{task}/samples.parquet``."""
    path = receipt_path(workdir)
    if not path.exists():
        logger.warning("no %s: the score records no receipt and the leaderboard lists it under 'no receipt'; "
                       "run `medfuse-bench receipt --workdir %s` (rule receipt) first", path, workdir.root)
        return None
    receipt = read_receipt(path)
    record = (receipt["tasks"].get(task) or {}).get("splits", {}).get("test")
    if record is None:
        raise MedfuseError(f"'{path}' has no test split of task '{task}'; rerun the receipt rule")
    samples = read_samples(workdir.samples(task), task)
    test = samples.filter(samples["split"] == "test")
    if table_hash(test, task_labels(task)) != record.get("table_sha256"):
        raise MedfuseError(f"'{path}' does not match the test split of {workdir.samples(task)} (the task table "
                           "changed after the receipt was written); rerun the receipt rule")
    return receipt


def manifest(workdir: Workdir, task: str) -> dict[str, Any]:
    """The receipt, config and package a score of ``task`` in ``workdir`` is measured on."""
    receipt = checked_receipt(workdir, task)
    if receipt is not None:
        data = {"cohort_preset": receipt.get("cohort_preset"), "leaky": bool(receipt.get("leaky")),
                "data": receipt.get("data"), "mimic_iv_version": (receipt.get("mimic_iv") or {}).get("version")}
    else:
        definitions = task_definitions([workdir.samples(task)])
        data = {"cohort_preset": (definitions[0].get("preset") if definitions else None),
                "leaky": any(d.get("leaky") is True for d in definitions), "data": None, "mimic_iv_version": None}
    return {
        "receipt_sha256": receipt_id(receipt_path(workdir)) if receipt is not None else None,
        "config_sha256": sha256_file(workdir.config_resolved),
        "package_version": __version__,
        "data": data,
    }


def is_leaky(entry: dict[str, Any]) -> bool:
    """Whether a score was measured on a leaky task definition (``data.leaky`` of its manifest).

    >>> is_leaky({"data": {"leaky": True}}), is_leaky({"name": "old score file"})
    (True, False)
    """
    data = entry.get("data")
    return isinstance(data, dict) and data.get("leaky") is True


def data_description(entry: dict[str, Any]) -> str | None:
    """What an entry's receipt says about the data, in a few words (None for a score file without a manifest).

    >>> data_description({"data": {"data": "synthetic", "mimic_iv_version": "2.2", "cohort_preset": "medfuse",
    ...                            "leaky": False}})
    'synthetic, MIMIC-IV 2.2, cohort preset medfuse'
    """
    data = entry.get("data")
    if not isinstance(data, dict):
        return None
    parts = [str(data["data"]) if data.get("data") else None,
             f"MIMIC-IV {data['mimic_iv_version']}" if data.get("mimic_iv_version") else None,
             f"cohort preset {data['cohort_preset']}" + (" (leaky)" if data.get("leaky") else "")
             if data.get("cohort_preset") else None]
    return ", ".join(p for p in parts if p) or None
