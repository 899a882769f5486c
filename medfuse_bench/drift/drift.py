"""``medfuse-bench drift``: the drift report of a workdir against the workdir of an earlier MIMIC-IV release."""

from __future__ import annotations

import argparse

from medfuse_bench.resources import TASKS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "drift",
        help="compare this workdir's data with an earlier release's workdir (counts, splits, prevalence, models)",
        description="Write {workdir}/drift/drift.json and drift.md: stays added, removed and kept, the kept patients' "
        "splits, samples per task and split, linked X-rays, label prevalence and its change, and the previous "
        "release's models on the kept test stays (docs/version-bump.md).",
    )
    p.add_argument("--previous-workdir", required=True,
                   help="workdir holding the previous release's ETL outputs (and predictions/, if trained)")
    p.add_argument("--workdir", required=True, help="workdir of the current release (its ETL has run)")
    p.add_argument("--out-dir", default=None, help="output folder (default: {workdir}/drift)")
    p.add_argument("--tasks", nargs="+", choices=TASKS, default=None, help="tasks to compare (default: all present)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the intervals (default: 1000)")
    p.add_argument("--seed", type=int, default=2022, help="seed of the bootstrap resamples (default: 2022)")
    p.add_argument("--new-models", action="store_true",
                   help="also compare the current workdir's own predictions of the same experiments")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from medfuse_bench.drift.build import build_drift, default_out_dir, write_drift
    from medfuse_bench.errors import MedfuseError

    if args.bootstrap < 1:
        raise MedfuseError(f"--bootstrap must be at least 1, got {args.bootstrap}")
    record = build_drift(args.previous_workdir, args.workdir, tasks=args.tasks, n_resamples=args.bootstrap,
                         seed=args.seed, new_models=args.new_models)
    write_drift(record, args.out_dir or default_out_dir(args.workdir))
    return 0
