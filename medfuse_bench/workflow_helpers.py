"""Command-line pieces that the workflow's rules pass to ``medfuse-bench`` subcommands, built from config values.

They live in the package, not in the rule files: `snakemake --lint` wants a rule file to hold rules only, and the
input functions that need Snakemake's objects (``rules``, ``expand``) are in workflow/rules/common.smk.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping
from typing import Any


def q(value: object) -> str:
    """Shell-quote a value for a command line.

    >>> q("a b"), q(3)
    ("'a b'", '3')
    """
    return shlex.quote(str(value))


def opt(flag: str, value: object) -> str:
    """``--flag value``, or nothing when value is None.

    >>> opt("--gem-file", "x y.txt"), opt("--gem-file", None)
    ("--gem-file 'x y.txt'", '')
    """
    return "" if value is None else f"{flag} {q(value)}"


def task_arguments(tasks: Iterable[str], samples: Iterable[object]) -> str:
    """TASK=PATH arguments of the task samples tables, ``samples`` in the order of ``tasks`` (as expand() lists
    them).

    >>> task_arguments(["phenotyping"], ["w/tasks/phenotyping/samples.parquet"])
    'phenotyping=w/tasks/phenotyping/samples.parquet'
    """
    return " ".join(f"{task}={path}" for task, path in zip(tasks, samples, strict=True))


def split_arguments(split: Mapping[str, Any]) -> str:
    """The splits rule's --salt, --train and --val, and --test-list / --val-list for the lists configured
    (config section ``etl.split``).

    >>> split_arguments({"salt": "s", "train": 0.7, "val": 0.1, "test_list": None, "val_list": "v.csv"})
    '--salt s --train 0.7 --val 0.1 --val-list v.csv'
    """
    lists = (opt("--test-list", split["test_list"]), opt("--val-list", split["val_list"]))
    return " ".join([f"--salt {split['salt']} --train {split['train']} --val {split['val']}", *filter(None, lists)])
