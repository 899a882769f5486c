"""What the pipeline knows about a task's cohort, in the forms icu-leakage-check reads.

- :func:`prediction_frame`: one row per sample with identifiers, split, labels, the prediction time (intime + the
  sample's period length: 48 h for mortality, the end of the stay for phenotyping), the outcome time, the time the
  stay became eligible for the cohort, and the model's input at the prediction time (:func:`last_step_features`).
- :func:`window_events`: the events that feed the 76 features, selected as the time-series stage selects them, with
  their charttime, the time they were available (``available_hours``) and their source table, plus the linked X-ray
  at its study time (:func:`xray_events`).
- :func:`normaliser_rows` and :func:`normaliser_scaler`: every time step of the three arrays before normalisation
  and the fitted normaliser as a scikit-learn ``StandardScaler``, which the auditor's preprocessing check reads.
- :func:`stay_events`: every event of some stays, for the auditor's truncation check.

Times are datetimes on MIMIC's shifted calendar (the auditor's time kind for MIMIC-IV); hours since intime are
turned into whole microseconds, so an event at the end of the window is not pushed past it by rounding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.cxr import require_columns, with_study_datetime
from medfuse_bench.etl.task_tables import EPS, OUTCOME_COLUMNS, after_intime, observed_events, outcome_time
from medfuse_bench.etl.discretiser import channel_layout, window_columns
from medfuse_bench.io import read_json_object
from medfuse_bench.resources import SPLITS, feature_names, itemid_map, task_labels

#: The feature and event variable of the linked X-ray.
XRAY = "Chest X-ray"
XRAY_SOURCE = "mimic-cxr-jpg.study_datetime"


def _at(hours: str | pl.Expr, name: str) -> pl.Expr:
    """intime + hours, in whole microseconds."""
    return after_intime(hours).alias(name)


def sample_times(samples: pl.DataFrame, stays: pl.DataFrame, min_stay_hours: float | None) -> pl.DataFrame:
    """subject_id, hadm_id, stay_id, split, intime, period_length, index_time, outcome_time, eligibility_time.

    ``outcome_time`` is the death of a positive mortality sample (the task tables' :func:`outcome_time`: its
    deathtime, else the admission's end). ``eligibility_time`` is when the cohort rules are decided: the admission's
    end (one ICU stay per admission, one care unit per stay), and at least intime + the minimum stay.
    """
    require_columns(samples, ("subject_id", "stay_id", "split", "period_length"), "samples")
    require_columns(stays, ("stay_id", "hadm_id", "intime", "outtime", *OUTCOME_COLUMNS), "stays")
    joined = samples.select("subject_id", "stay_id", "split", "period_length").join(
        stays.select("stay_id", "hadm_id", "intime", "outtime", *OUTCOME_COLUMNS), on="stay_id", how="left")
    if joined["intime"].null_count():
        raise MedfuseError("samples holds stays missing from stays.parquet; rebuild the task tables from this cohort")
    earliest = pl.col("intime") + pl.duration(microseconds=round((min_stay_hours or 0.0) * 3.6e9))
    return joined.select(
        "subject_id", "hadm_id", "stay_id", "split", "intime", "period_length",
        _at("period_length", "index_time"),
        outcome_time=outcome_time(),
        eligibility_time=pl.max_horizontal("dischtime", "outtime", earliest),
    )


def last_step_features(timeseries_dir: str | Path, stay_ids: pl.Series) -> pl.DataFrame:
    """stay_id and, per channel, the model's input at the last time step: the normalised value (continuous) or the
    category index (categorical); NaN where the sample's window holds no observation of the channel."""
    folder = Path(timeseries_dir)
    index = pl.read_parquet(folder / "timeseries_index.parquet")
    require_columns(index, ("stay_id", "split", "offset", "length"), str(folder / "timeseries_index.parquet"))
    layout = channel_layout()
    mask_columns = np.arange(layout.n_values, layout.n_values + layout.n_channels)
    parts = []
    for split in SPLITS:
        rows = index.filter(pl.col("split") == split).sort("offset")
        if rows.height == 0:
            continue
        array = np.load(folder / f"timeseries_{split}.npy", mmap_mode="r")
        offset, length = rows["offset"].to_numpy(), rows["length"].to_numpy()
        if not np.array_equal(offset[1:], (offset + length)[:-1]) or offset[0] != 0:
            raise MedfuseError(f"{folder / 'timeseries_index.parquet'}: the {split} samples do not tile their array")
        seen = np.maximum.reduceat(np.asarray(array[:, mask_columns]), offset, axis=0) > 0
        last = np.asarray(array[offset + length - 1])
        values = np.empty((rows.height, layout.n_channels))
        for ch in range(layout.n_channels):
            start = layout.value_column[ch]
            if layout.categorical[ch]:
                width = int((layout.categories["variable"] == layout.names[ch]).sum())
                values[:, ch] = last[:, start:start + width].argmax(axis=1)
            else:
                values[:, ch] = last[:, start]
        values[~seen] = np.nan
        parts.append(pl.DataFrame(values, schema=list(layout.names)).with_columns(rows["stay_id"]))
    out = pl.concat(parts) if parts else pl.DataFrame(schema={"stay_id": pl.Int64})
    missing = pl.DataFrame({"stay_id": stay_ids}).join(out, on="stay_id", how="anti")
    if missing.height:
        raise MedfuseError(f"{folder / 'timeseries_index.parquet'} lacks {missing.height} sample(s) of the task; "
                           "rebuild the time series from the same samples.parquet")
    return out


def prediction_frame(samples: pl.DataFrame, times: pl.DataFrame, features: pl.DataFrame, task: str) -> pd.DataFrame:
    """One row per sample: identifiers, split, labels, times and the features (:func:`last_step_features` and
    the X-ray: 1 where one is linked, else NaN)."""
    labels = task_labels(task)
    frame = (
        times.join(samples.select("stay_id", "cxr_dicom_id", *labels), on="stay_id", how="left")
        .join(features, on="stay_id", how="left")
        .with_columns(pl.when(pl.col("cxr_dicom_id").is_not_null()).then(1.0).alias(XRAY))
        .drop("cxr_dicom_id", "intime", "period_length")
    )
    return frame.to_pandas()


def _lab_keys(raw_labevents: str | Path | None) -> pl.LazyFrame | None:
    """(subject_id, charttime, variable) of lab rows of the variables that chartevents also records."""
    if raw_labevents is None or not Path(raw_labevents).exists():
        return None
    mapping = itemid_map(include_corrected=True)
    tables: dict[str, set[str]] = {}
    for variable, table in mapping.values():
        tables.setdefault(variable, set()).add(table)
    both = {item: v for item, (v, t) in mapping.items() if t == "labevents" and len(tables[v]) > 1}
    items = pl.DataFrame({"itemid": list(both), "variable": list(both.values())},
                         schema={"itemid": pl.Int64, "variable": pl.String})
    return (pl.scan_parquet(raw_labevents).select(pl.col("subject_id").cast(pl.Int64), pl.col("itemid").cast(pl.Int64),
                                                  pl.col("charttime").cast(pl.Datetime("us")))
            .join(items.lazy(), on="itemid", how="inner").select("subject_id", "charttime", "variable").unique())


def source_tables() -> dict[str, str]:
    """Each variable's table in the auditor's ``table.column`` form; variables in both tables count as chartevents."""
    out: dict[str, str] = {}
    for variable, table in itemid_map(include_corrected=True).values():
        if out.get(variable) != "chartevents.valuenum":
            out[variable] = f"{table}.valuenum"
    return out


def lab_keys(raw_labevents: str | Path | None, subjects: pl.Series | None = None) -> pl.DataFrame | None:
    """The lab keys :func:`window_events` tells lab from chart rows by, read once (of ``subjects`` only, if given)."""
    labs = _lab_keys(raw_labevents)
    if labs is None:
        return None
    if subjects is not None:
        labs = labs.filter(pl.col("subject_id").is_in(subjects.cast(pl.Int64).unique().implode()))
    return labs.with_columns(pl.col("variable").cast(pl.Categorical)).collect()


def window_events(events: pl.LazyFrame, times: pl.DataFrame, window_by: str,
                  raw_labevents: str | Path | pl.DataFrame | None = None) -> pl.DataFrame:
    """The events inside each sample's window as the time-series stage selects them, in the auditor's event
    columns: entity_id (stay_id), variable, event_time, available_time, source.

    Lab rows of the variables both tables record (glucose, pH, O2 saturation) are told from chart rows by a lab row
    of the patient at the same time (``raw_labevents``: the ingest's labevents.parquet, or its :func:`lab_keys`);
    without it they count as chart rows.
    """
    limits = window_columns(window_by)
    require_columns(events, ("stay_id", "hours", "available_hours", "variable"), "events")
    spans = times.select("stay_id", "subject_id", "intime", "period_length").lazy()
    chosen = (
        observed_events(events)
        .select(pl.col("stay_id").cast(pl.Int64), "hours", "available_hours", pl.col("variable").cast(pl.String))
        .join(spans, on="stay_id", how="inner")
        .filter((pl.col("hours") > -EPS) & pl.all_horizontal(pl.col(c) < pl.col("period_length") + EPS for c in limits))
        .select("stay_id", "subject_id", "variable", _at("hours", "event_time"),
                _at("available_hours", "available_time"))
    )
    table = pl.col("variable").replace_strict(source_tables(), default="chartevents.valuenum")
    labs = (raw_labevents.lazy().with_columns(pl.col("variable").cast(pl.String))
            if isinstance(raw_labevents, pl.DataFrame) else _lab_keys(raw_labevents))
    if labs is not None:
        chosen = chosen.join(labs.with_columns(_lab=pl.lit(True)), how="left",
                             left_on=["subject_id", "event_time", "variable"],
                             right_on=["subject_id", "charttime", "variable"])
        table = pl.when(pl.col("_lab")).then(pl.lit("labevents.valuenum")).otherwise(
            pl.lit("chartevents.valuenum"))
    return chosen.select(pl.col("stay_id").alias("entity_id"), "variable", "event_time", "available_time",
                         table.alias("source")).collect()


def xray_events(samples: pl.DataFrame, cxr_metadata: pl.DataFrame) -> pl.DataFrame:
    """The linked X-ray of each paired sample as an event at its study time (available when taken)."""
    linked = samples.filter(pl.col("cxr_dicom_id").is_not_null()).select("stay_id", "cxr_dicom_id")
    studies = with_study_datetime(cxr_metadata).select(pl.col("dicom_id").cast(pl.String).alias("cxr_dicom_id"),
                                                       pl.col("study_datetime").cast(pl.Datetime("us")))
    joined = linked.join(studies.unique("cxr_dicom_id"), on="cxr_dicom_id", how="left")
    if joined["study_datetime"].null_count():
        raise MedfuseError("cxr_metadata lacks the study time of a linked X-ray "
                           f"(dicom_id {joined.filter(pl.col('study_datetime').is_null())['cxr_dicom_id'][0]}); "
                           "rebuild the task tables from the same ingest folder")
    return joined.select(pl.col("stay_id").alias("entity_id"), pl.lit(XRAY).alias("variable"),
                         pl.col("study_datetime").alias("event_time"), pl.col("study_datetime").alias("available_time"),
                         pl.lit(XRAY_SOURCE).alias("source"))


def to_auditor_events(*frames: pl.DataFrame) -> pd.DataFrame:
    """Stack event frames for the auditor; the text columns as pandas categories to keep millions of rows small."""
    out = pl.concat(frames, how="vertical_relaxed").to_pandas()
    return out.astype({"variable": "category", "source": "category"})


# --- the normaliser ---------------------------------------------------------------------------------------------


def read_normaliser(timeseries_dir: str | Path) -> dict:
    return read_json_object(Path(timeseries_dir) / "normalizer.json", "run `medfuse-bench timeseries` first")


def normaliser_rows(timeseries_dir: str | Path, normaliser: dict) -> pd.DataFrame:
    """Every time step of the three arrays with the normalised columns back in their units, and its split."""
    folder = Path(timeseries_dir)
    names = list(normaliser["normalized_features"])
    columns = [feature_names().index(n) for n in names]
    means = np.array([normaliser["means"][c] for c in columns], dtype=np.float64)
    stds = np.array([normaliser["stds"][c] for c in columns], dtype=np.float64)
    frames = []
    for split in SPLITS:
        array = np.load(folder / f"timeseries_{split}.npy", mmap_mode="r")
        values = np.asarray(array[:, columns], dtype=np.float64) * stds + means
        frame = pd.DataFrame(values, columns=names)
        frame["split"] = pd.Categorical([split] * len(frame), categories=list(SPLITS))
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def normaliser_scaler(normaliser: dict):
    """The normaliser as a fitted ``StandardScaler`` of its normalised columns. Its stds are sample stds (N - 1, as
    the original's builder), ``var_`` of scikit-learn a population variance: the train split's N converts one into
    the other when the normaliser was fitted here (``normalizer`` absent or ``train_split``)."""
    from sklearn.preprocessing import StandardScaler

    names = list(normaliser["normalized_features"])
    columns = [feature_names().index(n) for n in names]
    stds = np.array([normaliser["stds"][c] for c in columns], dtype=np.float64)
    n = int(normaliser.get("train_steps") or 0)
    fitted_here = normaliser.get("normalizer", "train_split") == "train_split"
    factor = (n - 1) / n if fitted_here and n > 1 else 1.0
    scaler = StandardScaler()
    scaler.mean_ = np.array([normaliser["means"][c] for c in columns], dtype=np.float64)
    scaler.var_ = stds**2 * factor
    scaler.scale_ = stds
    scaler.n_features_in_ = len(names)
    scaler.feature_names_in_ = np.array(names, dtype=object)
    scaler.n_samples_seen_ = n
    return scaler


# --- every event of some stays --------------------------------------------------------------------------------------


def stay_events(events: pl.LazyFrame, times: pl.DataFrame, stay_ids: np.ndarray) -> pd.DataFrame:
    """Every observed event of ``stay_ids`` (the whole stay, not only the window) with its value, as the auditor's
    raw events: entity_id, variable, value, value_text, event_time, available_time."""
    spans = times.filter(pl.col("stay_id").is_in(stay_ids.tolist())).select("stay_id", "intime").lazy()
    cols = events.collect_schema().names()
    value = pl.col("value").cast(pl.Float64) if "value" in cols else pl.lit(None, pl.Float64)
    text = pl.col("value_text").cast(pl.String) if "value_text" in cols else pl.lit(None, pl.String)
    return (
        observed_events(events)
        .select(pl.col("stay_id").cast(pl.Int64), "hours", "available_hours", pl.col("variable").cast(pl.String),
                value.alias("value"), text.alias("value_text"))
        .join(spans, on="stay_id", how="inner")
        .select(pl.col("stay_id").alias("entity_id"), "variable", "value", "value_text",
                _at("hours", "event_time"), _at("available_hours", "available_time"))
        .collect()
        .to_pandas()
    )
