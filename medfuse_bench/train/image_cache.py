"""The image cache: every CXR_UNI X-ray decoded once into one memory-mapped uint8 array.

``images.npy`` holds uint8 [N, R, R]: each JPEG converted to grayscale, its shorter side resized to R
(bilinear, antialiased) and the centre R x R square cut out. ``images_index.parquet`` maps dicom_id -> row.
Training memory-maps the array and never decodes a JPEG.

How this differs from the original: it keeps 512-px-wide JPEGs and, at every load, resizes the shorter
side to 256 and crops 224 after augmentation, so the sides of a non-square image survive until the
final crop. Here the square is cut once, when caching (the crop that follows at training time is taken
from the R x R square). JPEG decoding uses PIL's draft mode (DCT-domain downscaling to at least twice
the target size) before the resize, which is much faster and visually equivalent.
"""

from __future__ import annotations

import logging
import os
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image
from tqdm import tqdm

from medfuse_bench.errors import MedfuseError
from medfuse_bench.io import atomic_path, write_parquet

log = logging.getLogger(__name__)

IMAGES_FILE = "images.npy"
INDEX_FILE = "images_index.parquet"
CHUNK = 256


#: How to skip unreadable images instead of failing, for the messages.
SKIP_HINT = "or set images.skip_unreadable: true (image-cache --skip-unreadable) to skip and count unreadable images"


class UnreadableImage(MedfuseError):
    """An X-ray file that is missing or does not decode as an image."""


def square_grayscale(path: str | os.PathLike[str], size: int) -> np.ndarray:
    """Decode one JPEG as uint8 [size, size]: grayscale, shorter side resized to ``size``, centre square."""
    try:
        with Image.open(path) as img:
            width, height = img.size
            scale = size / min(width, height)
            target = (max(size, round(width * scale)), max(size, round(height * scale)))
            img.draft("L", (2 * target[0], 2 * target[1]))  # JPEG: decode at a reduced scale, >= 2x target
            gray = img.convert("L").resize(target, Image.Resampling.BILINEAR)
    except FileNotFoundError as exc:
        raise UnreadableImage(
            f"X-ray image '{path}' does not exist; check --mimic-cxr and cxr_uni.parquet, {SKIP_HINT}"
        ) from exc
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UnreadableImage(
            f"X-ray image '{path}' cannot be read as an image ({reason}); re-download it, {SKIP_HINT}"
        ) from exc
    left = int(round((target[0] - size) / 2.0))
    top = int(round((target[1] - size) / 2.0))
    return np.asarray(gray.crop((left, top, left + size, top + size)), dtype=np.uint8)


def _decode_chunk(task: tuple[int, list[str], int, bool]) -> tuple[int, np.ndarray, list[tuple[int, str]]]:
    """Decode the images of one chunk; with ``skip`` an unreadable image leaves a zero block and is returned as
    (row, message) instead of stopping the cache."""
    start, paths, size, skip = task
    block = np.zeros((len(paths), size, size), np.uint8)
    unreadable: list[tuple[int, str]] = []
    for i, path in enumerate(paths):
        try:
            block[i] = square_grayscale(path, size)
        except UnreadableImage as exc:
            if not skip:
                raise
            unreadable.append((start + i, str(exc).split(";")[0]))
    return start, block, unreadable


def image_paths(cxr_uni: pl.DataFrame, mimic_cxr_dir: str | os.PathLike[str]) -> list[str]:
    """Absolute JPEG paths of CXR_UNI's rows, in row order."""
    root = str(mimic_cxr_dir)
    return cxr_uni.select((pl.lit(root + os.sep) + pl.col("path")).alias("p"))["p"].to_list()


def read_cxr_uni(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Read cxr_uni.parquet, checking the columns the cache and CheXpert training need."""
    path = Path(path)
    if not path.is_file():
        raise MedfuseError(f"CXR_UNI table '{path}' does not exist; run `medfuse-bench cxr-uni` first")
    frame = pl.read_parquet(path)
    missing = [c for c in ("dicom_id", "split", "path") if c not in frame.columns]
    if missing:
        raise MedfuseError(f"CXR_UNI table '{path}' lacks the column(s) {missing}")
    if frame["dicom_id"].n_unique() != frame.height:
        raise MedfuseError(f"CXR_UNI table '{path}': column 'dicom_id' has duplicates; rebuild it with `cxr-uni`")
    return frame


def linked_images_without_labels(
    cxr_uni: pl.DataFrame, samples: list[pl.DataFrame], metadata: pl.DataFrame
) -> pl.DataFrame:
    """(dicom_id, path) of X-rays linked to task samples but absent from CXR_UNI (no CheXpert row).

    Linking uses the metadata alone, so a paired stay can point at an image without labels; the cache must
    still hold it (the original code crashed on such images).

    >>> uni = pl.DataFrame({"dicom_id": ["a"], "path": ["files/p10/p10000001/s5/a.jpg"]})
    >>> s = pl.DataFrame({"cxr_dicom_id": ["a", "b", None]})
    >>> meta = pl.DataFrame({"dicom_id": ["a", "b"], "subject_id": [10000001, 10000002], "study_id": [5, 6]})
    >>> linked_images_without_labels(uni, [s], meta).to_dicts()
    [{'dicom_id': 'b', 'path': 'files/p10/p10000002/s6/b.jpg'}]
    """
    from medfuse_bench.etl.cxr import cxr_image_path

    linked = pl.concat([f.select(pl.col("cxr_dicom_id").alias("dicom_id")) for f in samples]) if samples else None
    if linked is None:
        return pl.DataFrame(schema={"dicom_id": pl.String, "path": pl.String})
    missing = linked.drop_nulls().unique().join(cxr_uni.select("dicom_id"), on="dicom_id", how="anti")
    found = missing.join(metadata.select("dicom_id", "subject_id", "study_id"), on="dicom_id", how="left")
    unknown = found.filter(pl.col("subject_id").is_null())
    if unknown.height:
        raise MedfuseError(
            f"{unknown.height} linked X-ray(s) are in no CXR metadata row (e.g. dicom_id '{unknown['dicom_id'][0]}'); "
            "rebuild the task tables from the same ingest"
        )
    return found.select("dicom_id", cxr_image_path()).sort("dicom_id")


def build_image_cache(
    cxr_uni_path: str | os.PathLike[str],
    mimic_cxr_dir: str | os.PathLike[str],
    size: int,
    out_dir: str | os.PathLike[str],
    workers: int = 1,
    samples_paths: list[str | os.PathLike[str]] | None = None,
    metadata_path: str | os.PathLike[str] | None = None,
    skip_unreadable: bool = False,
) -> Path:
    """Decode every CXR_UNI image, plus linked task images without CheXpert labels (``samples_paths`` +
    ``metadata_path``), into ``out_dir/images.npy`` + ``images_index.parquet``; return out_dir.

    A missing or undecodable image stops the cache with a message naming it, unless ``skip_unreadable``: then its
    row of the array stays zero, its index row has ``readable`` false (training treats it as no image), and the
    log counts them.
    """
    if size < 8:
        raise MedfuseError(f"--size must be at least 8 pixels, got {size}")
    cxr_uni = read_cxr_uni(cxr_uni_path)
    if samples_paths:
        if metadata_path is None:
            raise MedfuseError("--samples needs --cxr-metadata (etl/raw/cxr_metadata.parquet) to locate linked images")
        extra = linked_images_without_labels(
            cxr_uni, [pl.read_parquet(p, columns=["cxr_dicom_id"]) for p in samples_paths], pl.read_parquet(metadata_path)
        )
        if extra.height:
            log.info("adding %d linked X-rays without CheXpert labels to the cache", extra.height)
        cxr_uni = pl.concat([cxr_uni.select("dicom_id", "path"), extra])
    paths = image_paths(cxr_uni, mimic_cxr_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = [(start, paths[start : start + CHUNK], size, skip_unreadable) for start in range(0, len(paths), CHUNK)]
    unreadable: list[tuple[int, str]] = []
    log.info("caching %d X-rays at %d x %d px with %d worker(s)", len(paths), size, size, workers)
    with atomic_path(out_dir / IMAGES_FILE) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), size, size))
        # A context, so that the bar ends its line before an error message is printed.
        with tqdm(total=len(paths), desc="image cache", unit="img", mininterval=2.0) as progress:
            if workers > 1 and len(tasks) > 1:
                with get_context("spawn").Pool(workers) as pool:
                    for start, block, skipped in pool.imap_unordered(_decode_chunk, tasks):
                        array[start : start + len(block)] = block
                        unreadable += skipped
                        progress.update(len(block))
            else:
                for task in tasks:
                    start, block, skipped = _decode_chunk(task)
                    array[start : start + len(block)] = block
                    unreadable += skipped
                    progress.update(len(block))
        array.flush()
        del array
    skipped_rows = sorted(row for row, _ in unreadable)
    index = cxr_uni.select("dicom_id", pl.int_range(cxr_uni.height, dtype=pl.Int64).alias("row")).with_columns(
        readable=~pl.col("row").is_in(skipped_rows)
    )
    if unreadable:
        first = min(unreadable)[1]
        log.warning("skipped %d unreadable X-ray(s) of %d (images.skip_unreadable; index column 'readable' false), "
                    "e.g. %s", len(unreadable), len(paths), first)
    write_parquet(index, out_dir / INDEX_FILE)
    return out_dir


def open_image_cache(cache_dir: str | os.PathLike[str]) -> tuple[np.ndarray, pl.DataFrame]:
    """Memory-map ``images.npy`` and read its index; MedfuseError naming the missing file."""
    cache_dir = Path(cache_dir)
    images_path, index_path = cache_dir / IMAGES_FILE, cache_dir / INDEX_FILE
    for path in (images_path, index_path):
        if not path.is_file():
            raise MedfuseError(f"image cache file '{path}' does not exist; run `medfuse-bench image-cache` first")
    images = np.load(images_path, mmap_mode="r")
    index = pl.read_parquet(index_path)
    if images.ndim != 3 or images.dtype != np.uint8 or images.shape[1] != images.shape[2]:
        raise MedfuseError(f"image cache '{images_path}' must hold uint8 [N, R, R], got {images.dtype} {images.shape}")
    if index.height != images.shape[0]:
        raise MedfuseError(
            f"image cache index '{index_path}' has {index.height} rows but '{images_path}' holds {images.shape[0]} "
            "images; rebuild the cache"
        )
    return images, index
