"""The paper's result tables as frames (one CSV row per model, task and test set) and as Markdown.

Builders are pure: they take evaluations (or None for an experiment whose predictions are absent) and return
frames; the Markdown renderers take those frames, so the CSV and the Markdown always show the same numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import polars as pl

from medfuse_bench.evaluation.metrics import METRICS, Estimate, Evaluation
from medfuse_bench.evaluation.predictions import Predictions
from medfuse_bench.report.experiments import AGE_GROUPS, MULTIMODAL_MODEL, TASK_TITLES, UNIMODAL_REFERENCE, TableSpec
from medfuse_bench.report.inputs import select_test_set
from medfuse_bench.report.markdown import MISSING, bold, few_valid_note, format_estimate, markdown_table
from medfuse_bench.resources import phenotypes, task_labels

Lookup = Callable[[str, str, str], Evaluation | None]

METRIC_TITLES: dict[str, str] = {"auroc": "AUROC", "auprc": "AUPRC"}


def snake(text: str) -> str:
    """Column name of a header cell.

    >>> snake("Training set")
    'training_set'
    """
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


#: The columns of one estimate, after its prefix: value, interval, and the resamples the interval rests on.
ESTIMATE_SUFFIXES: dict[str, pl.DataType] = {
    "": pl.Float64(),
    "_ci_low": pl.Float64(),
    "_ci_high": pl.Float64(),
    "_valid_resamples": pl.Int64(),
    "_resamples": pl.Int64(),
}


def estimate_columns(prefix: str, estimate: Estimate | None) -> dict[str, float | int | None]:
    """``{prefix}``, ``{prefix}_ci_low``, ``{prefix}_ci_high``, ``{prefix}_valid_resamples`` (resamples in which the
    metric is defined) and ``{prefix}_resamples`` (all resamples); None when absent or undefined."""
    if estimate is None:
        return {f"{prefix}{s}": None for s in ESTIMATE_SUFFIXES}
    d = estimate.to_dict()
    return {prefix: d["value"], f"{prefix}_ci_low": d["ci_low"], f"{prefix}_ci_high": d["ci_high"],
            f"{prefix}_valid_resamples": estimate.valid_resamples, f"{prefix}_resamples": estimate.resamples}


def _schema(text_columns: list[str], int_columns: list[str], metric_columns: list[str]) -> dict[str, pl.DataType]:
    return {
        **{c: pl.String() for c in text_columns},
        **{c: pl.Int64() for c in int_columns},
        **{c: _metric_type(c) for c in metric_columns},
    }


def _metric_type(column: str) -> pl.DataType:
    return pl.Int64() if column.endswith("resamples") else pl.Float64()


def _metric_columns(prefix: str = "") -> list[str]:
    return [f"{prefix}{m}{s}" for m in METRICS for s in ESTIMATE_SUFFIXES]


def metric_table(spec: TableSpec, tasks: list[str], lookup: Lookup) -> pl.DataFrame:
    """One row per table row and task: descriptive cells, the prediction file, n and both metrics with CIs.

    The metric of a task is the macro average over its labels (= the label's own metric for mortality).
    """
    header_cols = [snake(h) for h in spec.headers]
    records = []
    for row in spec.rows:
        for task in tasks:
            ev = lookup(task, row.experiment, row.test_set)
            record: dict[str, object] = dict(zip(header_cols, row.cells, strict=True))
            record |= {"task": task, "experiment": row.experiment, "prediction_set": row.test_set}
            record |= {"available": ev is not None, "n": None if ev is None else ev.n}
            for m in METRICS:
                record |= estimate_columns(m, None if ev is None else ev.macro(m))
            records.append(record)
    schema = _schema([*header_cols, "task", "experiment", "prediction_set"], ["n"], _metric_columns())
    schema = {**schema, "available": pl.Boolean()}
    order = [*header_cols, "task", "experiment", "prediction_set", "available", "n", *_metric_columns()]
    return pl.DataFrame(records, schema=schema).select(order)


def _cell(row: dict[str, object], metric: str, prefix: str = "") -> str:
    key = f"{prefix}{metric}"
    return format_estimate(row[key], row[f"{key}_ci_low"], row[f"{key}_ci_high"],
                           valid=row[f"{key}_valid_resamples"], resamples=row[f"{key}_resamples"])


def metric_table_markdown(spec: TableSpec, frame: pl.DataFrame, tasks: list[str]) -> str:
    """The paper's layout: descriptive cells, then AUROC and AUPRC per task; best value in bold; missing as —."""
    headers = [*spec.headers, *(f"{TASK_TITLES[t]} {METRIC_TITLES[m]}" for t in tasks for m in METRICS)]
    best: dict[tuple[str, str], float] = {}
    if spec.bold_best:
        for t in tasks:
            sub = frame.filter(pl.col("task") == t)
            for m in METRICS:
                values = sub[m].drop_nulls()
                if values.len() > 1:
                    best[(t, m)] = float(values.max())
    records = frame.to_dicts()  # metric_table order: table rows, then tasks within a row
    rows = []
    for i, row_spec in enumerate(spec.rows):
        cells = list(row_spec.cells)
        for j, t in enumerate(tasks):
            row = records[i * len(tasks) + j]
            for m in METRICS:
                text = _cell(row, m)
                cells.append(bold(text) if (t, m) in best and row[m] == best[(t, m)] else text)
        rows.append(cells)
    missing = frame.filter(~pl.col("available")).select("task", "experiment", "prediction_set").unique(maintain_order=True)
    note = ""
    if missing.height:
        files = ", ".join(f"{r['task']}/{r['experiment']}/{r['prediction_set']}" for r in missing.iter_rows(named=True))
        note = f"\n\n{MISSING} = no prediction file (predictions/{{task}}/{{experiment}}/{{test set}}.parquet): {files}."
    table = markdown_table(headers, rows, numeric_from=len(spec.headers))
    return f"### {spec.title}\n\n" + table + note + few_valid_note(rows) + "\n"


def prevalence(frame: pl.DataFrame, labels: list[str]) -> pl.DataFrame:
    """Positive fraction of each label: columns label, prevalence.

    >>> prevalence(pl.DataFrame({"a": [1, 0, 0, 1], "b": [0, 0, 0, 1]}), ["a", "b"]).rows()
    [('a', 0.5), ('b', 0.25)]
    """
    return frame.select(pl.col(labels).cast(pl.Float64).mean()).unpivot(variable_name="label", value_name="prevalence")


def phenotype_table(samples: pl.DataFrame, unimodal: Evaluation | None, multimodal: Evaluation | None) -> pl.DataFrame:
    """Table 4: per phenotype its group, prevalence in the partial train set and the paired test set, and the metrics
    of the EHR-only model and MedFuse on the paired test set; a last row ``Average`` holds the macro values."""
    labels = task_labels("phenotyping")
    train = prevalence(samples.filter(pl.col("split") == "train"), labels).rename({"prevalence": "prevalence_train"})
    test = prevalence(select_test_set(samples, "paired"), labels).rename({"prevalence": "prevalence_test"})
    groups = pl.DataFrame({"label": [p["name"] for p in phenotypes()], "type": [p["group"] for p in phenotypes()]})
    base = groups.join(train, on="label", how="left").join(test, on="label", how="left")
    records = []
    for label in [*labels, None]:
        record: dict[str, object] = {"label": label or "Average"}
        for prefix, ev in ((UNIMODAL_REFERENCE, unimodal), (MULTIMODAL_MODEL, multimodal)):
            for m in METRICS:
                est = None if ev is None else (ev.macro(m) if label is None else ev.label(m, label))
                record |= estimate_columns(f"{snake(prefix)}_{m}", est)
        records.append(record)
    metric_cols = [*_metric_columns(f"{snake(UNIMODAL_REFERENCE)}_"), *_metric_columns(f"{snake(MULTIMODAL_MODEL)}_")]
    metrics = pl.DataFrame(records, schema=_schema(["label"], [], metric_cols))
    average = pl.DataFrame({"label": ["Average"], "type": ["all"]})
    return pl.concat([base, average], how="diagonal_relaxed").join(metrics, on="label", how="left", maintain_order="left")


def _improved(multimodal: float | None, unimodal: float | None) -> bool:
    return multimodal is not None and unimodal is not None and multimodal > unimodal


def phenotype_table_markdown(frame: pl.DataFrame) -> str:
    """Table 4 layout; MedFuse cells in bold where they improve on the EHR-only model."""
    uni, multi = snake(UNIMODAL_REFERENCE), snake(MULTIMODAL_MODEL)
    headers = ["Phenotype", "Type", "Prevalence train", "Prevalence test",
               "EHR_PAIRED AUROC", "EHR_PAIRED AUPRC", "(EHR + CXR)_PAIRED AUROC", "(EHR + CXR)_PAIRED AUPRC"]
    rows = []
    for row in frame.iter_rows(named=True):
        cells = [row["label"], row["type"]]
        cells += [MISSING if row[c] is None else f"{row[c]:.3f}" for c in ("prevalence_train", "prevalence_test")]
        cells += [_cell(row, m, f"{uni}_") for m in METRICS]
        for m in METRICS:
            text = _cell(row, m, f"{multi}_")
            cells.append(bold(text) if _improved(row[f"{multi}_{m}"], row[f"{uni}_{m}"]) else text)
        rows.append(cells)
    title = ("### Table 4: per phenotype on the (EHR + CXR)_PAIRED test set, LSTM (EHR_PAIRED) vs MedFuse (OPTIMAL)\n\n"
             "Prevalence in the (EHR + CXR)_PARTIAL training set and the (EHR + CXR)_PAIRED test set; "
             "bold = MedFuse improves.\n\n")
    return title + markdown_table(headers, rows, numeric_from=2) + few_valid_note(rows) + "\n"


def age_group(age: pl.Expr) -> pl.Expr:
    """Table 5 age group of an age in years ([low, high) bins), null outside every group.

    >>> pl.DataFrame({"age": [18.0, 39.9, 40.0, 80.0, 95.0, 17.0]}).select(age_group(pl.col("age")))["age_group"].to_list()
    ['18-40', '18-40', '40-60', '> 80', '> 80', None]
    """
    expr = pl.lit(None, dtype=pl.String)
    for name, low, high in reversed(AGE_GROUPS):
        cond = age >= low if high is None else (age >= low) & (age < high)
        expr = pl.when(cond).then(pl.lit(name)).otherwise(expr)
    return expr.alias("age_group")


def _subset(preds: Predictions, stays: np.ndarray) -> Predictions:
    return preds.subset(np.isin(preds.stay_id, stays))


def age_table(
    samples: pl.DataFrame,
    unimodal: Predictions | None,
    multimodal: Predictions | None,
    score: Callable[[Predictions], Evaluation],
) -> pl.DataFrame:
    """Table 5: mortality per age group on the paired test set: positive fraction and both models' metrics."""
    test = (
        select_test_set(samples, "paired").with_columns(age_group(pl.col("age"))).filter(pl.col("age_group").is_not_null())
    )
    counts = test.group_by("age_group").agg(
        pl.len().alias("n"), pl.col("mortality").cast(pl.Int64).sum().alias("positives")
    )
    records = []
    for name, _, _ in AGE_GROUPS:
        stays = test.filter(pl.col("age_group") == name)["stay_id"].to_numpy()
        record: dict[str, object] = {"age_group": name}
        for prefix, preds in ((UNIMODAL_REFERENCE, unimodal), (MULTIMODAL_MODEL, multimodal)):
            ev = None
            if preds is not None and stays.size:
                ev = score(_subset(preds, stays))
            for m in METRICS:
                record |= estimate_columns(f"{snake(prefix)}_{m}", None if ev is None else ev.macro(m))
        records.append(record)
    metric_cols = [*_metric_columns(f"{snake(UNIMODAL_REFERENCE)}_"), *_metric_columns(f"{snake(MULTIMODAL_MODEL)}_")]
    metrics = pl.DataFrame(records, schema=_schema(["age_group"], [], metric_cols))
    groups = pl.DataFrame({"age_group": [g[0] for g in AGE_GROUPS]})
    return (
        groups.join(counts, on="age_group", how="left", maintain_order="left")
        .with_columns(pl.col("n").fill_null(0), pl.col("positives").fill_null(0))
        .with_columns((pl.col("positives") / pl.col("n")).alias("positive_fraction"))
        .join(metrics, on="age_group", how="left", maintain_order="left")
    )


def age_table_markdown(frame: pl.DataFrame) -> str:
    uni, multi = snake(UNIMODAL_REFERENCE), snake(MULTIMODAL_MODEL)
    headers = ["Age group", "Positive fraction",
               "EHR_PAIRED AUROC", "EHR_PAIRED AUPRC", "(EHR + CXR)_PAIRED AUROC", "(EHR + CXR)_PAIRED AUPRC"]
    rows = []
    for row in frame.iter_rows(named=True):
        frac = MISSING if not row["n"] else f"{row['positive_fraction']:.3f} ({row['positives']}/{row['n']})"
        cells = [row["age_group"], frac, *(_cell(row, m, f"{uni}_") for m in METRICS)]
        for m in METRICS:
            text = _cell(row, m, f"{multi}_")
            cells.append(bold(text) if _improved(row[f"{multi}_{m}"], row[f"{uni}_{m}"]) else text)
        rows.append(cells)
    title = ("### Table 5: in-hospital mortality by age group on the (EHR + CXR)_PAIRED test set\n\n"
             "Age groups are [low, high) in years; bold = MedFuse (OPTIMAL) improves on LSTM (EHR_PAIRED).\n\n")
    return title + markdown_table(headers, rows, numeric_from=1) + few_valid_note(rows) + "\n"


def group_table(unimodal: Evaluation | None, multimodal: Evaluation | None) -> pl.DataFrame:
    """Figure 4 data: macro AUROC/AUPRC over the acute, mixed and chronic phenotypes for both models."""
    records = []
    for group in ("acute", "mixed", "chronic"):
        labels = [p["name"] for p in phenotypes() if p["group"] == group]
        for experiment, ev in ((UNIMODAL_REFERENCE, unimodal), (MULTIMODAL_MODEL, multimodal)):
            record: dict[str, object] = {"group": group, "experiment": experiment, "labels": len(labels)}
            for m in METRICS:
                record |= estimate_columns(m, None if ev is None else ev.macro(m, labels))
            records.append(record)
    return pl.DataFrame(records, schema=_schema(["group", "experiment"], ["labels"], _metric_columns()))
