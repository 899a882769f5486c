"""chartevents of one chunk of stays: the 17 variables' items on their charting schedules (and, on request, items
outside them), drawn from the stays' latent state (see :mod:`.events`)."""

from __future__ import annotations

import numpy as np
import polars as pl

from medfuse_bench.synth.events import StayChunk, _finish_icu_events, _once, _outliers, _Parts, _schedule, _state
from medfuse_bench.synth.items import CAPILLARY_REFILL, GCS_EYE, GCS_MOTOR, GCS_VERBAL, GCS_VERBAL_ETT, HEART_RHYTHMS


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
