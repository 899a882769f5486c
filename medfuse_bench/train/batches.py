"""Batches of a :class:`~medfuse_bench.train.data.SampleSet`: a batch sampler over row numbers and a vectorised collate.

The time series of a batch are gathered with one fancy index into the memory-mapped array (padded with zeros to the
batch's longest stay), and only the images that exist are gathered from the memory-mapped cache, as uint8 (the float
conversion, augmentation and normalisation happen on the training device, see :mod:`medfuse_bench.train.augment`).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import numpy as np
import torch

from medfuse_bench.errors import MedfuseError
from medfuse_bench.train.data import EHR_FEATURES, SampleSet

# Seed streams of an epoch's random draws (numpy SeedSequence entropy words), one per purpose.
_STREAM_SHUFFLE = 0x736866
_STREAM_DRAWS = 0x647277


def batch_rows(rows: np.ndarray, batch_size: int, *, rng: np.random.Generator | None, drop_last: bool) -> list[np.ndarray]:
    """Split ``rows`` into batches, shuffled by ``rng`` when given.

    >>> [b.tolist() for b in batch_rows(np.arange(5), 2, rng=None, drop_last=False)]
    [[0, 1], [2, 3], [4]]
    >>> len(batch_rows(np.arange(5), 2, rng=None, drop_last=True))
    2
    """
    if rng is not None:
        rows = rows[rng.permutation(rows.shape[0])]
    stop = (rows.shape[0] // batch_size) * batch_size if drop_last else rows.shape[0]
    return [rows[i : i + batch_size] for i in range(0, stop, batch_size)]


def pad_gather(timeseries: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Gather stays [offset, offset + length) of a [steps, F] array into a zero-padded [B, max(length), F].

    >>> ts = np.arange(6, dtype=np.float32).reshape(6, 1)
    >>> pad_gather(ts, np.array([4, 0]), np.array([2, 3]))[..., 0].tolist()
    [[4.0, 5.0, 0.0], [0.0, 1.0, 2.0]]
    """
    steps = max(int(lengths.max()) if lengths.size else 1, 1)
    position = np.arange(steps)
    valid = position[None, :] < lengths[:, None]
    index = np.where(valid, offsets[:, None] + position[None, :], 0)
    out = np.asarray(timeseries[index.ravel()]).reshape(lengths.shape[0], steps, timeseries.shape[1])
    out[~valid] = 0.0
    return out


def collate(sample_set: SampleSet, rows: np.ndarray) -> dict[str, torch.Tensor]:
    """One batch as CPU tensors: ehr [B, T, F] float32, ehr_lengths int64, cxr_uint8 [N, R, R] (present
    images only, batch order), has_cxr bool [B], labels float32 [B, C], keys int64 [B]."""
    image_row = sample_set.image_row[rows]
    has_cxr = image_row >= 0
    if sample_set.has_ehr:
        lengths = sample_set.ts_length[rows]  # type: ignore[index]
        ehr = pad_gather(sample_set.timeseries, sample_set.ts_offset[rows], lengths)  # type: ignore[arg-type,index]
        lengths = np.maximum(lengths, 1)  # an empty stay is one step of zeros
    else:
        # Image-only sets: a one-step zero series keeps the batch layout uniform; image models ignore it.
        ehr = np.zeros((rows.shape[0], 1, EHR_FEATURES), np.float32)
        lengths = np.ones(rows.shape[0], np.int64)
    if sample_set.images is not None and has_cxr.any():
        images = np.asarray(sample_set.images[image_row[has_cxr]])
    else:
        side = sample_set.images.shape[1] if sample_set.images is not None else 1
        images = np.zeros((0, side, side), np.uint8)
    return {
        "ehr": torch.from_numpy(np.ascontiguousarray(ehr, dtype=np.float32)),
        "ehr_lengths": torch.from_numpy(lengths.astype(np.int64)),
        "cxr_uint8": torch.from_numpy(np.ascontiguousarray(images)),
        "has_cxr": torch.from_numpy(has_cxr),
        "labels": torch.from_numpy(np.ascontiguousarray(sample_set.labels[rows])),
        "keys": torch.from_numpy(sample_set.keys[rows]),
    }


def epoch_generator(seed: int, epoch: int, stream: int) -> np.random.Generator:
    """The numpy generator of one epoch and purpose: a pure function of (seed, epoch, stream), so a resumed
    run draws exactly what an uninterrupted run draws."""
    return np.random.default_rng([int(seed) % 2**63, int(epoch), stream])


class BatchLoader:
    """Batches of a sample set, one epoch at a time, collated in a background thread (``prefetch`` ahead)."""

    def __init__(
        self, sample_set: SampleSet, batch_size: int, *, shuffle: bool, drop_last: bool, seed: int = 0, prefetch: int = 2,
        pin_memory: bool = False,
    ) -> None:
        if batch_size < 1:
            raise MedfuseError(f"--batch-size must be at least 1, got {batch_size}")
        self.sample_set = sample_set
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.seed = seed
        self.prefetch = prefetch
        self.pin_memory = pin_memory  # page-locked batches let CUDA copies overlap with compute

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        rows = self.sample_set.epoch_rows(epoch_generator(self.seed, epoch, _STREAM_DRAWS))
        rng = epoch_generator(self.seed, epoch, _STREAM_SHUFFLE) if self.shuffle else None
        batches = batch_rows(rows, self.batch_size, rng=rng, drop_last=self.drop_last)
        if not batches and rows.shape[0]:  # fewer samples than one batch: keep them rather than train on nothing
            batches = batch_rows(rows, self.batch_size, rng=rng, drop_last=False)
        return batches

    def epoch(self, epoch: int = 0) -> Iterator[dict[str, torch.Tensor]]:
        """Collated batches of ``epoch``, in a fixed order for a given (seed, epoch)."""
        batches = (self._collate(rows) for rows in self.epoch_batches(epoch))
        if self.prefetch <= 0:
            yield from batches
            return
        yield from _prefetched(batches, self.prefetch)

    def _collate(self, rows: np.ndarray) -> dict[str, torch.Tensor]:
        batch = collate(self.sample_set, rows)
        return {k: v.pin_memory() for k, v in batch.items()} if self.pin_memory else batch


_DONE = object()


def _prefetched(items: Iterator[dict[str, torch.Tensor]], depth: int) -> Iterator[dict[str, torch.Tensor]]:
    """Run ``items`` in a daemon thread, ``depth`` ahead; errors re-raise in the consumer."""
    out: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(exc)

    thread = threading.Thread(target=work, daemon=True, name="batch-prefetch")
    thread.start()
    try:
        while True:
            item = out.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        # Join so no batch is being built when the interpreter exits (a daemon thread killed inside a torch op
        # aborts the process).
        thread.join(timeout=10)
