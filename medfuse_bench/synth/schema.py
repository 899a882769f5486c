"""Where each synthetic table goes and its columns, in the order of the MIMIC-IV 2.2 / MIMIC-CXR-JPG 2.0.0 files."""

from __future__ import annotations

#: Folder names of the two generated trees under the output directory.
MIMIC_IV_DIR = "mimic-iv"
MIMIC_CXR_DIR = "mimic-cxr-jpg"

#: table name -> (path relative to the output directory, columns in file order).
TABLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "patients": (
        "mimic-iv/hosp/patients.csv.gz",
        ("subject_id", "gender", "anchor_age", "anchor_year", "anchor_year_group", "dod"),
    ),
    "admissions": (
        "mimic-iv/hosp/admissions.csv.gz",
        (
            "subject_id", "hadm_id", "admittime", "dischtime", "deathtime", "admission_type", "admit_provider_id",
            "admission_location", "discharge_location", "insurance", "language", "marital_status", "race",
            "edregtime", "edouttime", "hospital_expire_flag",
        ),
    ),
    "transfers": (
        "mimic-iv/hosp/transfers.csv.gz",
        ("subject_id", "hadm_id", "transfer_id", "eventtype", "careunit", "intime", "outtime"),
    ),
    "diagnoses_icd": (
        "mimic-iv/hosp/diagnoses_icd.csv.gz",
        ("subject_id", "hadm_id", "seq_num", "icd_code", "icd_version"),
    ),
    "d_icd_diagnoses": (
        "mimic-iv/hosp/d_icd_diagnoses.csv.gz",
        ("icd_code", "icd_version", "long_title"),
    ),
    "d_labitems": (
        "mimic-iv/hosp/d_labitems.csv.gz",
        ("itemid", "label", "fluid", "category"),
    ),
    "labevents": (
        "mimic-iv/hosp/labevents.csv.gz",
        (
            "labevent_id", "subject_id", "hadm_id", "specimen_id", "itemid", "order_provider_id", "charttime",
            "storetime", "value", "valuenum", "valueuom", "ref_range_lower", "ref_range_upper", "flag", "priority",
            "comments",
        ),
    ),
    "icustays": (
        "mimic-iv/icu/icustays.csv.gz",
        ("subject_id", "hadm_id", "stay_id", "first_careunit", "last_careunit", "intime", "outtime", "los"),
    ),
    "chartevents": (
        "mimic-iv/icu/chartevents.csv.gz",
        (
            "subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime", "storetime", "itemid", "value",
            "valuenum", "valueuom", "warning",
        ),
    ),
    "d_items": (
        "mimic-iv/icu/d_items.csv.gz",
        (
            "itemid", "label", "abbreviation", "linksto", "category", "unitname", "param_type", "lownormalvalue",
            "highnormalvalue",
        ),
    ),
    "outputevents": (
        "mimic-iv/icu/outputevents.csv.gz",
        ("subject_id", "hadm_id", "stay_id", "caregiver_id", "charttime", "storetime", "itemid", "value", "valueuom"),
    ),
    "cxr_metadata": (
        "mimic-cxr-jpg/mimic-cxr-2.0.0-metadata.csv.gz",
        (
            "dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows",
            "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning", "ViewCodeSequence_CodeMeaning",
            "PatientOrientationCodeSequence_CodeMeaning",
        ),
    ),
    "cxr_chexpert": (
        "mimic-cxr-jpg/mimic-cxr-2.0.0-chexpert.csv.gz",
        (
            "subject_id", "study_id", "Atelectasis", "Cardiomegaly", "Consolidation", "Edema",
            "Enlarged Cardiomediastinum", "Fracture", "Lung Lesion", "Lung Opacity", "No Finding", "Pleural Effusion",
            "Pleural Other", "Pneumonia", "Pneumothorax", "Support Devices",
        ),
    ),
    "cxr_split": (
        "mimic-cxr-jpg/mimic-cxr-2.0.0-split.csv.gz",
        ("dicom_id", "study_id", "subject_id", "split"),
    ),
}


def table_path(name: str) -> str:
    return TABLES[name][0]


def table_columns(name: str) -> tuple[str, ...]:
    return TABLES[name][1]


def image_path(subject_id: int, study_id: int, dicom_id: str) -> str:
    """Path of an image relative to the MIMIC-CXR-JPG root, as in the real release.

    >>> image_path(10000032, 50414267, "02aa804e-bde0afdd-112c0b34-7bc16630-4e384014")
    'files/p10/p10000032/s50414267/02aa804e-bde0afdd-112c0b34-7bc16630-4e384014.jpg'
    """
    sid = str(subject_id)
    return f"files/p{sid[:2]}/p{sid}/s{study_id}/{dicom_id}.jpg"
