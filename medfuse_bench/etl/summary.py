"""The ETL summary: what the data of each task looks like, as JSON and as Markdown for a person.

Per task: samples per split (the partial set), paired (a linked X-ray) and unpaired, label prevalence per split in
the partial and the paired sets (the paper's Figure 1 and Table 4 prevalence columns), and the task definition with
its ``leaky`` flag. Beside them: CXR_UNI images per split, the cohort filter counts, the ICD mapping counts, and the
samples (total / paired per split) every task would have under each of the three presets, counted with the same
selection and linking functions as the task tables (no time series), and every row a stage dropped or changed with its
file, column and reason (``exclusions``, gathered from the stages' records).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

import polars as pl

from medfuse_bench.etl import DEFAULT_POLICY, exclusions
from medfuse_bench.etl.cxr import link_cxr
from medfuse_bench.etl.presets import PRESET_NAMES, TaskDefinition, task_definition
from medfuse_bench.etl.task_tables import attach_splits, sample_counts, select_task_stays
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.resources import SPLITS, task_labels

log = logging.getLogger(__name__)


def label_table(samples: pl.DataFrame, labels: list[str]) -> dict[str, dict[str, dict[str, float | int]]]:
    """Positives and prevalence of each label per split: {split: {label: {"positives": n, "prevalence": p}}}."""
    out: dict[str, dict[str, dict[str, float | int]]] = {s: {} for s in SPLITS}
    if not labels:
        return out
    stats = samples.group_by("split").agg(
        pl.len().alias("_n"),
        *(pl.col(c).cast(pl.Int64).sum().alias(f"{c}\0pos") for c in labels),
    )
    for row in stats.iter_rows(named=True):  # one row per split
        n = row["_n"]
        out[row["split"]] = {
            c: {"positives": int(row[f"{c}\0pos"]), "prevalence": (row[f"{c}\0pos"] / n) if n else None} for c in labels
        }
    for split in SPLITS:
        if not out[split]:
            out[split] = {c: {"positives": 0, "prevalence": None} for c in labels}
    return out


def task_summary(task: str, samples: pl.DataFrame, definition: TaskDefinition | None) -> dict[str, Any]:
    """Counts and label prevalence of one task's samples table."""
    labels = [c for c in task_labels(task) if c in samples.columns]
    counts = sample_counts(samples)
    paired = samples.filter(pl.col("cxr_dicom_id").is_not_null())
    return {
        "definition": definition.to_dict() if definition else None,
        "leaky": bool(definition.leaky) if definition else None,
        "samples": counts["total"],
        "paired": counts["paired"],
        "unpaired": {s: counts["total"][s] - counts["paired"][s] for s in SPLITS},
        "subjects": {s: samples.filter(pl.col("split") == s)["subject_id"].n_unique() for s in SPLITS},
        "labels": {"partial": label_table(samples, labels), "paired": label_table(paired, labels)},
    }


def cxr_uni_summary(cxr_uni: pl.DataFrame) -> dict[str, Any]:
    """Images, studies and subjects of CXR_UNI per split, and images per view."""
    per = cxr_uni.group_by("split").agg(
        pl.len().alias("images"), pl.col("study_id").n_unique().alias("studies"),
        pl.col("subject_id").n_unique().alias("subjects"),
    )
    out = {key: {s: 0 for s in SPLITS} for key in ("images", "studies", "subjects")}
    for row in per.iter_rows(named=True):
        for key in out:
            out[key][row["split"]] = int(row[key])
    views = cxr_uni.group_by("view_position").len().sort(["len", "view_position"], descending=[True, False])
    out["views"] = {"(missing)" if v is None else str(v): int(n) for v, n in views.iter_rows()}
    return out


def preset_counts(stays: pl.DataFrame, first_events: pl.DataFrame, splits: pl.DataFrame,
                  cxr_metadata: pl.DataFrame, tasks: list[str],
                  policy: FidelityPolicy = DEFAULT_POLICY) -> dict[str, dict[str, Any]]:
    """Samples and paired samples per split of each task under each preset (no overrides), with the task tables'
    switches of ``policy``."""
    out: dict[str, dict[str, Any]] = {}
    for preset in PRESET_NAMES:
        out[preset] = {}
        for task in tasks:
            definition = task_definition(task, preset)
            chosen = attach_splits(select_task_stays(stays, first_events, definition, policy), splits)
            links = link_cxr(chosen, cxr_metadata, definition.cxr_window_hours, definition.views)
            samples = chosen.join(links.select("stay_id", pl.col("dicom_id").alias("cxr_dicom_id")), on="stay_id",
                                  how="left")
            out[preset][task] = {**sample_counts(samples), "leaky": definition.leaky}
    return out


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (int, float, str, bool))


def icd_mapping_summary(mapping: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The scalar entries of phenotype_mapping.json, plus its per-ICD-version counts (``by_icd_version``) with
    their most frequent unmapped codes."""
    if not mapping:
        return None
    out: dict[str, Any] = {k: v for k, v in mapping.items() if _is_scalar(v)}
    per_version = mapping.get("by_icd_version")
    if isinstance(per_version, Mapping):
        out["by_icd_version"] = {
            str(version): {k: v for k, v in counts.items() if _is_scalar(v) or k == "most_frequent_unmapped"}
            for version, counts in per_version.items() if isinstance(counts, Mapping)
        }
    return out


def build_summary(tasks: Mapping[str, tuple[pl.DataFrame, TaskDefinition | None]], cxr_uni: pl.DataFrame | None,
                  cohort_counts: Mapping[str, Any] | None = None, phenotype_mapping: Mapping[str, Any] | None = None,
                  presets: Mapping[str, Any] | None = None,
                  excluded: list[Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The summary dict (see the module docstring); every input but the task tables may be None. ``excluded``: the
    stages' records of rows dropped or changed (:mod:`.exclusions`); the cohort and phenotype records are taken from
    ``cohort_counts`` and ``phenotype_mapping`` when not given."""
    task_part = {task: task_summary(task, frame, definition) for task, (frame, definition) in tasks.items()}
    if excluded is None:
        excluded = [*exclusions.from_json(cohort_counts), *exclusions.from_json(phenotype_mapping)]
    return {
        "leaky": any(bool(t["leaky"]) for t in task_part.values()),
        "tasks": task_part,
        "cxr_uni": cxr_uni_summary(cxr_uni) if cxr_uni is not None else None,
        "cohort_counts": {k: v for k, v in cohort_counts.items() if k != "exclusions"} if cohort_counts else None,
        "phenotype_mapping": icd_mapping_summary(phenotype_mapping),
        "presets": dict(presets) if presets else None,
        "exclusions": [{field: r.get(field) for field in exclusions.FIELDS} for r in excluded],
    }


# --- Markdown -------------------------------------------------------------------------------------------------------


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return "" if v is None else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _pct(entry: Mapping[str, Any]) -> str:
    p = entry.get("prevalence")
    return "" if p is None else f"{100 * p:.1f}% ({entry['positives']:,})"


def _window(hours: float | None) -> str:
    return "whole stay" if hours is None else f"{hours:g} h"


def _mapping_rows(data: Mapping[str, Any]) -> list[list[Any]]:
    rows = []
    for key, value in data.items():
        rows.append([key, json.dumps(value, sort_keys=True) if isinstance(value, Mapping) else value])
    return rows


def render_markdown(summary: Mapping[str, Any]) -> str:
    """A person-readable Markdown version of :func:`build_summary`'s dict."""
    lines = ["# ETL summary", ""]
    if summary["leaky"]:
        lines += ["> **Warning: leaky task definition.** At least one task links X-rays taken after its time-series",
                  "> window (preset medfuse-2022). Use these data only to reproduce published numbers.", ""]
    for task, part in summary["tasks"].items():
        lines += [f"## {task}", ""]
        d = part["definition"]
        if d:
            overridden = f" (overridden: {', '.join(d['overridden'])})" if d["overridden"] else ""
            lines += [
                f"Preset `{d['preset']}`{overridden}:"
                f" time series {_window(d['ts_window_hours'])}, X-ray window {_window(d['cxr_window_hours'])},"
                f" views {', '.join(d['views'])}, minimum stay "
                f"{'none' if d['min_stay_hours'] is None else format(d['min_stay_hours'], 'g') + ' h'}"
                f"{' — **LEAKY**' if d['leaky'] else ''}.",
                "",
            ]
        rows = [[s, part["samples"][s], part["paired"][s], part["unpaired"][s], part["subjects"][s]] for s in SPLITS]
        rows.append(["all", *(sum(part[k][s] for s in SPLITS) for k in ("samples", "paired", "unpaired", "subjects"))])
        lines += _table(["split", "samples (partial)", "paired", "unpaired", "patients"], rows)
        labels = part["labels"]
        label_names = list(labels["partial"][SPLITS[0]])
        if label_names:
            lines += ["Label prevalence (positives) per split, partial and paired sets:", ""]
            header = ["label"] + [f"partial {s}" for s in SPLITS] + [f"paired {s}" for s in SPLITS]
            rows = [[name] + [_pct(labels[kind][s][name]) for kind in ("partial", "paired") for s in SPLITS]
                    for name in label_names]
            lines += _table(header, rows)
    if summary["cxr_uni"]:
        cu = summary["cxr_uni"]
        lines += ["## CXR_UNI", ""]
        rows = [[s, cu["images"][s], cu["studies"][s], cu["subjects"][s]] for s in SPLITS]
        rows.append(["all", *(sum(cu[k].values()) for k in ("images", "studies", "subjects"))])
        lines += _table(["split", "images", "studies", "patients"], rows)
        if cu.get("views"):
            lines += _table(["view", "images"], [[v, n] for v, n in cu["views"].items()])
    if summary["presets"]:
        lines += ["## Samples under each preset", "",
                  "Counts with each preset's own definitions (no overrides): total / paired per split.", ""]
        rows = []
        for preset, per_task in summary["presets"].items():
            for task, c in per_task.items():
                rows.append([preset, task, *(f"{c['total'][s]:,} / {c['paired'][s]:,}" for s in SPLITS),
                             "yes" if c["leaky"] else "no"])
        lines += _table(["preset", "task", *SPLITS, "leaky"], rows)
    if summary["cohort_counts"]:
        lines += ["## Cohort filters", ""] + _table(["step", "count"], _mapping_rows(summary["cohort_counts"]))
    if summary.get("exclusions"):
        lines += ["## Rows dropped or changed", "",
                  "Every row a stage dropped or changed, with its reason (the example is the first such row, or the "
                  "least raw text).", ""]
        rows = [[r["stage"], r["file"], r["column"], r["reason"], r["action"], r["rows"], r["example"]]
                for r in summary["exclusions"]]
        lines += _table(["stage", "file", "column", "reason", "action", "rows", "example"], rows)
    mapping = summary["phenotype_mapping"]
    if mapping:
        lines += ["## ICD codes -> phenotypes", ""]
        lines += _table(["entry", "value"], _mapping_rows({k: v for k, v in mapping.items() if k != "by_icd_version"}))
        per_version = mapping.get("by_icd_version") or {}
        columns = [k for k in next(iter(per_version.values()), {}) if k != "most_frequent_unmapped"]
        if columns:
            rows = [[f"ICD-{v}", *(c.get(k) for k in columns)] for v, c in per_version.items()]
            lines += _table(["version", *(k.replace("_", " ") for k in columns)], rows)
        for version, counts in per_version.items():
            top = counts.get("most_frequent_unmapped") or {}
            if top:
                codes = ", ".join(f"{code} ({n:,})" for code, n in list(top.items())[:10])
                lines += [f"Most frequent unmapped ICD-{version} codes: {codes}", ""]
    return "\n".join(lines).rstrip() + "\n"
