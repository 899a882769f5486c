"""Atomic writes, and what a killed writer leaves behind: removed by the next write of the same output; the one
reader of JSON object files and its one-line errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from medfuse_bench.errors import MedfuseError
from medfuse_bench.io import atomic_path, read_json_object, temporary_name, write_text
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


# --- reading a JSON object file -------------------------------------------------------------------------------------

HINT = "run `medfuse-bench select` first"


def test_json_object_is_read(tmp_path: Path) -> None:
    path = tmp_path / "selected.json"
    path.write_text(json.dumps({"lr": 0.001, "checkpoint": "c.pt"}))
    assert read_json_object(path, HINT) == {"lr": 0.001, "checkpoint": "c.pt"}
    assert read_json_object(str(path), HINT, what="selection file")["lr"] == 0.001


@pytest.mark.parametrize(("content", "words"), [
    (None, ["does not exist"]),
    (b"{lr: 0.001", ["is not valid JSON", "line 1 column 2"]),
    (b"\xff\xfe{}", ["is not valid JSON", "utf-8"]),
    (b"", ["is not valid JSON"]),
    (b"[1, 2]", ["must hold a JSON object, not an array"]),
    (b"3", ["must hold a JSON object, not a number"]),
    (b"null", ["must hold a JSON object, not null"]),
], ids=["missing", "invalid", "not-utf8", "empty", "array", "number", "null"])
def test_json_object_errors_are_one_line_naming_the_file_and_the_fix(tmp_path: Path, content, words) -> None:
    path = tmp_path / "selected.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MedfuseError) as info:
        read_json_object(path, HINT, what="selection file")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"selection file '{path}' ") and message.endswith(f"; {HINT}"), message
    for word in words:
        assert word in message, message


def test_json_object_error_without_a_label_starts_with_the_file(tmp_path: Path) -> None:
    with pytest.raises(MedfuseError, match=r"^'.*nowhere\.json' does not exist; run `medfuse-bench timeseries` first$"):
        read_json_object(tmp_path / "nowhere.json", "run `medfuse-bench timeseries` first")


def test_a_folder_in_place_of_the_file_is_named(tmp_path: Path) -> None:
    (tmp_path / "selected.json").mkdir()
    with pytest.raises(MedfuseError, match=r"'.*selected\.json' cannot be read \(.+\); run"):
        read_json_object(tmp_path / "selected.json", HINT)


def _readers() -> dict[str, tuple[Callable[[Path], object], str]]:
    """Each reader of a JSON object file, with the file name it reads from the folder it is given."""
    from medfuse_bench.etl.receipt import read_receipt
    from medfuse_bench.leakage_audit.provenance import read_normaliser
    from medfuse_bench.report.board import load_score_file
    from medfuse_bench.report.inputs import read_json
    from medfuse_bench.train.checkpoints import read_selected
    from medfuse_bench.train.optimal import selected_lr
    from medfuse_bench.train.select import read_result

    return {
        "read_receipt": (lambda d: read_receipt(d / "receipt.json"), "receipt.json"),
        "read_normaliser": (read_normaliser, "normalizer.json"),
        "load_score_file": (lambda d: load_score_file(d / "score.json"), "score.json"),
        "report_read_json": (lambda d: read_json(d / "provenance.json"), "provenance.json"),
        "read_selected": (lambda d: read_selected(d / "selected.json"), "selected.json"),
        "selected_lr": (lambda d: selected_lr(d / "selected.json"), "selected.json"),
        "read_result": (read_result, "result.json"),
    }


@pytest.mark.parametrize("reader", ["read_receipt", "read_normaliser", "load_score_file", "report_read_json",
                                    "read_selected", "selected_lr", "read_result"])
@pytest.mark.parametrize(("content", "word"), [("{", "is not valid JSON"), ("7", "must hold a JSON object")])
def test_every_json_object_reader_names_a_broken_file(tmp_path: Path, reader: str, content: str, word: str) -> None:
    read, name = _readers()[reader]
    (tmp_path / name).write_text(content)
    with pytest.raises(MedfuseError) as info:
        read(tmp_path)
    assert f"{tmp_path / name}' {word}" in str(info.value) and "\n" not in str(info.value)
