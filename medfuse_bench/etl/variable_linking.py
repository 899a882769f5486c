"""Events of the 17 variables placed in the cohort's stays: stay assignment (switches ``lab_link`` and
``chart_link``), one value per (stay, charttime, variable) (switch ``same_time_values``), the derived GCS total
(switch ``gcs_total``) and time as hours since intime. The value rules are in :mod:`.variable_rules`.
"""

from __future__ import annotations

import polars as pl

from medfuse_bench import resources
from medfuse_bench.etl.variable_rules import GCS_EYE, GCS_MOTOR, GCS_TOTAL, GCS_VERBAL, VARIABLE
from medfuse_bench.fidelity import FidelityPolicy

EVENT_KEYS = ["stay_id", "charttime", "variable"]
#: Columns of the stay that ride along with each event through deduplication.
STAY_COLUMNS = ["subject_id", "intime"]

#: The column carrying that time (a Datetime) through the stage.
AVAILABLE = "available"



def assign_stays(events: pl.LazyFrame, stays: pl.LazyFrame, policy: FidelityPolicy) -> pl.LazyFrame:
    """Attach each event to the cohort stay(s) it belongs to; ``stay_id`` becomes the stay's, ``intime`` is added.

    Lab events follow switch ``lab_link``, chart events switch ``chart_link``. The original values follow the
    original's validate_events + episode selection (:func:`_link_as_original`); ``lab_link: stay_window`` takes
    labs by subject_id and charttime within [intime, outtime]; ``chart_link: stay_id`` takes chart events by stay_id.
    """
    stay_cols = stays.select("subject_id", "hadm_id", "stay_id", "intime", "outtime")
    is_lab = pl.col("table") == "labevents"
    charts, labs = events.filter(~is_lab), events.filter(is_lab)
    if policy.chart_link == "time_window":
        charts = _link_as_original(charts, stay_cols)
    else:
        charts = charts.drop("subject_id", "hadm_id").join(stay_cols.drop("hadm_id"), on="stay_id", how="inner")
    if policy.lab_link == "hadm_id":
        labs = _link_as_original(labs, stay_cols)
    else:
        labs = (
            labs.drop("stay_id", "hadm_id")
            .join(stay_cols.drop("hadm_id"), on="subject_id", how="inner")
            .filter(pl.col("charttime").is_between(pl.col("intime"), pl.col("outtime")))
        )
    return pl.concat([charts, labs], how="diagonal_relaxed").drop("outtime")


def _link_as_original(events: pl.LazyFrame, stay_cols: pl.LazyFrame) -> pl.LazyFrame:
    """The original's rule: events need a cohort hadm_id; an event with a stay_id other than its admission's stay is
    dropped, one without takes the admission's stay; then an event belongs to stay S of its subject when its stay is
    S or its charttime lies in S's [intime, outtime] (so a lab counts for its whole admission)."""
    by_adm = stay_cols.select("hadm_id", adm_stay="stay_id")
    validated = events.join(by_adm, on="hadm_id", how="inner").filter(
        pl.col("stay_id").is_null() | (pl.col("stay_id") == pl.col("adm_stay"))
    )
    joined = validated.drop("stay_id", "hadm_id").join(stay_cols.drop("hadm_id"), on="subject_id", how="inner")
    keep = (pl.col("adm_stay") == pl.col("stay_id")) | pl.col("charttime").is_between(
        pl.col("intime"), pl.col("outtime")
    )
    return joined.filter(keep).drop("adm_stay")


def keep_one_per_time(events: pl.LazyFrame, same_time_values: str) -> pl.LazyFrame:
    """One row per (stay_id, charttime, variable), as switch ``same_time_values`` says.

    ``last_by_value``: the last row after sorting by value, as the original's pivot does: numbers for the channels it
    cleaned to numbers, text for the others (so "8" wins over "12"). ``latest_storetime``: the row(s) with the latest
    storetime (a null storetime counts as oldest); ties give the mean of the numbers and the greatest text.

    >>> import datetime as dt
    >>> t = dt.datetime(2150, 1, 1)
    >>> ev = pl.LazyFrame({"stay_id": [1, 1], "charttime": [t, t], "variable": ["Heart Rate"] * 2,
    ...     "value": [12.0, 8.0], "value_text": [None, None], "sort_number": [None, None],
    ...     "sort_text": ["12", "8"], "storetime": [t, t + dt.timedelta(minutes=5)], "subject_id": [7, 7],
    ...     "intime": [t, t]},
    ...     schema_overrides={"value_text": pl.String, "sort_number": pl.Float64})
    >>> keep_one_per_time(ev, "last_by_value").collect()["value"].to_list()
    [8.0]
    """
    keys, carried = EVENT_KEYS, STAY_COLUMNS
    # The kept value is available once the last of the rows it is made from is stored.
    available = [AVAILABLE] if AVAILABLE in events.collect_schema().names() else []
    # Most (stay, time, variable) keys hold one row: only the others need a per-group choice.
    counted = events.with_columns(_n=pl.len().over(keys))
    single = counted.filter(pl.col("_n") == 1).select(*keys, "value", "value_text", *carried, *available)
    several = counted.filter(pl.col("_n") > 1)
    if same_time_values == "last_by_value":
        chosen = several.group_by(keys).agg(
            pl.col("value", "value_text", *carried).sort_by(["sort_number", "sort_text"], nulls_last=False)
            .last(), *(pl.col(c).max() for c in available)
        )
    else:
        latest = pl.col("storetime").max().over(keys)
        chosen = (
            several.filter((pl.col("storetime") == latest) | latest.is_null())
            .group_by(keys)
            .agg(pl.col("value").mean(), pl.col("value_text").max(), pl.col(carried).first(),
                 *(pl.col(c).max() for c in available))
        )
    return pl.concat([single, chosen], how="vertical_relaxed")


def derive_gcs_total(events: pl.LazyFrame) -> pl.LazyFrame:
    """Add a GCS total (text "3".."15") wherever eye, motor and verbal are all charted at the same time and no total
    is; each component counts its ordinal, at least 1 (eye "None" and verbal "No Response-ETT" count 1)."""
    return pl.concat([events, gcs_totals(events)], how="diagonal_relaxed")


def gcs_totals(events: pl.LazyFrame) -> pl.LazyFrame:
    """The rows :func:`derive_gcs_total` adds: stay_id, charttime, the stay columns, variable, value, value_text."""
    rows = [(name, text, max(int(points), 1))
            for name in (GCS_EYE, GCS_MOTOR, GCS_VERBAL)
            for text, points in resources.variable(name)["ordinal"].items()]
    text = events.collect_schema()["value_text"]  # String, or VALUE_TEXT inside the stage
    points = pl.DataFrame(rows, schema={"variable": VARIABLE, "value_text": pl.String, "points": pl.Int64},
                          orient="row").with_columns(pl.col("value_text").cast(text)).lazy()
    keys = ["stay_id", "charttime"]
    available = [AVAILABLE] if AVAILABLE in events.collect_schema().names() else []
    return (
        events.join(points, on=["variable", "value_text"], how="inner")
        .group_by(keys)
        .agg(pl.col(STAY_COLUMNS).first(), *(pl.col(c).max() for c in available), n=pl.col("variable").n_unique(),
             total=pl.col("points").sum())
        .filter(pl.col("n") == 3)
        .join(events.filter(pl.col("variable") == GCS_TOTAL).select(keys), on=keys, how="anti")
        .select(
            *keys,
            *STAY_COLUMNS,
            *available,
            variable=pl.lit(GCS_TOTAL, dtype=VARIABLE),
            value=pl.lit(None, dtype=pl.Float64),
            value_text=pl.col("total").cast(pl.String).cast(text),
        )
    )


def hours_since_intime(column: str = "charttime", name: str = "hours") -> pl.Expr:
    """``hours`` = (charttime - intime) in hours (or another time column under another name)."""
    return ((pl.col(column) - pl.col("intime")).dt.total_microseconds().cast(pl.Float64) / 3.6e9).alias(name)
