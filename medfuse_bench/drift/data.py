"""What the drift report reads from each of the two workdirs (docs/architecture.md), checked on the way in."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from medfuse_bench.errors import MedfuseError
from medfuse_bench.report.inputs import Workdir, read_json, read_samples
from medfuse_bench.resources import TASKS

#: Config keys whose values change what the ETL makes of the same raw data (compared between the two workdirs).
ETL_SETTINGS: tuple[str, ...] = ("fidelity", "fidelity_switches", "phenotype_definitions", "etl", "synthetic")


@dataclass
class WorkdirData:
    """One workdir's data: its samples per task, splits, cohort and raw stays, and where it came from."""

    root: Path
    samples: dict[str, pl.DataFrame]
    splits: pl.DataFrame
    stays: pl.DataFrame
    raw_stays: pl.DataFrame | None  # subject_id, stay_id of every ICU stay ingested (None: etl/raw not kept)
    provenance: dict[str, Any] | None
    config: dict[str, Any] | None
    notes: list[str] = field(default_factory=list)

    @property
    def workdir(self) -> Workdir:
        return Workdir(self.root)

    def version(self) -> str:
        """The MIMIC-IV version the ingest detected (and whether the pipeline generated the data)."""
        mimic = (self.provenance or {}).get("mimic_iv", {})
        text = f"MIMIC-IV {mimic.get('version', '?')} (layout {mimic.get('layout', '?')})" if mimic else "unknown"
        synthetic = (self.config or {}).get("synthetic") or {}
        if synthetic.get("enabled"):
            text += f"; the pipeline's synthetic data ({synthetic.get('stays')} stays, seed {self.config.get('seed')})"
        return text


def _parquet(path: Path, columns: list[str], what: str) -> pl.DataFrame:
    if not path.exists():
        raise MedfuseError(f"'{path}' does not exist; {what}")
    frame = pl.read_parquet(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MedfuseError(f"'{path}' lacks column '{missing[0]}'")
    return frame.select(columns)


def load_release(root: str | os.PathLike[str], tasks: list[str] | None = None) -> WorkdirData:
    """Read a workdir's ETL outputs; an absent required file is an error naming it and the step that writes it."""
    root = Path(root)
    if not root.is_dir():
        raise MedfuseError(f"workdir '{root}' does not exist; pass a workdir where the ETL has run (target etl)")
    wd = Workdir(root)
    wanted = tasks or list(TASKS)
    samples = {t: read_samples(wd.samples(t), t) for t in wanted if wd.samples(t).exists()}
    if not samples:
        raise MedfuseError(f"no task table under '{root / 'tasks'}' (of {', '.join(wanted)}); run the ETL there first")
    splits = _parquet(root / "etl" / "splits.parquet", ["subject_id", "split"], "run the splits step there first")
    stays = _parquet(root / "etl" / "stays.parquet", ["subject_id", "stay_id"], "run the cohort step there first")
    raw_path = root / "etl" / "raw" / "icustays.parquet"
    raw = _parquet(raw_path, ["subject_id", "stay_id"], "") if raw_path.exists() else None
    config = None
    if wd.config_resolved.exists():
        try:
            config = yaml.safe_load(wd.config_resolved.read_text())
        except yaml.YAMLError as exc:
            raise MedfuseError(f"'{wd.config_resolved}' is not valid YAML: {exc}") from exc
    release = WorkdirData(root, samples, splits, stays, raw, read_json(wd.provenance), config)
    if raw is None:
        release.notes.append(f"'{raw_path}' is absent: raw ICU stays are not compared.")
    return release


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key in sorted(value):
            out.update(_flatten(f"{prefix}.{key}" if prefix else str(key), value[key]))
        return out
    return {prefix: value}


def settings_diff(previous: dict[str, Any] | None, current: dict[str, Any] | None) -> list[dict[str, Any]]:
    """ETL settings that differ between two resolved configurations: key, previous, current.

    >>> settings_diff({"etl": {"split": {"salt": "a"}}}, {"etl": {"split": {"salt": "b"}}})
    [{'key': 'etl.split.salt', 'previous': 'a', 'current': 'b'}]
    """
    if previous is None or current is None:
        return []
    a = _flatten("", {k: previous.get(k) for k in ETL_SETTINGS})
    b = _flatten("", {k: current.get(k) for k in ETL_SETTINGS})
    return [{"key": k, "previous": a.get(k), "current": b.get(k)} for k in sorted(a.keys() | b.keys())
            if a.get(k) != b.get(k)]
