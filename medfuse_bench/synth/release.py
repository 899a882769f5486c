"""A later release of a synthetic dataset: the same patients, some new ones, a few gone.

MIMIC-IV grows from release to release: a new version keeps the patients of the earlier one with the same
identifiers and (shifted) times, adds the patients of a later period and drops a few. The generator makes such a
pair from one world: ``generate(out, stays, seed)`` is version A, and the same call with a :class:`Release` of
``added_stays`` and ``removed_share`` is version B:

* every patient of A is generated exactly as in A (same random streams), so the rows of a patient kept in B are
  those of A, apart from the columns that the two MIMIC versions spell differently
  (:mod:`medfuse_bench.synth.versions`);
* the new patients come from a world of ``added_stays`` ICU stays drawn from their own streams (seed, 3...), with
  identifiers that no patient, admission or stay of A uses; they belong to a later period (anchor_year_group
  ``2020 - 2022``, as MIMIC-IV 3.0 added, so their diagnoses are ICD-10 coded) and have no X-ray: MIMIC-CXR-JPG
  2.0.0 ends in 2016 and is its own release, so B's MIMIC-CXR-JPG tree is A's, byte for byte;
* ``removed_share`` of A's patients (drawn from stream (seed, 6)) are absent from every MIMIC-IV table of B.

Lab rows of the new patients are numbered from :data:`ADDED_ID_START` (labevent_id, specimen_id), above every id of
A, so that A's ids are kept without knowing A's row count before its last chunk is written.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.synth.hosp import admissions_table, diagnoses_table, patients_table, transfers_and_stays
from medfuse_bench.synth.icd import CodePools
from medfuse_bench.synth.plan import Population, assign_ids, build_population

#: anchor_year_group of the patients a later release adds (the period MIMIC-IV 3.0 added).
LATER_PERIOD = "2020 - 2022"
#: First labevent_id / specimen_id of the new patients' lab rows.
ADDED_ID_START = 10_000_000_000
#: The era index of plan.ANCHOR_YEAR_GROUPS whose coding (ICD-10 only) the later period shares.
_ICD10_ERA = 3
#: MIMIC-IV tables a release changes (the dictionaries and MIMIC-CXR-JPG stay as they are).
PATIENT_TABLES = ("patients", "admissions", "transfers", "diagnoses_icd", "icustays")


@dataclass(frozen=True)
class Release:
    """Version B of the world of (seed, stays): ``added_stays`` new ICU stays, ``removed_share`` of the patients gone.

    The default (nothing added or removed) is the world itself, version A.
    """

    added_stays: int = 0
    removed_share: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.added_stays, (int, np.integer)) or self.added_stays < 0:
            raise MedfuseError(f"--added-stays must be a number of ICU stays >= 0, got {self.added_stays}")
        if not 0.0 <= self.removed_share <= 0.5:
            raise MedfuseError(f"--removed-share must be in [0, 0.5], got {self.removed_share}")

    @property
    def is_base(self) -> bool:
        return self.added_stays == 0 and self.removed_share == 0.0


@dataclass
class NextRelease:
    """What version B adds to and takes from version A's world."""

    added: Population | None  # the new patients' world (None when no stay is added)
    added_tables: dict[str, pl.DataFrame]
    removed: pl.Series  # subject ids of A's patients that B drops

    def tables(self, base: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
        """A's tables with the new patients' rows merged in subject order and the removed patients' rows gone."""
        out = dict(base)
        for name in PATIENT_TABLES:
            frame = base[name]
            if name in self.added_tables:
                # A's tables are in subject order, patient by patient; a stable sort keeps each patient's row order
                frame = pl.concat([frame, self.added_tables[name]]).sort("subject_id", maintain_order=True)
            out[name] = self.keep(frame)
        return out

    def keep(self, frame: pl.DataFrame) -> pl.DataFrame:
        """Rows of the patients that B keeps."""
        if self.removed.len() == 0:
            return frame
        return frame.filter(~pl.col("subject_id").is_in(self.removed.implode()))


def next_release(seed: int, release: Release, base: Population, base_transfers: pl.DataFrame,
                 pools: CodePools) -> NextRelease:
    """The new patients (their world and tables) and the removed subjects of ``release`` over A's world ``base``."""
    n_pat = len(base.patient["subject_id"])
    n_removed = int(round(release.removed_share * n_pat))
    removed = np.sort(np.random.default_rng([seed, 6]).choice(base.patient["subject_id"], n_removed, replace=False))
    removed_series = pl.Series("subject_id", removed, dtype=pl.Int64)
    if release.added_stays == 0:
        return NextRelease(None, {}, removed_series)
    rng = np.random.default_rng([seed, 3])
    pop = build_population(rng, release.added_stays)
    assign_ids(rng, pop)
    _disjoin_people(pop, base)
    pop.patient["era"] = np.full_like(pop.patient["era"], _ICD10_ERA)
    transfers, icustays = transfers_and_stays(rng, pop)
    transfers, icustays = _disjoin_transfers(pop, transfers, icustays, base_transfers)
    tables = {
        "diagnoses_icd": diagnoses_table(rng, pop, pools),
        "patients": patients_table(pop).with_columns(anchor_year_group=pl.lit(LATER_PERIOD)),
        "admissions": admissions_table(rng, pop),
        "transfers": transfers,
        "icustays": icustays,
    }
    return NextRelease(pop, tables, removed_series)


def disjoint_ids(ids: np.ndarray, taken: np.ndarray, low: int, high: int) -> np.ndarray:
    """``ids`` with each id found in ``taken`` moved to the nearest free id in [low, high), keeping the sort order
    of ``ids`` (ids are distinct; collisions are rare, so the loop runs over a handful of ids).

    >>> disjoint_ids(np.array([3, 5, 9]), np.array([5, 6]), 0, 20).tolist()
    [3, 4, 9]
    """
    ids = np.asarray(ids, dtype=np.int64).copy()
    used = set(np.asarray(taken, dtype=np.int64).tolist()) | set(ids.tolist())
    order = np.argsort(ids, kind="stable")
    ranked = ids[order]
    for r in np.flatnonzero(np.isin(ranked, taken)):
        lo = ranked[r - 1] + 1 if r > 0 else low
        hi = ranked[r + 1] if r + 1 < len(ranked) else high
        x = int(ranked[r])
        free = next((c for step in range(1, hi - lo + 1) for c in (x - step, x + step)
                     if lo <= c < hi and c not in used), None)
        if free is None:
            raise MedfuseError(f"no free identifier near {x} in [{low}, {high}); use fewer --added-stays")
        used.add(free)
        ranked[r] = free
    ids[order] = ranked
    return ids


def _disjoin_people(pop: Population, base: Population) -> None:
    """Give the new world's patients and admissions identifiers that A does not use (as plan.assign_ids draws)."""
    pop.patient["subject_id"] = disjoint_ids(pop.patient["subject_id"], base.patient["subject_id"],
                                             10_000_000, 20_000_000)
    pop.adm["hadm_id"] = disjoint_ids(pop.adm["hadm_id"], base.adm["hadm_id"], 20_000_000, 30_000_000)
    pop.adm["subject_id"] = pop.patient["subject_id"][pop.adm["pidx"]]
    pop.stay["subject_id"] = pop.patient["subject_id"][pop.stay["pidx"]]
    pop.stay["hadm_id"] = pop.adm["hadm_id"][pop.stay["aidx"]]


def _disjoin_transfers(pop: Population, transfers: pl.DataFrame, icustays: pl.DataFrame,
                       base_transfers: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Transfer ids (and so stay ids, the first ICU transfer's id) that no transfer of A has."""
    old = transfers["transfer_id"].to_numpy()
    new = disjoint_ids(old, base_transfers["transfer_id"].to_numpy(), 30_000_000, 40_000_000)
    mapping = dict(zip(old.tolist(), new.tolist()))
    transfers = transfers.with_columns(transfer_id=pl.Series(new))
    icustays = icustays.with_columns(pl.col("stay_id").replace_strict(mapping, return_dtype=pl.Int64))
    pop.stay["stay_id"] = icustays["stay_id"].to_numpy()
    return transfers, icustays


def merge_by_subject(streams: Iterable[Iterator[tuple[int, dict[str, pl.DataFrame]]]]
                     ) -> Iterator[dict[str, pl.DataFrame]]:
    """Merge chunk streams into one in subject_id order.

    Each stream yields ``(last subject_id of the chunk, {table: frame})`` with its chunks in subject order and its
    frames sorted by subject_id; a subject belongs to one stream. Yields ``{table: frame}`` holding every row up to
    the smallest pending chunk end, so the output of each table is sorted by subject_id and every subject's rows keep
    their order. One stream passes through unchanged.
    """
    its = list(streams)
    if len(its) == 1:
        for _, frames in its[0]:
            yield frames
        return
    pending: list[tuple[int, dict[str, pl.DataFrame]] | None] = [next(it, None) for it in its]
    while any(p is not None for p in pending):
        live = [i for i, p in enumerate(pending) if p is not None]
        bound = min(pending[i][0] for i in live)
        out: dict[str, list[pl.DataFrame]] = {}
        for i in live:
            last, frames = pending[i]
            rest = {}
            for name, frame in frames.items():
                head = frame.filter(pl.col("subject_id") <= bound)
                out.setdefault(name, []).append(head)
                if head.height < frame.height:
                    rest[name] = frame.filter(pl.col("subject_id") > bound)
            pending[i] = next(its[i], None) if last <= bound else (last, rest)
        yield {name: pl.concat(parts).sort("subject_id", maintain_order=True) for name, parts in out.items()}
