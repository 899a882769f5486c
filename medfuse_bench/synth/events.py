"""chartevents, outputevents and labevents of one chunk of stays, drawn from the stays' latent state.

Measurements follow charting schedules (hourly vitals, 4-hourly GCS and temperature, ventilator items only for
ventilated stays, ...), each present for only part of the stays and with single measurements missing, so whole
variables are absent for some stays. Values follow :func:`medfuse_bench.synth.signal.vital_means` along the stay's
severity trajectory, in the units and text forms MIMIC-IV stores, with a few recording outliers (heart rate 0 or
400, 98.6 in the Celsius item, SpO2 above 100, weight 0, FiO2 stored as a fraction).

Labs are drawn for the whole hospital admission (before, during and after the ICU stays) without a stay_id, plus
outpatient labs without hadm_id, as in MIMIC-IV, where labs link to stays only by time.

``storetime`` follows ``charttime`` by a delay that depends on the kind of value (:func:`chart_store_minutes`,
:data:`LAB_STORE_MINUTES`): bedside monitor values minutes, nursing assessments and blood-gas values charted from the
analyser tens of minutes, chemistry and blood counts up to three hours, urine and fluid chemistry up to six.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from medfuse_bench.synth.arrays import HOUR, number_text, str_series, within_group_index
from medfuse_bench.synth.items import (
    CAPILLARY_REFILL,
    GCS_EYE,
    GCS_MOTOR,
    GCS_VERBAL,
    GCS_VERBAL_ETT,
    HEART_RHYTHMS,
    d_items,
    lab_item,
)
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


def chart_events(rng: np.random.Generator, chunk: StayChunk, unrelated_share: float | None = None) -> pl.DataFrame:
    """The chunk's chartevents rows, sorted by stay, charttime and itemid.

    ``unrelated_share`` (default: none added) fills chartevents with items outside the 17 variables up to that share
    of its rows, as in MIMIC (see :func:`_unrelated_rows`).
    """
    lat = chunk.lat
    n = len(chunk.los_h)
    los = chunk.los_h
    vent = lat["ventilated"]
    art = rng.random(n) < np.where(vent, 0.85, 0.25)
    phase = rng.uniform(0, 2 * np.pi, n)
    period = rng.uniform(24.0, 72.0, n)
    parts = _Parts()

    def state(idx: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
        return _state(chunk, idx, t, phase, period)

    # heart rate, SpO2, respiratory rate: hourly
    i, t = _schedule(rng, los, rng.random(n) < 0.985, 1.0, drop=0.04, early=0.3)
    m = state(i, t)
    hr = np.clip(np.round(m["hr"] + rng.normal(0, 5, len(i)) + lat["afib"][i] * rng.normal(0, 10, len(i))), 25, 250)
    parts.add(i, t, 220045, _outliers(rng, hr, 0.0015, [0.0, 400.0]))
    rhythm = np.where(lat["afib"][i], 3, np.where(m["hr"] > 100, 1, np.where(m["hr"] < 60, 2, 0)))
    keep = rng.random(len(i)) < 0.25  # rhythm charted about every 4 h
    parts.add(i[keep], t[keep], 220048, text=np.array(HEART_RHYTHMS, dtype=object)[rhythm[keep]])
    i, t = _schedule(rng, los, rng.random(n) < 0.975, 1.0, drop=0.05, early=0.3)
    spo2 = np.clip(np.minimum(100.0, np.round(state(i, t)["spo2"] + rng.normal(0, 1.3, len(i)))), 50, 100)
    parts.add(i, t, 220277, _outliers(rng, spo2, 0.0015, [101.0, 103.0, 127.0]))
    i, t = _schedule(rng, los, rng.random(n) < 0.97, 1.0, drop=0.05)
    rr = np.clip(np.round(state(i, t)["rr"] + rng.normal(0, 2.5, len(i))), 4, 60)
    parts.add(i, t, 220210, _outliers(rng, rr, 0.0005, [0.0]))

    # blood pressure: non-invasive (hourly, 3-hourly with an arterial line) and arterial
    for present, interval, items, shift in (
        (rng.random(n) < 0.97, np.where(art, 3.0, 1.0), (220179, 220180, 220181), (0.0, 0.0)),
        (art, 1.0, (220050, 220051, 220052), (4.0, -3.0)),
        (rng.random(n) < 0.04, 1.0, (225309, 225310, 225312), (4.0, -3.0)),
    ):
        i, t = _schedule(rng, los, present, interval, drop=0.03)
        m = state(i, t)
        sbp = np.clip(np.round(m["sbp"] + shift[0] + rng.normal(0, 9, len(i))), 50, 240)
        dbp = np.clip(np.round(np.minimum(m["dbp"] + shift[1] + rng.normal(0, 6, len(i)), sbp - 15)), 20, 140)
        mbp = np.round((sbp + 2 * dbp) / 3 + rng.normal(0, 2, len(i)))
        for item, values in zip(items, (sbp, dbp, mbp)):
            keep = rng.random(len(i)) >= 0.02
            parts.add(i[keep], t[keep], item, _outliers(rng, values[keep], 0.0005, [0.0]))
    i, t = _schedule(rng, los, rng.random(n) < 0.02, 1.0)
    parts.add(i, t, 224322, np.round(state(i, t)["sbp"] * 0.6 + 30 + rng.normal(0, 5, len(i))))
    for items, p_present in (((224167, 224643), 0.05), ((227243,), 0.03)):
        i, t = _schedule(rng, los, rng.random(n) < p_present, 12.0)
        m = state(i, t)
        parts.add(i, t, items[0], np.round(m["sbp"] + rng.normal(0, 10, len(i))))
        if len(items) > 1:
            parts.add(i, t, items[1], np.round(m["dbp"] + rng.normal(0, 6, len(i))))

    # temperature: most stays in Fahrenheit, some in Celsius (with a Fahrenheit value typed into it)
    celsius = rng.random(n) < 0.15
    i, t = _schedule(rng, los, rng.random(n) < 0.95, 4.0, drop=0.05)
    temp_c = state(i, t)["temp"] + rng.normal(0, 0.25, len(i))
    in_c = celsius[i]
    parts.add(i[in_c], t[in_c], 223762, _outliers(rng, np.round(temp_c[in_c], 1), 0.012, [98.6]))
    parts.add(i[~in_c], t[~in_c], 223761, np.round(temp_c[~in_c] * 1.8 + 32.0, 1))

    # Glasgow coma scale, text values with their scores
    i, t = _schedule(rng, los, rng.random(n) < 0.95, 4.0, drop=0.04)
    loss = state(i, t)["gcs_loss"] + rng.normal(0, 0.8, len(i))
    eye = 4 - np.clip(np.round(0.35 * loss), 0, 3).astype(np.int64)
    motor = 6 - np.clip(np.round(0.45 * loss), 0, 5).astype(np.int64)
    verbal = 5 - np.clip(np.round(0.5 * loss), 0, 4).astype(np.int64)
    ett = vent[i] & (rng.random(len(i)) < 0.85)
    verbal = np.where(ett, 1, verbal)
    parts.add(i, t, 220739, eye.astype(float), _texts(GCS_EYE, eye))
    parts.add(i, t, 223901, motor.astype(float), _texts(GCS_MOTOR, motor))
    verbal_text = np.where(ett, GCS_VERBAL_ETT, _texts(GCS_VERBAL, verbal))
    parts.add(i, t, 223900, verbal.astype(float), verbal_text)

    # capillary refill (right and/or left), text only
    i, t = _schedule(rng, los, rng.random(n) < 0.5, 4.0, drop=0.05)
    abnormal = rng.random(len(i)) < 1 / (1 + np.exp(-state(i, t)["crt_abnormal"]))
    text = np.array(CAPILLARY_REFILL, dtype=object)[abnormal.astype(np.int64)]
    side = rng.random(len(i))
    parts.add(i[side < 0.8], t[side < 0.8], 223951, text=text[side < 0.8])
    parts.add(i[side > 0.6], t[side > 0.6], 224308, text=text[side > 0.6])

    # glucose at the bedside
    for item, present, interval in (
        (225664, rng.random(n) < np.where(lat["diabetic"], 0.95, 0.5), 6.0),
        (220621, rng.random(n) < 0.45, 12.0),
        (226537, rng.random(n) < 0.08, 8.0),
    ):
        i, t = _schedule(rng, los, present, interval, drop=0.05)
        parts.add(i, t, item, np.clip(np.round(state(i, t)["glucose"] + rng.normal(0, 25, len(i))), 35, 900))

    # ventilated stays: FiO2 in percent (a few stored as fractions), ventilator respiratory rates, blood gases
    i, t = _schedule(rng, los, vent & (rng.random(n) < 0.97), 2.0, drop=0.05)
    fio2 = np.maximum(21.0, np.round(np.clip(state(i, t)["fio2"] + rng.normal(0, 7, len(i)), 21, 100) / 5) * 5)
    fio2 = np.where(rng.random(len(i)) < 0.02, fio2 / 100.0, fio2)
    parts.add(i, t, 223835, fio2)
    i, t = _schedule(rng, los, vent & (rng.random(n) < 0.9), 2.0, drop=0.05)
    rr = state(i, t)["rr"]
    parts.add(i, t, 224690, np.clip(np.round(rr + rng.normal(0, 1.5, len(i))), 4, 60))
    parts.add(i, t, 224689, np.clip(np.round(rr - rng.uniform(0, 8, len(i))), 0, 60))
    i, t = _schedule(rng, los, rng.random(n) < 0.06, 4.0)
    parts.add(i, t, 224422, np.clip(np.round(state(i, t)["rr"] + rng.normal(0, 3, len(i))), 0, 60))
    i, t = _schedule(rng, los, art & (vent | (rng.random(n) < 0.3)), 6.0, drop=0.1)
    m = state(i, t)
    parts.add(i, t, 223830, np.round(m["ph"] + rng.normal(0, 0.03, len(i)), 2))
    sat = rng.random(len(i)) < 0.6
    parts.add(i[sat], t[sat], 220227, np.minimum(100.0, np.round(m["spo2"][sat] + rng.normal(0, 1.5, int(sat.sum())))))
    i, t = _schedule(rng, los, rng.random(n) < 0.15, 12.0)
    parts.add(i, t, 220274, np.round(state(i, t)["ph"] - 0.03 + rng.normal(0, 0.04, len(i)), 2))

    # weight (kg and lbs at admission, daily weights) and height (inches, and cm derived from it)
    i, t = _once(rng, rng.random(n) < 0.85, 0.1, 4.0)
    kg = np.round(chunk.weight[i] + rng.normal(0, 1.0, len(i)), 1)
    parts.add(i, t, 226512, _outliers(rng, kg, 0.02, [0.0]))
    lbs = rng.random(len(i)) < 0.5
    parts.add(i[lbs], t[lbs], 226531, np.round(kg[lbs] * 2.20462, 1))
    i, t = _schedule(rng, los, rng.random(n) < 0.4, 24.0)
    parts.add(i, t, 224639, np.round(chunk.weight[i] + rng.normal(0, 1.5, len(i)), 1))
    i, t = _once(rng, rng.random(n) < 0.6, 0.1, 8.0)
    inches = np.round(chunk.height[i] / 2.54)
    parts.add(i, t, 226707, inches)
    cm = rng.random(len(i)) < 0.85
    parts.add(i[cm], t[cm], 226730, np.round(inches[cm] * 2.54))

    # unrelated items: alarm limits and the alarms-on checkbox
    i, t = _schedule(rng, los, rng.random(n) < 0.9, 12.0, drop=0.05)
    parts.add(i, t, 220046, np.array([120.0, 130.0, 140.0])[rng.integers(0, 3, len(i))])
    parts.add(i, t, 220047, np.array([50.0, 45.0, 40.0])[rng.integers(0, 3, len(i))])
    parts.add(i, t, 224641, text=np.full(len(i), "Yes", dtype=object))

    raw = parts.frame()
    if unrelated_share is not None:
        raw = pl.concat([raw, _unrelated_rows(rng, los, raw, unrelated_share)])
    return _finish_icu_events(rng, chunk, raw, with_valuenum=True)


#: Items outside the 17 variables that :func:`_unrelated_rows` charts: numeric ones with their values, text ones
#: with their texts.
UNRELATED_ITEMS: tuple[tuple[int, tuple[float, ...] | None, tuple[str, ...] | None], ...] = (
    (220046, (120.0, 130.0, 140.0), None),
    (220047, (40.0, 45.0, 50.0), None),
    (220048, None, HEART_RHYTHMS),
    (220056, (80.0, 90.0), None),
    (220058, (160.0, 180.0), None),
    (220339, (5.0, 8.0, 10.0, 12.0), None),
    (223751, (160.0, 180.0), None),
    (223752, (80.0, 90.0), None),
    (223769, (100.0,), None),
    (223770, (88.0, 90.0, 92.0), None),
    (224161, (30.0, 35.0), None),
    (224162, (6.0, 8.0), None),
    (224641, None, ("Yes", "No")),
    (224650, None, ("None", "PVC's", "PAC's")),
    (224685, (350.0, 400.0, 450.0, 500.0, 550.0), None),
)


def _unrelated_rows(rng: np.random.Generator, los_h: np.ndarray, charted: pl.DataFrame, share: float
                    ) -> pl.DataFrame:
    """Extra rows of :data:`UNRELATED_ITEMS` so that about ``share`` of the chunk's chartevents rows belong to items
    outside the 17 variables (in MIMIC, most of chartevents: ventilator settings, alarm limits, assessments).

    The rows fall uniformly over the stays' time in the unit; they only make the raw table realistic to scan.
    """
    unrelated = charted["itemid"].is_in([item for item, _, _ in UNRELATED_ITEMS]).sum()
    related = charted.height - unrelated
    n_extra = max(0, round(related / (1.0 - share)) - charted.height)
    parts = _Parts()
    if n_extra and los_h.sum() > 0:
        idx = rng.choice(len(los_h), size=n_extra, p=los_h / los_h.sum())
        t = rng.uniform(0.0, 1.0, n_extra) * los_h[idx]
        which = rng.integers(0, len(UNRELATED_ITEMS), n_extra)
        for k, (item, numbers, texts) in enumerate(UNRELATED_ITEMS):
            sel = which == k
            pick = rng.integers(0, len(numbers or texts), int(sel.sum()))
            if numbers is not None:
                parts.add(idx[sel], t[sel], item, np.asarray(numbers)[pick])
            else:
                parts.add(idx[sel], t[sel], item, text=np.asarray(texts, dtype=object)[pick])
    return parts.frame()


def _texts(mapping: dict[int, str], scores: np.ndarray) -> np.ndarray:
    lookup = np.empty(max(mapping) + 1, dtype=object)
    for score, text in mapping.items():
        lookup[score] = text
    return lookup[scores]


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


#: Minutes from draw (charttime) to result (storetime) per lab panel, from a whole-minute draw ``m`` in 20..179:
#: point-of-care blood gases 5 to 44 minutes, chemistry and blood counts as drawn (20 minutes to 3 h), urine and
#: fluid chemistry twice as long (40 minutes to 6 h).
LAB_STORE_MINUTES = {
    "bg": lambda m: 5 + (m - 20) // 4,
    "chem": lambda m: m,
    "cbc": lambda m: m,
    "urine": lambda m: 2 * m,
    "urine_chem": lambda m: 2 * m,
    "fluid": lambda m: 2 * m,
}


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


def _constant(value: float | None, n: int) -> pl.Series:
    return pl.Series(np.full(n, np.nan if value is None else value), dtype=pl.Float64, nan_to_null=True)


@dataclass
class AdmissionChunk:
    """The admissions (and outpatient lab draws) of one chunk's patients."""

    subject_id: np.ndarray
    hadm_id: np.ndarray  # -1 = outpatient draw window
    start: np.ndarray  # seconds: window for lab draws
    end: np.ndarray
    interval_h: np.ndarray
    lat: Latents  # latent state per admission window
    stay_lookup: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # (adm index, intime, stay index) sorted


_PANELS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("chem", (50931, 50912)),
    ("cbc", (51221,)),
    ("bg", (50820, 50809, 50817)),
    ("urine", (51491, 51478)),
    ("urine_chem", (51094,)),
    ("fluid", (50831,)),
)


def lab_events(rng: np.random.Generator, adms: AdmissionChunk, stay_lat: Latents, providers: np.ndarray
               ) -> pl.DataFrame | None:
    """Lab rows of the chunk (no labevent_id / specimen_id yet), sorted by subject, charttime, itemid; None if the
    chunk has no lab draw."""
    length_h = (adms.end - adms.start) / HOUR
    a, t = _schedule(rng, length_h, np.ones(len(length_h), bool), adms.interval_h, drop=0.0)
    t = np.clip(t, 0.0, None)
    draw_time = adms.start[a] + np.round(t * 60.0).astype(np.int64) * 60
    # latent state at the draw: the ICU stay running (or last started) at that time, else the admission's
    lat = {k: v[a] for k, v in adms.lat.items()}
    if adms.stay_lookup is not None and len(adms.stay_lookup[0]):
        s_adm, s_in, s_idx = adms.stay_lookup
        key_stays = s_adm * (1 << 34) + s_in
        pos = np.searchsorted(key_stays, a * (1 << 34) + draw_time, side="right") - 1
        found = (pos >= 0) & (s_adm[np.maximum(pos, 0)] == a)
        # before the first stay of an ICU admission: use the first stay
        first = np.searchsorted(s_adm, a, side="left")
        has = (first < len(s_adm)) & (s_adm[np.minimum(first, len(s_adm) - 1)] == a)
        use = np.where(found, pos, first)
        use_ok = found | has
        sidx = s_idx[np.clip(use, 0, len(s_idx) - 1)]
        for k in lat:
            lat[k] = np.where(use_ok, stay_lat[k][sidx], lat[k])
    m = vital_means(lat)
    vent = lat["ventilated"]
    rows: list[pl.DataFrame] = []
    n_specimens = 0
    for panel, items in _PANELS:
        p = {"chem": 0.92, "cbc": 0.9, "bg": np.where(vent, 0.6, 0.08), "urine": 0.04, "urine_chem": 0.02,
             "fluid": 0.01}[panel]
        d = np.flatnonzero(rng.random(len(a)) < p)
        if len(d) == 0:
            continue
        stored = draw_time[d] + LAB_STORE_MINUTES[panel](rng.integers(20, 180, len(d))) * 60
        provider = np.where(rng.random(len(d)) < 0.5, None, providers[rng.integers(0, len(providers), len(d))])
        priority = np.array(["STAT", "ROUTINE", None], dtype=object)[rng.choice(3, len(d), p=[0.4, 0.4, 0.2])]
        specimen = n_specimens + np.arange(len(d))
        n_specimens += len(d)
        for item in items:
            text = None
            if item in (50931, 50809):
                num = np.clip(np.round(m["glucose"][d] + rng.normal(0, 20, len(d))), 30, 1000)
            elif item == 50912:
                num = np.round(0.9 * np.exp(0.35 * lat["severity"][d] + rng.normal(0, 0.25, len(d))), 1)
            elif item == 51221:
                num = np.round(33.0 - 2.0 * lat["severity"][d] + rng.normal(0, 3, len(d)), 1)
            elif item == 50820:
                num = np.round(m["ph"][d] + rng.normal(0, 0.03, len(d)), 2)
            elif item == 50817:
                num = np.minimum(100.0, np.round(m["spo2"][d] + rng.normal(0, 2, len(d))))
            elif item in (51491, 51094):
                num = np.round(rng.uniform(5.0, 8.0, len(d)) * 2) / 2
            elif item == 50831:
                num = np.round(rng.uniform(6.8, 8.2, len(d)), 2)
            else:  # urine glucose: mostly "NEG" text
                num = np.where(lat["diabetic"][d] & (rng.random(len(d)) < 0.5),
                               np.array([100.0, 300.0, 1000.0])[rng.integers(0, 3, len(d))], np.nan)
                text = np.where(np.isnan(num), "NEG", None)
            uom, low, high = lab_item(item)
            hidden = rng.random(len(d)) < 0.005  # de-identified results
            num = np.where(hidden, np.nan, num)
            if low is None:
                flag = np.full(len(d), None, dtype=object)
            else:
                flag = np.where((num < low) | (num > high), "abnormal", None)
            rows.append(
                pl.DataFrame(
                    {
                        "draw": a[d],
                        "specimen": specimen,
                        "itemid": np.full(len(d), item, np.int64),
                        "charttime": draw_time[d],
                        "storetime": stored,
                        "text": str_series(np.where(hidden, "___", text if text is not None else None)),
                        "valuenum": pl.Series(num, dtype=pl.Float64, nan_to_null=True),
                        "valueuom": str_series(np.full(len(d), uom, dtype=object)),
                        "ref_range_lower": _constant(low, len(d)),
                        "ref_range_upper": _constant(high, len(d)),
                        "flag": str_series(flag),
                        "priority": str_series(priority),
                        "order_provider_id": str_series(provider),
                        "comments": str_series(np.where(hidden, "___", None)),
                    }
                )
            )
    if not rows:
        return None
    frame = pl.concat(rows)
    draw = frame["draw"].to_numpy()
    hadm = adms.hadm_id[draw]
    frame = frame.with_columns(
        subject_id=pl.Series(adms.subject_id[draw]),
        hadm_id=pl.Series(np.where(hadm >= 0, hadm, 0)),
        outpatient=pl.Series(hadm < 0),
        value=pl.coalesce(pl.col("text"), number_text(pl.col("valuenum"))),
        charttime=pl.from_epoch(pl.col("charttime"), time_unit="s"),
        storetime=pl.from_epoch(pl.col("storetime"), time_unit="s"),
    ).with_columns(
        hadm_id=pl.when(~pl.col("outpatient")).then(pl.col("hadm_id")),
        valuenum=number_text(pl.col("valuenum")),
        ref_range_lower=number_text(pl.col("ref_range_lower")),
        ref_range_upper=number_text(pl.col("ref_range_upper")),
    )
    return frame.sort("subject_id", "charttime", "specimen", "itemid", maintain_order=True)
