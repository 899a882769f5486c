"""The layout and schema of each MIMIC-IV release the generator can write: 1.0, 2.2 and 3.1.

:mod:`medfuse_bench.synth.schema` holds the 2.2 files; the other releases differ from it as the real ones do, in
what :mod:`medfuse_bench.etl.layout` has to detect and in what it can ignore:

* **1.0**: ``patients``, ``admissions`` and ``transfers`` sit in ``core/``; admissions has ``ethnicity`` where
  2.x has ``race``, and neither 1.0 table has the provider and caregiver columns that 2.2 added
  (``admissions.admit_provider_id``, ``labevents.order_provider_id``, ``caregiver_id`` of chartevents and
  outputevents). ``patients.dod`` records in-hospital deaths only: 2.0 added the out-of-hospital deaths
  (docs/fidelity.md, switch ``mortality``).
* **2.2**: the schema of :mod:`~medfuse_bench.synth.schema`.
* **3.1**: the 2.2 columns; ``admissions.language`` names the language (``English``, ``Spanish``, ...) where 2.x
  had ``ENGLISH`` or ``?``.

MIMIC-CXR-JPG 2.0.0 is its own release and does not change with MIMIC-IV's version.
"""

from __future__ import annotations

import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.synth.schema import table_columns, table_path

MIMIC_VERSIONS: tuple[str, ...] = ("1.0", "2.2", "3.1")
DEFAULT_VERSION = "2.2"

#: Tables in core/ in 1.0 (hosp/ from 2.0 on).
_CORE_TABLES = frozenset({"patients", "admissions", "transfers"})
#: Columns that 2.2 added, per table: absent from 1.0.
_ADDED_IN_2_2: dict[str, frozenset[str]] = {
    "admissions": frozenset({"admit_provider_id"}),
    "labevents": frozenset({"order_provider_id"}),
    "chartevents": frozenset({"caregiver_id"}),
    "outputevents": frozenset({"caregiver_id"}),
}
#: 3.x spells out the language of the admissions that 2.x recorded as '?' (chosen by hadm_id, so stable).
_OTHER_LANGUAGES = ("Spanish", "Chinese", "Russian", "Portuguese", "Haitian", "Vietnamese", "Other")


def check_version(version: str) -> str:
    """``version`` when the generator knows it; a :class:`MedfuseError` naming the choices otherwise."""
    if version not in MIMIC_VERSIONS:
        raise MedfuseError(f"--mimic-version must be one of {', '.join(MIMIC_VERSIONS)}, got {version!r}")
    return version


def version_path(name: str, version: str) -> str:
    """Path of a table relative to the output directory in ``version``'s layout."""
    path = table_path(name)
    if version == "1.0" and name in _CORE_TABLES:
        return path.replace("mimic-iv/hosp/", "mimic-iv/core/", 1)
    return path


def version_columns(name: str, version: str) -> tuple[str, ...]:
    """Columns of a table in ``version``, in file order."""
    columns = table_columns(name)
    if version != "1.0":
        return columns
    dropped = _ADDED_IN_2_2.get(name, frozenset())
    return tuple("ethnicity" if (name, c) == ("admissions", "race") else c for c in columns if c not in dropped)


def adapt(name: str, frame: pl.DataFrame, version: str, *, in_hospital_deaths: pl.Series | None = None) -> pl.DataFrame:
    """A table generated in the 2.2 schema, rewritten into ``version``'s (columns in file order).

    ``in_hospital_deaths`` (subject ids) is needed for 1.0's ``patients``, whose dod keeps only those deaths.
    """
    if version == "1.0":
        if name == "admissions":
            frame = frame.rename({"race": "ethnicity"})
        elif name == "patients":
            if in_hospital_deaths is None:
                raise ValueError("the 1.0 patients table needs the subjects who died in hospital")
            frame = frame.with_columns(
                pl.when(pl.col("subject_id").is_in(in_hospital_deaths.implode())).then(pl.col("dod")).alias("dod")
            )
    elif version == "3.1" and name == "admissions":
        other = (pl.col("hadm_id") % len(_OTHER_LANGUAGES)).replace_strict(
            dict(enumerate(_OTHER_LANGUAGES)), return_dtype=pl.String)
        frame = frame.with_columns(
            pl.when(pl.col("language") == "ENGLISH").then(pl.lit("English"))
            .when(pl.col("language") == "?").then(other)
            .otherwise(pl.col("language")).alias("language")
        )
    return frame.select(version_columns(name, version))
