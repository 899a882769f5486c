"""An unreadable X-ray: one line naming the file and the skip option; with the option, skipped and counted."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from PIL import Image

from medfuse_bench.errors import MedfuseError
from medfuse_bench.train.data import attach_image_rows, cxr_uni_set
from medfuse_bench.train.image_cache import build_image_cache, open_image_cache


def _jpeg(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((40, 40), value, np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """cxr_uni.parquet with three JPEGs; the second is a truncated download."""
    files = tmp_path / "files"
    files.mkdir()
    (files / "a.jpg").write_bytes(_jpeg(50))
    (files / "b.jpg").write_bytes(_jpeg(120)[:300])
    (files / "c.jpg").write_bytes(_jpeg(200))
    pl.DataFrame({"dicom_id": ["a", "b", "c"], "split": ["train", "train", "val"],
                  "path": ["files/a.jpg", "files/b.jpg", "files/c.jpg"],
                  "Atelectasis": [1, 0, 1]}).write_parquet(tmp_path / "cxr_uni.parquet")
    return tmp_path


def test_corrupt_jpeg_stops_the_cache_naming_it_and_the_skip_option(images):
    with pytest.raises(MedfuseError, match=r"b\.jpg' cannot be read as an image .*images\.skip_unreadable"):
        build_image_cache(images / "cxr_uni.parquet", images, 16, images / "cache")
    assert not (images / "cache" / "images.npy").exists()


def test_corrupt_jpeg_from_the_command_line_is_one_line(images, cli_process):
    proc = cli_process("image-cache", "--cxr-uni", images / "cxr_uni.parquet", "--mimic-cxr", images, "--size", 16,
                       "--out-dir", images / "cache", "--workers", 2)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith("medfuse-bench: error: X-ray image ") and "b.jpg" in message, proc.stderr
    assert "--skip-unreadable" in message
    assert sum("error" in line for line in proc.stderr.splitlines()) == 1


def test_skip_unreadable_counts_them_and_training_sees_no_image(images, caplog):
    build_image_cache(images / "cxr_uni.parquet", images, 16, images / "cache", skip_unreadable=True)
    array, index = open_image_cache(images / "cache")
    assert index.select("dicom_id", "readable").rows() == [("a", True), ("b", False), ("c", True)]
    assert (array[1] == 0).all() and array[0].mean() > 30
    assert "skipped 1 unreadable X-ray(s) of 3" in caplog.text and "b.jpg" in caplog.text

    samples = pl.DataFrame({"stay_id": [1, 2, 3], "cxr_dicom_id": ["a", "b", None]})
    assert attach_image_rows(samples, index)["image_row"].to_list() == [0, -1, -1]
    train = cxr_uni_set(images / "cxr_uni.parquet", images / "cache", "train", ["Atelectasis"])
    assert train.image_row.tolist() == [0]  # b left out of CheXpert pretraining
