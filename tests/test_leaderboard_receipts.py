"""Scores across groups: each score records the receipt it was measured on, and the leaderboard never ranks
entries of two receipts together."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from medfuse_bench import __version__
from medfuse_bench.cli import main
from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.receipt import receipt_text
from medfuse_bench.etl.receipt_hash import table_hash
from medfuse_bench.report import board, leaderboard
from medfuse_bench.report.inputs import Workdir
from medfuse_bench.resources import task_labels

from test_leaderboard import BOOT, META, good_submission, make_workdir, write

TASK = "in-hospital-mortality"


def write_receipt(wd: Workdir, *, version: str = "2.2", leaky: bool = False) -> str:
    """A receipt whose test-split table hashes match the workdir's samples (the rest as `receipt` writes it)."""
    tasks = {}
    for task in ("in-hospital-mortality", "phenotyping"):
        samples = pl.read_parquet(wd.samples(task))
        test = samples.filter(pl.col("split") == "test")
        tasks[task] = {"splits": {"test": {"stays": test.height, "table_sha256": table_hash(test, task_labels(task)),
                                           "timeseries_sha256": "0" * 64}}}
    receipt = {"format": 1, "package_version": __version__, "mimic_iv": {"version": version},
               "cohort_preset": "medfuse-2022" if leaky else "medfuse", "leaky": leaky, "tasks": tasks}
    path = wd.root / "receipt.json"
    path.write_text(receipt_text(receipt))
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def groups(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Workdir, str]]:
    """Two groups' workdirs on the same samples but different receipts (another MIMIC version, a leaky preset)."""
    root = tmp_path_factory.mktemp("groups")
    a = make_workdir(root / "a", n=160)
    b = Workdir.at(root / "b")
    shutil.copytree(a.root, b.root)
    (a.root / "config.resolved.yaml").write_text("seed: 1\n")
    return {"a": (a, write_receipt(a)), "b": (b, write_receipt(b, version="3.1", leaky=True))}


def _score(wd: Workdir, name: str, tmp_path: Path, strength: float) -> dict:
    path = write(good_submission(wd, TASK, strength=strength, seed=len(name)), tmp_path / f"{name}.csv",
                 META | {"name": name.title()})
    assert main(["score", str(path), "--task", TASK, "--workdir", str(wd.root), *BOOT]) == 0
    return json.loads(leaderboard.score_path(wd, TASK, "partial", name).read_text())


def test_score_records_receipt_config_and_version(groups, tmp_path: Path) -> None:
    (a, receipt_a), (b, receipt_b) = groups["a"], groups["b"]
    score = _score(a, "alpha", tmp_path, 2.0)
    assert score["receipt_sha256"] == receipt_a and score["package_version"] == __version__
    assert score["config_sha256"] == hashlib.sha256(b"seed: 1\n").hexdigest()
    assert score["data"]["leaky"] is False and score["data"]["cohort_preset"] == "medfuse"
    assert len(score["submission_sha256"]) == 64
    other = _score(b, "beta", tmp_path, 1.0)
    assert other["receipt_sha256"] == receipt_b != receipt_a and other["data"]["leaky"] is True
    assert other["config_sha256"] is None  # group b kept no resolved config


def test_leaderboard_of_a_folder_of_two_receipts_prints_two_tables(groups, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (a, receipt_a), (b, receipt_b) = groups["a"], groups["b"]
    for wd, name, strength in ((a, "gamma", 0.3), (b, "delta", 3.0), (b, "epsilon", 0.1)):
        _score(wd, name, tmp_path, strength)
    pooled = tmp_path / "pooled"
    pooled.mkdir()
    for wd, tag in ((a, "a"), (b, "b")):  # a flat folder, as a group would send its files
        for path in (wd.scores / TASK / "partial").glob("*.json"):
            shutil.copy(path, pooled / f"{tag}-{path.name}")
    fresh = make_workdir(tmp_path / "host", n=40)  # a host workdir whose own test set is neither a's nor b's
    capsys.readouterr()
    assert main(["leaderboard", "--workdir", str(fresh.root), "--task", TASK, "--test-set", "partial", "--scores",
                 str(pooled), *BOOT]) == 0
    out = capsys.readouterr().out
    assert out.count(f"### Receipt `{receipt_a[:12]}`") == 1 and out.count(f"### Receipt `{receipt_b[:12]}`") == 1
    board_csv = pl.read_csv(fresh.leaderboard / f"{TASK}_partial.csv")
    tables = {key: board_csv.filter(pl.col("receipt_sha256") == key) for key in (receipt_a, receipt_b)}
    assert set(tables[receipt_a]["name"]) >= {"gamma"} and "delta" not in set(tables[receipt_a]["name"])
    assert set(tables[receipt_b]["name"]) >= {"delta", "epsilon"} and "gamma" not in set(tables[receipt_b]["name"])
    for table in tables.values():  # ranks restart in every receipt's table
        assert table["rank"].to_list() == list(range(1, table.height + 1))
        assert table["auroc"].is_sorted(descending=True)
    assert tables[receipt_b]["leaky"].all() and not tables[receipt_a]["leaky"].any()
    # the host's own baselines have no receipt: a third table
    assert board_csv.filter(pl.col("receipt_sha256").is_null())["baseline"].all()
    # paired columns and calibration only where the host holds the probabilities: its own test set's table
    assert board_csv.filter(pl.col("receipt_sha256").is_null())["ece"].is_not_null().all()
    assert board_csv.filter(pl.col("receipt_sha256").is_not_null())["ece"].is_null().all()
    md = (fresh.leaderboard / f"{TASK}_partial.md").read_text()
    section_b = md.split(f"### Receipt `{receipt_b[:12]}`")[1].split("###")[0]
    assert "WARNING: leaky task data" in section_b and "Delta (leaky)" in section_b
    assert "Data: MIMIC-IV 3.1, cohort preset medfuse-2022 (leaky)." in section_b
    assert "WARNING: leaky" not in md.split(f"### Receipt `{receipt_a[:12]}`")[1].split("###")[0]


def test_the_workdirs_own_receipt_comes_first(groups, tmp_path: Path) -> None:
    (a, receipt_a), (b, receipt_b) = groups["a"], groups["b"]
    assert main(["leaderboard", "--workdir", str(a.root), "--task", TASK, "--test-set", "partial", "--scores",
                 str(b.scores), *BOOT]) == 0
    md = (a.leaderboard / f"{TASK}_partial.md").read_text()
    assert md.index(f"`{receipt_a[:12]}` (this workdir)") < md.index(f"`{receipt_b[:12]}`")
    board_csv = pl.read_csv(a.leaderboard / f"{TASK}_partial.csv")
    assert set(board_csv.filter(pl.col("baseline"))["receipt_sha256"]) == {receipt_a}


def test_a_receipt_older_than_the_task_table_is_an_error(tmp_path: Path) -> None:
    wd = make_workdir(tmp_path / "w", n=60)
    write_receipt(wd)
    samples = pl.read_parquet(wd.samples(TASK))
    samples.with_columns(pl.when(pl.col("split") == "test").then(1 - pl.col("mortality")).otherwise(
        pl.col("mortality")).cast(pl.Int8).alias("mortality")).write_parquet(wd.samples(TASK))
    with pytest.raises(MedfuseError, match="does not match the test split"):
        leaderboard.baseline_scores(wd, TASK, "partial", 20, 1)


def test_missing_scores_folder_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MedfuseError, match="'.*nowhere' does not exist"):
        board.folder_scores([tmp_path / "nowhere"], TASK, "partial")


class PageParser(HTMLParser):
    """What the page's structure test needs: tables, scripts, styles, and every attribute holding an address."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, str | None]] = []
        self.rows: dict[int, int] = {}
        self.svgs = 0
        self.scripts: list[dict[str, str | None]] = []
        self.script_text = ""
        self.style_text = ""
        self.addresses: list[tuple[str, str, str]] = []
        self.tags: set[str] = set()
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        found = dict(attrs)
        for name, value in attrs:
            if value and re.search(r"https?:|//", value):
                self.addresses.append((tag, name, value))
        if tag == "table":
            self.tables.append(found)
        elif tag == "tr" and self.tables:
            self.rows[len(self.tables) - 1] = self.rows.get(len(self.tables) - 1, 0) + 1
        elif tag == "svg":
            self.svgs += 1
        elif tag == "script":
            self.scripts.append(found)
        self._in = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._in = None

    def handle_data(self, data: str) -> None:
        if self._in == "script":
            self.script_text += data
        elif self._in == "style":
            self.style_text += data


def test_leaderboard_page_is_self_contained_with_a_table_per_receipt(groups, tmp_path: Path) -> None:
    (a, receipt_a), (b, receipt_b) = groups["a"], groups["b"]
    _score(b, "zeta", tmp_path, 2.0)
    assert main(["leaderboard", "--workdir", str(a.root), "--task", TASK, "--test-set", "partial", "paired",
                 "--scores", str(b.scores), *BOOT]) == 0
    page = (a.leaderboard / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    parser = PageParser()
    parser.feed(page)
    # one sortable table per receipt: the partial test set has both receipts, the paired one only a's baselines
    receipts = [t.get("data-receipt") for t in parser.tables]
    assert all("sortable" in (t.get("class") or "") for t in parser.tables)
    assert sorted(receipts) == sorted([receipt_a, receipt_b, receipt_a])
    board_csv = pl.read_csv(a.leaderboard / f"{TASK}_partial.csv")
    for i, table in enumerate(parser.tables[:2]):  # header row + one row per entry of that receipt
        assert parser.rows[i] == 1 + board_csv.filter(pl.col("receipt_sha256") == table["data-receipt"]).height
    # two intervals drawn per entry (AUROC, AUPRC), inline
    entries = sum(parser.rows.values()) - len(parser.tables)
    assert parser.svgs == 2 * entries
    # the sort script is inline; no stylesheet, script, image or font is fetched from anywhere
    assert parser.scripts == [{}] and "addEventListener" in parser.script_text and ".sort(" in parser.script_text
    assert not parser.tags & {"link", "img", "iframe", "object", "embed"}
    assert "url(" not in parser.style_text and "@import" not in parser.style_text
    assert "http" not in parser.script_text + parser.style_text
    # the only addresses are the entries' code links
    assert parser.addresses and all(tag == "a" and name == "href" and value == META["code_url"]
                                    for tag, name, value in parser.addresses)
    assert "(leaky)" in page and "Leaky task data" in page


def test_a_whole_workdir_as_scores_folder_reads_only_its_score_files(groups, tmp_path: Path) -> None:
    (a, _), (b, receipt_b) = groups["a"], groups["b"]
    _score(b, "eta", tmp_path, 1.5)
    entries = board.folder_scores([b.root], TASK, "partial")  # holds receipt.json and other JSON files too
    assert "eta" in {e["name"] for e in entries} and {e["receipt_sha256"] for e in entries} == {receipt_b}
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.json").write_text(json.dumps({"name": "x", "auroc": {}}))
    with pytest.raises(MedfuseError, match="x.json' lacks name, task, test_set"):
        board.folder_scores([broken], TASK, "partial")
