"""Where each raw table lives in a MIMIC-IV / MIMIC-CXR-JPG download and which of its columns the ETL keeps.

MIMIC-IV 1.0 keeps patients, admissions and transfers in ``core/`` and calls the admissions column ``ethnicity``;
2.x and 3.x moved them to ``hosp/`` and renamed the column ``race``. Every table may be ``.csv`` or ``.csv.gz``.
"""

from __future__ import annotations

import csv
import gzip
import re
from dataclasses import dataclass
from pathlib import Path

from medfuse_bench.errors import MedfuseError
from medfuse_bench.resources import CHEXPERT_LABELS

#: Layout names: MIMIC-IV 1.0 (core/ + hosp/ + icu/) and 2.x / 3.x (hosp/ + icu/).
LAYOUT_V1 = "1.0"
LAYOUT_V2 = "2.x/3.x"

TIMESTAMP = "TIMESTAMP"
DATE = "DATE"


@dataclass(frozen=True)
class Column:
    """One output column: its name, DuckDB type and the input column names it may come from (first found wins)."""

    name: str
    type: str
    sources: tuple[str, ...] = ()
    required: bool = True

    @property
    def candidates(self) -> tuple[str, ...]:
        return self.sources or (self.name,)


@dataclass(frozen=True)
class TableSpec:
    """A raw table: output name, file stem, folder per layout (None = the dataset root) and kept columns."""

    name: str
    stem: str
    folders: dict[str, str | None]
    columns: tuple[Column, ...]
    required: bool = True
    #: SQL filter on the typed columns applied during the scan (events: item ids of the 17 variables).
    filtered: bool = False


def _cols(*specs: tuple) -> tuple[Column, ...]:
    return tuple(Column(*s) for s in specs)


_ID = "BIGINT"
#: valuenum and valueuom are not kept: cleaning reads the charted text ``value``, as the original does, and knows
#: each item's unit from its item id; without them the event tables are about a fifth smaller to write and read.
_EVENT_COLUMNS = _cols(
    ("subject_id", _ID),
    ("hadm_id", _ID),
    ("stay_id", _ID),
    ("charttime", TIMESTAMP),
    ("storetime", TIMESTAMP, (), False),
    ("itemid", _ID),
    ("value", "VARCHAR"),
)

#: MIMIC-IV tables in output order. ``folders`` maps layout -> sub-folder.
MIMIC_IV_TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "patients",
        "patients",
        {LAYOUT_V1: "core", LAYOUT_V2: "hosp"},
        _cols(
            ("subject_id", _ID),
            ("gender", "VARCHAR"),
            ("anchor_age", "INTEGER"),
            ("anchor_year", "INTEGER"),
            ("anchor_year_group", "VARCHAR", (), False),
            ("dod", DATE),
        ),
    ),
    TableSpec(
        "admissions",
        "admissions",
        {LAYOUT_V1: "core", LAYOUT_V2: "hosp"},
        _cols(
            ("subject_id", _ID),
            ("hadm_id", _ID),
            ("admittime", TIMESTAMP),
            ("dischtime", TIMESTAMP),
            ("deathtime", TIMESTAMP),
            ("race", "VARCHAR", ("race", "ethnicity")),
            ("hospital_expire_flag", "INTEGER"),
            ("insurance", "VARCHAR", (), False),
        ),
    ),
    TableSpec(
        "icustays",
        "icustays",
        {LAYOUT_V1: "icu", LAYOUT_V2: "icu"},
        _cols(
            ("subject_id", _ID),
            ("hadm_id", _ID),
            ("stay_id", _ID),
            ("first_careunit", "VARCHAR"),
            ("last_careunit", "VARCHAR"),
            ("intime", TIMESTAMP),
            ("outtime", TIMESTAMP),
            ("los", "DOUBLE"),
        ),
    ),
    TableSpec(
        "transfers",
        "transfers",
        {LAYOUT_V1: "core", LAYOUT_V2: "hosp"},
        _cols(
            ("subject_id", _ID),
            ("hadm_id", _ID),
            ("transfer_id", _ID),
            ("eventtype", "VARCHAR"),
            ("careunit", "VARCHAR"),
            ("intime", TIMESTAMP),
            ("outtime", TIMESTAMP),
        ),
        required=False,
    ),
    TableSpec(
        "diagnoses_icd",
        "diagnoses_icd",
        {LAYOUT_V1: "hosp", LAYOUT_V2: "hosp"},
        _cols(
            ("subject_id", _ID),
            ("hadm_id", _ID),
            ("seq_num", "INTEGER"),
            ("icd_code", "VARCHAR"),
            ("icd_version", "INTEGER"),
        ),
    ),
    TableSpec(
        "d_icd_diagnoses",
        "d_icd_diagnoses",
        {LAYOUT_V1: "hosp", LAYOUT_V2: "hosp"},
        _cols(("icd_code", "VARCHAR"), ("icd_version", "INTEGER"), ("long_title", "VARCHAR")),
    ),
    TableSpec("chartevents", "chartevents", {LAYOUT_V1: "icu", LAYOUT_V2: "icu"}, _EVENT_COLUMNS, filtered=True),
    TableSpec(
        "labevents",
        "labevents",
        {LAYOUT_V1: "hosp", LAYOUT_V2: "hosp"},
        # labevents has no stay_id: it is written as a null column so both event tables share one schema.
        tuple(Column(c.name, c.type, c.sources, c.required and c.name != "stay_id") for c in _EVENT_COLUMNS),
        filtered=True,
    ),
)

_CXR_PREFIX = "mimic-cxr-2.0.0-"
#: MIMIC-CXR-JPG tables, all in the dataset root. Column names are kept as the download spells them.
MIMIC_CXR_TABLES: tuple[TableSpec, ...] = (
    TableSpec(
        "cxr_metadata",
        _CXR_PREFIX + "metadata",
        {"cxr": None},
        _cols(
            ("dicom_id", "VARCHAR"),
            ("subject_id", _ID),
            ("study_id", _ID),
            ("PerformedProcedureStepDescription", "VARCHAR", (), False),
            ("ViewPosition", "VARCHAR"),
            ("Rows", _ID, (), False),
            ("Columns", _ID, (), False),
            ("StudyDate", _ID),
            # HHMMSS.fff as a number, so times before 10:00 have five integer digits (zero-pad when parsing).
            ("StudyTime", "DOUBLE"),
        ),
    ),
    TableSpec(
        "cxr_chexpert",
        _CXR_PREFIX + "chexpert",
        {"cxr": None},
        _cols(("subject_id", _ID), ("study_id", _ID))
        + tuple(Column(label, "DOUBLE") for label in CHEXPERT_LABELS),
    ),
    TableSpec(
        "cxr_split",
        _CXR_PREFIX + "split",
        {"cxr": None},
        _cols(("dicom_id", "VARCHAR"), ("study_id", _ID), ("subject_id", _ID), ("split", "VARCHAR")),
    ),
)


@dataclass(frozen=True)
class Layout:
    """A detected MIMIC-IV download: layout name, version hint and the file of each table found."""

    root: Path
    layout: str
    version: str
    files: dict[str, Path]


def find_table(folder: Path, stem: str) -> Path | None:
    """``folder/stem.csv.gz`` or ``folder/stem.csv`` (the compressed file wins when both exist)."""
    for suffix in (".csv.gz", ".csv"):
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None


def read_header(path: Path) -> list[str]:
    """Column names of a CSV (plain or gzip) from its first line; raise when the file is empty."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", newline="") as fh:
            line = fh.readline()
    except (OSError, EOFError) as exc:
        raise MedfuseError(f"cannot read '{path}': {exc}; check that the file is a complete CSV download") from exc
    except UnicodeDecodeError as exc:
        raise MedfuseError(
            f"'{path}' is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start} of its first line); "
            "this encoding is unsupported: MIMIC tables are UTF-8, so re-download the file or convert it to UTF-8"
        ) from exc
    if not line.strip():
        raise MedfuseError(f"'{path}' is empty; expected a CSV with a header line")
    return next(csv.reader([line]))


def _version_hint(root: Path, layout: str) -> str:
    """'1.0' for the core/ layout; for hosp/ the version in the folder name (``mimic-iv-2.2``, ``3.1``) when any."""
    if layout == LAYOUT_V1:
        return "1.0"
    for part in reversed(root.resolve().parts):
        match = re.search(r"(?<![\d.])([23]\.\d+)(?![\d.])", part)
        if match:
            return match.group(1)
    return LAYOUT_V2


def detect_layout(root: str | Path) -> Layout:
    """Detect a MIMIC-IV download's layout and locate each table the ETL needs.

    Raises :class:`MedfuseError` when the folder holds neither ``core/`` nor ``hosp/`` and ``icu/``, or when a
    required table is missing (the message names the file that was looked for).
    """
    root = Path(root)
    if not root.is_dir():
        raise MedfuseError(f"MIMIC-IV folder '{root}' does not exist; pass the folder that holds hosp/ and icu/")
    if (root / "core").is_dir():
        layout = LAYOUT_V1
    elif (root / "hosp").is_dir():
        layout = LAYOUT_V2
    else:
        raise MedfuseError(
            f"unknown MIMIC-IV layout in '{root}': expected core/, hosp/ and icu/ (v1.0) or hosp/ and icu/ (v2.x, v3.x)"
        )
    files = {}
    for spec in MIMIC_IV_TABLES:
        folder = root / spec.folders[layout]
        path = find_table(folder, spec.stem)
        if path is None:
            if spec.required:
                raise MedfuseError(
                    f"missing table '{folder / spec.stem}.csv.gz' (or .csv) in the MIMIC-IV {layout} layout of '{root}'"
                )
            continue
        files[spec.name] = path
    return Layout(root=root, layout=layout, version=_version_hint(root, layout), files=files)


def locate_cxr_tables(root: str | Path) -> dict[str, Path]:
    """The three MIMIC-CXR-JPG tables (metadata, chexpert, split) in the dataset root."""
    root = Path(root)
    if not root.is_dir():
        raise MedfuseError(f"MIMIC-CXR-JPG folder '{root}' does not exist; pass the folder that holds files/")
    files = {}
    for spec in MIMIC_CXR_TABLES:
        path = find_table(root, spec.stem)
        if path is None:
            raise MedfuseError(f"missing table '{root / spec.stem}.csv.gz' (or .csv) in the MIMIC-CXR-JPG folder")
        files[spec.name] = path
    return files


def resolve_columns(spec: TableSpec, header: list[str], path: Path) -> dict[str, str | None]:
    """Output column -> input column (None for an absent optional column); raise naming a missing required one."""
    present = set(header)
    chosen: dict[str, str | None] = {}
    for column in spec.columns:
        source = next((c for c in column.candidates if c in present), None)
        if source is None and column.required:
            names = " or ".join(f"'{c}'" for c in column.candidates)
            raise MedfuseError(f"'{path}' has no column {names}; columns found: {', '.join(header)}")
        chosen[column.name] = source
    return chosen
