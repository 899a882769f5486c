"""Tiny fabricated training inputs in the exact ETL formats, with a planted signal (used by tests/test_train*.py).

Each stay has an EHR signal (feature 0 of its time series is high) with probability 0.45 and an image
signal (a bright disc in its X-ray) with probability 0.3; the label is EHR signal OR image signal. An
EHR-only model can reach about 0.87 AUROC, a model that also sees the image about 1.0 on paired stays.
CXR_UNI holds every linked image plus unlinked ones; its "Cardiomegaly" label is the image signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from PIL import Image

from medfuse_bench.resources import CHEXPERT_LABELS

TASK = "in-hospital-mortality"
FEATURES = 76


@dataclass(frozen=True)
class Workdir:
    root: Path
    tasks_dir: Path
    cxr_uni: Path
    mimic_cxr: Path
    cache: Path


def _image(rng: np.random.Generator, signal: bool, width: int, height: int) -> np.ndarray:
    pixels = rng.normal(70, 15, size=(height, width))
    if signal:
        yy, xx = np.mgrid[:height, :width]
        disc = (yy - height / 2) ** 2 + (xx - width / 2) ** 2 < (0.3 * width) ** 2
        pixels[disc] = 230
    return np.clip(pixels, 0, 255).astype(np.uint8)


def make_workdir(root: Path, *, counts: dict[str, int] | None = None, paired_share: float = 0.6,
                 extra_images: int = 30, image_width: int = 40, seed: int = 0) -> Workdir:
    """Write tasks/{TASK}/..., cxr/cxr_uni.parquet and JPEGs under mimic-cxr-jpg/ into ``root``."""
    counts = counts or {"train": 160, "val": 60, "test": 80}
    rng = np.random.default_rng(seed)
    tasks_dir, mimic = root / "tasks", root / "mimic-cxr-jpg"
    (tasks_dir / TASK).mkdir(parents=True, exist_ok=True)
    (root / "cxr").mkdir(parents=True, exist_ok=True)
    samples, index, images = [], [], []
    stay, subject = 30000000, 10000000
    for split, n in counts.items():
        ehr_signal = rng.random(n) < 0.45
        image_signal = rng.random(n) < 0.3
        paired = rng.random(n) < paired_share
        lengths = rng.integers(3, 11, size=n)
        blocks = []
        offset = 0
        for i in range(n):
            block = rng.normal(0, 0.5, size=(lengths[i], FEATURES)).astype(np.float32)
            block[:, 0] += 1.2 if ehr_signal[i] else -1.2
            blocks.append(block)
            stay += 1
            subject += 1
            dicom = f"d{stay}" if paired[i] else None
            samples.append({"subject_id": subject, "stay_id": stay, "split": split, "cxr_dicom_id": dicom,
                            "period_length": float(lengths[i]), "age": 60.0,
                            "mortality": int(ehr_signal[i] or image_signal[i])})
            index.append({"stay_id": stay, "split": split, "offset": offset, "length": int(lengths[i])})
            offset += int(lengths[i])
            if dicom is not None:
                images.append((dicom, subject, split, bool(image_signal[i])))
        np.save(tasks_dir / TASK / f"timeseries_{split}.npy", np.concatenate(blocks))
    for j in range(extra_images):  # images linked to no stay (other views, other times)
        subject += 1
        images.append((f"x{j}", subject, ["train", "val", "test"][j % 3], bool(rng.random() < 0.4)))
    frame = pl.DataFrame(samples, schema_overrides={"mortality": pl.Int8, "cxr_dicom_id": pl.String})
    frame.write_parquet(tasks_dir / TASK / "samples.parquet")
    pl.DataFrame(index).with_columns(pl.col("offset", "length").cast(pl.Int64)).write_parquet(
        tasks_dir / TASK / "timeseries_index.parquet"
    )
    rows = []
    for k, (dicom, subj, split, signal) in enumerate(images):
        rel = f"files/p{str(subj)[:2]}/p{subj}/s{50000000 + k}/{dicom}.jpg"
        path = mimic / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(_image(rng, signal, image_width, int(image_width * 1.2))).save(path, quality=95)
        labels = {name: int(rng.random() < 0.3) for name in CHEXPERT_LABELS}
        labels["Cardiomegaly"] = int(signal)
        rows.append({"dicom_id": dicom, "subject_id": subj, "study_id": 50000000 + k, "study_datetime": None,
                     "view_position": "AP", "split": split, "path": rel, **labels})
    cxr_uni = pl.DataFrame(rows).with_columns(
        pl.col("study_datetime").cast(pl.Datetime), *(pl.col(c).cast(pl.Int8) for c in CHEXPERT_LABELS)
    )
    cxr_uni.write_parquet(root / "cxr" / "cxr_uni.parquet")
    return Workdir(root, tasks_dir, root / "cxr" / "cxr_uni.parquet", mimic, root / "cache")
