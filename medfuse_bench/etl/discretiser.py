"""The discretiser: a task's events -> 76 features per time step, as the original's (``impute_strategy='previous'``,
``start_time='zero'``, masks stored):

- a sample of period length ``T`` hours has ``int(T / timestep + 1 - 1e-6)`` bins (at least 1);
- an event at hour ``t`` with ``-eps < t < T + eps`` (and, under switch ``window_by: storetime``, stored before
  ``T + eps``: its ``available_hours``) goes to bin ``int(t / timestep - 1e-6)`` (so ``t = 1.0`` lands
  in bin 0 for a 1 h step; truncation toward zero keeps ``-eps < t < 0`` in bin 0); other events are skipped;
- within a bin and channel the last event (by hour, then by row order) wins;
- an empty bin takes the channel's previous observed value in the same sample, else the channel's normal value;
- categorical channels are one-hot over their possible values, continuous channels keep the value;
- one 0/1 mask per channel, 1 only where the bin holds a real observation.

The layout is :func:`medfuse_bench.resources.feature_names`: 59 value columns (channel order, one-hots expanded),
then 17 masks. A Polars group-by yields the last (sample, bin, channel) observation, NumPy scatters it into a dense
block and forward-fills with ``np.maximum.accumulate`` over row indices. Normalisation is in :mod:`.normaliser`.
"""

from __future__ import annotations

import dataclasses
from functools import cache

import numpy as np
import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.cxr import require_columns
from medfuse_bench.etl.task_tables import EPS, observed_events, split_rank
from medfuse_bench.fidelity import switch
from medfuse_bench.resources import feature_names, variables

N_FEATURES = 76
#: Rows per block of the passes over the arrays (densify and copy, normalizer fit and application): 8192 rows of 76
#: features (2.5 MB as float32, 5 MB as float64) stay in cache.
ROWS_PER_PASS = 8192


@dataclasses.dataclass(frozen=True)
class ChannelLayout:
    """Where each of the 17 channels lands in the 76 features, and its imputation value."""

    names: tuple[str, ...]
    categorical: np.ndarray  # bool [17]
    value_column: np.ndarray  # int [17]: first value column of the channel (its one-hot block start if categorical)
    normal_code: np.ndarray  # float [17]: normal value (continuous) or index of the normal category (categorical)
    categories: pl.DataFrame  # variable, value_text, code: category index of every possible value
    continuous_columns: np.ndarray  # int [12]: the columns that are normalised
    n_values: int  # 59

    @property
    def n_channels(self) -> int:
        return len(self.names)


@cache
def channel_layout() -> ChannelLayout:
    """The channel layout built from ``resources/variables.yaml`` (checked against :func:`feature_names`)."""
    names, categorical, value_column, normal_code, rows = [], [], [], [], []
    column = 0
    for var in variables():
        names.append(var["name"])
        categorical.append(bool(var["categorical"]))
        value_column.append(column)
        if var["categorical"]:
            values = list(var["possible_values"])
            normal_code.append(float(values.index(str(var["normal_value"]))))
            rows.extend((var["name"], value, float(i)) for i, value in enumerate(values))
            column += len(values)
        else:
            normal_code.append(float(var["normal_value"]))
            column += 1
    n_values = column
    features = feature_names()
    assert len(features) == n_values + len(names) == N_FEATURES, "variables.yaml does not give 76 features"
    return ChannelLayout(
        names=tuple(names),
        categorical=np.array(categorical),
        value_column=np.array(value_column),
        normal_code=np.array(normal_code),
        categories=pl.DataFrame(rows, schema={"variable": pl.String, "value_text": pl.String, "code": pl.Float64},
                                orient="row"),
        continuous_columns=np.array([i for i, f in enumerate(features[:n_values]) if "->" not in f]),
        n_values=n_values,
    )


def bin_counts(period_length: np.ndarray, timestep: float) -> np.ndarray:
    """Number of bins per sample: ``int(T / timestep + 1 - 1e-6)``, at least 1.

    >>> bin_counts(np.array([48.0, 2.5, 0.0]), 1.0).tolist()
    [48, 3, 1]
    """
    if not timestep > 0:
        raise MedfuseError(f"timestep must be a positive number of hours (etl.timestep_hours), got {timestep}")
    period = np.asarray(period_length, dtype=np.float64)
    return np.maximum(1, (period / timestep + 1.0 - EPS).astype(np.int64))


def prepare_samples(samples: pl.DataFrame) -> pl.DataFrame:
    """The samples in output order (split train/val/test, samples.parquet order within a split) with ``pos``;
    ``subject_id`` is kept when ``samples`` has it."""
    require_columns(samples, ("stay_id", "split", "period_length"), "samples")
    if samples["stay_id"].is_duplicated().any():
        raise MedfuseError("samples has a stay_id more than once; a task has one sample per stay")
    if samples["period_length"].null_count():
        raise MedfuseError("samples column 'period_length' has nulls; rebuild it with task-tables")
    subject = [pl.col("subject_id").cast(pl.Int64)] if "subject_id" in samples.columns else []
    out = samples.select(*subject, pl.col("stay_id").cast(pl.Int64), "split", pl.col("period_length").cast(pl.Float64))
    out = out.with_row_index("_order").sort([split_rank(), "_order"]).drop("_order")
    return out.with_row_index("pos")


def _unknown_variables(lazy: pl.LazyFrame, known: tuple[str, ...]) -> None:
    found = lazy.select(pl.col("variable").cast(pl.String).fill_null("(null)").unique()).collect()["variable"]
    bad = sorted(v for v in found.to_list() if v not in known)
    if bad:
        raise MedfuseError(
            f"events column 'variable' holds '{bad[0]}', not one of the 17 variables; "
            "rebuild events.parquet with the variables step"
        )


def _unknown_categories(frame: pl.DataFrame, layout: ChannelLayout) -> None:
    categorical = [n for n, c in zip(layout.names, layout.categorical) if c]
    bad = frame.filter(pl.col("variable").is_in(categorical)).join(
        layout.categories, on=["variable", "value_text"], how="anti"
    )
    if bad.height:
        examples = bad.select("variable", "value_text").unique().sort(["variable", "value_text"]).head(3).rows()
        raise MedfuseError(
            f"events has {bad.height} categorical value(s) outside the variable's possible values, e.g. "
            + "; ".join(f"'{v}' for '{n}'" for n, v in examples)
            + " (resources/variables.yaml); map them in the variables step"
        )


def window_columns(window_by: str) -> tuple[str, ...]:
    """The event columns whose hours must lie before the end of a sample's window: the charttime's (the paper), or
    also the time the value was stored (``window_by: storetime``)."""
    values = switch("window_by").values
    if window_by not in values:
        raise MedfuseError(f"window_by must be one of {', '.join(values)}, got '{window_by}'")
    return ("hours",) if window_by == "charttime" else ("hours", "available_hours")



def bin_observations(events: pl.DataFrame | pl.LazyFrame, samples: pl.DataFrame, timestep: float,
                     window_by: str = "charttime") -> pl.DataFrame:
    """The last observation of each (sample, bin, channel): pos, bin, channel, code; sorted by pos, bin, channel.

    ``samples`` comes from :func:`prepare_samples` (stay_id, period_length, pos). ``code`` is the value of a
    continuous channel or the category index of a categorical one. ``window_by`` (:func:`window_columns`) says which
    events lie inside a sample's window.
    """
    layout = channel_layout()
    n_ch = layout.n_channels
    lazy = observed_events(events)
    names = lazy.collect_schema().names()
    limits = window_columns(window_by)
    require_columns(lazy, ("stay_id", "variable", *limits), "events")
    value = pl.col("value").cast(pl.Float64) if "value" in names else pl.lit(None, pl.Float64)
    text = pl.col("value_text").cast(pl.String) if "value_text" in names else pl.lit(None, pl.String)
    channel_of = {name: i for i, name in enumerate(layout.names)}
    texts = sorted(set(layout.categories["value_text"].to_list()))
    text_of = {t: i for i, t in enumerate(texts)}
    lookup = np.full((n_ch, len(texts) + 1), np.nan)  # last column: a text that is no possible value
    for variable, value_text, code in layout.categories.iter_rows():  # the 47 possible values
        lookup[channel_of[variable], text_of[value_text]] = code
    n_bins = bin_counts(samples["period_length"].to_numpy(), timestep)
    width = int(n_bins.max()) + 1 if len(n_bins) else 1
    last_bin = pl.max_horizontal(pl.lit(1, pl.Int64), (pl.col("period_length") / timestep + 1.0 - EPS).cast(pl.Int64))
    longest = float(samples["period_length"].max()) if samples.height else 0.0
    windowed = (
        # the samples' longest window first, so the join sees fewer rows (48 h of each stay for mortality)
        lazy.filter((pl.col("hours") > -EPS) & pl.all_horizontal(pl.col(c) < longest + EPS for c in limits))
        .with_row_index("_row")
        .select("_row", pl.col("stay_id").cast(pl.Int64), *(pl.col(c).cast(pl.Float64) for c in limits),
                pl.col("variable").cast(pl.String), value.alias("value"), text.alias("value_text"))
        .join(samples.lazy().select("stay_id", "pos", "period_length"), on="stay_id", how="inner",
              maintain_order="left")
        # each sample's own end; the start is cut above
        .filter(pl.all_horizontal(pl.col(c) < pl.col("period_length") + EPS for c in limits))
        .with_columns(
            # the channels are the Enum's categories in order, so its physical code is the channel index
            pl.col("variable").cast(pl.Enum(list(layout.names)), strict=False).to_physical().cast(pl.Int64)
            .alias("channel"),
            pl.min_horizontal((pl.col("hours") / timestep - EPS).cast(pl.Int64), last_bin - 1).alias("bin"),
        )
    )
    # Categorical channels read value_text (its index among the possible texts; null where there is no text).
    text_index = pl.when(pl.col("value_text").is_not_null()).then(
        pl.col("value_text").replace_strict(text_of, default=len(texts), return_dtype=pl.Int64))
    frame = windowed.select("_row", "pos", "hours", "value", text_index.alias("text_index"), "channel",
                            "bin").collect()
    if frame["channel"].null_count():
        _unknown_variables(lazy, layout.names)
    channel = frame["channel"].to_numpy()
    is_cat = layout.categorical[channel]
    code = frame["value"].to_numpy().copy()
    if is_cat.any():
        cat_rows = np.flatnonzero(is_cat)
        index = frame["text_index"].to_numpy()[cat_rows]  # float, NaN where value_text is null
        no_text = np.isnan(index)
        if no_text.any():  # a categorical value given as a number: its text, e.g. 1.0 -> "1.0"
            written = pl.Series(code[cat_rows[no_text]]).cast(pl.String)
            index[no_text] = written.replace_strict(text_of, default=len(texts), return_dtype=pl.Int64) \
                .fill_null(len(texts)).to_numpy()
        code[cat_rows] = lookup[channel[cat_rows], index.astype(np.int64)]
        if np.isnan(code[cat_rows]).any():
            _unknown_categories(windowed.select(
                "variable", value_text=pl.coalesce(pl.col("value_text"), pl.col("value").cast(pl.String))).collect(),
                layout)
    # One sort on (sample, bin, channel) packed into one integer, then hour and row order: the last row of each
    # run of equal keys is the observation that wins its bin. Rows already in (sample, hour) order (events.parquet
    # is sorted by subject, stay and hour, and chunks follow that order) only need a stable sort on the key, and
    # they are then nearly in key order, which NumPy's stable sort (a merge of sorted runs) exploits.
    pos, hours = frame["pos"].cast(pl.Int64).to_numpy(), frame["hours"].to_numpy()
    d_pos, d_hours = np.diff(pos), np.diff(hours)
    in_order = bool(np.all((d_pos > 0) | ((d_pos == 0) & (d_hours >= 0))))
    usable = ~np.isnan(code)
    key = ((pos * width + frame["bin"].to_numpy()) * n_ch + channel)[usable]
    code = code[usable]
    if in_order:
        order = np.argsort(key, kind="stable")
    else:
        ties = pl.DataFrame({"key": key, "hours": hours[usable], "_row": frame["_row"].to_numpy()[usable]})
        order = ties.select(pl.arg_sort_by("key", "hours", "_row")).to_series().to_numpy()
    del frame
    key, code = key[order], code[order]
    last = np.flatnonzero(np.r_[key[1:] != key[:-1], True]) if len(key) else np.zeros(0, dtype=np.int64)
    key = key[last]
    return pl.DataFrame({
        "pos": key // (n_ch * width), "bin": (key // n_ch) % width, "channel": key % n_ch, "code": code[last],
    }, schema={"pos": pl.Int64, "bin": pl.Int64, "channel": pl.Int8, "code": pl.Float64})


def densify(pos: np.ndarray, bins: np.ndarray, channel: np.ndarray, code: np.ndarray, n_bins: np.ndarray,
            first_pos: int = 0, out: np.ndarray | None = None) -> np.ndarray:
    """Dense [sum(n_bins), 76] float32 block of the samples ``first_pos .. first_pos + len(n_bins) - 1``.

    ``pos, bins, channel, code`` are the last observations of those samples (from :func:`bin_observations`).
    ``out``, when given, is filled in place (e.g. a slice of a memory-mapped array) and returned.
    """
    layout = channel_layout()
    n_bins = np.asarray(n_bins, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(n_bins)[:-1]]).astype(np.int64)
    total = int(n_bins.sum())
    index_dtype = np.int32 if total < 2**31 else np.int64
    rows = (offsets[np.asarray(pos, dtype=np.int64) - first_pos] + np.asarray(bins, dtype=np.int64)).astype(index_dtype)
    channel = np.asarray(channel, dtype=np.int64)
    # Channel-major so that each channel's fill runs over contiguous memory.
    raw = np.zeros((layout.n_channels, total), dtype=np.float32)
    observed = np.zeros((layout.n_channels, total), dtype=bool)
    raw[channel, rows] = code
    observed[channel, rows] = True
    if out is None:
        out = np.zeros((total, N_FEATURES), dtype=np.float32)
    else:
        out[:, : layout.n_values] = 0.0
    row_ids = np.arange(total, dtype=index_dtype)
    sample_start = np.repeat(offsets, n_bins).astype(index_dtype)
    for ch in range(layout.n_channels):  # 17 channels, each a vectorised pass over its column
        # Forward fill: the latest observed row at or before each row counts only inside the same sample.
        latest = np.where(observed[ch], row_ids, index_dtype(-1))
        np.maximum.accumulate(latest, out=latest)
        filled = np.where(latest >= sample_start, raw[ch][latest], np.float32(layout.normal_code[ch]))
        start = layout.value_column[ch]
        if layout.categorical[ch]:
            out[row_ids, start + filled.astype(np.int64)] = 1.0
        else:
            out[:, start] = filled
    out[:, layout.n_values:] = observed.T
    return out


def discretize(events: pl.DataFrame | pl.LazyFrame, samples: pl.DataFrame,
               timestep: float = 1.0, window_by: str = "charttime") -> tuple[np.ndarray, pl.DataFrame]:
    """Unnormalised float32 [total_steps, 76] array of all samples and its index (stay_id, split, offset, length).

    Samples are ordered by split (train, val, test), then as given; offsets count rows into the returned array.
    """
    prepared = prepare_samples(samples)
    n_bins = bin_counts(prepared["period_length"].to_numpy(), timestep)
    obs = bin_observations(events, prepared, timestep, window_by)
    array = densify(obs["pos"].to_numpy(), obs["bin"].to_numpy(), obs["channel"].to_numpy(), obs["code"].to_numpy(),
                    n_bins)
    offsets = np.concatenate([[0], np.cumsum(n_bins)[:-1]])
    index = prepared.select("stay_id", "split").with_columns(
        pl.Series("offset", offsets, dtype=pl.Int64), pl.Series("length", n_bins, dtype=pl.Int64)
    )
    return array, index
