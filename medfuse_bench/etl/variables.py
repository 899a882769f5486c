"""Variables: chart and lab events -> the 17 clinical variables, cleaned, assigned to stays, one value per time.

Steps (each a function from frame to frame): map item ids to variables, clean the values (units, text codes),
handle outliers (switch ``outliers``), assign events to cohort stays, keep one value per (stay, charttime,
variable), derive the GCS total (switch ``gcs_total``), express time as hours since intime.

Fidelity switches of this stage, each read by one step (docs/fidelity.md has the table with counts):

====================  ===========================================  ============================================
switch                original value                               corrected value
====================  ===========================================  ============================================
capillary_refill      ``carevue_only``: the original map (no       ``with_mimic_iv``: + items 223951 / 224308
                      MIMIC-IV capillary refill item)              and their "Seconds" texts
gcs_total             ``carevue_only``: never observed             ``derived`` from its 3 components
fio2                  ``always_divide``: every value / 100         ``percent_only``: / 100 only when > 1
temperature           ``by_value``: (v - 32) * 5/9 when v >= 79    ``by_item``: for item 223761 (°F) only
height_inches         ``kept``: 226707 (inches) left in inches     ``converted``: 226707 x 2.54 (cm)
outliers              ``keep``: the range table never applied      ``range``: outliers dropped, invalid clipped
lab_link              ``hadm_id``: the whole admission             ``stay_window``: subject_id + charttime in
                                                                   [intime, outtime]
chart_link            ``time_window``: stay_id, or charttime in    ``stay_id``
                      another stay's [intime, outtime] of the
                      same subject
same_time_values      ``last_by_value``: last after sorting by     ``latest_storetime``: last by storetime;
                      value (text order for uncleaned channels)    ties: mean (numbers) or the greatest text
====================  ===========================================  ============================================

Both modes: SBP / DBP "a/b" split, capillary refill text -> "0.0" / "1.0", O2 saturation <= 1 -> x 100,
non-numeric glucose / pH -> null, weight item 226531 (lbs) -> kg (the original's label rule catches it),
categorical values outside the channel's possible values dropped and counted, rows with no value dropped.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
from tqdm import tqdm

from medfuse_bench import resources
from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl import DEFAULT_POLICY, exclusions, policy_record
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.io import atomic_path

log = logging.getLogger(__name__)

# Variable names used by the cleaning rules.
CRR = "Capillary refill rate"
DBP = "Diastolic blood pressure"
FIO2 = "Fraction inspired oxygen"
GCS_EYE = "Glascow coma scale eye opening"
GCS_MOTOR = "Glascow coma scale motor response"
GCS_TOTAL = "Glascow coma scale total"
GCS_VERBAL = "Glascow coma scale verbal response"
GLUCOSE = "Glucose"
HEIGHT = "Height"
O2SAT = "Oxygen saturation"
PH = "pH"
SBP = "Systolic blood pressure"
TEMPERATURE = "Temperature"
WEIGHT = "Weight"

#: Item ids whose unit the corrected switches convert (MIMIC-IV d_items: label / unit).
FAHRENHEIT_ITEMS: tuple[int, ...] = (223761,)  # Temperature Fahrenheit
POUND_ITEMS: tuple[int, ...] = (226531,)  # Admission Weight (lbs.)
INCH_ITEMS: tuple[int, ...] = (226707,)  # Height, unit Inch
LB_TO_KG = 0.453592
INCH_TO_CM = 2.54

#: Capillary refill text -> channel value. The original knows the CareVue texts; MIMIC-IV charts the "Seconds" ones.
CAPILLARY_REFILL_ORIGINAL: dict[str, str] = {
    "Normal <3 secs": "0.0",
    "Brisk": "0.0",
    "Abnormal >3 secs": "1.0",
    "Delayed": "1.0",
}
CAPILLARY_REFILL_CORRECTED: dict[str, str] = {
    **CAPILLARY_REFILL_ORIGINAL,
    "Normal <3 Seconds": "0.0",
    "Abnormal >3 Seconds": "1.0",
}

#: Channels whose value the original turned into a number while cleaning (its dedup then sorts them as numbers);
#: the others stay text and sort as text ("8" after "12").
NUMERIC_AFTER_CLEANING: frozenset[str] = frozenset(
    {CRR, DBP, FIO2, GLUCOSE, HEIGHT, O2SAT, PH, SBP, TEMPERATURE, WEIGHT}
)

#: An unsigned decimal, the original's test for a numeric lab value.
_DECIMAL = r"^(\d+(\.\d*)?|\.\d+)$"

EVENT_KEYS = ["stay_id", "charttime", "variable"]
#: Columns of the stay that ride along with each event through deduplication.
STAY_COLUMNS = ["subject_id", "intime"]

#: ``variable`` inside the stage: an Enum of the 17 names, so grouping and joining on it hash small integers.
VARIABLE = pl.Enum(resources.variable_names())
#: ``value_text`` of the kept events inside the stage: an Enum of the categorical channels' possible values (the
#: only texts that pass :func:`flag_invalid`, GCS totals included) in text order, so its max is the texts' max and
#: moving rows moves integers, not strings.
VALUE_TEXT = pl.Enum(sorted({p for v in resources.variables() if v["categorical"] for p in v["possible_values"]}))

EVENTS_SCHEMA: dict[str, pl.DataType] = {
    "subject_id": pl.Int64(),
    "stay_id": pl.Int64(),
    "hours": pl.Float64(),
    "variable": pl.String(),
    "value": pl.Float64(),
    "value_text": pl.String(),
}
#: Columns of events.parquet: the events and ``available_hours``, the hours since intime at which the kept value was
#: available: the latest storetime of the rows it was made from, never before its charttime (a null storetime counts
#: as the charttime). Read by the time-series window under ``window_by: storetime`` and by the leakage audit.
FILE_SCHEMA: dict[str, pl.DataType] = {**EVENTS_SCHEMA, "available_hours": pl.Float64()}
#: The column carrying that time (a Datetime) through the stage.
AVAILABLE = "available"

RAW_EVENT_SCHEMA: dict[str, pl.DataType] = {
    "subject_id": pl.Int64(),
    "hadm_id": pl.Int64(),
    "stay_id": pl.Int64(),
    "charttime": pl.Datetime("us"),
    "storetime": pl.Datetime("us"),
    "itemid": pl.Int64(),
    "value": pl.String(),
}


def categorical_variables() -> list[str]:
    return [v["name"] for v in resources.variables() if v["categorical"]]


def item_table(capillary_refill: str) -> pl.DataFrame:
    """itemid -> variable and source table; switch ``capillary_refill`` says whether the MIMIC-IV capillary refill
    items, which the original map lacks, are mapped.

    >>> t = item_table("carevue_only")
    >>> 223951 in t["itemid"].to_list(), 223951 in item_table("with_mimic_iv")["itemid"].to_list()
    (False, True)
    """
    mapping = resources.itemid_map(include_corrected=capillary_refill == "with_mimic_iv")
    return pl.DataFrame(
        {
            "itemid": list(mapping),
            "variable": [v for v, _ in mapping.values()],
            "table": [t for _, t in mapping.values()],
        },
        schema={"itemid": pl.Int64, "variable": VARIABLE, "table": pl.String},
    )


def map_items(events: pl.LazyFrame, capillary_refill: str) -> pl.LazyFrame:
    """Keep events whose item id belongs to one of the 17 variables (:func:`item_table`); add ``variable`` and
    ``table``."""
    return events.join(item_table(capillary_refill).lazy(), on="itemid", how="inner")


def _number(text: pl.Expr) -> pl.Expr:
    return text.str.strip_chars().cast(pl.Float64, strict=False)


def _decimal(text: pl.Expr) -> pl.Expr:
    """The value when the text is an unsigned decimal, else null (the original's rule for labs)."""
    return pl.when(text.str.contains(_DECIMAL)).then(text.cast(pl.Float64, strict=False))


def _split_pressure(text: pl.Expr, part: int) -> pl.Expr:
    """'120/80' -> 120 (part 1) or 80 (part 2); other text is read as a number."""
    return _number(pl.when(text.str.contains("/")).then(text.str.extract(r"^(\d+)/(\d+)$", part)).otherwise(text))


def numeric_value(policy: FidelityPolicy) -> pl.Expr:
    """Cleaned number of a continuous channel from the raw ``value`` text (null for categorical channels); switches
    ``fio2``, ``temperature`` and ``height_inches`` choose the unit rules."""
    raw, var, item = pl.col("value"), pl.col("variable"), pl.col("itemid")
    x = _number(raw)
    if policy.fio2 == "always_divide":
        fio2 = x / 100.0  # the original's string test is always true in Python 3
    else:
        fio2 = pl.when(x > 1.0).then(x / 100.0).otherwise(x)
    if policy.temperature == "by_value":
        temperature = pl.when(x >= 79).then((x - 32.0) * 5.0 / 9.0).otherwise(x)
    else:
        temperature = pl.when(item.is_in(FAHRENHEIT_ITEMS)).then((x - 32.0) * 5.0 / 9.0).otherwise(x)
    if policy.height_inches == "kept":
        height = x  # the label "Height" has no "in": inches stay inches
    else:
        height = pl.when(item.is_in(INCH_ITEMS)).then(x * INCH_TO_CM).otherwise(x)
    o2sat = _decimal(raw)
    return (
        pl.when(var == SBP).then(_split_pressure(raw, 1))
        .when(var == DBP).then(_split_pressure(raw, 2))
        .when(var == FIO2).then(fio2)
        .when(var == O2SAT).then(pl.when(o2sat <= 1.0).then(o2sat * 100.0).otherwise(o2sat))
        .when(var.is_in([GLUCOSE, PH])).then(_decimal(raw))
        .when(var == TEMPERATURE).then(temperature)
        .when(var == WEIGHT).then(pl.when(item.is_in(POUND_ITEMS)).then(x * LB_TO_KG).otherwise(x))
        .when(var == HEIGHT).then(height)
        .when(var.is_in(categorical_variables())).then(pl.lit(None, dtype=pl.Float64))
        .otherwise(x)
    )


def text_value(capillary_refill: str) -> pl.Expr:
    """Value of a categorical channel: capillary refill text mapped to "0.0" / "1.0" (the MIMIC-IV texts too under
    ``capillary_refill: with_mimic_iv``), GCS text as charted."""
    table = CAPILLARY_REFILL_ORIGINAL if capillary_refill == "carevue_only" else CAPILLARY_REFILL_CORRECTED
    raw, var = pl.col("value"), pl.col("variable")
    return (
        pl.when(var == CRR).then(raw.replace_strict(table, default=None, return_dtype=pl.String))
        .when(var.is_in(categorical_variables())).then(raw)
    )


def clean_values(events: pl.LazyFrame, policy: FidelityPolicy, *, sort_keys: bool | None = None) -> pl.LazyFrame:
    """Replace the raw ``value`` text by ``value`` (Float64, continuous channels) and ``value_text`` (categorical).

    ``sort_keys`` (default: under ``same_time_values: last_by_value``) adds ``sort_number`` / ``sort_text``, the key
    by which the original orders duplicates (see :func:`keep_one_per_time`). Rows are not dropped here;
    :func:`flag_invalid` marks those without a usable value.

    >>> ev = pl.LazyFrame({"itemid": [223835, 223761, 226707], "variable": [FIO2, TEMPERATURE, HEIGHT],
    ...                    "value": ["0.5", "98.6", "70"]})
    >>> clean_values(ev, FidelityPolicy.preset("original")).collect()["value"].round(3).to_list()
    [0.005, 37.0, 70.0]
    >>> clean_values(ev, FidelityPolicy.preset("corrected")).collect()["value"].round(3).to_list()
    [0.5, 37.0, 177.8]
    """
    cleaned = events.with_columns(value_text=text_value(policy.capillary_refill), value_clean=numeric_value(policy))
    if sort_keys or (sort_keys is None and policy.same_time_values == "last_by_value"):
        is_numeric_sort = pl.col("variable").is_in(list(NUMERIC_AFTER_CLEANING))
        cleaned = cleaned.with_columns(
            sort_number=pl.when(is_numeric_sort)
            .then(pl.coalesce(pl.col("value_clean"), pl.col("value_text").cast(pl.Float64, strict=False))),
            sort_text=pl.when(~is_numeric_sort).then(pl.col("value")),
        )
    return cleaned.drop("value").rename({"value_clean": "value"})


def possible_values() -> pl.DataFrame:
    """(variable, value_text) pairs a categorical channel may take."""
    rows = [(v["name"], p) for v in resources.variables() if v["categorical"] for p in v["possible_values"]]
    return pl.DataFrame(rows, schema={"variable": VARIABLE, "value_text": pl.String}, orient="row")


def flag_invalid(events: pl.LazyFrame) -> pl.LazyFrame:
    """Add ``problem``: 'no_value' (null after cleaning), 'not_a_possible_value' (categorical), else null."""
    allowed = possible_values().with_columns(allowed=pl.lit(True)).lazy()
    is_categorical = pl.col("variable").is_in(categorical_variables())
    return (
        events.join(allowed, on=["variable", "value_text"], how="left")
        .with_columns(
            problem=pl.when(is_categorical & pl.col("value_text").is_null()).then(pl.lit("no_value"))
            .when(is_categorical & pl.col("allowed").is_null()).then(pl.lit("not_a_possible_value"))
            .when(~is_categorical & pl.col("value").is_null()).then(pl.lit("no_value"))
        )
        .drop("allowed")
    )


def range_table() -> pl.DataFrame:
    rows = [(v["name"], *(float(v["ranges"][k]) for k in ("outlier_low", "valid_low", "valid_high", "outlier_high")))
            for v in resources.variables() if not v["categorical"]]
    return pl.DataFrame(
        rows, schema=["variable", "outlier_low", "valid_low", "valid_high", "outlier_high"], orient="row"
    ).with_columns(pl.col("variable").cast(VARIABLE))


def apply_ranges(events: pl.LazyFrame) -> pl.LazyFrame:
    """Outlier handling of the range table: outside the OUTLIER bounds -> null, outside the VALID bounds -> clipped.

    Adds ``range_action`` ('removed', 'clipped' or null) so the caller can count them; categorical rows pass as is.

    >>> ev = pl.LazyFrame({"variable": [FIO2] * 3, "value": [0.1, 1.05, 0.5]}, schema_overrides={"variable": VARIABLE})
    >>> apply_ranges(ev).collect().select("value", "range_action").rows()
    [(None, 'removed'), (1.0, 'clipped'), (0.5, None)]
    """
    v = pl.col("value")
    out_of_range = (v < pl.col("outlier_low")) | (v > pl.col("outlier_high"))
    clipped = v.clip(pl.col("valid_low"), pl.col("valid_high"))
    return (
        events.join(range_table().lazy(), on="variable", how="left")
        .with_columns(
            range_action=pl.when(out_of_range).then(pl.lit("removed")).when(clipped != v).then(pl.lit("clipped")),
            value=pl.when(out_of_range).then(None).otherwise(clipped),
        )
        .drop("outlier_low", "valid_low", "valid_high", "outlier_high")
    )


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


def keep_one_per_time(events: pl.LazyFrame, same_time_values: str, *, keys: list[str] | None = None,
                      carried: list[str] | None = None) -> pl.LazyFrame:
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
    # ``keys`` may be one column standing for (stay_id, charttime, variable) (collapse_and_sort's packed key), with
    # ``carried`` the columns that are constant within a key.
    keys = EVENT_KEYS if keys is None else keys
    carried = STAY_COLUMNS if carried is None else carried
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


def _counts_by(frame: pl.DataFrame, column: str) -> dict[str, int]:
    if frame.height == 0:
        return {}
    counted = frame.group_by(column).len().with_columns(pl.col(column).cast(pl.String)).sort(column)
    return {str(k): int(n) for k, n in counted.iter_rows()}


#: Columns of a raw event that cleaning does not look at; they ride along to stay assignment.
_CARRIED_COLUMNS = ["subject_id", "hadm_id", "stay_id", "charttime", "storetime"]

#: Physical code standing for a null ``value`` in :func:`distinct_values` (categorical codes are u32).
_NULL_CODE = 2**32 - 1


def distinct_values(events: pl.DataFrame) -> tuple[pl.DataFrame, np.ndarray]:
    """The distinct (itemid, value) pairs of ``events``, and for each row the index of its pair.

    Cleaning depends on nothing but the item id and the raw text, and event tables repeat few values (a few thousand
    distinct pairs in millions of rows), so the cleaning expressions run on the pairs and rows look their result up.

    >>> ev = pl.DataFrame({"itemid": [220045, 220045, 220210, 220045], "value": ["80", "90", "80", "80"]})
    >>> pairs, index = distinct_values(ev)
    >>> pairs.height, pairs[index.tolist()]["value"].to_list() == ev["value"].to_list()
    (3, True)
    """
    # One integer per pair (item id, categorical code of the text): hashing integers is far cheaper than strings.
    code = events["value"].cast(pl.Categorical).to_physical().cast(pl.Int64).fill_null(_NULL_CODE)
    key = ((events["itemid"].cast(pl.Int64).fill_null(-1) + 1) * 2**32 + code).alias("_key")
    first = (
        key.to_frame().with_row_index("_row").group_by("_key").agg(pl.col("_row").first()).sort("_key")
    )
    index = key.replace_strict(
        first["_key"], pl.int_range(first.height, eager=True, dtype=pl.UInt32), return_dtype=pl.UInt32
    ).to_numpy()
    return events.select("itemid", "value")[first["_row"]], index


def clean_pairs(pairs: pl.DataFrame, policy: FidelityPolicy) -> pl.DataFrame:
    """Every (itemid, value) pair with its variable, source table, cleaned value and what cleaning found.

    One row per input row, in input order; ``variable`` is null for item ids the policy does not map. ``problem`` and
    ``range_action`` are as in :func:`flag_invalid` and :func:`apply_ranges` (switch ``outliers``); ``keep`` says
    whether the value is used; ``converted`` whether cleaning changed the charted number (units, scale).
    """
    indexed = pairs.lazy().with_row_index("_pair")
    lf = flag_invalid(clean_values(map_items(indexed, policy.capillary_refill), policy)).with_columns(
        _cleaned=pl.col("value"))
    if policy.outliers == "range":
        lf = apply_ranges(lf)
    else:
        lf = lf.with_columns(range_action=pl.lit(None, dtype=pl.String))
    sort_columns = ["sort_number", "sort_text"] if policy.same_time_values == "last_by_value" else []
    cleaned = lf.select("_pair", "variable", "table", "value", "value_text", *sort_columns, "problem",
                        "range_action", "_cleaned")
    plain = _number(pl.col("_raw"))
    return (
        indexed.select("_pair", pl.col("value").alias("_raw"))
        .join(cleaned, on="_pair", how="left")
        .sort("_pair")
        .with_columns(keep=pl.col("variable").is_not_null() & pl.col("problem").is_null()
                      & pl.col("range_action").ne_missing("removed"),
                      # A unit or scale conversion (°F -> °C, lbs -> kg, percent -> fraction, ...) changed the number.
                      converted=(pl.col("_cleaned") != plain).fill_null(False))
        .drop("_pair", "_raw", "_cleaned")
        .collect()
    )


def extract_events(
    events: pl.DataFrame,
    stays: pl.DataFrame,
    *,
    policy: FidelityPolicy = DEFAULT_POLICY,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Raw chart + lab events (ingest schema) of some subjects -> the long events table of their stays.

    Returns the events (EVENTS_SCHEMA, sorted by subject_id, stay_id, hours, variable) and counts of what each step
    removed. ``events`` must hold every event of its subjects: the original's links assign an event to any stay of
    its subject.
    """
    coded, counts = extract_coded_events(events, stays, policy=policy)
    return coded.select([pl.col(c).cast(t) for c, t in EVENTS_SCHEMA.items()]), counts


def extract_coded_events(
    events: pl.DataFrame,
    stays: pl.DataFrame,
    *,
    policy: FidelityPolicy = DEFAULT_POLICY,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """:func:`extract_events` with ``variable`` as :data:`VARIABLE` and ``value_text`` as :data:`VALUE_TEXT`, the
    types the stage works in (and writes as Parquet dictionaries)."""
    has_time = events["charttime"].is_not_null()
    pairs, index = distinct_values(events)
    table = clean_pairs(pairs, policy)

    # Counts of the raw rows, per pair first: a bincount instead of a group-by over every row.
    tallied = has_time.to_numpy()
    tally = table.with_columns(len=pl.Series(np.bincount(index[tallied], minlength=table.height)))
    tally = tally.with_row_index("_pair")
    tally = tally.filter(pl.col("variable").is_not_null())

    def by_variable(condition: pl.Expr) -> dict[str, int]:
        part = (tally.filter(condition).group_by("variable").agg(pl.col("len").sum())
                .filter(pl.col("len") > 0).sort("variable"))
        return {str(k): int(n) for k, n in part.iter_rows()}

    rows_in = events.height
    no_time = int((~has_time).sum())
    counts: dict[str, Any] = {
        "rows_in": rows_in,
        "dropped_no_charttime": no_time,
        "rows_unmapped_itemid": rows_in - no_time - int(tally["len"].sum()),
        "rows_mapped": by_variable(pl.lit(True)),
        "dropped_no_value": by_variable(pl.col("problem") == "no_value"),
        "dropped_not_a_possible_value": by_variable(pl.col("problem") == "not_a_possible_value"),
    }
    if policy.outliers == "range":
        counts["outliers_removed"] = by_variable(pl.col("range_action") == "removed")
        counts["outliers_clipped"] = by_variable(pl.col("range_action") == "clipped")
    found = value_exclusions(tally.join(pairs.select(raw="value").with_row_index("_pair"), on="_pair"))
    if no_time:
        found.append(exclusions.record("variables", "chartevents, labevents", "charttime", "charttime missing",
                                       no_time))
    if counts["rows_unmapped_itemid"]:
        found.append(exclusions.record("variables", "chartevents, labevents", "itemid",
                                       "item id not among the 17 variables (switch capillary_refill: " + policy.capillary_refill + ")",
                                       counts["rows_unmapped_itemid"]))

    use = has_time.to_numpy() & table["keep"].to_numpy()[index]
    # Kept categorical texts are possible values (flag_invalid), so the strict cast fails only on a broken rule.
    kept = table.with_columns(pl.when(pl.col("keep")).then(pl.col("value_text")).cast(VALUE_TEXT))
    valid = pl.concat(
        [events.select(_CARRIED_COLUMNS).filter(pl.Series(use)),
         kept.drop("keep", "problem", "range_action", "converted")[index[use]]],
        how="horizontal",
    ).with_row_index(_ROW)
    del use
    assigned = assign_stays(valid.lazy(), stays.lazy(), policy).with_columns(
        pl.max_horizontal("charttime", "storetime").alias(AVAILABLE)).collect()
    found += unassigned_exclusions(valid, assigned, policy)
    del valid
    assigned = assigned.drop(_ROW)
    counts["rows_assigned_to_stays"] = assigned.height
    collapsed, rows_one = collapse_and_sort(assigned, stays, policy)
    counts["duplicates_collapsed"] = assigned.height - rows_one
    del assigned
    out = collapsed.with_columns(hours_since_intime(), hours_since_intime(AVAILABLE, "available_hours")
                                 ).select(list(FILE_SCHEMA))
    del collapsed
    if policy.gcs_total == "derived":
        counts["gcs_total_derived"] = out.height - rows_one
    counts["rows_out"] = _counts_by(out, "variable")
    if counts["duplicates_collapsed"]:
        found.append(exclusions.record(
            "variables", "chartevents, labevents", "value",
            "several values of a variable at one charttime of a stay: one kept (" +
            ("the last after sorting by value" if policy.same_time_values == "last_by_value"
             else "latest storetime, ties averaged") + ")",
            counts["duplicates_collapsed"]))
    counts["exclusions"] = found
    return out, counts


#: Row number of an event inside :func:`extract_coded_events` (stay assignment may repeat or drop rows).
_ROW = "_row"


def value_exclusions(tally: pl.DataFrame) -> list[dict[str, Any]]:
    """Records of the charted values dropped or changed by cleaning, per source table, variable and reason, from the
    (itemid, value) pairs with their row counts (``len``) and raw text (``raw``); the example is the group's least raw
    text in text order, so that batches of subjects add up to the same record."""
    categorical = pl.col("variable").is_in(categorical_variables())
    empty = pl.col("raw").is_null() | (pl.col("raw").str.strip_chars() == "")
    possible = "not one of the channel's possible values"
    reasons = [
        ("dropped", (pl.col("problem") == "no_value") & empty, "empty value"),
        ("dropped", (pl.col("problem") == "no_value") & ~empty & ~categorical, "not a number"),
        ("dropped", (pl.col("problem") == "no_value") & ~empty & categorical, possible),
        ("dropped", pl.col("problem") == "not_a_possible_value", possible),
        ("dropped", pl.col("range_action") == "removed", "outside the outlier bounds (switch outliers: range)"),
        ("changed", pl.col("range_action") == "clipped", "outside the valid bounds: clipped to them"),
        ("changed", pl.col("converted") & pl.col("range_action").is_null(), "converted to the channel's unit or scale"),
    ]
    parts = [
        tally.filter(condition.fill_null(False) & (pl.col("len") > 0)).select(
            "table", "variable", "raw", "len", action=pl.lit(action), reason=pl.lit(reason))
        for action, condition, reason in reasons
    ]
    grouped = (
        pl.concat(parts)
        .group_by("table", pl.col("variable").cast(pl.String), "action", "reason", maintain_order=True)
        .agg(pl.col("len").sum().alias("rows"), pl.col("raw").min().alias("raw"))
        .sort("table", "variable", "reason")
    )
    return [
        exclusions.record("variables", table, f"value ({variable})", reason, rows, action=action,
                          example=None if raw is None else f"'{raw}'")
        for table, variable, action, reason, rows, raw in grouped.iter_rows()
    ]


def unassigned_exclusions(valid: pl.DataFrame, assigned: pl.DataFrame,
                          policy: FidelityPolicy = DEFAULT_POLICY) -> list[dict[str, Any]]:
    """Records of the cleaned events that belong to no cohort stay (``_row`` numbers the events of ``valid``; an
    event given to several stays counts once)."""
    placed = np.zeros(valid.height, dtype=bool)
    placed[assigned[_ROW].to_numpy()] = True
    lost = valid.select("table").filter(pl.Series(~placed)).group_by("table").len().sort("table")
    chart = ("stay_id or charttime within a stay of the subject" if policy.chart_link == "time_window"
             else "stay_id")
    lab = "hadm_id of a cohort stay" if policy.lab_link == "hadm_id" else "charttime within a stay of the subject"
    rule = f"chartevents by {chart}, labevents by {lab}"
    return [exclusions.record("variables", table, "stay_id, hadm_id, charttime", f"in no cohort stay ({rule})", n)
            for table, n in lost.iter_rows()]


def sort_events(events: pl.DataFrame, stays: pl.DataFrame | None = None) -> pl.DataFrame:
    """Rows in (subject_id, stay_id, charttime, variable) order: the order of (subject_id, stay_id, hours,
    variable), since hours grow with charttime within a stay and the ``variable`` Enum's order is the names' order.

    Sorts on one integer that packs the stay's rank in (subject_id, stay_id) order, the time and the variable when
    they fit in 63 bits (whole-second times, as MIMIC charts them, one subject per stay), which is about twice as
    fast as sorting on four columns; otherwise sorts on the four columns. ``stays`` (subject_id, stay_id), when
    given, is where the ranks come from, which saves finding the distinct stays of the events.

    >>> import datetime as dt
    >>> t = dt.datetime(2150, 1, 1)
    >>> ev = pl.DataFrame({"subject_id": [1, 2, 2], "stay_id": [9, 1, 1],
    ...                    "charttime": [t, t + dt.timedelta(hours=1), t], "variable": ["pH", "Glucose", "pH"]},
    ...                   schema_overrides={"variable": VARIABLE})
    >>> sort_events(ev).rows() == ev.sort(["subject_id", "stay_id", "charttime", "variable"]).rows()
    True
    """
    if events.height < 2:
        return events
    packing = event_packing(events, stays)
    key = None if packing is None else packed_key(events, packing)
    if key is None:
        return events.sort(SORT_KEYS)
    return events.with_columns(key).sort(_KEY).drop(_KEY)


#: The order of events.parquet's rows (hours grow with charttime within a stay).
SORT_KEYS = ["subject_id", "stay_id", "charttime", "variable"]
#: Column of the packed (stay, time, variable) key while a stage works with it.
_KEY = "_key"


def event_packing(events: pl.DataFrame, stays: pl.DataFrame | None = None) -> dict[str, Any] | None:
    """How :func:`packed_key` packs (stay rank, charttime, variable) of ``events`` into one Int64 whose order is
    the (subject_id, stay_id, charttime, variable) order, or None when they do not fit in 63 bits (times with
    fractions of a second, nulls, a stay with two subjects, another type of ``variable``)."""
    if events.schema["variable"] != VARIABLE:
        return None
    seconds = pl.col("charttime").dt.epoch("s")
    bounds = events.select(
        t_lo=seconds.min(), t_hi=seconds.max(),
        whole=(pl.col("charttime").dt.epoch("us") % 1_000_000 == 0).all(),
        no_nulls=pl.all_horizontal(pl.col(k).null_count() == 0 for k in SORT_KEYS),
    ).row(0, named=True)
    if not (bounds["whole"] and bounds["no_nulls"]) or bounds["t_lo"] is None:
        return None
    pairs = (events if stays is None else stays).select("subject_id", "stay_id").unique()
    pairs = pairs.sort("subject_id", "stay_id").with_row_index("rank")
    var_bits = max(1, len(VARIABLE.categories) - 1).bit_length()
    stay_bits = max(1, pairs.height - 1).bit_length()
    time_bits = max(1, int(bounds["t_hi"] - bounds["t_lo"])).bit_length()
    if stay_bits + time_bits + var_bits > 63 or pairs["stay_id"].is_duplicated().any():
        return None  # a stay with two subjects has no single rank
    return {"stays": pairs["stay_id"], "ranks": pairs["rank"].cast(pl.Int64), "t_lo": bounds["t_lo"],
            "time_bits": time_bits, "var_bits": var_bits}


def packed_key(events: pl.DataFrame, packing: dict[str, Any]) -> pl.Series | None:
    """The packed key of every row (named ``_key``), or None when a row's time or stay is outside ``packing``."""
    seconds = events["charttime"].dt.epoch("s") - packing["t_lo"]
    if seconds.min() < 0 or seconds.max() >= 2 ** packing["time_bits"]:
        return None
    rank = events["stay_id"].replace_strict(packing["stays"], packing["ranks"], default=None)
    if rank.null_count():  # a stay missing from the plan
        return None
    var_bits = packing["var_bits"]
    return ((rank * 2 ** (packing["time_bits"] + var_bits)) + seconds * 2**var_bits
            + events["variable"].to_physical().cast(pl.Int64)).alias(_KEY)


def collapse_and_sort(events: pl.DataFrame, stays: pl.DataFrame,
                      policy: FidelityPolicy) -> tuple[pl.DataFrame, int]:
    """:func:`keep_one_per_time`, then under ``gcs_total: derived`` :func:`derive_gcs_total`, then :func:`sort_events`;
    returns the events (the columns of EVENTS_SCHEMA but ``hours``, plus ``charttime``, ``intime`` and
    :data:`AVAILABLE`) and the rows left after the first step.

    With a packed key (:func:`event_packing`) the events are sorted first, so that the rows of one (stay, time,
    variable) are neighbours: comparisons with the previous and next rows find the keys held by several rows, with
    no hash table over every row; only those rows are collapsed, and the derived GCS totals are merged into the
    sorted rows.
    """
    columns = [c for c in EVENTS_SCHEMA if c != "hours"] + [AVAILABLE]
    packing = event_packing(events, stays)
    key = None if packing is None else packed_key(events, packing)
    derive = policy.gcs_total == "derived"
    if key is None or packing is None:
        one = keep_one_per_time(events.lazy(), policy.same_time_values).collect()
        lf = derive_gcs_total(one.lazy()) if derive else one.lazy()
        return sort_events(lf.select("charttime", "intime", *columns).collect(), stays), one.height
    out_columns = [_KEY, "charttime", "intime", *columns]
    choice = ["sort_number", "sort_text"] if policy.same_time_values == "last_by_value" else ["storetime"]
    # A stable sort keeps each key's rows in input order, so a collapse that depends on it is the unsorted one's.
    ordered = events.select(key, *out_columns[1:], *choice).sort(_KEY, maintain_order=True)
    k = pl.col(_KEY)
    first = k.ne_missing(k.shift(1))
    one = ordered.filter(first).select(out_columns)
    several = ordered.filter(~(first & k.ne_missing(k.shift(-1))))
    del ordered
    if several.height:
        # The key stands for (stay_id, charttime, variable), and the other columns but the values are the same in
        # every row of a key: the collapsed values replace those of each key's first row, found by binary search.
        chosen = keep_one_per_time(several.lazy(), policy.same_time_values, keys=[_KEY], carried=[]).collect()
        at = one[_KEY].search_sorted(chosen[_KEY])
        one = one.with_columns(one["value"].scatter(at, chosen["value"]),
                               one["value_text"].scatter(at, chosen["value_text"].cast(one.schema["value_text"])),
                               one[AVAILABLE].scatter(at, chosen[AVAILABLE]))
    rows_one = one.height
    if derive:
        totals = gcs_totals(one.lazy()).select("charttime", "intime", *columns).collect()
        if totals.height:
            totals_key = packed_key(totals, packing)
            if totals_key is None:  # cannot happen: the totals' stays and times are the events'
                raise MedfuseError("derived GCS totals fall outside the packed key of their events")
            one = one.merge_sorted(totals.with_columns(totals_key).select(out_columns).sort(_KEY), _KEY)
    return one.drop(_KEY), rows_one


def merge_counts(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """Add the counts of one batch of subjects to the running totals."""
    for key, value in part.items():
        if key == "exclusions":
            total[key] = exclusions.merge([*total.get(key, []), *value])
        elif isinstance(value, dict):
            total[key] = dict(Counter(total.get(key, {})) + Counter(value))
        else:
            total[key] = total.get(key, 0) + value
    return total


def _raw(raw_dir: Path, name: str) -> Path:
    path = raw_dir / f"{name}.parquet"
    if not path.exists():
        raise MedfuseError(f"'{path}' does not exist; run `medfuse-bench ingest` with --out-dir {raw_dir} first")
    return path


def subject_batches(stays: pl.DataFrame, batches: int) -> pl.DataFrame:
    """subject_id and ``batch``: the cohort's subjects in subject_id order cut into ``batches`` runs of equal size.

    Batches are subject_id ranges, so the batches' sorted outputs put together are sorted by subject_id, and a raw
    table stored in subject order is read one range of row groups per batch.

    >>> stays = pl.DataFrame({"subject_id": [5, 1, 5, 2, 3], "stay_id": [50, 10, 40, 20, 30]})
    >>> subject_batches(stays, 2).rows()
    [(1, 0), (2, 0), (3, 1), (5, 1)]
    """
    subjects = stays.select(pl.col("subject_id").unique().sort())
    n = subjects.height
    return subjects.with_columns(batch=pl.Series(np.arange(n, dtype=np.int64) * batches // max(n, 1)))


def run_variables(
    raw_dir: str | Path,
    stays_path: str | Path,
    out: str | Path,
    *,
    policy: FidelityPolicy = DEFAULT_POLICY,
    rows_per_batch: int = 5_000_000,
) -> dict[str, Any]:
    """Write events.parquet from the ingest folder and the cohort; return the counts.

    Subjects are processed in batches of consecutive subject ids (about ``rows_per_batch`` events each), so memory
    stays bounded whatever the size of chartevents, and a raw table in subject order (as the generator writes it) is
    read once in all: the subject_id range of a batch lets the Parquet reader skip the other batches' row groups.
    A batch holds every event of its subjects, as the original's links to any stay of the subject need.
    Batch outputs are sorted and appended in subject_id order, so the file is sorted by subject_id, stay_id, hours,
    variable without a merge.
    """
    raw_dir = Path(raw_dir)
    stays = pl.read_parquet(stays_path)
    sources = [_raw(raw_dir, "chartevents"), _raw(raw_dir, "labevents")]
    scan = pl.concat([pl.scan_parquet(p).select(list(RAW_EVENT_SCHEMA)) for p in sources], how="vertical_relaxed")
    n_rows = scan.select(pl.len()).collect().item()
    batches = max(1, min(math.ceil(n_rows / rows_per_batch), stays["subject_id"].n_unique()))
    batch_of = subject_batches(stays, batches)
    counts: dict[str, Any] = {"fidelity": policy_record(policy, "variables"), "batches": batches, "rows_raw": n_rows}
    with atomic_path(out) as tmp, ThreadPoolExecutor(max_workers=1) as pool:
        writer = None
        written: Future | None = None
        try:
            for b in tqdm(range(batches), desc="variables", unit="batch"):
                subjects = batch_of.filter(pl.col("batch") == b)["subject_id"]
                subject = pl.col("subject_id")
                in_batch = subject.is_between(subjects.min(), subjects.max()) & subject.is_in(subjects.implode())
                events = scan.filter(in_batch).collect()
                part, part_counts = extract_coded_events(events, stays.filter(in_batch), policy=policy)
                del events
                merge_counts(counts, part_counts)
                # The Enum columns go to the writer as dictionaries, which it stores without re-encoding the texts
                # of every row; without the Arrow schema in the file, readers still see plain string columns.
                table = part.to_arrow()
                del part
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd", store_schema=False)
                if written is not None:
                    written.result()
                # pyarrow encodes and compresses outside the GIL: the batch is written on a second thread while
                # the next one is read and cleaned, in order, one batch at a time.
                written = pool.submit(writer.write_table, table.cast(writer.schema), row_group_size=EVENTS_ROW_GROUP)
                del table
            if written is not None:
                written.result()
        finally:
            if written is not None:
                wait([written])
            if writer is not None:
                writer.close()
    outside = n_rows - counts.get("rows_in", 0)
    found = counts.get("exclusions", [])
    if outside:
        found.append(exclusions.record("variables", "chartevents, labevents", "subject_id",
                                       "subject not in the cohort", outside))
    counts["exclusions"] = exclusions.ordered(found)
    log.info("variables (%s): %d events in, %d out", policy.summary_line(), n_rows,
             sum(counts.get("rows_out", {}).values()))
    return counts


#: Rows per Parquet row group of events.parquet: small enough that the time-series stage, reading one chunk of
#: stays by subject_id range, skips most of the file.
EVENTS_ROW_GROUP = 131_072
