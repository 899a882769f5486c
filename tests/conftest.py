"""Fixtures shared by the test files: running the ``medfuse-bench`` command line.

``cli`` runs it in this process (exit code; output through capsys); ``cli_process`` runs it as its own process, as
Snakemake's shell rules do, with this checkout first on PYTHONPATH, and returns the finished process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def checkout_env() -> dict[str, str]:
    """The environment with this checkout first on PYTHONPATH, so a child process loads its code."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


@pytest.fixture(scope="session")
def cli() -> Callable[..., int]:
    """``cli(*args)``: ``medfuse-bench ARGS`` in-process; arguments may be paths or numbers."""
    from medfuse_bench.cli import main

    return lambda *args: main([str(a) for a in args])


@pytest.fixture(scope="session")
def cli_process() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``cli_process(*args, **run_kwargs)``: ``medfuse-bench ARGS`` as its own process; output captured unless
    ``stdout``/``stderr`` are given."""

    def run(*args: object, **kwargs) -> subprocess.CompletedProcess[str]:
        if "stdout" not in kwargs and "stderr" not in kwargs:
            kwargs["capture_output"] = True
        return subprocess.run([sys.executable, "-m", "medfuse_bench.cli", *map(str, args)], text=True,
                              env=checkout_env(), **kwargs)

    return run
