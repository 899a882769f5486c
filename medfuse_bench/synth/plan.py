"""The synthetic population: patients, admissions, ICU stays and their latent state, times and outcomes.

Everything here is one row per patient / admission / stay (small even for 50,000 stays); the large event tables
and the images are generated afterwards, chunk by chunk, from these arrays (:mod:`medfuse_bench.synth.events`,
:mod:`medfuse_bench.synth.images`).

Shape of the population, chosen to exercise every rule of the benchmark's cohort extraction:

* admissions with 1, 2 or 3 ICU stays (~88 / 9 / 3 %), patients with 1-4 admissions, ~9 % of stays whose first and
  last care unit differ (with the matching transfers rows), ~2 % of patients under 18;
* ICU length of stay log-normal with median ~68 h (about a third of stays shorter than 48 h);
* about 12 % extra patients without any ICU stay (a ward admission or none) who only have X-rays and labs;
* in-hospital deaths (deathtime, hospital_expire_flag, dod) on the last admission of a patient, most of them in
  the ICU, and out-of-hospital deaths (dod after the last discharge, as in MIMIC-IV >= 2.0);
* times shifted into 2110-2210 per patient (``anchor_year``), with ``anchor_year_group`` giving the real era, which
  decides ICD-9 vs ICD-10 coding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medfuse_bench.synth.arrays import (
    DAY,
    HOUR,
    group_exclusive_cumsum,
    group_starts,
    pick,
    split_total,
    to_minute,
    unique_ids,
    within_group_index,
    year_start_seconds,
)
from medfuse_bench.synth.signal import Latents, draw_latents, mortality_probability

ANCHOR_YEAR_GROUPS = ("2008 - 2010", "2011 - 2013", "2014 - 2016", "2017 - 2019")
ICU_UNITS = (
    "Medical Intensive Care Unit (MICU)",
    "Medical/Surgical Intensive Care Unit (MICU/SICU)",
    "Cardiac Vascular Intensive Care Unit (CVICU)",
    "Surgical Intensive Care Unit (SICU)",
    "Coronary Care Unit (CCU)",
    "Trauma SICU (TSICU)",
    "Neuro Surgical Intensive Care Unit (Neuro SICU)",
    "Neuro Intermediate",
    "Neuro Stepdown",
)
ICU_UNIT_P = (0.22, 0.18, 0.17, 0.13, 0.11, 0.10, 0.04, 0.03, 0.02)
WARDS = (
    "Medicine", "Med/Surg", "Surgery", "Cardiology", "Medicine/Cardiology", "Hematology/Oncology", "Transplant",
    "Vascular", "Neurology",
)
WARD_P = (0.3, 0.15, 0.1, 0.1, 0.1, 0.08, 0.05, 0.05, 0.07)


@dataclass
class Population:
    """Arrays of the population; patients, admissions and stays each sorted by patient index."""

    patient: dict[str, np.ndarray]
    adm: dict[str, np.ndarray]
    stay: dict[str, np.ndarray]
    stay_lat: Latents  # latent state per ICU stay
    adm_lat: Latents  # latent state per admission (its last ICU stay, or a ward patient's)


def _take(lat: Latents, idx: np.ndarray) -> Latents:
    return {k: v[idx] for k, v in lat.items()}


def build_population(rng: np.random.Generator, n_stays: int) -> Population:
    """Draw the population with exactly ``n_stays`` ICU stays."""
    # --- structure: stays per ICU admission, ICU admissions per patient, extra patients without ICU stay
    stays_per_adm = split_total(rng, n_stays, [1, 2, 3], [0.88, 0.09, 0.03])
    adm_per_pat = split_total(rng, len(stays_per_adm), [1, 2, 3, 4], [0.78, 0.15, 0.05, 0.02])
    n_icu_pat = len(adm_per_pat)
    n_extra = max(2, int(round(0.12 * n_icu_pat)))
    n_pat = n_icu_pat + n_extra
    pat_icu = np.zeros(n_pat, bool)
    pat_icu[rng.permutation(n_pat)[:n_icu_pat]] = True
    adm_count = np.zeros(n_pat, np.int64)
    adm_count[pat_icu] = adm_per_pat
    adm_count[~pat_icu] = rng.random(n_extra) < 0.7
    n_adm = int(adm_count.sum())
    adm_pat = np.repeat(np.arange(n_pat), adm_count)
    adm_icu = pat_icu[adm_pat]
    adm_nstays = np.zeros(n_adm, np.int64)
    adm_nstays[adm_icu] = stays_per_adm

    # --- patients
    gender = np.where(rng.random(n_pat) < 0.44, "F", "M")
    age = np.clip(np.round(rng.normal(64.0, 16.0, n_pat)), 18, 91).astype(np.int64)
    child = rng.random(n_pat) < 0.02
    age[child] = rng.integers(15, 18, int(child.sum()))
    anchor_year = rng.integers(2113, 2198, n_pat)  # leaves room for outpatient data before and after
    era = rng.choice(4, size=n_pat, p=[0.27, 0.26, 0.25, 0.22])
    male = gender == "M"
    weight = np.clip(rng.normal(np.where(male, 86.0, 74.0), 19.0), 38.0, 200.0)
    weight[child] = np.clip(rng.normal(62.0, 12.0, int(child.sum())), 35.0, 110.0)
    height = rng.normal(np.where(male, 176.0, 162.0), 7.5)
    race = pick(
        rng,
        ["WHITE", "BLACK/AFRICAN AMERICAN", "WHITE - OTHER EUROPEAN", "HISPANIC/LATINO - PUERTO RICAN", "ASIAN",
         "OTHER", "UNKNOWN", "UNABLE TO OBTAIN"],
        [0.64, 0.12, 0.03, 0.03, 0.03, 0.04, 0.09, 0.02],
        n_pat,
    )

    # --- latent state: every ICU stay, and ward admissions
    stay_adm0 = np.repeat(np.arange(n_adm), adm_nstays)
    stay_lat0 = draw_latents(rng, age[adm_pat[stay_adm0]].astype(float))
    last_stay = np.cumsum(adm_nstays) - 1
    icu_idx = np.flatnonzero(adm_icu)
    ward_idx = np.flatnonzero(~adm_icu)
    ward_lat = draw_latents(rng, age[adm_pat[ward_idx]].astype(float), icu=False)
    adm_lat0: Latents = {}
    for key, values in stay_lat0.items():
        arr = np.empty(n_adm, dtype=values.dtype)
        arr[icu_idx] = values[last_stay[icu_idx]]
        arr[ward_idx] = ward_lat[key]
        adm_lat0[key] = arr
    p_death = mortality_probability(adm_lat0, age[adm_pat].astype(float))
    p_death[~adm_icu] *= 0.3
    died0 = rng.random(n_adm) < p_death

    # a patient dies at most once, on the last admission: order admissions so that a dying one comes last
    order = np.lexsort((rng.random(n_adm), died0, adm_pat))
    adm_pat = adm_pat[order]
    adm_icu = adm_icu[order]
    adm_nstays = adm_nstays[order]
    adm_lat = _take(adm_lat0, order)
    last_of_pat = np.r_[adm_pat[1:] != adm_pat[:-1], True]
    died = died0[order] & last_of_pat
    newpos = np.empty(n_adm, np.int64)
    newpos[order] = np.arange(n_adm)
    stay_order = np.lexsort((np.arange(n_stays), newpos[stay_adm0]))
    stay_lat = _take(stay_lat0, stay_order)
    stay_adm = newpos[stay_adm0][stay_order]
    stay_last = np.r_[stay_adm[1:] != stay_adm[:-1], True]

    # --- times (hours relative to the admission, then absolute seconds)
    ed = rng.random(n_adm) < 0.62
    ed_direct = ed & adm_icu & (rng.random(n_adm) < 0.6)
    ward_first = ~ed_direct & ed | (~ed & (rng.random(n_adm) < 0.3))
    pre_h = np.where(ed_direct, rng.uniform(1.0, 7.0, n_adm),
                     np.where(ward_first, rng.exponential(40.0, n_adm) + 4.0, rng.uniform(0.5, 5.0, n_adm)))
    los_h = np.clip(rng.lognormal(np.log(68.0), 0.85, n_stays), 4.0, 960.0)
    gap_h = np.where(within_group_index(adm_nstays) > 0, rng.exponential(50.0, n_stays) + 6.0, 0.0)
    start_h = pre_h[stay_adm] + group_exclusive_cumsum(gap_h + los_h, adm_nstays) + gap_h
    end_icu_h = np.zeros(n_adm)
    end_icu_h[adm_nstays > 0] = (start_h + los_h)[stay_last]
    died_in_icu = died & adm_icu & (rng.random(n_adm) < 0.7)
    post_h = np.where(died_in_icu, 0.0,
                      np.where(died, rng.exponential(48.0, n_adm) + 2.0, rng.exponential(80.0, n_adm) + 6.0))
    length_h = np.where(adm_icu, end_icu_h + post_h, rng.exponential(90.0, n_adm) + 12.0)
    between_h = rng.exponential(150.0 * 24, n_adm) + 24.0
    pat_start = year_start_seconds(anchor_year) + rng.uniform(0, 500 * DAY, n_pat)
    adm_start = pat_start[adm_pat] + HOUR * group_exclusive_cumsum(length_h + between_h, adm_count)
    admittime = to_minute(adm_start)
    dischtime = to_minute(adm_start + HOUR * length_h)
    intime = to_minute(adm_start[stay_adm] + HOUR * start_h)
    outtime = to_minute(adm_start[stay_adm] + HOUR * (start_h + los_h))
    if died_in_icu.any():
        # death in the unit: discharge (and death) at the unit's outtime
        dischtime[died_in_icu] = outtime[last_stay_of(adm_nstays)[died_in_icu]]
    deathtime = np.where(died, dischtime, -1)
    edregtime = np.where(ed, to_minute(adm_start - HOUR * rng.uniform(1.5, 9.0, n_adm)), -1)
    first_in = np.full(n_adm, -1, np.int64)
    first_in[adm_nstays > 0] = intime[group_starts(adm_nstays)[adm_nstays > 0]]
    edouttime = np.where(ed_direct, first_in,
                         np.where(ed, to_minute(adm_start + HOUR * rng.uniform(0.1, min_pos(pre_h, 1.5))), -1))

    # out-of-hospital deaths after the last discharge (dod only), a few on the discharge day itself
    pat_last_adm = np.full(n_pat, -1, np.int64)
    pat_last_adm[adm_pat[last_of_pat]] = np.flatnonzero(last_of_pat)
    dod = np.full(n_pat, -1, np.int64)
    has_adm = pat_last_adm >= 0
    last = pat_last_adm[has_adm]
    in_hosp = died[last]
    dod_s = np.where(in_hosp, deathtime[last], -1)
    later = ~in_hosp & (rng.random(len(last)) < 0.09)
    delay = np.where(rng.random(len(last)) < 0.04, 0.0, rng.exponential(150.0 * DAY, len(last)) + DAY)
    dod_s = np.where(later, dischtime[last] + delay, dod_s)
    dod[has_adm] = np.where(dod_s >= 0, (dod_s // DAY) * DAY, -1)

    # --- care units
    units = np.array(ICU_UNITS, dtype=object)
    first_code = rng.choice(len(units), size=n_stays, p=np.array(ICU_UNIT_P) / sum(ICU_UNIT_P))
    mixed = rng.random(n_stays) < 0.09
    other = (first_code + 1 + rng.integers(0, len(units) - 1, n_stays)) % len(units)
    first_unit = units[first_code]
    last_unit = np.where(mixed, units[other], first_unit)
    split_at = np.where(mixed, to_minute(intime + (outtime - intime) * rng.uniform(0.25, 0.75, n_stays)), -1)

    # drift of the severity over the stay: up for the last stay of an admission that ends in death
    drift = np.where(stay_last & died[stay_adm], 0.35, -0.08) + rng.normal(0.0, 0.05, n_stays)

    patient = {
        "pidx": np.arange(n_pat), "gender": gender, "anchor_age": age, "anchor_year": anchor_year, "era": era,
        "weight": weight, "height": height, "race": race, "dod": dod, "icu": pat_icu, "n_adm": adm_count,
        "start": pat_start.astype(np.int64),
    }
    adm = {
        "pidx": adm_pat, "icu": adm_icu, "n_stays": adm_nstays, "admittime": admittime, "dischtime": dischtime,
        "deathtime": deathtime, "died": died, "died_in_icu": died_in_icu, "ed": ed, "ed_direct": ed_direct,
        "edregtime": edregtime, "edouttime": edouttime, "pre_h": pre_h, "post_h": post_h,
        "age": age[adm_pat],
    }
    stay = {
        "pidx": adm_pat[stay_adm], "aidx": stay_adm, "intime": intime, "outtime": outtime, "los_h": los_h,
        "first_unit": first_unit, "last_unit": last_unit, "split_at": split_at, "drift": drift,
        "last_in_adm": stay_last, "age": age[adm_pat[stay_adm]],
    }
    return Population(patient=patient, adm=adm, stay=stay, stay_lat=stay_lat, adm_lat=adm_lat)


def last_stay_of(adm_nstays: np.ndarray) -> np.ndarray:
    """Index of the last stay of each admission (meaningless where an admission has none)."""
    return np.maximum(np.cumsum(adm_nstays) - 1, 0)


def min_pos(a: np.ndarray, cap: float) -> np.ndarray:
    """Elementwise min(a, cap), at least slightly above 0.1 (upper bound of a uniform draw)."""
    return np.maximum(np.minimum(a, cap), 0.11)


def assign_ids(rng: np.random.Generator, pop: Population) -> None:
    """MIMIC-style identifiers: subject 10000000-19999999, hadm 20000000-29999999."""
    n_pat = len(pop.patient["pidx"])
    pop.patient["subject_id"] = unique_ids(rng, n_pat, 10_000_000, 20_000_000)
    pop.adm["hadm_id"] = rng.permutation(unique_ids(rng, len(pop.adm["pidx"]), 20_000_000, 30_000_000))
    pop.adm["subject_id"] = pop.patient["subject_id"][pop.adm["pidx"]]
    pop.stay["subject_id"] = pop.patient["subject_id"][pop.stay["pidx"]]
    pop.stay["hadm_id"] = pop.adm["hadm_id"][pop.stay["aidx"]]
