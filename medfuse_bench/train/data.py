"""Sample sets and batches: task tables + time-series arrays + the image cache -> model batches.

A :class:`SampleSet` holds, per sample, its key (stay_id, or dicom row for CXR_UNI), labels, where its time
series lies in the split's array and which cached image it has (-1 = none). The sets of the paper are
selections of a split's samples (Table 1 of the paper):

- EHR_PAIRED / EHR_PARTIAL: the EHR of paired / of all stays;
- CXR_PAIRED: the linked images of paired stays, task labels;
- (EHR+CXR)_PAIRED: paired stays, both modalities;
- (EHR+CXR)_PARTIAL: paired stays + a fraction p of the unpaired (EHR-only) stays. By default a seeded
  sample without replacement of round(p * n_unpaired) unpaired stays, fixed for the run; with
  ``with_replacement`` (switch ``unimodal_sampling``) as MedFuse's dataset, int(p * n_unpaired) draws with
  replacement, redrawn every epoch (MedFuse issue #12);
- paired_nocxr: the paired stays with their image withheld;
- CXR_UNI: every image of a CXR_UNI split (all views), 14 CheXpert labels.

Batches of these sets come from :mod:`medfuse_bench.train.batches`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl

from medfuse_bench.errors import MedfuseError
from medfuse_bench.resources import SPLITS
from medfuse_bench.train.image_cache import open_image_cache, read_cxr_uni

log = logging.getLogger(__name__)

SAMPLE_COLUMNS: tuple[str, ...] = ("stay_id", "split", "cxr_dicom_id")
INDEX_COLUMNS: tuple[str, ...] = ("stay_id", "split", "offset", "length")
EHR_FEATURES = 76

# Tags that separate the random streams derived from the run's seed.
_STREAM_UNPAIRED = 0x756E70


@dataclass(frozen=True)
class SampleSet:
    """Samples of one set; row r of every array describes the same sample."""

    name: str
    keys: np.ndarray  # int64 [n]: stay_id, or the image's cache row for CXR_UNI
    labels: np.ndarray  # float32 [n, C]
    image_row: np.ndarray  # int64 [n], -1 = no image (all -1 for EHR-only sets)
    ts_offset: np.ndarray | None = None  # int64 [n]; None = no EHR in this set
    ts_length: np.ndarray | None = None
    timeseries: np.ndarray | None = None  # float32 [steps, F] (memory-mapped)
    images: np.ndarray | None = None  # uint8 [N, R, R] (memory-mapped)
    #: A partial training set drawn with replacement (switch unimodal_sampling): an epoch's rows from a generator.
    resample: Callable[[np.random.Generator], np.ndarray] | None = None

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    @property
    def has_ehr(self) -> bool:
        return self.timeseries is not None

    @property
    def paired_count(self) -> int:
        return int((self.image_row >= 0).sum())

    def epoch_rows(self, rng: np.random.Generator) -> np.ndarray:
        """Row numbers of one epoch, before shuffling."""
        return self.resample(rng) if self.resample is not None else np.arange(len(self), dtype=np.int64)

    def epoch_size(self) -> int:
        return int(self.epoch_rows(np.random.default_rng(0)).shape[0])


@dataclass(frozen=True)
class TaskData:
    """Everything a task's sets are made from: samples joined to the index and image rows, arrays per split."""

    task: str
    labels: list[str]
    samples: pl.DataFrame  # samples.parquet order + ts_offset, ts_length, image_row (-1 = none)
    timeseries: dict[str, np.ndarray]
    images: np.ndarray | None


def _require(frame: pl.DataFrame, columns: tuple[str, ...] | list[str], path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MedfuseError(f"'{path}' lacks the column(s) {missing}; rebuild it with the ETL step that writes it")


def attach_index(samples: pl.DataFrame, index: pl.DataFrame, source: str = "timeseries_index.parquet") -> pl.DataFrame:
    """Add ts_offset / ts_length from the index to every sample (same stay and split), keeping sample order.

    >>> s = pl.DataFrame({"stay_id": [7, 3], "split": ["train", "val"]})
    >>> i = pl.DataFrame({"stay_id": [3, 7], "split": ["val", "train"], "offset": [0, 5], "length": [2, 4]})
    >>> attach_index(s, i).select("stay_id", "ts_offset", "ts_length").rows()
    [(7, 5, 4), (3, 0, 2)]
    """
    joined = samples.join(
        index.select(
            "stay_id", "split", pl.col("offset").cast(pl.Int64).alias("ts_offset"), pl.col("length").cast(pl.Int64).alias("ts_length")
        ),
        on=["stay_id", "split"],
        how="left",
        maintain_order="left",
    )
    lost = joined.filter(pl.col("ts_offset").is_null())
    if lost.height:
        raise MedfuseError(
            f"{source}: {lost.height} sample(s) have no time series (e.g. stay_id {lost['stay_id'][0]} in split "
            f"'{lost['split'][0]}'); rebuild the task's time series"
        )
    return joined


def attach_image_rows(samples: pl.DataFrame, index: pl.DataFrame, source: str = "images_index.parquet") -> pl.DataFrame:
    """Add image_row (cache row of cxr_dicom_id, -1 = no linked image), keeping sample order.

    >>> s = pl.DataFrame({"stay_id": [1, 2], "cxr_dicom_id": ["b", None]})
    >>> attach_image_rows(s, pl.DataFrame({"dicom_id": ["a", "b"], "row": [0, 1]}))["image_row"].to_list()
    [1, -1]
    """
    joined = samples.join(
        index.select(pl.col("dicom_id").alias("cxr_dicom_id"), pl.col("row").cast(pl.Int64).alias("image_row"),
                     _readable(index)),
        on="cxr_dicom_id",
        how="left",
        maintain_order="left",
    )
    lost = joined.filter(pl.col("cxr_dicom_id").is_not_null() & pl.col("image_row").is_null())
    if lost.height:
        raise MedfuseError(
            f"{source}: {lost.height} linked X-ray(s) are not in the image cache (e.g. dicom_id "
            f"'{lost['cxr_dicom_id'][0]}'); rebuild the cache from the same cxr_uni.parquet as the task tables"
        )
    skipped = joined.filter(pl.col("_readable").not_()).height
    if skipped:
        log.warning("%s: %d linked X-ray(s) were unreadable and skipped by the cache; those samples count as "
                    "having no image", source, skipped)
    image_row = pl.when(pl.col("_readable").not_()).then(None).otherwise(pl.col("image_row"))
    return joined.with_columns(image_row.fill_null(-1).alias("image_row")).drop("_readable")


def _readable(index: pl.DataFrame) -> pl.Expr:
    """The cache's ``readable`` flag as ``_readable`` (true for caches written without the column)."""
    flag = pl.col("readable") if "readable" in index.columns else pl.lit(True)
    return flag.fill_null(True).alias("_readable")


def load_task_data(
    tasks_dir: str | os.PathLike[str], task: str, labels: list[str], image_cache: str | os.PathLike[str] | None,
    timeseries: str = "",
) -> TaskData:
    """Read a task's samples, time-series index and arrays (memory-mapped), and the image cache when given.

    ``timeseries`` names the subfolder of the task folder holding the index and arrays ("" = the task folder).
    """
    folder = Path(tasks_dir) / task
    arrays_folder = folder / timeseries
    samples_path, index_path = folder / "samples.parquet", arrays_folder / "timeseries_index.parquet"
    for path in (samples_path, index_path):
        if not path.is_file():
            raise MedfuseError(f"task file '{path}' does not exist; run the ETL for task '{task}' first")
    samples = pl.read_parquet(samples_path)
    _require(samples, [*SAMPLE_COLUMNS, *labels], samples_path)
    index = pl.read_parquet(index_path)
    _require(index, INDEX_COLUMNS, index_path)
    samples = attach_index(samples, index, str(index_path))
    timeseries: dict[str, np.ndarray] = {}
    for split in SPLITS:
        path = arrays_folder / f"timeseries_{split}.npy"
        if not path.is_file():
            raise MedfuseError(f"time-series file '{path}' does not exist; run the ETL for task '{task}' first")
        array = np.load(path, mmap_mode="r")
        if array.ndim != 2 or array.dtype != np.float32:
            raise MedfuseError(f"time-series file '{path}' must hold float32 [steps, features], got {array.dtype} {array.shape}")
        ends = samples.filter(pl.col("split") == split).select((pl.col("ts_offset") + pl.col("ts_length")).max())
        end = ends.item() or 0
        if end > array.shape[0]:
            raise MedfuseError(f"time-series file '{path}' has {array.shape[0]} rows but the index needs {end}")
        timeseries[split] = array
    images = None
    if image_cache is not None:
        images, image_index = open_image_cache(image_cache)
        samples = attach_image_rows(samples, image_index, str(Path(image_cache) / "images_index.parquet"))
    else:
        samples = samples.with_columns(pl.lit(-1, pl.Int64).alias("image_row"))
    samples = samples.with_columns(pl.col(labels).fill_null(0))
    return TaskData(task, list(labels), samples, timeseries, images)


def _label_matrix(frame: pl.DataFrame, labels: list[str]) -> np.ndarray:
    return frame.select(pl.col(labels).cast(pl.Float32)).to_numpy().astype(np.float32, copy=False).reshape(frame.height, len(labels))


def split_set(
    data: TaskData, split: str, *, stays: str, ehr: bool = True, images: bool = True, name: str | None = None
) -> SampleSet:
    """The samples of ``split``: ``stays`` = "paired" (linked image) or "all"; drop a modality with ehr/images."""
    if stays not in ("paired", "all"):
        raise ValueError(stays)
    frame = data.samples.filter(pl.col("split") == split)
    if stays == "paired":
        frame = frame.filter(pl.col("cxr_dicom_id").is_not_null())
    if images and data.images is None and frame["cxr_dicom_id"].is_not_null().any():
        raise MedfuseError("this experiment needs X-ray images; pass --image-cache")
    image_row = frame["image_row"].to_numpy().astype(np.int64) if images else np.full(frame.height, -1, np.int64)
    return SampleSet(
        name=name or f"{split}:{stays}",
        keys=frame["stay_id"].to_numpy().astype(np.int64),
        labels=_label_matrix(frame, data.labels),
        image_row=image_row,
        ts_offset=frame["ts_offset"].to_numpy().astype(np.int64) if ehr else None,
        ts_length=frame["ts_length"].to_numpy().astype(np.int64) if ehr else None,
        timeseries=data.timeseries[split] if ehr else None,
        images=data.images if images else None,
    )


def take_rows(sample_set: SampleSet, rows: np.ndarray, name: str | None = None) -> SampleSet:
    """A new set of the given rows (in that order)."""
    pick = lambda a: None if a is None else a[rows]  # noqa: E731
    return replace(
        sample_set,
        name=name or sample_set.name,
        keys=sample_set.keys[rows],
        labels=sample_set.labels[rows],
        image_row=sample_set.image_row[rows],
        ts_offset=pick(sample_set.ts_offset),
        ts_length=pick(sample_set.ts_length),
        resample=None,
    )


def unpaired_sample(n_unpaired: int, fraction: float, seed: int) -> np.ndarray:
    """Corrected partial set: round(fraction * n_unpaired) distinct unpaired positions, sorted, seeded.

    >>> unpaired_sample(10, 0.3, 1).shape, len(set(unpaired_sample(10, 0.3, 1)))
    ((3,), 3)
    >>> unpaired_sample(4, 1.0, 1).tolist()
    [0, 1, 2, 3]
    """
    count = int(np.floor(fraction * n_unpaired + 0.5))
    rng = np.random.default_rng([int(seed) % 2**63, _STREAM_UNPAIRED])
    return np.sort(rng.choice(n_unpaired, size=count, replace=False)).astype(np.int64)


def unpaired_draws(n_unpaired: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Original partial set: int(fraction * n_unpaired) unpaired positions drawn with replacement."""
    count = int(fraction * n_unpaired)
    if n_unpaired == 0:
        return np.zeros(0, np.int64)
    return rng.integers(0, n_unpaired, size=count).astype(np.int64)


def partial_set(data: TaskData, split: str, fraction: float, *, with_replacement: bool, seed: int) -> SampleSet:
    """(EHR+CXR)_PARTIAL: paired stays + a fraction of the unpaired ones (see the module docstring)."""
    full = split_set(data, split, stays="all", name=f"{split}:partial")
    paired = np.flatnonzero(full.image_row >= 0)
    unpaired = np.flatnonzero(full.image_row < 0)
    if with_replacement:
        # Paired first, then the unpaired pool; each epoch draws int(p * n) pool positions with replacement.
        pool = take_rows(full, np.concatenate([paired, unpaired]))
        n_paired, n_unpaired = paired.shape[0], unpaired.shape[0]

        def resample(rng: np.random.Generator) -> np.ndarray:
            return np.concatenate([np.arange(n_paired), n_paired + unpaired_draws(n_unpaired, fraction, rng)])

        return replace(pool, resample=resample)
    chosen = unpaired[unpaired_sample(unpaired.shape[0], fraction, seed)]
    return take_rows(full, np.sort(np.concatenate([paired, chosen])))


def cxr_uni_set(cxr_uni_path: str | os.PathLike[str], image_cache: str | os.PathLike[str], split: str, labels: list[str]) -> SampleSet:
    """CXR_UNI images of one split with their CheXpert labels (uncertain and blank are already 0)."""
    frame = read_cxr_uni(cxr_uni_path)
    _require(frame, labels, Path(cxr_uni_path))
    images, index = open_image_cache(image_cache)
    frame = frame.filter(pl.col("split") == split).join(
        index.select("dicom_id", pl.col("row").cast(pl.Int64), _readable(index)), on="dicom_id", how="left",
        maintain_order="left",
    )
    lost = frame.filter(pl.col("row").is_null())
    if lost.height:
        raise MedfuseError(
            f"image cache '{image_cache}' lacks {lost.height} CXR_UNI image(s) (e.g. dicom_id '{lost['dicom_id'][0]}'); "
            "rebuild the cache from the same cxr_uni.parquet"
        )
    unreadable = frame.filter(pl.col("_readable").not_()).height
    if unreadable:
        log.warning("image cache '%s': %d unreadable CXR_UNI image(s) of split %s skipped", image_cache, unreadable,
                    split)
    frame = frame.filter(pl.col("_readable")).drop("_readable")
    frame = frame.with_columns(pl.col(labels).fill_null(0))
    rows = frame["row"].to_numpy().astype(np.int64)
    return SampleSet(name=f"{split}:cxr_uni", keys=rows, labels=_label_matrix(frame, labels), image_row=rows, images=images)
