"""The evaluation settings that report, score and leaderboard share, and where they come from.

Settings not given as flags come from, in order: ``--config`` when it is read (no ``--workdir``), the
workdir's ``config.resolved.yaml``, the config schema's defaults.
"""

from __future__ import annotations

import argparse
from typing import Any

from medfuse_bench.config import load_config
from medfuse_bench.evaluation.defaults import evaluation_default
from medfuse_bench.paths import Workdir
from medfuse_bench.report.provenance import read_yaml


def add_common_arguments(p: argparse.ArgumentParser) -> None:
    """--workdir, --config, --bootstrap, --seed."""
    p.add_argument("--workdir", default=None,
                   help="pipeline output folder (default: 'workdir' of --config)")
    p.add_argument("--config", default="config.yaml",
                   help="config file read for the workdir and evaluation settings when --workdir is not given "
                        "(default: %(default)s)")
    p.add_argument("--bootstrap", type=int, default=None,
                   help="bootstrap resamples for the 95%% CIs (default: evaluation.bootstrap of the config, "
                        f"{evaluation_default('bootstrap')})")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of the bootstrap resamples (default: evaluation.seed of the config, "
                        f"{evaluation_default('seed')})")


def add_paired_arguments(p: argparse.ArgumentParser) -> None:
    """--paired-reference, --calibration-bins (report and leaderboard)."""
    p.add_argument("--paired-reference", default=None,
                   help="experiment the paired differences are taken against (default: evaluation.paired_reference, "
                        f"{evaluation_default('paired_reference')})")
    p.add_argument("--calibration-bins", type=int, default=None,
                   help="equal-mass bins of the ECE and reliability diagrams (default: evaluation.calibration_bins, "
                        f"{evaluation_default('calibration_bins')})")


def resolve(args: argparse.Namespace) -> tuple[Workdir, dict[str, Any]]:
    """The workdir and the evaluation settings (flag > config > workdir's resolved config > schema default)."""
    if args.workdir is None:
        config = load_config(args.config)
        workdir = Workdir.at(config["workdir"])
    else:
        workdir = Workdir.at(args.workdir)
        config = read_yaml(workdir.config_resolved) or {}
    evaluation = config.get("evaluation") or {}
    settings = {}
    for key in ("bootstrap", "seed", "drop_fractions", "unimodal_test_fractions", "paired_reference",
                "calibration_bins", "subgroup_min_positives", "subgroup_age_bands"):
        flag = getattr(args, key, None)
        settings[key] = flag if flag is not None else evaluation.get(key, evaluation_default(key))
    return workdir, settings
