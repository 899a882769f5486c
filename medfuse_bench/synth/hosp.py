"""Entity tables of the synthetic MIMIC-IV: patients, admissions, transfers, icustays and diagnoses_icd."""

from __future__ import annotations

import numpy as np
import polars as pl

from medfuse_bench.synth.arrays import group_starts, pick, str_series, unique_ids
from medfuse_bench.synth.icd import CodePools
from medfuse_bench.synth.plan import ANCHOR_YEAR_GROUPS, WARD_P, WARDS, Population
from medfuse_bench.synth.signal import phenotype_probabilities

_NULL_TIME = -1  # marker for a missing time in the int arrays of the population


def _times(frame: pl.DataFrame, *names: str) -> pl.DataFrame:
    """Int seconds (negative = missing) to Datetime columns."""
    return frame.with_columns(
        [pl.when(pl.col(n) >= 0).then(pl.from_epoch(pl.col(n), time_unit="s")).alias(n) for n in names]
    )


def patients_table(pop: Population) -> pl.DataFrame:
    p = pop.patient
    groups = np.array(ANCHOR_YEAR_GROUPS, dtype=object)[p["era"]]
    frame = pl.DataFrame(
        {
            "subject_id": p["subject_id"],
            "gender": p["gender"],
            "anchor_age": p["anchor_age"],
            "anchor_year": p["anchor_year"],
            "anchor_year_group": groups.astype(str),
            "dod": p["dod"],
        }
    )
    return frame.with_columns(
        pl.when(pl.col("dod") >= 0).then(pl.from_epoch(pl.col("dod"), time_unit="s").dt.date()).alias("dod")
    )


def provider_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` distinct provider ids like MIMIC-IV's ('P' and five hex digits)."""
    return np.char.mod("P%05X", rng.choice(16**5, size=n, replace=False)).astype(object)


def admissions_table(rng: np.random.Generator, pop: Population) -> pl.DataFrame:
    a = pop.adm
    n = len(a["pidx"])
    ed = a["ed"]
    providers = provider_ids(rng, 400)
    adm_type = np.where(
        ed,
        pick(rng, ["EW EMER.", "URGENT", "DIRECT EMER."], [0.8, 0.12, 0.08], n),
        pick(rng, ["ELECTIVE", "SURGICAL SAME DAY ADMISSION", "OBSERVATION ADMIT", "EU OBSERVATION",
                   "DIRECT OBSERVATION", "AMBULATORY OBSERVATION"], [0.3, 0.3, 0.2, 0.1, 0.05, 0.05], n),
    )
    location = np.where(
        ed,
        pick(rng, ["EMERGENCY ROOM", "TRANSFER FROM HOSPITAL", "WALK-IN/SELF REFERRAL"], [0.85, 0.1, 0.05], n),
        pick(rng, ["PHYSICIAN REFERRAL", "TRANSFER FROM HOSPITAL", "PROCEDURE SITE", "CLINIC REFERRAL",
                   "INFORMATION NOT AVAILABLE"], [0.6, 0.15, 0.1, 0.1, 0.05], n),
    )
    discharge = np.where(
        a["died"],
        "DIED",
        pick(rng, ["HOME", "HOME HEALTH CARE", "SKILLED NURSING FACILITY", "REHAB", "CHRONIC/LONG TERM ACUTE CARE",
                   "HOSPICE", "AGAINST ADVICE", None], [0.35, 0.25, 0.2, 0.07, 0.05, 0.02, 0.01, 0.05], n),
    )
    old = a["age"] >= 65
    insurance = np.where(old, pick(rng, ["Medicare", "Medicaid", "Other"], [0.75, 0.05, 0.2], n),
                         pick(rng, ["Medicare", "Medicaid", "Other"], [0.15, 0.2, 0.65], n))
    frame = pl.DataFrame(
        {
            "subject_id": a["subject_id"],
            "hadm_id": a["hadm_id"],
            "admittime": a["admittime"],
            "dischtime": a["dischtime"],
            "deathtime": a["deathtime"],
            "admission_type": adm_type.astype(str),
            "admit_provider_id": str_series(providers[rng.integers(0, len(providers), n)]),
            "admission_location": location.astype(str),
            "discharge_location": str_series(discharge),
            "insurance": insurance.astype(str),
            "language": str_series(pick(rng, ["ENGLISH", "?"], [0.9, 0.1], n)),
            "marital_status": str_series(
                pick(rng, ["MARRIED", "SINGLE", "WIDOWED", "DIVORCED", None], [0.45, 0.3, 0.12, 0.08, 0.05], n)
            ),
            "race": pop.patient["race"][a["pidx"]].astype(str),
            "edregtime": a["edregtime"],
            "edouttime": a["edouttime"],
            "hospital_expire_flag": a["died"].astype(np.int64),
        }
    )
    return _times(frame, "admittime", "dischtime", "deathtime", "edregtime", "edouttime")


def transfers_and_stays(rng: np.random.Generator, pop: Population) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The transfers table and icustays; stay_id is the transfer_id of the stay's first ICU transfer, as in MIMIC."""
    a, s = pop.adm, pop.stay
    n_adm, n_stay = len(a["pidx"]), len(s["pidx"])
    wards = np.array(WARDS, dtype=object)
    adm_ward = wards[rng.choice(len(wards), size=n_adm, p=np.array(WARD_P) / sum(WARD_P))]
    other_ward = wards[rng.choice(len(wards), size=n_adm, p=np.array(WARD_P) / sum(WARD_P))]
    aidx = np.arange(n_adm)
    icu = a["icu"]
    first_stay = group_starts(a["n_stays"])
    last_stay = np.cumsum(a["n_stays"]) - 1
    has_stays = a["n_stays"] > 0
    first_in = np.where(has_stays, s["intime"][np.minimum(first_stay, n_stay - 1)], -1)
    last_out = np.where(has_stays, s["outtime"][np.maximum(last_stay, 0)], -1)
    pre_start = np.where(a["ed"], a["edouttime"], a["admittime"])
    short_elective = ~a["ed"] & (a["pre_h"] < 6.0)

    def rows(owner, mask, intime, outtime, unit, kind, sidx=None) -> pl.DataFrame:  # noqa: ANN001
        m = np.asarray(mask)
        return pl.DataFrame(
            {
                "aidx": owner[m],
                "intime": np.asarray(intime)[m],
                "outtime": np.asarray(outtime)[m],
                "careunit": str_series(np.asarray(unit, dtype=object)[m]),
                "kind": np.full(int(m.sum()), kind, np.int64),
                "sidx": (np.full(len(m), -1) if sidx is None else sidx)[m],
            }
        )

    within = np.arange(n_stay) - np.repeat(first_stay, a["n_stays"])
    split = s["split_at"] >= 0
    parts = [
        rows(aidx, a["ed"], a["edregtime"], a["edouttime"], np.full(n_adm, "Emergency Department", object), 0),
        rows(aidx, icu & ~a["ed_direct"], pre_start, first_in,
             np.where(short_elective & icu, "PACU", adm_ward), 1),
        rows(aidx, ~icu, pre_start, a["dischtime"], adm_ward, 1),
        rows(s["aidx"], np.ones(n_stay, bool), s["intime"], np.where(split, s["split_at"], s["outtime"]),
             s["first_unit"], 2, np.arange(n_stay)),
        rows(s["aidx"], split, s["split_at"], s["outtime"], s["last_unit"], 2),
        rows(s["aidx"], within > 0, np.r_[-1, s["outtime"][:-1]], s["intime"], other_ward[s["aidx"]], 3),
        rows(aidx, icu & (a["dischtime"] > last_out), last_out, a["dischtime"], adm_ward, 4),
        rows(aidx, np.ones(n_adm, bool), a["dischtime"], np.full(n_adm, -1), np.full(n_adm, None, object), 5),
    ]
    tr = pl.concat(parts).sort("aidx", "intime", "kind")
    tr = tr.with_columns(mid=pl.col("kind").is_between(1, 4)).with_columns(
        eventtype=pl.when(pl.col("kind") == 0)
        .then(pl.lit("ED"))
        .when(pl.col("kind") == 5)
        .then(pl.lit("discharge"))
        .when(pl.col("mid").cast(pl.Int64).cum_sum().over("aidx") == 1)
        .then(pl.lit("admit"))
        .otherwise(pl.lit("transfer")),
        transfer_id=pl.Series(rng.permutation(unique_ids(rng, tr.height, 30_000_000, 40_000_000))),
    )
    stay_ids = tr.filter(pl.col("sidx") >= 0).sort("sidx")["transfer_id"].to_numpy()
    s["stay_id"] = stay_ids
    owner = tr["aidx"].to_numpy()
    transfers = _times(
        tr.with_columns(
            subject_id=pl.Series(a["subject_id"][owner]),
            hadm_id=pl.Series(a["hadm_id"][owner]),
        ).select("subject_id", "hadm_id", "transfer_id", "eventtype", "careunit", "intime", "outtime"),
        "intime",
        "outtime",
    )
    icustays = _times(
        pl.DataFrame(
            {
                "subject_id": s["subject_id"],
                "hadm_id": s["hadm_id"],
                "stay_id": stay_ids,
                "first_careunit": s["first_unit"].astype(str),
                "last_careunit": s["last_unit"].astype(str),
                "intime": s["intime"],
                "outtime": s["outtime"],
                "los": (s["outtime"] - s["intime"]) / 86400.0,
            }
        ),
        "intime",
        "outtime",
    )
    return transfers, icustays


def diagnoses_table(rng: np.random.Generator, pop: Population, pools: CodePools) -> pl.DataFrame:
    """diagnoses_icd: one real code per phenotype drawn for each admission (sometimes two), codes of other CCS
    groups and, in the ICD-10 era, codes that map to nothing; seq_num in random order."""
    a = pop.adm
    n = len(a["pidx"])
    prob = phenotype_probabilities(pop.adm_lat, a["age"].astype(float))
    positive = rng.random(prob.shape) < prob
    era = pop.patient["era"][a["pidx"]]
    icd10 = (era >= 3) | ((era == 2) & (rng.random(n) < 0.5))

    adm_i, group = np.nonzero(positive)
    twice = rng.random(len(adm_i)) < 0.15
    adm_i = np.concatenate([adm_i, adm_i[twice]])
    group = np.concatenate([group, group[twice]])
    v10 = icd10[adm_i]
    u = rng.random(len(adm_i))
    size9 = np.diff(pools.icd9_start)
    size10 = np.diff(pools.icd10_start)
    forward = rng.random(len(adm_i)) < 0.8
    k10 = np.where(forward, pools.icd10_forward[group], size10[group])
    code = np.where(
        v10,
        pools.icd10[pools.icd10_start[group] + np.minimum((u * k10).astype(np.int64), k10 - 1)],
        pools.icd9[pools.icd9_start[group] + np.minimum((u * size9[group]).astype(np.int64), size9[group] - 1)],
    )

    n_noise = rng.poisson(6.0, n) + 1
    noise_adm = np.repeat(np.arange(n), n_noise)
    nv10 = icd10[noise_adm]
    noise_code = np.where(
        nv10,
        pools.noise10[rng.integers(0, len(pools.noise10), len(noise_adm))],
        pools.noise9[rng.integers(0, len(pools.noise9), len(noise_adm))],
    )
    unmapped_adm = np.flatnonzero(icd10 & (rng.random(n) < 0.3))
    unmapped_code = pools.unmapped10[rng.integers(0, len(pools.unmapped10), len(unmapped_adm))]

    all_adm = np.concatenate([adm_i, noise_adm, unmapped_adm])
    frame = (
        pl.DataFrame(
            {
                "aidx": all_adm,
                "icd_code": np.concatenate([code, noise_code, unmapped_code]).astype(str),
                "icd_version": np.where(icd10[all_adm], 10, 9).astype(np.int64),
                "order": rng.random(len(all_adm)),
            }
        )
        .unique(subset=["aidx", "icd_code"], keep="first", maintain_order=True)
        .sort("aidx", "order")
        .with_columns(seq_num=pl.int_range(1, pl.len() + 1).over("aidx"))
    )
    owner = frame["aidx"].to_numpy()
    diagnoses = frame.with_columns(
        subject_id=pl.Series(a["subject_id"][owner]),
        hadm_id=pl.Series(a["hadm_id"][owner]),
    ).select("subject_id", "hadm_id", "seq_num", "icd_code", "icd_version")
    return diagnoses

