"""What a report was made from: config hash, package version, MIMIC version, data sizes, and warnings when the
task data came from a leaky task definition (the ``medfuse-2022`` preset) or from synthetic data.

The flags are read wherever the pipeline records them: the resolved config, ``tasks/summary.json``,
``etl/provenance.json`` and the task definition stored in the samples tables' Parquet metadata; any one is enough.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from medfuse_bench import __version__
from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.task_tables import METADATA_KEY
from medfuse_bench.resources import SPLITS

LEAKY_PRESET = "medfuse-2022"

#: Parquet key-value metadata key under which task-tables stores the task definition of a samples table.
TASK_DEFINITION_KEY = METADATA_KEY


@dataclass(frozen=True)
class DataFlags:
    presets: tuple[str, ...]
    leaky: bool
    synthetic: bool


def sha256_file(path: str | os.PathLike[str]) -> str | None:
    path = Path(path)
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def read_yaml(path: Path) -> dict[str, Any] | None:
    """A YAML mapping, None when the file is absent; a broken file is an error naming it."""
    if not path.exists():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise MedfuseError(f"'{path}' is not valid YAML: {exc}") from exc
    return data if isinstance(data, dict) else None


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def data_flags(
    config: dict[str, Any] | None,
    summary: dict[str, Any] | None,
    provenance: dict[str, Any] | None,
    definitions: list[dict[str, Any]],
) -> DataFlags:
    """Presets, leak and synthetic flags: ``etl.cohort_preset`` and ``synthetic.enabled`` of the resolved config;
    ``leaky`` and ``tasks.*.definition`` of summary.json; the samples tables' task definitions; the MIMIC-IV root
    of provenance.json. (summary.json's per-preset counts describe presets not used, so they are not read.)

    >>> f = data_flags({"etl": {"cohort_preset": "medfuse"}, "synthetic": {"enabled": True}}, None, None,
    ...                [{"task": "in-hospital-mortality", "preset": "medfuse-2022", "leaky": True}])
    >>> f.presets, f.leaky, f.synthetic
    (('medfuse', 'medfuse-2022'), True, True)
    >>> data_flags(None, {"leaky": False, "presets": {"medfuse-2022": {"x": {"leaky": True}}}}, None, []).leaky
    False
    """
    summary_tasks = _get(summary, "tasks")
    summary_definitions = [_get(t, "definition") for t in summary_tasks.values()] if isinstance(summary_tasks, dict) else []
    definitions = [d for d in [*definitions, *summary_definitions] if isinstance(d, dict)]
    presets: list[str] = []
    for preset in [_get(config, "etl", "cohort_preset"), *(d.get("preset") for d in definitions)]:
        if isinstance(preset, str) and preset not in presets:
            presets.append(preset)
    leaky = (
        LEAKY_PRESET in presets or _get(summary, "leaky") is True or any(d.get("leaky") is True for d in definitions)
    )
    root = _get(provenance, "mimic_iv", "root")
    synthetic = _get(config, "synthetic", "enabled") is True or (
        isinstance(root, str) and Path(root).parent.name == "synthetic"
    )
    return DataFlags(tuple(presets), leaky, synthetic)


def task_definitions(samples_paths: list[Path]) -> list[dict[str, Any]]:
    """The task definitions stored in the samples tables' Parquet metadata (for those that have one)."""
    out = []
    for path in samples_paths:
        if not path.exists():
            continue
        raw = (pl.read_parquet_metadata(path) or {}).get(TASK_DEFINITION_KEY)
        try:
            value = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict):
            out.append(value)
    return out


def versions(provenance: dict[str, Any] | None) -> list[tuple[str, str]]:
    """MIMIC-IV version and layout detected by ingest, and the versions ingest ran with.

    >>> versions({"mimic_iv": {"version": "2.2", "layout": "hosp/icu"}, "package_version": "0.1.0"})
    [('MIMIC-IV version', '2.2'), ('MIMIC-IV layout', 'hosp/icu'), ('ingested with medfuse-bench', '0.1.0')]
    """
    wanted = (
        ("MIMIC-IV version", ("mimic_iv", "version")),
        ("MIMIC-IV layout", ("mimic_iv", "layout")),
        ("ingested with medfuse-bench", ("package_version",)),
        ("ingested with DuckDB", ("duckdb_version",)),
    )
    return [(name, str(v)) for name, keys in wanted if (v := _get(provenance, *keys)) not in (None, "")]


def banners(flags: DataFlags) -> list[str]:
    out = []
    if flags.leaky:
        presets = ", ".join(f"`{p}`" for p in flags.presets) or "a custom"
        out.append(
            f"> **WARNING: leaky task data.** The task tables come from a leaky task definition (cohort preset "
            f"{presets}): in-hospital-mortality X-rays may be taken after the 48-hour prediction time, a look-ahead "
            "leak kept only to reproduce the published numbers. Do not compare these results with leak-free ones."
        )
    if flags.synthetic:
        out.append(
            "> **WARNING: synthetic data.** These results come from the generated stand-in for MIMIC-IV and "
            "MIMIC-CXR-JPG; they test the pipeline and say nothing about clinical performance."
        )
    return out


def provenance_rows(
    config_path: Path,
    config: dict[str, Any] | None,
    provenance: dict[str, Any] | None,
    flags: DataFlags,
    n_resamples: int,
    seed: int,
) -> list[tuple[str, str]]:
    """Key / value rows of the report's provenance table."""
    cfg = config or {}
    rows = [
        ("medfuse-bench version", __version__),
        ("config sha256", sha256_file(config_path) or f"n/a (no {config_path.name} in the workdir)"),
        # the data every number was measured on (docs/leaderboard.md); receipt.json sits beside the resolved config
        ("cohort receipt sha256",
         sha256_file(config_path.parent / "receipt.json") or "n/a (no receipt.json in the workdir)"),
        ("data", "synthetic" if flags.synthetic else "MIMIC-IV + MIMIC-CXR-JPG"),
        ("cohort preset", ", ".join(flags.presets) or "n/a"),
        ("leaky task definition", "yes" if flags.leaky else "no"),
        ("fidelity", str(cfg.get("fidelity", "n/a"))),
        ("scale", str(cfg.get("scale", "n/a"))),
        ("seed", str(cfg.get("seed", "n/a"))),
        ("bootstrap", f"{n_resamples} resamples, seed {seed}, 95% percentile intervals"),
    ]
    return rows + (versions(provenance) or [("MIMIC-IV version", "n/a (no etl/provenance.json)")])


def dataset_sizes(samples: pl.DataFrame, task: str) -> pl.DataFrame:
    """Samples per split of one task: all (PARTIAL), with a linked X-ray (PAIRED) and the paired share.

    >>> s = pl.DataFrame({"split": ["train", "train", "test"], "cxr_dicom_id": ["a", None, "b"]})
    >>> dataset_sizes(s, "t").rows()
    [('t', 'train', 2, 1, 0.5), ('t', 'val', 0, 0, None), ('t', 'test', 1, 1, 1.0)]
    """
    counts = samples.group_by("split").agg(
        pl.len().cast(pl.Int64).alias("partial"), pl.col("cxr_dicom_id").is_not_null().sum().cast(pl.Int64).alias("paired")
    )
    return (
        pl.DataFrame({"task": [task] * len(SPLITS), "split": list(SPLITS)})
        .join(counts, on="split", how="left", maintain_order="left")
        .with_columns(pl.col("partial").fill_null(0), pl.col("paired").fill_null(0))
        .with_columns(pl.when(pl.col("partial") > 0).then(pl.col("paired") / pl.col("partial")).alias("paired_fraction"))
    )
