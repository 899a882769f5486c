"""Leaderboard submissions: read a prediction file and its metadata, and check it against the held-out test set.

Format: a Parquet or CSV file with ``stay_id`` and one probability column per label, named exactly as the label
columns of ``tasks/{task}/samples.parquet``, with one row per stay of the chosen test set (``partial`` = every
test stay, ``paired`` = test stays with a linked X-ray). Columns ``target:<label>`` are ignored, so the
pipeline's own prediction files are valid submissions. Beside it, a metadata file (YAML or JSON) names the
model: ``name``, ``authors``, ``description``, ``code_url``.

Each check raises :class:`MedfuseError` with one line naming the file and the column, count and example ids.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from medfuse_bench.errors import MedfuseError
from medfuse_bench.evaluation.predictions import TARGET_PREFIX

METADATA_FIELDS: tuple[str, ...] = ("name", "authors", "description", "code_url")
_EXAMPLES = 3


def read_submission(path: str | os.PathLike[str]) -> pl.DataFrame:
    """A submission as a frame (Parquet by its suffix ``.parquet``/``.pq``, otherwise CSV)."""
    path = Path(path)
    _require_file(path, "submission")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            return pl.read_parquet(path)
        return pl.read_csv(path, infer_schema_length=None)
    except Exception as exc:  # noqa: BLE001 - any reader failure means the file is unusable
        kind = "Parquet" if path.suffix.lower() in (".parquet", ".pq") else "CSV"
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise MedfuseError(f"submission '{path}' is not readable {kind}: {detail}") from exc


def _require_file(path: Path, what: str) -> None:
    if path.is_dir():
        raise MedfuseError(f"{what} '{path}' is a directory; expected a file")
    if not path.is_file():
        raise MedfuseError(f"{what} '{path}' does not exist")


def default_metadata_path(submission: str | os.PathLike[str]) -> Path:
    """``<stem>.meta.yaml`` beside the submission (``.meta.yml`` / ``.meta.json`` when that one is what exists)."""
    submission = Path(submission)
    candidates = [submission.with_name(f"{submission.stem}.meta{ext}") for ext in (".yaml", ".yml", ".json")]
    return next((c for c in candidates if c.exists()), candidates[0])


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata mapping, with every field of :data:`METADATA_FIELDS` present and non-empty."""
    path = Path(path)
    if path.is_dir():
        raise MedfuseError(f"metadata file '{path}' is a directory; expected a YAML or JSON file")
    if not path.is_file():
        raise MedfuseError(
            f"metadata file '{path}' does not exist; write it (YAML or JSON) with the fields "
            f"{', '.join(METADATA_FIELDS)}, or pass --metadata FILE"
        )
    try:
        text = path.read_text()
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise MedfuseError(f"metadata file '{path}' is not valid {'JSON' if path.suffix == '.json' else 'YAML'}") from exc
    if not isinstance(data, dict):
        raise MedfuseError(f"metadata file '{path}' must hold a mapping with the fields {', '.join(METADATA_FIELDS)}")
    missing = [f for f in METADATA_FIELDS if data.get(f) in (None, "", [])]
    if missing:
        raise MedfuseError(
            f"metadata file '{path}' lacks field '{missing[0]}'"
            + (f" ({len(missing)} missing: {', '.join(missing)})" if len(missing) > 1 else "")
        )
    return {k: data[k] for k in METADATA_FIELDS} | {k: v for k, v in data.items() if k not in METADATA_FIELDS}


def _examples(values: list[Any]) -> str:
    shown = ", ".join(str(v) for v in values[:_EXAMPLES])
    return shown + (", ..." if len(values) > _EXAMPLES else "")


def stay_ids(column: pl.Series, source: str) -> pl.Series:
    """A non-null ``stay_id`` column of any integer width, or of digit strings, as Int64; anything else (floats,
    other text, values beyond Int64) is an error naming the column.

    >>> stay_ids(pl.Series("stay_id", [" 7", "0012"]), "s.csv").to_list()
    [7, 12]
    >>> stay_ids(pl.Series("stay_id", [2**70], dtype=pl.Int128), "s.csv")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    medfuse_bench.errors.MedfuseError: s.csv: column 'stay_id' has 1 value(s) beyond the 64-bit integer range ...
    """
    dtype = column.dtype
    if dtype in (pl.String, pl.Categorical, pl.Enum):
        text = column.cast(pl.String).str.strip_chars()
        bad = column.filter(~text.str.contains(r"^[0-9]+$")).to_list()
        if bad:
            raise MedfuseError(f"{source}: column 'stay_id' must hold integer stay ids; {len(bad)} value(s) are not, "
                               f"e.g. {_examples([repr(v) for v in bad])}")
        column = text
    elif not dtype.is_integer():
        raise MedfuseError(f"{source}: column 'stay_id' must hold integer stay ids, not {dtype}")
    ids = column.cast(pl.Int64, strict=False)
    beyond = column.filter(ids.is_null()).to_list()
    if beyond:
        raise MedfuseError(f"{source}: column 'stay_id' has {len(beyond)} value(s) beyond the 64-bit integer range of "
                           f"stay ids, e.g. {_examples(beyond)}")
    return ids.alias("stay_id")


def check_submission(frame: pl.DataFrame, truth: pl.DataFrame, labels: list[str], source: str) -> pl.DataFrame:
    """Check a submission against the test set ``truth`` (stay_id + labels); return stay_id + probabilities
    in ``truth``'s row order, as Float64.

    >>> truth = pl.DataFrame({"stay_id": [1, 2], "mortality": [0, 1]})
    >>> check_submission(pl.DataFrame({"stay_id": [2, 1], "mortality": [0.9, 0.1]}), truth, ["mortality"], "s.csv").rows()
    [(1, 0.1), (2, 0.9)]
    """
    if frame.height == 0:
        raise MedfuseError(f"{source}: the file has no rows; expected one row per stay of the test set "
                           f"({truth.height} stays)")
    columns = frame.columns
    if "stay_id" not in columns:
        raise MedfuseError(f"{source}: no 'stay_id' column; the first column must be stay_id")
    missing = [lab for lab in labels if lab not in columns]
    extra = [c for c in columns if c != "stay_id" and c not in labels and not c.startswith(TARGET_PREFIX)]
    if missing:
        found = f"; found unexpected column '{extra[0]}'" if extra else ""
        raise MedfuseError(
            f"{source}: missing label column '{missing[0]}' ({len(missing)} of {len(labels)} missing{found}); "
            "name one probability column per label exactly as in tasks/{task}/samples.parquet"
        )
    if extra:
        raise MedfuseError(f"{source}: unexpected column '{extra[0]}' ({len(extra)} extra: {_examples(extra)}); "
                           "keep only stay_id and one column per label")
    null_ids = frame["stay_id"].null_count()
    if null_ids:
        raise MedfuseError(f"{source}: column 'stay_id' has {null_ids} empty value(s)")
    frame = frame.with_columns(stay_ids(frame["stay_id"], source))
    duplicated = frame.filter(pl.col("stay_id").is_duplicated())["stay_id"].unique(maintain_order=True)
    if duplicated.len():
        raise MedfuseError(f"{source}: {duplicated.len()} stay_id value(s) appear more than once, e.g. "
                           f"{_examples(duplicated.to_list())}")
    ids = frame.select("stay_id")
    expected = truth.select(pl.col("stay_id").cast(pl.Int64))
    absent = expected.join(ids, on="stay_id", how="anti")["stay_id"].to_list()
    if absent:
        raise MedfuseError(f"{source}: {len(absent)} test stay(s) of the {expected.height} have no row, e.g. "
                           f"stay_id {_examples(absent)}")
    unknown = ids.join(expected, on="stay_id", how="anti")["stay_id"].to_list()
    if unknown:
        raise MedfuseError(f"{source}: {len(unknown)} row(s) with a stay_id outside this test set, e.g. "
                           f"{_examples(unknown)}")
    for lab in labels:
        if not (frame.schema[lab].is_numeric() or frame.schema[lab] == pl.Null):
            raise MedfuseError(f"{source}: column '{lab}' must hold numeric probabilities, not {frame.schema[lab]}")
        values = frame.select("stay_id", pl.col(lab).cast(pl.Float64))
        bad = values.filter(pl.col(lab).is_null() | pl.col(lab).is_nan())["stay_id"].to_list()
        if bad:
            raise MedfuseError(f"{source}: column '{lab}' has {len(bad)} missing or NaN probabilities, e.g. "
                               f"stay_id {_examples(bad)}")
        bad = values.filter((pl.col(lab) < 0) | (pl.col(lab) > 1))["stay_id"].to_list()
        if bad:
            raise MedfuseError(f"{source}: column '{lab}' has {len(bad)} probabilities outside [0, 1], e.g. "
                               f"stay_id {_examples(bad)}")
    probabilities = frame.select("stay_id", *(pl.col(lab).cast(pl.Float64) for lab in labels))
    return expected.join(probabilities, on="stay_id", how="left", maintain_order="left")
