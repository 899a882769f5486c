"""chartevents, outputevents and labevents of one chunk of stays, drawn from the stays' latent state: the schedules
and the finishing of ICU event rows shared by :mod:`.chart_events` and :mod:`.lab_events`, and outputevents.

Measurements follow charting schedules (hourly vitals, 4-hourly GCS and temperature, ventilator items only for
ventilated stays, ...), each present for only part of the stays and with single measurements missing, so whole
variables are absent for some stays. Values follow :func:`medfuse_bench.synth.signal.vital_means` along the stay's
severity trajectory, in the units and text forms MIMIC-IV stores, with a few recording outliers (heart rate 0 or
400, 98.6 in the Celsius item, SpO2 above 100, weight 0, FiO2 stored as a fraction).

Labs are drawn for the whole hospital admission (before, during and after the ICU stays) without a stay_id, plus
outpatient labs without hadm_id, as in MIMIC-IV, where labs link to stays only by time.

``storetime`` follows ``charttime`` by a delay that depends on the kind of value (:func:`chart_store_minutes`,
:data:`.lab_events.LAB_STORE_MINUTES`): bedside monitor values minutes, nursing assessments and blood-gas values
charted from the analyser tens of minutes, chemistry and blood counts up to three hours, urine and fluid chemistry up
to six.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from medfuse_bench.synth.arrays import number_text, str_series, within_group_index
from medfuse_bench.synth.items import d_items
from medfuse_bench.synth.signal import Latents, vital_means


@dataclass
class StayChunk:
    """The stays of one chunk with everything their events need."""

    subject_id: np.ndarray
    hadm_id: np.ndarray
    stay_id: np.ndarray
    intime: np.ndarray  # seconds
    los_h: np.ndarray
    drift: np.ndarray
    weight: np.ndarray
    height: np.ndarray
    lat: Latents


class _Parts:
    """Collects event rows as small frames: stay index, hours since intime, itemid, text value, numeric value."""

    def __init__(self) -> None:
        self.frames: list[pl.DataFrame] = []

    def add(self, idx: np.ndarray, t: np.ndarray, itemid: int, num: np.ndarray | None = None,
            text: np.ndarray | None = None) -> None:
        n = len(idx)
        if n == 0:
            return
        self.frames.append(
            pl.DataFrame(
                {
                    "sidx": idx.astype(np.int64),
                    "t": t.astype(np.float64),
                    "itemid": np.full(n, itemid, np.int64),
                    "value": str_series(text if text is not None else np.full(n, None, dtype=object)),
                    "valuenum": pl.Series(num, dtype=pl.Float64, nan_to_null=True) if num is not None
                    else pl.repeat(None, n, dtype=pl.Float64, eager=True),
                }
            )
        )

    def frame(self) -> pl.DataFrame:
        if not self.frames:
            return pl.DataFrame(schema={"sidx": pl.Int64, "t": pl.Float64, "itemid": pl.Int64, "value": pl.String,
                                        "valuenum": pl.Float64})
        return pl.concat(self.frames)


def _schedule(rng: np.random.Generator, los_h: np.ndarray, present: np.ndarray, interval: np.ndarray | float,
              *, drop: float = 0.0, early: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Regular charting every ``interval`` hours (with jitter) over each present stay; ``early`` lets the first
    measurement fall up to that many hours before intime."""
    n = len(los_h)
    interval = np.broadcast_to(np.asarray(interval, dtype=np.float64), n)
    start = rng.uniform(0.0, 1.0, n) * interval - early * rng.random(n)
    count = np.where(present, np.floor((los_h - start) / interval) + 1, 0).clip(0).astype(np.int64)
    idx = np.repeat(np.arange(n), count)
    k = within_group_index(count)
    t = start[idx] + k * interval[idx] + rng.normal(0.0, 0.08, len(idx)) * interval[idx]
    t = np.minimum(t, los_h[idx])
    keep = rng.random(len(idx)) >= drop
    return idx[keep], t[keep]


def _once(rng: np.random.Generator, present: np.ndarray, lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    idx = np.flatnonzero(present)
    return idx, rng.uniform(lo, hi, len(idx))


def _state(chunk: StayChunk, idx: np.ndarray, t: np.ndarray, phase: np.ndarray, period: np.ndarray
           ) -> dict[str, np.ndarray]:
    """Expected values at the events: severity follows drift and a slow oscillation over the stay."""
    sub = {k: v[idx] for k, v in chunk.lat.items()}
    sub["severity"] = (
        sub["severity"]
        + chunk.drift[idx] * 2.0 * np.tanh(np.maximum(t, 0.0) / 48.0)
        + 0.3 * np.sin(2 * np.pi * t / period[idx] + phase[idx])
    )
    return vital_means(sub)


def _outliers(rng: np.random.Generator, values: np.ndarray, p: float, choices: list[float]) -> np.ndarray:
    hit = rng.random(len(values)) < p
    return np.where(hit, np.asarray(choices)[rng.integers(0, len(choices), len(values))], values)


#: Chart items entered by hand after the bedside assessment or measurement (GCS, capillary refill, weight, height).
ASSESSMENT_ITEMS: tuple[int, ...] = (220739, 223901, 223900, 223951, 224308, 226512, 226531, 224639, 226707, 226730)
#: Chart items copied from a blood-gas or laboratory result (arterial / venous pH, SaO2, serum and whole-blood glucose).
CHARTED_RESULT_ITEMS: tuple[int, ...] = (223830, 220274, 220227, 220621, 226537)


def chart_store_minutes(itemid: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    """Minutes from charttime to storetime of chart rows, from a whole-minute draw ``minutes`` in 1..44: monitor
    values and bedside checks as drawn (validated within the hour), hand-entered assessments three times longer (3
    minutes to 2.2 h), values copied from a blood-gas or lab result half an hour later (31 to 74 minutes).

    >>> chart_store_minutes(np.array([220045, 220739, 223830]), np.array([10, 10, 10])).tolist()
    [10, 30, 40]
    """
    return np.where(np.isin(itemid, ASSESSMENT_ITEMS), 3 * minutes,
                    np.where(np.isin(itemid, CHARTED_RESULT_ITEMS), minutes + 30, minutes))


def _finish_icu_events(rng: np.random.Generator, chunk: StayChunk, raw: pl.DataFrame, *, with_valuenum: bool
                       ) -> pl.DataFrame:
    """Absolute times, identifiers, caregivers, units; sorted by stay, charttime, itemid."""
    n_rows = raw.height
    caregiver_base = rng.integers(1_000, 99_000, len(chunk.los_h))
    units = {int(r[0]): r[1] for r in d_items().select("itemid", "unitname").iter_rows()}
    sidx = raw["sidx"].to_numpy()
    charttime = chunk.intime[sidx] + np.round(raw["t"].to_numpy() * 60.0).astype(np.int64) * 60
    frame = raw.with_columns(
        charttime=pl.Series(charttime),
        storetime=pl.Series(
            charttime + chart_store_minutes(raw["itemid"].to_numpy(), rng.integers(1, 45, n_rows)) * 60),
        caregiver_id=pl.Series(caregiver_base[sidx] + rng.integers(0, 4, n_rows) * 7),
    ).sort("sidx", "charttime", "itemid", maintain_order=True)
    sidx = frame["sidx"].to_numpy()
    frame = frame.with_columns(
        subject_id=pl.Series(chunk.subject_id[sidx]),
        hadm_id=pl.Series(chunk.hadm_id[sidx]),
        stay_id=pl.Series(chunk.stay_id[sidx]),
        storetime=pl.from_epoch(pl.col("storetime"), time_unit="s"),
        charttime=pl.from_epoch(pl.col("charttime"), time_unit="s"),
        value=pl.coalesce(pl.col("value"), number_text(pl.col("valuenum"))),
        valueuom=pl.col("itemid").replace_strict(units, default=None, return_dtype=pl.String),
    )
    if with_valuenum:
        frame = frame.with_columns(
            warning=pl.Series(rng.random(n_rows) < 0.002).cast(pl.Int64),
        )
        return frame.select("subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime", "storetime", "itemid",
                            "value", number_text(pl.col("valuenum")).alias("valuenum"), "valueuom", "warning")
    return frame.select("subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime", "storetime", "itemid",
                        number_text(pl.col("valuenum")).alias("value"), "valueuom")


def output_events(rng: np.random.Generator, chunk: StayChunk) -> pl.DataFrame:
    """The chunk's outputevents rows: Foley urine output for most stays, voids for the others."""
    n = len(chunk.los_h)
    foley = rng.random(n) < 0.75
    parts = _Parts()
    i, t = _schedule(rng, chunk.los_h, foley, np.where(rng.random(n) < 0.5, 1.0, 2.0), drop=0.03)
    mean = np.maximum(15.0, 80.0 - 20.0 * chunk.lat["severity"][i])
    parts.add(i, t, 226559, np.round(rng.lognormal(np.log(mean), 0.5)))
    i, t = _schedule(rng, chunk.los_h, ~foley & (rng.random(n) < 0.6), 4.0, drop=0.1)
    parts.add(i, t, 226560, np.round(rng.uniform(100, 600, len(i))))
    return _finish_icu_events(rng, chunk, parts.frame(), with_valuenum=False)
