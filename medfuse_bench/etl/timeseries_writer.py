"""Writing a task's time series in bounded memory: samples are binned in chunks in the order of events.parquet and
copied into ``np.lib.format.open_memmap`` arrays sized up front, one per split; then the normaliser is applied.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
from tqdm import tqdm

from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.discretiser import (
    N_FEATURES,
    ROWS_PER_PASS,
    bin_counts,
    bin_observations,
    channel_layout,
    densify,
    prepare_samples,
    window_columns,
)
from medfuse_bench.etl.normaliser import fit_normalizer, normalize, original_state
from medfuse_bench.etl.task_tables import split_rank
from medfuse_bench.fidelity import switch
from medfuse_bench.io import atomic_path
from medfuse_bench.resources import SPLITS, feature_names

log = logging.getLogger(__name__)



def row_chunks(n_bins: np.ndarray, max_rows: int) -> list[tuple[int, int]]:
    """Consecutive sample ranges [a, b) holding at most ``max_rows`` time steps each (at least one sample).

    >>> row_chunks(np.array([3, 3, 3, 5]), 6)
    [(0, 2), (2, 3), (3, 4)]
    """
    ends = np.cumsum(n_bins)
    chunks, a = [], 0
    while a < len(ends):
        base = int(ends[a - 1]) if a else 0
        b = max(a + 1, int(np.searchsorted(ends, base + max_rows, side="right")))
        chunks.append((a, b))
        a = b
    return chunks


def _scatter(block: np.ndarray, n_bins: np.ndarray, offsets: np.ndarray, split_code: np.ndarray,
             arrays: list[np.ndarray]) -> None:
    """Copy the rows of a densified chunk (samples one after another) to each sample's rows in its split's array.

    The samples of one split inside a chunk are usually consecutive in that split, so their rows are written as one
    slice of the (memory-mapped) array; otherwise through an index.
    """
    dest = np.repeat(offsets - np.concatenate([[0], np.cumsum(n_bins)[:-1]]), n_bins) + np.arange(block.shape[0])
    which = np.repeat(split_code, n_bins)
    for code, array in enumerate(arrays):
        rows = np.flatnonzero(which == code)
        if not len(rows):
            continue
        target = dest[rows]
        if np.all(np.diff(target) == 1):
            array[target[0]:target[-1] + 1] = block[rows]
        else:
            array[target] = block[rows]


def _write_chunk(observations: tuple[np.ndarray, ...], n_bins: np.ndarray, offsets: np.ndarray,
                 split_code: np.ndarray, arrays: list[np.ndarray]) -> None:
    """Densify a chunk's observations (sorted by pos) and copy its rows into the split arrays, a few thousand rows
    at a time: each small block is filled and copied while in cache, so the arrays' memory is written once."""
    pos, bins, channel, code = observations
    buffer = np.empty((max(ROWS_PER_PASS, int(n_bins.max())), N_FEATURES), dtype=np.float32)
    for a, b in row_chunks(n_bins, ROWS_PER_PASS):
        lo, hi = np.searchsorted(pos, [a, b])
        part = n_bins[a:b]
        block = densify(pos[lo:hi], bins[lo:hi], channel[lo:hi], code[lo:hi], part, first_pos=a,
                        out=buffer[: int(part.sum())])
        _scatter(block, part, offsets[a:b], split_code[a:b], arrays)


def chunk_observations(events: pl.LazyFrame, chunk: pl.DataFrame, timestep: float,
                       key: str = "stay_id", window_by: str = "charttime") -> tuple[np.ndarray, ...]:
    """(pos, bin, channel, code) of the samples in ``chunk`` only, so memory follows the chunk, not the table.

    The range of ``key`` (the column events.parquet is sorted by first) lets the Parquet reader skip the row groups
    of other samples; the join inside :func:`bin_observations` keeps exactly the chunk's stays.
    """
    ids = chunk[key]
    obs = bin_observations(events.filter(pl.col(key).is_between(ids.min(), ids.max())), chunk, timestep, window_by)
    return obs["pos"].to_numpy(), obs["bin"].to_numpy(), obs["channel"].to_numpy(), obs["code"].to_numpy()


def write_timeseries(events: pl.DataFrame | pl.LazyFrame, samples: pl.DataFrame, out_dir: str | os.PathLike[str],
                     timestep: float = 1.0, chunk_rows: int = 250_000, *, normalizer: str = "train_split",
                     window_by: str = "charttime") -> dict:
    """Write ``timeseries_{split}.npy``, ``timeseries_index.parquet`` and ``normalizer.json`` into ``out_dir``.

    Each split's array is sized up front. The samples of all splits are then binned in one pass in the order of
    events.parquet (subject_id, stay_id; stay_id for an events table without subject_id), so each chunk (at most
    ``chunk_rows`` time steps) reads one run of the file and the whole file is read once; each densified chunk is
    copied to its samples' rows in their split's array. Under ``normalizer: train_split`` the normalizer is fitted on
    the finished train array (so its sums do not depend on the chunking); under ``original_mimic3`` it is the
    original's fixed state (:func:`original_state`). It is applied to all three arrays. All five files appear
    together or not at all. ``window_by`` (:func:`window_columns`) selects the window's events. Returns the
    normalizer dict (``normalizer`` says which one; ``means`` / ``stds`` are null for the features that are not
    normalised when the state is the original's).
    """
    if normalizer not in switch("normalizer").values:
        raise MedfuseError(f"normalizer must be one of {', '.join(switch('normalizer').values)}, got '{normalizer}'")
    window_columns(window_by)
    out_dir = Path(out_dir)
    prepared = prepare_samples(samples)
    n_bins = bin_counts(prepared["period_length"].to_numpy(), timestep)
    log.info("binning events of %d samples (timestep %s h)", prepared.height, timestep)
    events = events.lazy()
    split_of = prepared["split"].to_numpy()
    split_code = prepared.select(split_rank())["split"].to_numpy()  # index into SPLITS
    offsets = np.zeros(len(n_bins), dtype=np.int64)
    with contextlib.ExitStack() as stack:
        arrays = []
        for split in SPLITS:
            members = np.flatnonzero(split_of == split)  # contiguous
            first, count = (int(members[0]), len(members)) if len(members) else (0, 0)
            split_offsets = np.concatenate([[0], np.cumsum(n_bins[first:first + count])]).astype(np.int64)
            offsets[first:first + count] = split_offsets[:-1]
            tmp = stack.enter_context(atomic_path(out_dir / f"timeseries_{split}.npy"))
            arrays.append(np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32,
                                                    shape=(int(split_offsets[-1]), N_FEATURES)))
        by_subject = "subject_id" in prepared.columns and "subject_id" in events.collect_schema().names()
        keys = ["subject_id", "stay_id"] if by_subject else ["stay_id"]
        order = prepared.select(pl.arg_sort_by(keys, maintain_order=True)).to_series().to_numpy()
        chunks = [order[a:b] for a, b in row_chunks(n_bins[order], chunk_rows)]

        def observe(members: np.ndarray) -> tuple[np.ndarray, ...]:
            chunk = prepared[members].with_columns(pos=pl.int_range(pl.len(), dtype=pl.Int64))
            return chunk_observations(events, chunk, timestep, keys[0], window_by)

        # The next chunk's observations (Polars and NumPy sorts, outside the GIL) are found on a second thread while
        # this one densifies and copies the current chunk, so both cores work; at most two chunks are in memory.
        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(observe, chunks[0]) if chunks else None
            for i, members in enumerate(tqdm(chunks, desc="timeseries", unit="chunk", disable=not chunks)):
                observations = pending.result()
                if i + 1 < len(chunks):
                    pending = pool.submit(observe, chunks[i + 1])
                _write_chunk(observations, n_bins[members], offsets[members], split_code[members], arrays)
                del observations
        if normalizer == "original_mimic3":
            means, stds, state_timestep = original_state(timestep)
        else:
            means, stds = fit_normalizer(arrays[0])
            state_timestep = None
        train_steps = arrays[0].shape[0]
        for array in arrays:
            for a in range(0, array.shape[0], chunk_rows):
                normalize(array[a:a + chunk_rows], means, stds)
        # Unmapping leaves the written pages to the page cache, as any file write; no msync (0.8 s on 24k stays).
        del arrays
        index = prepared.select("stay_id", "split").with_columns(
            pl.Series("offset", offsets, dtype=pl.Int64), pl.Series("length", n_bins, dtype=pl.Int64)
        )
        index_tmp = stack.enter_context(atomic_path(out_dir / "timeseries_index.parquet"))
        index.write_parquet(index_tmp, compression="zstd")
        features = feature_names()
        record = {
            "normalizer": normalizer,
            "timestep_hours": float(timestep),
            "state_timestep_hours": state_timestep,
            "window_by": window_by,
            "features": features,
            "means": [None if np.isnan(x) else float(x) for x in means],
            "stds": [None if np.isnan(x) else float(x) for x in stds],
            "normalized_features": [features[i] for i in channel_layout().continuous_columns],
            "train_samples": int((split_of == "train").sum()),
            "train_steps": int(train_steps),
        }
        norm_tmp = stack.enter_context(atomic_path(out_dir / "normalizer.json"))
        norm_tmp.write_text(json.dumps(record, indent=2) + "\n")
    log.info("wrote %d samples, %d time steps to %s (normalizer %s)", prepared.height, int(n_bins.sum()), out_dir,
             normalizer)
    return record
