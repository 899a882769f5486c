"""Synthetic MIMIC-CXR-JPG studies: when X-rays are taken, their views and findings, metadata, CheXpert and split.

* about half of the ICU stays (of patients who have X-rays) get a portable AP study within their first 48 h, plus
  more studies later in long stays; all of them show the stay's findings;
* ward X-rays in the same admission (a subset of the stay's findings), outpatient X-rays before the first and after
  the last admission (findings drawn afresh; PA + LATERAL / LL mostly);
* about 18 % of ICU patients have no X-ray at all; the extra patients without ICU stay all have X-rays;
* views AP, PA, LATERAL, LL and a few blank ones; several images per study.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from medfuse_bench.resources import CHEXPERT_LABELS
from medfuse_bench.synth.arrays import DAY, HOUR, group_starts, str_series, unique_ids
from medfuse_bench.synth.plan import Population
from medfuse_bench.synth.signal import FINDINGS, chexpert_labels, findings_matrix, outside_findings

#: view position code -> (ViewPosition, ViewCodeSequence_CodeMeaning)
VIEWS: tuple[tuple[str | None, str | None], ...] = (
    ("AP", "antero-posterior"),
    ("PA", "postero-anterior"),
    ("LATERAL", "lateral"),
    ("LL", "left lateral"),
    (None, None),
)
AP, PA, LATERAL, LL, BLANK = range(5)


def _study_views(rng: np.random.Generator, portable: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(study index per image, view code per image) for studies flagged portable (AP) or not (PA + lateral)."""
    n = len(portable)
    u = rng.random(n)
    # first image
    first = np.where(
        portable,
        np.where(u < 0.03, BLANK, AP),
        np.select([u < 0.82, u < 0.90, u < 0.96], [PA, PA, AP], BLANK),
    )
    second = np.where(
        portable,
        np.select([u < 0.03, u < 0.11, u < 0.21], [-1, AP, LATERAL], -1),
        np.select([u < 0.72, u < 0.82, u < 0.90], [LATERAL, LL, -1], LATERAL),
    )
    views = np.stack([first, second], axis=1)
    study = np.repeat(np.arange(n)[:, None], 2, axis=1)
    keep = views >= 0
    return study[keep], views[keep]


def build_studies(rng: np.random.Generator, pop: Population, image_size: int) -> dict[str, pl.DataFrame]:
    """Image-level metadata (with render info), chexpert and split frames, sorted by patient."""
    p, a, s = pop.patient, pop.adm, pop.stay
    n_pat, n_stay = len(p["pidx"]), len(s["pidx"])
    has_cxr = np.where(p["icu"], rng.random(n_pat) < 0.82, True)
    stay_f = findings_matrix(pop.stay_lat)
    los_h = (s["outtime"] - s["intime"]) / HOUR

    times, pidx, find, portable = [], [], [], []

    def add(t: np.ndarray, who: np.ndarray, f: np.ndarray, port: np.ndarray | bool) -> None:
        times.append(np.asarray(t, dtype=np.float64))
        pidx.append(np.asarray(who))
        find.append(f)
        portable.append(np.broadcast_to(np.asarray(port), len(who)).copy())

    stay_cxr = has_cxr[s["pidx"]]
    # (a) one AP study within the first 48 h of about half of the stays
    m = stay_cxr & (rng.random(n_stay) < 0.42)
    window = np.minimum(los_h, 48.0)
    t = s["intime"] + HOUR * rng.uniform(0.3, np.maximum(window - 0.2, 0.31))
    add(t[m], s["pidx"][m], stay_f[m], True)
    # (b) follow-up studies anywhere in the stay
    k = np.where(stay_cxr, np.minimum(rng.poisson(0.12 * los_h / 24.0), 5), 0)
    idx = np.repeat(np.arange(n_stay), k)
    add(s["intime"][idx] + HOUR * rng.uniform(0.0, 1.0, len(idx)) * los_h[idx], s["pidx"][idx], stay_f[idx], True)
    # (c) ward studies of an ICU admission, outside the stays: some findings of the nearest stay
    adm_cxr = has_cxr[a["pidx"]] & a["icu"]
    k = np.where(adm_cxr, rng.poisson(0.35, len(adm_cxr)), 0)
    ai = np.repeat(np.arange(len(adm_cxr)), k)
    first = group_starts(a["n_stays"])[ai]
    last = (np.cumsum(a["n_stays"]) - 1)[ai]
    before = (rng.random(len(ai)) < 0.5) & (a["pre_h"][ai] > 1.0)
    after_ok = a["dischtime"][ai] - s["outtime"][last] > HOUR
    keep = before | after_ok
    t = np.where(
        before,
        a["admittime"][ai] + rng.uniform(0.05, 0.95, len(ai)) * (s["intime"][first] - a["admittime"][ai]),
        s["outtime"][last] + rng.uniform(0.05, 0.95, len(ai)) * (a["dischtime"][ai] - s["outtime"][last]),
    )
    nearest = np.where(before, first, last)
    f = stay_f[nearest] & (rng.random((len(ai), len(FINDINGS))) < 0.6)
    add(t[keep], a["pidx"][ai][keep], f[keep], rng.random(int(keep.sum())) < 0.8)
    # (d) outpatient studies before the first admission (or anywhere for patients without admission)
    first_adm = np.full(n_pat, -1, np.int64)
    has_adm = p["n_adm"] > 0
    first_adm[has_adm] = a["admittime"][group_starts(p["n_adm"])[has_adm]]
    k = np.where(has_cxr, rng.poisson(np.where(p["icu"], 0.7, 1.0)) + ~p["icu"], 0)
    pi = np.repeat(np.arange(n_pat), k)
    t = np.where(
        has_adm[pi],
        first_adm[pi] - (np.minimum(rng.exponential(300.0 * DAY, len(pi)), 3 * 365 * DAY) + DAY),
        p["start"][pi] + rng.uniform(0, 600 * DAY, len(pi)),
    )
    add(t, pi, outside_findings(rng, len(pi)), rng.random(len(pi)) < 0.06)
    # (e) outpatient studies after the last discharge, never after death
    last_dis = np.full(n_pat, -1, np.int64)
    last_dis[has_adm] = a["dischtime"][(np.cumsum(p["n_adm"]) - 1)[has_adm]]
    alive = p["dod"] < 0
    k = np.where(has_cxr & has_adm & alive, rng.poisson(np.where(p["icu"], 0.35, 0.5)), 0)
    pi = np.repeat(np.arange(n_pat), k)
    after = last_dis[pi] + np.minimum(rng.exponential(200.0 * DAY, len(pi)), 3 * 365 * DAY) + 2 * DAY
    add(after, pi, outside_findings(rng, len(pi)), False)
    # (f) patients without ICU stay but with a ward admission: X-rays during it
    ward_adm = has_cxr[a["pidx"]] & ~a["icu"]
    k = np.where(ward_adm, rng.poisson(0.9, len(ward_adm)), 0)
    ai = np.repeat(np.arange(len(ward_adm)), k)
    t = a["admittime"][ai] + rng.uniform(0.05, 0.95, len(ai)) * (a["dischtime"][ai] - a["admittime"][ai])
    add(t, a["pidx"][ai], outside_findings(rng, len(ai)), rng.random(len(ai)) < 0.5)

    t_all = np.concatenate(times) + rng.uniform(0.0, 60.0, sum(len(x) for x in times))
    study_p = np.concatenate(pidx)
    study_f = np.concatenate(find)
    study_port = np.concatenate(portable)
    order = np.lexsort((t_all, study_p))
    t_all, study_p, study_f, study_port = t_all[order], study_p[order], study_f[order], study_port[order]
    n_study = len(t_all)
    study_id = rng.permutation(unique_ids(rng, n_study, 50_000_000, 60_000_000))
    labels = chexpert_labels(rng, study_f)

    img_study, img_view = _study_views(rng, study_port)
    n_img = len(img_study)
    hexes = np.char.mod("%08x", rng.integers(0, 2**32, size=(n_img, 5), dtype=np.int64))
    dicom_id = hexes[:, 0]
    for j in range(1, 5):
        dicom_id = np.char.add(np.char.add(dicom_id, "-"), hexes[:, j])
    view_pos = np.array([v[0] for v in VIEWS], dtype=object)[img_view]
    view_meaning = np.array([v[1] for v in VIEWS], dtype=object)[img_view]
    port = study_port[img_study]
    description = np.where(port, "CHEST (PORTABLE AP)", np.where(rng.random(n_img) < 0.85, "CHEST (PA AND LAT)",
                                                                  "CHEST (PRE-OP PA AND LAT)"))
    description = np.where(rng.random(n_img) < 0.01, None, description)
    orientation = np.where(port, np.where(rng.random(n_img) < 0.55, "Erect", "Recumbent"), "Erect")
    orientation = np.where(rng.random(n_img) < 0.03, None, orientation)
    height = int(round(1.2 * image_size))

    seconds = np.floor(t_all[img_study]).astype(np.int64)
    millis = np.floor((t_all[img_study] - seconds) * 1000.0).astype(np.int64)
    subject = p["subject_id"][study_p[img_study]]
    meta = pl.DataFrame(
        {
            "dicom_id": dicom_id,
            "subject_id": subject,
            "study_id": study_id[img_study],
            "PerformedProcedureStepDescription": str_series(description),
            "ViewPosition": str_series(view_pos),
            "Rows": np.full(n_img, height, np.int64),
            "Columns": np.full(n_img, image_size, np.int64),
            "seconds": seconds,
            "millis": millis,
            "ProcedureCodeSequence_CodeMeaning": str_series(description),
            "ViewCodeSequence_CodeMeaning": str_series(view_meaning),
            "PatientOrientationCodeSequence_CodeMeaning": str_series(orientation),
            "pidx": study_p[img_study],
            "view_code": img_view,
            "study_row": img_study,
        }
    )
    stamp = pl.from_epoch(pl.col("seconds"), time_unit="s")
    subject_text = pl.col("subject_id").cast(pl.String)
    meta = meta.with_columns(
        # files/pNN/pSUBJECT/sSTUDY/DICOM_ID.jpg, as schema.image_path
        path=pl.concat_str(
            pl.lit("files/p"), subject_text.str.slice(0, 2), pl.lit("/p"), subject_text, pl.lit("/s"),
            pl.col("study_id").cast(pl.String), pl.lit("/"), pl.col("dicom_id"), pl.lit(".jpg"),
        ),
        StudyDate=stamp.dt.strftime("%Y%m%d").cast(pl.Int64),
        StudyTime=(
            stamp.dt.hour().cast(pl.Int64) * 10000
            + stamp.dt.minute().cast(pl.Int64) * 100
            + stamp.dt.second().cast(pl.Int64)
            + pl.col("millis") / 1000.0
        ).round(3),
    )

    chexpert = pl.DataFrame(
        {"subject_id": p["subject_id"][study_p], "study_id": study_id,
         **{name: labels[:, j] for j, name in enumerate(CHEXPERT_LABELS)}}
    ).with_columns([pl.col(name).fill_nan(None) for name in CHEXPERT_LABELS])

    # patient-level split, about 98 / 1 / 1, validate and test never empty
    subjects = np.unique(subject)
    u = rng.random(len(subjects))
    split = np.select([u < 0.01, u < 0.02], ["validate", "test"], "train").astype(object)
    if len(subjects) >= 3:
        for name in ("validate", "test"):
            if not (split == name).any():
                candidates = np.flatnonzero(split == "train")
                split[candidates[rng.integers(0, len(candidates))]] = name
    split_of = pl.DataFrame({"subject_id": subjects, "split": split.astype(str)})
    split_frame = meta.select("dicom_id", "study_id", "subject_id").join(
        split_of, on="subject_id", how="left", maintain_order="left"
    )
    return {"metadata": meta, "findings": study_f, "chexpert": chexpert, "split": split_frame}
