"""Reading a stage's input files with one actionable error: the file that is missing or unreadable, and the step
that writes it."""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.resources import TASKS


def existing(path: str | Path, hint: str) -> Path:
    """``path`` as a Path; MedfuseError naming it and ``hint`` (what writes it) when it does not exist."""
    path = Path(path)
    if not path.exists():
        raise MedfuseError(f"'{path}' does not exist; {hint}")
    return path


def read_parquet(path: str | Path, hint: str, columns: list[str] | None = None) -> pl.DataFrame:
    path = existing(path, hint)
    try:
        return pl.read_parquet(path, columns=columns)
    except pl.exceptions.PolarsError as exc:
        raise MedfuseError(f"'{path}' could not be read as Parquet ({exc}); {hint}") from exc


def raw_table(raw_dir: str | Path, name: str) -> Path:
    """``raw_dir/{name}.parquet``, which must exist: a table written by ``ingest``."""
    raw_dir = Path(raw_dir)
    return existing(raw_dir / f"{name}.parquet", f"run `medfuse-bench ingest` with --out-dir {raw_dir} first")


def scan_events(path: str | Path) -> pl.LazyFrame:
    return pl.scan_parquet(existing(path, "run `medfuse-bench variables` first"))


def task_paths(items: list[str] | None) -> dict[str, Path]:
    """``TASK=PATH`` arguments as a mapping; MedfuseError on a malformed item or an unknown task."""
    out = {}
    for item in items or []:
        task, sep, path = item.partition("=")
        if not sep or task not in TASKS:
            raise MedfuseError(f"--samples expects TASK=PATH with TASK one of {', '.join(TASKS)}, got '{item}'")
        out[task] = Path(path)
    return out


def plain(doc: str | None) -> str | None:
    """A module docstring as --help text: reST roles and literals as plain words."""
    if doc is None:
        return None
    return re.sub(r":(?:class|func|mod|meth|attr|data):`~?\.?([^`]+)`", r"\1", doc).replace("``", "")


def log_rate(logger: logging.Logger, stage: str, rows: int, what: str, started: float) -> None:
    """The stage's closing log line: rows handled, seconds since ``started`` (``time.perf_counter()``) and rows/s."""
    seconds = max(time.perf_counter() - started, 1e-9)
    logger.info("%s: %s %s in %.1f s (%s rows/s)", stage, f"{rows:,}", what, seconds, f"{rows / seconds:,.0f}")
