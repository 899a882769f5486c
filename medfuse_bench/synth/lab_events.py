"""labevents of one chunk of patients: panels drawn over each hospital admission (before, during and after its ICU
stays) without a stay_id, and outpatient draws without hadm_id, as in MIMIC-IV (see :mod:`.events`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from medfuse_bench.synth.arrays import HOUR, number_text, str_series
from medfuse_bench.synth.events import _schedule
from medfuse_bench.synth.items import lab_item
from medfuse_bench.synth.signal import Latents, vital_means


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
