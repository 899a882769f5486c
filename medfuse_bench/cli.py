"""The ``medfuse-bench`` command line: one subcommand per pipeline step.

Each step's module exposes ``register(subparsers)``, which adds its subcommand and sets
``func`` on the parser to a callable taking the parsed arguments. Snakemake rules call these
subcommands, so every step also runs without Snakemake.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from medfuse_bench import __version__
from medfuse_bench.errors import MedfuseError

#: The module that registers and runs each subcommand, in the order they appear in --help. A stage runs as its own
#: process (one per Snakemake job), so only the module of the command being run is imported: the others pull in the
#: generator, torch or matplotlib, which would add up to a second to every stage's start-up.
#: A workflow rule ``r`` runs subcommand ``r`` with dashes for underscores, registered and run by a module named
#: ``r.py`` (rule ``cxr_uni``: ``medfuse-bench cxr-uni``, ``medfuse_bench/etl/cxr_uni.py``; rule ``train``:
#: ``medfuse_bench/commands/train.py``); docs/architecture.md lists the exceptions.
COMMANDS: dict[str, str] = {
    "synth": "medfuse_bench.synth.synth",
    "config": "medfuse_bench.config.cli",
    "ingest": "medfuse_bench.etl.ingest",
    "cohort": "medfuse_bench.etl.cohort",
    "variables": "medfuse_bench.etl.variables",
    "phenotypes": "medfuse_bench.etl.phenotypes",
    "splits": "medfuse_bench.etl.splits",
    "cxr-uni": "medfuse_bench.etl.cxr_uni",
    "task-tables": "medfuse_bench.etl.task_tables",
    "timeseries": "medfuse_bench.etl.timeseries",
    "check-splits": "medfuse_bench.etl.check_splits",
    "etl-summary": "medfuse_bench.etl.etl_summary",
    "receipt": "medfuse_bench.etl.receipt",
    "subgroups": "medfuse_bench.etl.subgroups",
    "image-cache": "medfuse_bench.commands.image_cache",
    "train": "medfuse_bench.commands.train",
    "select": "medfuse_bench.commands.select",
    "select-optimal": "medfuse_bench.commands.select_optimal",
    "predict": "medfuse_bench.commands.predict",
    "ensemble": "medfuse_bench.commands.ensemble",
    "evaluate": "medfuse_bench.commands.evaluate",
    "leakage-audit": "medfuse_bench.leakage_audit.leakage_audit",
    "report": "medfuse_bench.commands.report",
    "score": "medfuse_bench.commands.score",
    "leaderboard": "medfuse_bench.commands.leaderboard",
    "drift": "medfuse_bench.drift.drift",
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with every subcommand, or with only the module of ``command`` when it is a known command."""
    parser = argparse.ArgumentParser(
        prog="medfuse-bench",
        description="MedFuse benchmark pipeline: synthetic data, ETL, training, evaluation, leaderboard.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    modules = [COMMANDS[command]] if command in COMMANDS else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv[0] if argv else None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        result = args.func(args)
    except MedfuseError as exc:
        print(f"medfuse-bench: error: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
