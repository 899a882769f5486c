"""Atomic writes, and what a killed writer leaves behind: removed by the next write of the same output."""

from __future__ import annotations

from pathlib import Path

import pytest

from medfuse_bench.io import atomic_path, temporary_name, write_text
from medfuse_bench.synth import generate


def test_failed_write_leaves_nothing(tmp_path):
    final = tmp_path / "out" / "table.parquet"
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_text("half")
        raise RuntimeError("stop")
    assert not final.exists() and list(final.parent.iterdir()) == []


def test_stale_temporary_file_of_a_killed_write_is_removed(tmp_path):
    final = tmp_path / "images.npy"
    stale = temporary_name(final)
    assert stale.name == ".images.npy.tmp.npy" and stale.parent == tmp_path
    stale.write_bytes(b"\0" * 1000)  # what kill -9 left mid-write
    legacy = tmp_path / ".images.npy.tmp-k2j4x9.npy"  # a random name of the earlier scheme
    legacy.write_bytes(b"")
    with atomic_path(final) as tmp:
        assert tmp == stale and tmp.stat().st_size == 0  # a fresh file, not the leftover
        tmp.write_bytes(b"new")
    assert final.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images.npy"]


def test_stale_temporary_directory_is_removed(tmp_path):
    final = tmp_path / "raw"
    stale = temporary_name(final, directory=True)
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "chartevents.parquet").write_bytes(b"partial")
    with atomic_path(final, directory=True) as tmp:
        assert list(tmp.iterdir()) == []
        (tmp / "patients.parquet").write_bytes(b"x")
    assert [p.name for p in final.iterdir()] == ["patients.parquet"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_stale_temporary_of_another_kind_is_replaced(tmp_path):
    final = tmp_path / "last.pt"
    temporary_name(final).mkdir()  # a directory where the file's temporary name goes
    write_text("state", final)
    assert final.read_text() == "state" and not temporary_name(final).exists()


def test_synth_removes_the_leftover_of_a_killed_run(tmp_path: Path):
    stale = tmp_path / ".synth.tmp"
    (stale / "mimic-iv" / "hosp").mkdir(parents=True)
    (stale / "mimic-iv" / "hosp" / "admissions.csv.gz").write_bytes(b"partial")
    generate(tmp_path, 5, 1, image_size=8, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mimic-cxr-jpg", "mimic-iv"]
