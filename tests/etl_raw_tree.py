"""Tiny MIMIC-IV / MIMIC-CXR-JPG CSV trees (a few rows per table) for the ingest, cohort, variables and phenotype
tests: the real layouts (1.0: core/ + ethnicity + .csv; 2.x: hosp/ + race + .csv.gz) with hand-picked rows."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl

from medfuse_bench.resources import CHEXPERT_LABELS


def base_tables() -> dict[str, pl.DataFrame]:
    """Two patients, three ICU stays (stay 300 in a second admission of patient 1), a few events and diagnoses."""
    s = pl.String
    return {
        "patients": pl.DataFrame(
            {"subject_id": [1, 2], "gender": ["F", "M"], "anchor_age": [60, 40], "anchor_year": [2150, 2140],
             "anchor_year_group": ["2011 - 2013", "2014 - 2016"], "dod": [None, "2160-03-02"]},
            schema_overrides={"dod": s},
        ),
        "admissions": pl.DataFrame(
            {"subject_id": [1, 2, 1], "hadm_id": [10, 20, 30],
             "admittime": ["2150-01-01 08:00:00", "2160-03-01 10:00:00", "2151-05-01 00:00:00"],
             "dischtime": ["2150-01-10 12:00:00", "2160-03-02 18:00:00", "2151-05-09 00:00:00"],
             "deathtime": [None, "2160-03-02 17:00:00", None], "race": ["WHITE", "BLACK", "WHITE"],
             "hospital_expire_flag": [0, 1, 0]},
            schema_overrides={"deathtime": s},
        ),
        "icustays": pl.DataFrame(
            {"subject_id": [1, 2, 1], "hadm_id": [10, 20, 30], "stay_id": [100, 200, 300],
             "first_careunit": ["MICU", "SICU", "CCU"], "last_careunit": ["MICU", "SICU", "CCU"],
             "intime": ["2150-01-02 00:00:00", "2160-03-01 12:00:00", "2151-05-02 00:00:00"],
             "outtime": ["2150-01-04 00:00:00", "2160-03-02 12:00:00", "2151-05-03 00:00:00"],
             "los": [2.0, 1.0, 1.0]},
        ),
        "transfers": pl.DataFrame(
            {"subject_id": [1], "hadm_id": [10], "transfer_id": [1], "eventtype": ["admit"], "careunit": ["MICU"],
             "intime": ["2150-01-02 00:00:00"], "outtime": ["2150-01-04 00:00:00"]},
        ),
        "diagnoses_icd": pl.DataFrame(
            {"subject_id": [1, 2, 2], "hadm_id": [10, 20, 20], "seq_num": [1, 1, 2],
             "icd_code": ["4019", "I10", "A419"], "icd_version": [9, 10, 10]},
        ),
        "d_icd_diagnoses": pl.DataFrame(
            {"icd_code": ["4019", "I10", "A419"], "icd_version": [9, 10, 10],
             "long_title": ["Hypertension NOS", "Essential hypertension", "Sepsis, unspecified organism"]},
        ),
        "chartevents": pl.DataFrame(
            {"subject_id": [1, 1, 2, 2], "hadm_id": [10, 10, 20, 20], "stay_id": [100, 100, 200, 200],
             "caregiver_id": [5, 5, 5, 5],
             "charttime": ["2150-01-02 01:00:00", "2150-01-02 01:00:00", "2160-03-01 13:00:00", "2160-03-01 13:00:00"],
             "storetime": ["2150-01-02 01:05:00", "2150-01-02 01:05:00", "2160-03-01 13:05:00", "2160-03-01 13:05:00"],
             "itemid": [220045, 220046, 223761, 220739], "value": ["86", "120", "98.6", "Spontaneously"],
             "valuenum": [86.0, 120.0, 98.6, 4.0], "valueuom": ["bpm", "bpm", "°F", None], "warning": [0, 0, 0, 0]},
        ),
        "labevents": pl.DataFrame(
            {"labevent_id": [1, 2], "subject_id": [1, 1], "hadm_id": [10, None], "specimen_id": [7, 8],
             "itemid": [50931, 50912], "charttime": ["2150-01-01 09:00:00", "2150-01-02 02:00:00"],
             "storetime": ["2150-01-01 10:00:00", "2150-01-02 03:00:00"], "value": ["105", "1.1"],
             "valuenum": [105.0, 1.1], "valueuom": ["mg/dL", "mg/dL"]},
            schema_overrides={"hadm_id": pl.Int64},
        ),
    }


def cxr_tables() -> dict[str, pl.DataFrame]:
    labels = {label: [1.0 if i == 0 else None] for i, label in enumerate(CHEXPERT_LABELS)}
    return {
        "mimic-cxr-2.0.0-metadata": pl.DataFrame(
            {"dicom_id": ["d1"], "subject_id": [1], "study_id": [5], "PerformedProcedureStepDescription": ["CHEST"],
             "ViewPosition": ["AP"], "Rows": [3056], "Columns": [2544], "StudyDate": [21500102],
             "StudyTime": [93015.25]},
        ),
        "mimic-cxr-2.0.0-chexpert": pl.DataFrame({"subject_id": [1], "study_id": [5], **labels}),
        "mimic-cxr-2.0.0-split": pl.DataFrame(
            {"dicom_id": ["d1"], "study_id": [5], "subject_id": [1], "split": ["train"]}
        ),
    }


_V1_FOLDERS = {"patients": "core", "admissions": "core", "transfers": "core", "icustays": "icu", "chartevents": "icu"}
_V2_FOLDERS = {"icustays": "icu", "chartevents": "icu"}


def _write_csv(frame: pl.DataFrame, path: Path, compress: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = frame.write_csv()
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)


def write_mimic_iv(root: Path, layout: str = "2.x", tables: dict[str, pl.DataFrame] | None = None,
                   compress: bool | None = None) -> Path:
    """Write the tables (default :func:`base_tables`) in the 1.0 or 2.x layout; returns ``root``."""
    tables = base_tables() if tables is None else tables
    compress = layout != "1.0" if compress is None else compress
    folders = _V1_FOLDERS if layout == "1.0" else _V2_FOLDERS
    for name, frame in tables.items():
        if layout == "1.0" and name == "admissions":
            frame = frame.rename({"race": "ethnicity"})
        _write_csv(frame, root / folders.get(name, "hosp") / f"{name}.csv", compress)
    return root


def write_mimic_cxr(root: Path, compress: bool = True) -> Path:
    for stem, frame in cxr_tables().items():
        _write_csv(frame, root / f"{stem}.csv", compress)
    return root
