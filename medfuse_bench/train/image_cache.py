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
        raise MedfuseError(f"X-ray image '{path}' does not exist; check --mimic-cxr and cxr_uni.parquet") from exc
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise MedfuseError(f"X-ray image '{path}' cannot be read as an image ({exc}); re-download it") from exc
    left = int(round((target[0] - size) / 2.0))
    top = int(round((target[1] - size) / 2.0))
    return np.asarray(gray.crop((left, top, left + size, top + size)), dtype=np.uint8)


def _decode_chunk(task: tuple[int, list[str], int]) -> tuple[int, np.ndarray]:
    start, paths, size = task
    return start, np.stack([square_grayscale(p, size) for p in paths]) if paths else np.zeros((0, size, size), np.uint8)


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


def build_image_cache(
    cxr_uni_path: str | os.PathLike[str],
    mimic_cxr_dir: str | os.PathLike[str],
    size: int,
    out_dir: str | os.PathLike[str],
    workers: int = 1,
) -> Path:
    """Decode every CXR_UNI image into ``out_dir/images.npy`` + ``images_index.parquet``; return out_dir."""
    if size < 8:
        raise MedfuseError(f"--size must be at least 8 pixels, got {size}")
    cxr_uni = read_cxr_uni(cxr_uni_path)
    paths = image_paths(cxr_uni, mimic_cxr_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tasks = [(start, paths[start : start + CHUNK], size) for start in range(0, len(paths), CHUNK)]
    log.info("caching %d X-rays at %d x %d px with %d worker(s)", len(paths), size, size, workers)
    with atomic_path(out_dir / IMAGES_FILE) as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(paths), size, size))
        progress = tqdm(total=len(paths), desc="image cache", unit="img", mininterval=2.0)
        if workers > 1 and len(tasks) > 1:
            with get_context("spawn").Pool(workers) as pool:
                for start, block in pool.imap_unordered(_decode_chunk, tasks):
                    array[start : start + len(block)] = block
                    progress.update(len(block))
        else:
            for task in tasks:
                start, block = _decode_chunk(task)
                array[start : start + len(block)] = block
                progress.update(len(block))
        progress.close()
        array.flush()
        del array
    index = cxr_uni.select("dicom_id", pl.int_range(cxr_uni.height, dtype=pl.Int64).alias("row"))
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
