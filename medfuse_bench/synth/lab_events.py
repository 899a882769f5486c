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


def lab_events(rng: np.random.Generator, adms: AdmissionChunk, stay_lat: Latents, providers: np.ndarray,
               unrelated_share: float | None = None) -> pl.DataFrame | None:
    """Lab rows of the chunk (no labevent_id / specimen_id yet), sorted by subject, charttime, itemid; None if the
    chunk has no lab draw. ``unrelated_share`` (default: none added) fills the table with results of items outside
    the 17 variables up to that share of its rows, as in MIMIC (see :func:`_unrelated_rows`)."""
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
    if unrelated_share is not None:
        frame = pl.concat([frame, _unrelated_rows(rng, frame, unrelated_share)])
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


#: Lab items outside the 17 variables that :func:`_unrelated_rows` adds to the draws, with the range their values
#: are drawn from (unit and reference range from d_labitems). Chemistry and blood counts: in MIMIC, most of
#: labevents.
UNRELATED_LAB_RANGES: dict[int, tuple[float, float]] = {
    50983: (125.0, 150.0), 50971: (2.8, 6.0), 50902: (90.0, 115.0), 50882: (15.0, 35.0), 51006: (5.0, 80.0),
    50868: (6.0, 25.0), 50893: (7.0, 11.0), 50960: (1.2, 3.2), 50970: (1.5, 7.0), 51301: (2.0, 25.0),
    51222: (7.0, 16.0), 51265: (40.0, 450.0), 51279: (2.5, 5.5), 51250: (78.0, 105.0),
}


def _unrelated_rows(rng: np.random.Generator, related: pl.DataFrame, share: float) -> pl.DataFrame:
    """Results of the items of :data:`UNRELATED_LAB_RANGES` on the chunk's own draws (same specimen, times, priority and
    provider), so that about ``share`` of the chunk's rows are of items outside the 17 variables. They only make
    the raw table realistic to scan: the ETL keeps none of them."""
    n_extra = max(0, round(related.height / (1.0 - share)) - related.height)
    if n_extra == 0:
        return related.clear()
    base = related[rng.integers(0, related.height, n_extra)]
    items = np.array(list(UNRELATED_LAB_RANGES), dtype=np.int64)
    which = rng.integers(0, len(items), n_extra)
    described = [lab_item(int(i)) for i in items]
    unit = np.array([u for u, _, _ in described], dtype=object)
    low_w = np.array([lo for _, lo, _ in described], dtype=float)[which]
    high_w = np.array([hi for _, _, hi in described], dtype=float)[which]
    span = np.array([UNRELATED_LAB_RANGES[int(i)] for i in items])
    value = np.round(rng.uniform(span[which, 0], span[which, 1]), 1)
    return base.with_columns(
        itemid=pl.Series(items[which]),
        text=pl.lit(None, pl.String),
        valuenum=pl.Series(value, dtype=pl.Float64),
        valueuom=str_series(unit[which]),
        ref_range_lower=pl.Series(low_w, dtype=pl.Float64),
        ref_range_upper=pl.Series(high_w, dtype=pl.Float64),
        flag=str_series(np.where((value < low_w) | (value > high_w), "abnormal", None)),
        comments=pl.lit(None, pl.String),
    )
