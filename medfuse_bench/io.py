"""Atomic writes: every output appears complete under its final name, or not at all; and the one reader of a
JSON object file, whose errors name the file."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from medfuse_bench.errors import MedfuseError


def temporary_name(final: str | os.PathLike[str], *, directory: bool = False) -> Path:
    """The one temporary name of ``final`` while it is written: ``.{name}.tmp{suffix}`` beside it (the suffix is
    kept for writers that choose a format by it), ``.{name}.tmp`` for a directory.

    The name is fixed, not random, so that the leftover of a killed writer (``kill -9``, a node lost under a cluster
    job) is found and removed by the next write of the same output instead of piling up beside it.
    """
    final = Path(final)
    return final.with_name(f".{final.name}.tmp" + ("" if directory else final.suffix))


def remove_stale(path: Path) -> None:
    """Remove a file, link or directory tree at ``path``, if any."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def remove_leftovers(final: str | os.PathLike[str], *, directory: bool = False) -> None:
    """Remove what a killed write of ``final`` left beside it: its temporary name, and the random
    ``.{name}.tmp-XXXX`` names that earlier versions of this module used."""
    final = Path(final)
    remove_stale(temporary_name(final, directory=directory))
    for old in final.parent.glob(f".{glob.escape(final.name)}.tmp-*"):
        remove_stale(old)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str], *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` when the block succeeds.

    On any exception the temporary file or directory is removed and ``final`` is left untouched,
    so a failed step never leaves a half-written output behind. A leftover of an earlier, killed write of
    ``final`` is removed first (:func:`temporary_name`); one writer per output, as Snakemake guarantees.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(final, directory=directory)
    tmp = temporary_name(final, directory=directory)
    if directory:
        tmp.mkdir()
    else:
        tmp.touch()
    try:
        yield tmp
        if directory and final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            remove_stale(tmp)
        raise


def write_parquet(frame: pl.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write ``frame`` to ``path`` atomically (zstd-compressed Parquet)."""
    with atomic_path(path) as tmp:
        frame.write_parquet(tmp, compression="zstd")


def write_json(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` as indented JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def write_text(text: str, path: str | os.PathLike[str]) -> None:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
               type(None): "null"}


def read_json_object(path: str | os.PathLike[str], hint: str, *, what: str = "") -> dict[str, Any]:
    """The JSON object in the file ``path``.

    A missing file, one that cannot be read, one that is not valid JSON (or not UTF-8) and one whose value is not an
    object each raise a one-line MedfuseError naming the file, prefixed by ``what`` (e.g. ``"selection file"``) and
    ending with ``hint``: what writes the file, e.g. "run `medfuse-bench select` first".
    """
    path = Path(path)
    name = f"{what} '{path}'" if what else f"'{path}'"
    if not path.exists():
        raise MedfuseError(f"{name} does not exist; {hint}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MedfuseError(f"{name} is not valid JSON ({exc}); {hint}") from exc
    except OSError as exc:
        raise MedfuseError(f"{name} cannot be read ({exc.strerror or exc}); {hint}") from exc
    if not isinstance(data, dict):
        raise MedfuseError(f"{name} must hold a JSON object, not {_JSON_TYPES.get(type(data), 'a value')}; {hint}")
    return data
