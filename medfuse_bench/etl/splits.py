"""``medfuse-bench splits`` (rule ``splits``): patient-level train/val/test split that stays put as the data grows
(the check that no patient straddles splits is :mod:`.check_splits`).

A patient's split is a pure function of (salt, subject_id): the id is mixed with a 64-bit seed derived from the
salt by SplitMix64, the top 53 bits give a uniform number u in [0, 1), and u < train -> train,
u < train + val -> val, else test. The hash is plain NumPy integer arithmetic, so it is identical on every
platform and library version, and after a MIMIC version bump every old patient keeps its split while new patients
spread 70/10/20.

Split lists in the original's headerless "subject_id,flag" format can be imported: a listed subject goes to test
if flagged 1 in the test list, to val if flagged 1 in the val list, else to train. Unlike the original, which put
every unlisted subject in train, unlisted subjects fall back to the hash.
"""

from __future__ import annotations

import argparse
import time
import hashlib
import logging
import os
from collections.abc import Iterable

import numpy as np
import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.stage_io import log_rate, plain, read_parquet
from medfuse_bench.io import write_parquet

log = logging.getLogger(__name__)

#: The salt of ``etl.split.salt``'s default: the split of every subject under the default configuration.
DEFAULT_SALT = "medfuse-bench-v1"


def salt_seed(salt: str) -> int:
    """The 64-bit seed of a salt: the first 8 bytes (little endian) of its BLAKE2b digest."""
    return int.from_bytes(hashlib.blake2b(salt.encode("utf-8"), digest_size=8).digest(), "little")


def hash_uniform(subject_ids: np.ndarray, salt: str) -> np.ndarray:
    """A uniform number in [0, 1) per subject id: the SplitMix64 output for state ``id + seed`` (uint64 arithmetic),
    shifted right by 11 bits and divided by 2**53.

    >>> hash_uniform(np.array([10000032]), "medfuse-bench-v1").round(6).tolist()
    [0.197264]
    """
    z = np.asarray(subject_ids, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        z = z + np.uint64(salt_seed(salt)) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def _check_fractions(train: float, val: float) -> None:
    if not (0 <= train <= 1 and 0 <= val <= 1 and train + val <= 1):
        raise MedfuseError(
            f"split fractions train={train}, val={val} are invalid: each must be in [0, 1] and together at most 1 "
            "(etl.split.train / etl.split.val)"
        )


def assign_splits(subjects: pl.Series | pl.DataFrame | Iterable[int], salt: str, train: float = 0.7,
                  val: float = 0.1) -> pl.DataFrame:
    """Split of each distinct subject id from the salted hash: columns subject_id (Int64), split; sorted by id.

    >>> assign_splits([3, 1, 3], "s", 0.5, 0.25).rows()
    [(1, 'train'), (3, 'val')]
    """
    _check_fractions(train, val)
    if isinstance(subjects, pl.DataFrame):
        subjects = subjects["subject_id"]
    if not isinstance(subjects, pl.Series):
        subjects = list(subjects)
    ids = pl.Series("subject_id", subjects).cast(pl.Int64).drop_nulls().unique().sort()
    u = hash_uniform(ids.to_numpy(), salt)
    split = np.where(u < train, "train", np.where(u < train + val, "val", "test"))
    return pl.DataFrame({"subject_id": ids, "split": split})


def read_split_list(path: str | os.PathLike[str], name: str) -> pl.DataFrame:
    """Read a split list in the original's headerless ``subject_id,flag`` format (e.g. testset_iv.csv)."""
    try:
        frame = pl.read_csv(path, has_header=False, new_columns=["subject_id", "flag"],
                            schema_overrides={"subject_id": pl.Int64, "flag": pl.Int64})
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise MedfuseError(f"{name} '{path}' is not a readable headerless 'subject_id,flag' CSV: {exc}") from exc
    if frame.width != 2 or frame["subject_id"].null_count() or not frame["flag"].is_in([0, 1]).all():
        raise MedfuseError(f"{name} '{path}' must hold lines 'subject_id,flag' with integer ids and flag 0 or 1")
    if frame["subject_id"].is_duplicated().any():
        raise MedfuseError(f"{name} '{path}' lists a subject_id more than once; keep one line per subject")
    return frame


def apply_split_lists(splits: pl.DataFrame, test_list: pl.DataFrame | None = None,
                      val_list: pl.DataFrame | None = None) -> pl.DataFrame:
    """Override hashed splits with the original's lists: flag 1 in the test list -> test, flag 1 in the val list
    -> val, listed otherwise -> train; subjects in no list keep their hashed split."""
    out = splits.with_columns(pl.col("subject_id").cast(pl.Int64))
    if test_list is None and val_list is None:
        # Nothing to override; also spares Polars a filter on literal-only predicates, which fails on large frames.
        return out.select(splits.columns)
    listed = pl.lit(False)
    to_test = pl.lit(False)
    to_val = pl.lit(False)
    for name, frame in (("test", test_list), ("val", val_list)):
        if frame is None:
            continue
        flags = frame.select(pl.col("subject_id").cast(pl.Int64), pl.col("flag").alias(f"_{name}_flag"))
        out = out.join(flags, on="subject_id", how="left")
        listed = listed | pl.col(f"_{name}_flag").is_not_null()
        if name == "test":
            to_test = pl.col("_test_flag") == 1
        else:
            to_val = pl.col("_val_flag") == 1
    both = out.filter(to_test.fill_null(False) & to_val.fill_null(False))
    if both.height:
        raise MedfuseError(
            f"{both.height} subject(s) are flagged 1 in both the test list and the val list "
            f"(e.g. subject_id {both['subject_id'][0]}); a subject can be in one split only"
        )
    split = (
        pl.when(to_test.fill_null(False)).then(pl.lit("test"))
        .when(to_val.fill_null(False)).then(pl.lit("val"))
        .when(listed).then(pl.lit("train"))
        .otherwise(pl.col("split"))
    )
    return out.with_columns(split.alias("split")).select(splits.columns)


def build_splits(ehr_subjects: pl.Series, other_subjects: Iterable[pl.Series], salt: str, train: float = 0.7,
                 val: float = 0.1, test_list: pl.DataFrame | None = None,
                 val_list: pl.DataFrame | None = None) -> pl.DataFrame:
    """splits.parquet: every subject of the EHR cohort and of the CXR tables with its split.

    Columns: subject_id (Int64), split, ehr (Boolean: the subject has a stay in the EHR cohort; CXR_UNI moves only
    these patients' images out of train).
    """
    ehr = pl.Series("subject_id", ehr_subjects).cast(pl.Int64).drop_nulls().unique()
    everyone = pl.concat([ehr, *(pl.Series("subject_id", s).cast(pl.Int64) for s in other_subjects)])
    splits = apply_split_lists(assign_splits(everyone, salt, train, val), test_list, val_list)
    return splits.with_columns(pl.col("subject_id").is_in(ehr.implode()).alias("ehr"))


# --- the check ------------------------------------------------------------------------------------------------------


#: The ingest's X-ray tables whose subjects get a split too.
CXR_TABLES = ("cxr_metadata", "cxr_chexpert", "cxr_split")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("splits", help="patient-level train/val/test split from a salted hash of subject_id",
                       description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stays", required=True, help="stays.parquet of the cohort (its subjects are the EHR patients)")
    p.add_argument("--raw-dir", required=True, help="ingest folder holding cxr_metadata/cxr_chexpert/cxr_split.parquet")
    p.add_argument("--out", required=True, help="output splits.parquet (subject_id, split, ehr)")
    p.add_argument("--salt", default=DEFAULT_SALT, help="salt of the hash (etl.split.salt; keep it fixed)")
    p.add_argument("--train", type=float, default=0.7, help="fraction of patients in train (etl.split.train)")
    p.add_argument("--val", type=float, default=0.1, help="fraction of patients in val (etl.split.val)")
    p.add_argument("--test-list", default=None,
                   help="optional headerless 'subject_id,flag' list, flag 1 = test (e.g. testset_iv.csv)")
    p.add_argument("--val-list", default=None,
                   help="optional headerless 'subject_id,flag' list, flag 1 = val (e.g. valset_iv.csv)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    stays = read_parquet(args.stays, "run `medfuse-bench cohort` first", columns=["subject_id"])
    others = []
    for table in CXR_TABLES:
        path = os.path.join(args.raw_dir, f"{table}.parquet")
        if os.path.exists(path):
            others.append(read_parquet(path, "rerun ingest", columns=["subject_id"])["subject_id"])
        else:
            log.warning("'%s' is missing: its subjects get no split row", path)
    test_list = read_split_list(args.test_list, "--test-list") if args.test_list else None
    val_list = read_split_list(args.val_list, "--val-list") if args.val_list else None
    out = build_splits(stays["subject_id"], others, args.salt, args.train, args.val, test_list, val_list)
    counts = dict(out.group_by("split").len().iter_rows())
    log.info("splits of %d subjects (%d in the EHR cohort): %s", out.height, int(out["ehr"].sum()), counts)
    write_parquet(out, args.out)
    log_rate(log, "splits", out.height, "subjects", started)
    return 0
