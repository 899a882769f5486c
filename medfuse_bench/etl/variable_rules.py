"""The clinical rules of the 17 variables: item ids -> variables, value cleaning (units, text codes), the possible
values of the categorical channels and the range table (switch ``outliers``). Stay assignment, one value per time and
the GCS total are in :mod:`.variable_linking`; the stage that applies both to the raw tables is :mod:`.variables`.

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

import polars as pl

from medfuse_bench import resources
from medfuse_bench.fidelity import FidelityPolicy

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

#: ``variable`` inside the stage: an Enum of the 17 names, so grouping and joining on it hash small integers.
VARIABLE = pl.Enum(resources.variable_names())
#: ``value_text`` of the kept events inside the stage: an Enum of the categorical channels' possible values (the
#: only texts that pass :func:`flag_invalid`, GCS totals included) in text order, so its max is the texts' max and
#: moving rows moves integers, not strings.
VALUE_TEXT = pl.Enum(sorted({p for v in resources.variables() if v["categorical"] for p in v["possible_values"]}))


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

