"""Image-cache decoding at MIMIC-CXR-JPG's full image size, and the time it projects for the whole archive.

The synthetic X-rays are small, so the image-cache stage's figures on them say little about MIMIC-CXR-JPG, whose
JPEGs are about 2,500 x 3,000 grayscale. This benchmark writes a handful of JPEGs of that size (smooth anatomy-like
structure plus fine grain, JPEG quality 95: about 1.5 MB each, the archive's average of 570 GB over 377,110
images), decodes each
with the stage's own function (:func:`medfuse_bench.train.image_cache.square_grayscale`, Pillow's draft mode) and
with a full decode for comparison, on one process and on ``--workers`` processes, and projects the time for
``--archive-images`` images on 2 and 16 cores from the per-process rate (the stage decodes in a process pool, so
the projection assumes the per-core rate of the multi-process run holds on more cores).

    python -m benchmarks.image_cache_fullsize --images 16 --size 256
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from medfuse_bench.train.image_cache import square_grayscale

#: MIMIC-CXR-JPG 2.0.0: images in the archive, and a typical frontal image's width x height.
ARCHIVE_IMAGES = 377_110
FULL_SIZE = (2544, 3056)


def write_xray_like(path: Path, size: tuple[int, int], seed: int) -> int:
    """A grayscale JPEG of ``size`` with large smooth shapes and fine grain; returns its bytes on disk."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    img = 60 + 40 * np.sin(x / w * np.pi) * np.sin(y / h * np.pi)
    for cx, cy in ((0.32, 0.5), (0.68, 0.5)):  # two lung fields
        r = ((x / w - cx) / 0.16) ** 2 + ((y / h - cy) / 0.3) ** 2
        img += 90 * np.exp(-r * 2)
    low = rng.normal(0, 1, (h // 32 + 1, w // 32 + 1)).astype(np.float32)
    img += 12 * np.kron(low, np.ones((32, 32), np.float32))[:h, :w]
    img += rng.normal(0, 2, (h, w)).astype(np.float32)
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "L").save(path, quality=95)
    return path.stat().st_size


def full_decode(path: str, size: int) -> np.ndarray:
    """The same square as the stage, without draft mode: every pixel decoded, then resized."""
    with Image.open(path) as img:
        width, height = img.size
        scale = size / min(width, height)
        target = (max(size, round(width * scale)), max(size, round(height * scale)))
        gray = img.convert("L").resize(target, Image.Resampling.BILINEAR)
    left, top = round((target[0] - size) / 2), round((target[1] - size) / 2)
    return np.asarray(gray.crop((left, top, left + size, top + size)), dtype=np.uint8)


def _decode_all(job: tuple[list[str], int, bool]) -> int:
    paths, size, draft = job
    for path in paths:
        (square_grayscale if draft else full_decode)(path, size)
    return len(paths)


def images_per_second(paths: list[str], size: int, draft: bool, workers: int, rounds: int) -> float:
    """Decoded images per second over ``rounds`` passes of ``paths`` split across ``workers`` processes."""
    jobs = [(paths, size, draft)] * (rounds * workers)
    start = time.perf_counter()
    if workers == 1:
        done = sum(_decode_all(job) for job in jobs)
    else:
        with get_context("spawn").Pool(workers) as pool:
            pool.map(_decode_all, [(paths, size, draft)])  # start-up outside the timing
            start = time.perf_counter()
            done = sum(pool.map(_decode_all, jobs))
    return done / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=16, help="JPEGs to write (default: 16)")
    parser.add_argument("--size", type=int, default=256, help="cache side in pixels (images.resize; default: 256)")
    parser.add_argument("--workers", type=int, default=2, help="processes of the parallel run (default: 2)")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the JPEGs per measurement (default: 2)")
    parser.add_argument("--archive-images", type=int, default=ARCHIVE_IMAGES,
                        help=f"images to project for (default: {ARCHIVE_IMAGES:,}, MIMIC-CXR-JPG 2.0.0)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sizes = [write_xray_like(Path(tmp) / f"{i}.jpg", FULL_SIZE, i) for i in range(args.images)]
        paths = [str(Path(tmp) / f"{i}.jpg") for i in range(args.images)]
        print(f"{args.images} JPEGs of {FULL_SIZE[0]} x {FULL_SIZE[1]}, median {statistics.median(sizes) / 1e6:.2f} MB;"
              f" cache side {args.size} px; load average before: {os.getloadavg()[0]:.2f}")
        full = images_per_second(paths, args.size, False, 1, 1)
        one = images_per_second(paths, args.size, True, 1, args.rounds)
        many = images_per_second(paths, args.size, True, args.workers, args.rounds)
    per_core = many / args.workers
    print(f"full decode, 1 process:  {full:7.1f} images/s ({1000 / full:.0f} ms each)")
    print(f"draft mode, 1 process:   {one:7.1f} images/s ({1000 / one:.0f} ms each), {one / full:.1f}x the full decode")
    print(f"draft mode, {args.workers} processes: {many:7.1f} images/s ({per_core:.1f} per process)")
    for cores in (2, 16):
        minutes = args.archive_images / (per_core * cores) / 60
        print(f"projected for {args.archive_images:,} images on {cores:2d} cores: {minutes:6.1f} min")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
