"""``medfuse-bench check-splits`` (rule ``check_splits``): fail if any subject appears in two splits of any dataset.

The datasets are the task sample tables and CXR_UNI; the task samples must also agree with splits.parquet, and no
patient of a task's val/test set may have an image in CXR_UNI's train split.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path

import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.stage_io import plain, read_parquet, task_paths
from medfuse_bench.io import write_text
from medfuse_bench.resources import SPLITS, TASKS


def split_conflicts(frame: pl.DataFrame) -> pl.DataFrame:
    """Subjects that appear in more than one split of one dataset: subject_id, n_splits, splits."""
    return (
        frame.group_by("subject_id")
        .agg(
            pl.col("split").n_unique().alias("n_splits"),
            pl.col("split").unique().sort().str.join(",").alias("splits"),
        )
        .filter(pl.col("n_splits") > 1)
        .sort("subject_id")
    )


def split_count_table(datasets: Mapping[str, pl.DataFrame]) -> pl.DataFrame:
    """Rows and distinct subjects per dataset and split."""
    parts = [
        frame.group_by("split").agg(pl.len().alias("rows"), pl.col("subject_id").n_unique().alias("subjects"))
        .with_columns(pl.lit(name).alias("dataset"))
        for name, frame in datasets.items()
    ]
    if not parts:
        return pl.DataFrame(schema={"dataset": pl.String, "split": pl.String, "rows": pl.UInt32, "subjects": pl.UInt32})
    rank = {s: i for i, s in enumerate(SPLITS)}
    table = pl.concat(parts, how="vertical_relaxed").select("dataset", "split", "rows", "subjects")
    return table.sort(["dataset", pl.col("split").replace_strict(rank, default=len(rank))])


def check_splits(datasets: Mapping[str, pl.DataFrame], cxr_uni: str | None = None,
                 reference: pl.DataFrame | None = None) -> pl.DataFrame:
    """Raise MedfuseError if a subject is in two splits of any dataset, if a task's samples disagree with
    the reference (splits.parquet), or if CXR_UNI's train set holds a patient of a task's val/test set.
    Return the count table otherwise.

    datasets maps a dataset name to a frame with subject_id and split; cxr_uni names the CXR_UNI entry.
    """
    problems = []
    for name, frame in datasets.items():
        conflicts = split_conflicts(frame)
        if conflicts.height:
            first = conflicts.row(0, named=True)
            problems.append(
                f"dataset '{name}': {conflicts.height} subject(s) appear in more than one split "
                f"(e.g. subject_id {first['subject_id']} in {first['splits']})"
            )
    if reference is not None:
        ref = reference.select(pl.col("subject_id").cast(pl.Int64), pl.col("split").alias("_expected"))
        for name, frame in datasets.items():
            if name == cxr_uni:
                continue
            joined = frame.select(pl.col("subject_id").cast(pl.Int64), "split").join(ref, on="subject_id", how="left")
            bad = joined.filter(pl.col("_expected").is_null() | (pl.col("split") != pl.col("_expected")))
            if bad.height:
                problems.append(
                    f"dataset '{name}': {bad['subject_id'].n_unique()} subject(s) have a split other than in "
                    f"splits.parquet (e.g. subject_id {bad['subject_id'][0]})"
                )
    if cxr_uni is not None and cxr_uni in datasets:
        cxr_train = datasets[cxr_uni].filter(pl.col("split") == "train").select(pl.col("subject_id").cast(pl.Int64))
        for name, frame in datasets.items():
            if name == cxr_uni:
                continue
            held_out = frame.filter(pl.col("split") != "train").select(pl.col("subject_id").cast(pl.Int64)).unique()
            leaked = held_out.join(cxr_train.unique(), on="subject_id", how="semi")
            if leaked.height:
                problems.append(
                    f"dataset '{cxr_uni}': {leaked.height} subject(s) of the val/test sets of '{name}' have images "
                    f"in its train split (e.g. subject_id {leaked['subject_id'][0]}); rebuild it with cxr-uni"
                )
    if problems:
        raise MedfuseError("split check failed: " + "; ".join(problems))
    return split_count_table(datasets)


def workdir_inputs(workdir: str | Path) -> dict[str, Path | dict[str, Path]]:
    """The files a pipeline workdir holds for the check, as the workflow names them: tasks/<task>/samples.parquet of
    every task present, cxr/cxr_uni.parquet and etl/splits.parquet (each left out when absent)."""
    workdir = Path(workdir)
    samples = {t: workdir / "tasks" / t / "samples.parquet" for t in TASKS}
    found: dict[str, Path | dict[str, Path]] = {"samples": {t: p for t, p in samples.items() if p.exists()}}
    others = {"cxr_uni": workdir / "cxr" / "cxr_uni.parquet", "splits": workdir / "etl" / "splits.parquet"}
    for name, path in others.items():
        if path.exists():
            found[name] = path
    return found


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check-splits", help="fail if any subject appears in two splits of any dataset",
                       description=plain(check_splits.__doc__))
    p.add_argument("--samples", nargs="*", default=None, metavar="TASK=PATH", help="task samples tables to check")
    p.add_argument("--cxr-uni", default=None, help="cxr_uni.parquet to check")
    p.add_argument("--splits", default=None, help="splits.parquet the task samples must agree with (optional)")
    p.add_argument("--workdir", default=None,
                   help="pipeline workdir: check the files of it that are present (tasks/*/samples.parquet, "
                        "cxr/cxr_uni.parquet, against etl/splits.parquet) where no path above is given")
    p.add_argument("--out", default=None, help="also write the count table to this text file")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    found = workdir_inputs(args.workdir) if args.workdir else {}
    samples = task_paths(args.samples) or found.get("samples", {})
    cxr_path = args.cxr_uni or found.get("cxr_uni")
    splits_path = args.splits or found.get("splits")
    # In task order, whatever the order of the arguments.
    datasets = {task: read_parquet(samples[task], "run `medfuse-bench task-tables` first",
                                   columns=["subject_id", "split"]) for task in TASKS if task in samples}
    if cxr_path is not None:
        datasets["cxr_uni"] = read_parquet(cxr_path, "run `medfuse-bench cxr-uni` first",
                                           columns=["subject_id", "split"])
    if not datasets:
        raise MedfuseError("check-splits found no dataset; pass --samples TASK=PATH / --cxr-uni PATH or --workdir")
    reference = None
    if splits_path is not None:
        reference = read_parquet(splits_path, "run `medfuse-bench splits` first", columns=["subject_id", "split"])
    table = check_splits(datasets, cxr_uni="cxr_uni" if "cxr_uni" in datasets else None, reference=reference)
    with pl.Config(tbl_rows=100, tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True,
                   tbl_formatting="ASCII_MARKDOWN"):
        text = f"split check passed: no subject in two splits of any dataset\n{table}\n"
    print(text, end="")
    if args.out:
        write_text(text, args.out)
    return 0
