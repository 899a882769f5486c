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

# Modules that contribute subcommands, in the order they appear in --help.
COMMAND_MODULES: list[str] = [
    "medfuse_bench.synth.cli",
    "medfuse_bench.config.cli",
    "medfuse_bench.etl.cli_raw",
    "medfuse_bench.etl.cli_tasks",
    "medfuse_bench.train.cli",
    "medfuse_bench.evaluation.cli",
    "medfuse_bench.report.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medfuse-bench",
        description="MedFuse benchmark pipeline: synthetic data, ETL, training, evaluation, leaderboard.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
