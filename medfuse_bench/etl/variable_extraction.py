"""One batch of subjects through the variables stage: raw chart + lab events -> the cleaned, stay-assigned,
one-value-per-time events (:mod:`.variable_rules`, :mod:`.variable_linking`) with counts of what each step removed.

Cleaning runs on the distinct (itemid, value) pairs, not on every row; rows look their result up.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from medfuse_bench.etl import DEFAULT_POLICY, exclusions
from medfuse_bench.etl.variable_linking import (
    AVAILABLE,
    assign_stays,
    derive_gcs_total,
    hours_since_intime,
    keep_one_per_time,
)
from medfuse_bench.etl.variable_rules import (
    VALUE_TEXT,
    VARIABLE,
    _number,
    apply_ranges,
    categorical_variables,
    clean_values,
    flag_invalid,
    map_items,
)
from medfuse_bench.fidelity import FidelityPolicy

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
RAW_EVENT_SCHEMA: dict[str, pl.DataType] = {
    "subject_id": pl.Int64(),
    "hadm_id": pl.Int64(),
    "stay_id": pl.Int64(),
    "charttime": pl.Datetime("us"),
    "storetime": pl.Datetime("us"),
    "itemid": pl.Int64(),
    "value": pl.String(),
}


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
    :data:`AVAILABLE`) and the rows left after the first step."""
    columns = [c for c in EVENTS_SCHEMA if c != "hours"] + [AVAILABLE]
    one = keep_one_per_time(events.lazy(), policy.same_time_values).collect()
    lf = derive_gcs_total(one.lazy()) if policy.gcs_total == "derived" else one.lazy()
    return sort_events(lf.select("charttime", "intime", *columns).collect(), stays), one.height
