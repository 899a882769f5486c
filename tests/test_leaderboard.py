"""Leaderboard submissions through the command line: every bad file gives one error line and exit code 2."""

from __future__ import annotations

import doctest
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml

from medfuse_bench.cli import main
from medfuse_bench.errors import MedfuseError
from medfuse_bench.evaluation.metrics import evaluate
from medfuse_bench.report import leaderboard, submission
from medfuse_bench.report.inputs import Workdir, select_test_set
from medfuse_bench.resources import task_labels

META = {"name": "My model", "authors": ["A. Author", "B. Author"], "description": "a test entry",
        "code_url": "https://example.org/code"}
BOOT = ["--bootstrap", "50", "--seed", "3"]


def make_workdir(root: Path, n: int = 240) -> Workdir:
    """Samples of both tasks and the paired/partial predictions of two pipeline models."""
    wd = Workdir.at(root)
    for t, task in enumerate(("in-hospital-mortality", "phenotyping")):
        rng = np.random.default_rng(t)
        labels = task_labels(task)
        samples = pl.DataFrame({
            "subject_id": np.arange(n), "stay_id": np.arange(n) + 1000,
            "split": rng.choice(["train", "val", "test"], n, p=[0.5, 0.1, 0.4]),
            "cxr_dicom_id": pl.Series([f"d{i}" if rng.random() < 0.5 else None for i in range(n)], dtype=pl.String),
            "period_length": np.full(n, 48.0), "age": rng.uniform(18, 90, n),
        }).with_columns(pl.Series(lab, (rng.random(n) < 0.3).astype(np.int8)) for lab in labels)
        wd.samples(task).parent.mkdir(parents=True, exist_ok=True)
        samples.write_parquet(wd.samples(task))
        for e, experiment in enumerate(("ehr-partial", "medfuse-optimal")):
            for test_set in ("paired", "partial"):
                test = select_test_set(samples, test_set)
                y = test.select(labels).to_numpy()
                scores = 1 / (1 + np.exp(-(rng.normal(0, 1, y.shape) + (0.5 + e) * (2 * y - 1))))
                frame = pl.DataFrame({"stay_id": test["stay_id"]}).with_columns(
                    *(pl.Series(f"target:{lab}", y[:, j], dtype=pl.Int8) for j, lab in enumerate(labels)),
                    *(pl.Series(lab, scores[:, j]) for j, lab in enumerate(labels)),
                )
                path = wd.predictions(task, experiment, test_set)
                path.parent.mkdir(parents=True, exist_ok=True)
                frame.write_parquet(path)
    return wd


def good_submission(
    wd: Workdir, task: str, test_set: str = "partial", strength: float = 1.0, seed: int = 0
) -> pl.DataFrame:
    truth = select_test_set(pl.read_parquet(wd.samples(task)), test_set)
    labels = task_labels(task)
    rng = np.random.default_rng(seed)
    y = truth.select(labels).to_numpy()
    scores = 1 / (1 + np.exp(-(rng.normal(0, 1, y.shape) + strength * (2 * y - 1))))
    return pl.DataFrame({"stay_id": truth["stay_id"]}).with_columns(
        pl.Series(lab, scores[:, j]) for j, lab in enumerate(labels)).sample(fraction=1.0, shuffle=True, seed=1)


def write(frame: pl.DataFrame, path: Path, meta: dict | None = META) -> Path:
    if path.suffix == ".csv":
        frame.write_csv(path)
    else:
        frame.write_parquet(path)
    if meta is not None:
        path.with_name(f"{path.stem}.meta.yaml").write_text(yaml.safe_dump(meta))
    return path


@pytest.fixture(scope="module")
def wd(tmp_path_factory: pytest.TempPathFactory) -> Workdir:
    return make_workdir(tmp_path_factory.mktemp("wd"))


def _bad_cases(wd: Workdir, folder: Path) -> dict[str, tuple[Path, str, list[str]] | tuple[Path, str, list[str], list[str]]]:
    """case -> (submission, task, words the error line must contain[, extra arguments])."""
    ihm, pheno = "in-hospital-mortality", "phenotyping"
    good = good_submission(wd, ihm)
    gp = good_submission(wd, pheno)
    dup = pl.concat([good, good.head(2)])
    nan = good.with_columns(pl.when(pl.int_range(pl.len()) < 4).then(float("nan")).otherwise(pl.col("mortality"))
                            .alias("mortality"))
    out_of_range = good.with_columns(pl.when(pl.int_range(pl.len()) == 0).then(1.5).otherwise(pl.col("mortality"))
                                     .alias("mortality"))
    extra_row = pl.concat([good, pl.DataFrame({"stay_id": [999_999], "mortality": [0.5]})])
    garbage = folder / "garbage.parquet"
    garbage.write_bytes(b"this is not parquet at all")
    garbage.with_name("garbage.meta.yaml").write_text(yaml.safe_dump(META))
    beyond_int64 = pl.concat([good.with_columns(pl.col("stay_id").cast(pl.Int128)),
                              pl.DataFrame({"stay_id": pl.Series([10**25], dtype=pl.Int128), "mortality": [0.5]})])
    directory = folder / "folder.csv"
    directory.mkdir()
    return {
        "int128_beyond_int64": (write(beyond_int64, folder / "i128.parquet"), ihm,
                                ["column 'stay_id'", "1 value(s) beyond the 64-bit integer range", str(10**25)]),
        "int128_beyond_int64_csv": (write(beyond_int64, folder / "i128.csv"), ihm,
                                    ["column 'stay_id'", "beyond the 64-bit integer range"]),
        "uint64_beyond_int64": (write(pl.concat([good.with_columns(pl.col("stay_id").cast(pl.UInt64)), pl.DataFrame(
            {"stay_id": pl.Series([2**64 - 1], dtype=pl.UInt64), "mortality": [0.5]})]), folder / "u64.parquet"), ihm,
                                ["column 'stay_id'", "beyond the 64-bit integer range"]),
        "float_stay_ids": (write(good.with_columns(pl.col("stay_id").cast(pl.Float64)), folder / "fids.parquet"), ihm,
                           ["column 'stay_id' must hold integer stay ids, not Float64"]),
        "text_stay_ids": (write(good.with_columns(pl.format("s{}", "stay_id").alias("stay_id")), folder / "sids.csv"),
                          ihm, ["column 'stay_id' must hold integer stay ids", f"value(s) are not, e.g. 's"]),
        "header_only_csv": (write(good.head(0), folder / "header.csv"), ihm, ["header.csv", "has no rows"]),
        "header_only_parquet": (write(gp.head(0), folder / "header.parquet"), pheno, ["header.parquet", "has no rows"]),
        "directory": (directory, ihm, ["folder.csv", "is a directory; expected a file"]),
        "name_escapes_workdir": (write(good, folder / "escape.csv"), ihm, ["'../../escaped'", "not a plain file name"],
                                 ["--name", "../../escaped"]),
        "name_is_a_path": (write(good, folder / "abs.csv"), ihm, ["not a plain file name"],
                           ["--name", str(folder / "abs-name")]),
        "missing_stays": (write(good.slice(3), folder / "missing.csv"), ihm, ["3 test stay(s)", "no row"]),
        "extra_stays": (write(extra_row, folder / "extra.csv"), ihm, ["1 row(s)", "999999"]),
        "duplicated_rows": (write(dup, folder / "dup.parquet"), ihm, ["2 stay_id value(s)", "more than once"]),
        "nan_probability": (write(nan, folder / "nan.parquet"), ihm, ["'mortality'", "4 missing or NaN"]),
        "out_of_range": (write(out_of_range, folder / "range.csv"), ihm, ["'mortality'", "outside [0, 1]"]),
        "wrong_label_name": (write(gp.rename({"Shock": "shock"}), folder / "wrong.csv"), pheno,
                             ["missing label column 'Shock'", "unexpected column 'shock'"]),
        "missing_label": (write(gp.drop("Essential hypertension"), folder / "nolabel.parquet"), pheno,
                          ["missing label column 'Essential hypertension'", "1 of 25"]),
        "extra_column": (write(good.with_columns(pl.lit("x").alias("notes")), folder / "cols.csv"), ihm,
                         ["unexpected column 'notes'"]),
        "no_stay_id": (write(good.rename({"stay_id": "id"}), folder / "noid.csv"), ihm, ["no 'stay_id' column"]),
        "text_probabilities": (write(good.with_columns(pl.col("mortality").cast(pl.String) + "%"), folder / "txt.csv"),
                               ihm, ["'mortality'", "numeric"]),
        "unreadable": (garbage, ihm, ["not readable Parquet"]),
        "metadata_field": (write(good, folder / "nourl.csv", {k: v for k, v in META.items() if k != "code_url"}), ihm,
                           ["lacks field 'code_url'"]),
        "metadata_absent": (write(good, folder / "nometa.csv", None), ihm, ["nometa.meta.yaml", "does not exist"]),
    }


@pytest.fixture(scope="module")
def bad_runs(wd: Workdir, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, str, list[str]]]:
    """Run every bad case as a real subprocess, all started at once."""
    folder = tmp_path_factory.mktemp("bad")
    cases = _bad_cases(wd, folder)
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "medfuse_bench.cli", "score", str(case[0]), "--task", case[1],
             "--workdir", str(wd.root), *BOOT, *(case[3] if len(case) > 3 else [])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, case in cases.items()
    }
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate()
        out[name] = (proc.returncode, stdout, stderr, cases[name][2])
    return out


CASES = ["missing_stays", "extra_stays", "duplicated_rows", "nan_probability", "out_of_range", "wrong_label_name",
         "missing_label", "extra_column", "no_stay_id", "text_probabilities", "unreadable", "metadata_field",
         "metadata_absent", "int128_beyond_int64", "int128_beyond_int64_csv", "uint64_beyond_int64", "float_stay_ids",
         "text_stay_ids", "header_only_csv", "header_only_parquet", "directory", "name_escapes_workdir",
         "name_is_a_path"]


@pytest.mark.parametrize("case", CASES)
def test_bad_submission_gives_one_precise_error(case: str, bad_runs: dict, wd: Workdir) -> None:
    rc, stdout, stderr, words = bad_runs[case]
    assert rc == 2, stderr
    assert "Traceback" not in stderr + stdout
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("medfuse-bench: error: "), stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_no_score_file_for_bad_submissions(bad_runs: dict, wd: Workdir) -> None:
    written = {p.stem for p in wd.scores.rglob("*.json")} if wd.scores.exists() else set()
    bad_stems = {"missing", "extra", "dup", "nan", "range", "wrong", "nolabel", "cols", "noid", "txt", "garbage",
                 "nourl", "nometa", "i128", "u64", "fids", "sids", "header", "folder", "escape", "escaped", "abs",
                 "abs-name"}
    assert not written & bad_stems
    assert not list(wd.root.parent.glob("escaped*")) and not list(wd.root.parent.parent.glob("escaped*"))


@pytest.mark.parametrize("variant", ["int128", "uint32", "int16", "digit_strings"])
def test_stay_id_of_any_integer_width_or_digit_strings(variant: str, wd: Workdir, tmp_path: Path) -> None:
    task = "in-hospital-mortality"
    good = good_submission(wd, task, seed=4)
    column = {
        "int128": pl.col("stay_id").cast(pl.Int128),
        "uint32": pl.col("stay_id").cast(pl.UInt32),
        "int16": pl.col("stay_id").cast(pl.Int16),
        "digit_strings": pl.format(" 00{}", "stay_id"),
    }[variant]
    path = write(good.with_columns(column.alias("stay_id")), tmp_path / f"ids-{variant}.parquet")
    reference = write(good, tmp_path / "ids-int64.parquet")
    scores = []
    for p in (path, reference):
        assert main(["score", str(p), "--task", task, "--workdir", str(wd.root), *BOOT]) == 0
        score_file = leaderboard.score_path(wd, task, "partial", p.stem)
        scores.append({k: v for k, v in json.loads(score_file.read_text()).items()
                       if k not in ("name", "submission_sha256")})
        score_file.unlink()
    assert scores[0] == scores[1]


def test_valid_submission_is_scored(wd: Workdir, tmp_path: Path, cli_process) -> None:
    frame = good_submission(wd, "phenotyping", "paired", seed=5)
    path = write(frame, tmp_path / "good-pheno.csv")
    proc = cli_process("score", path, "--task", "phenotyping", "--test-set", "paired", "--workdir", wd.root, *BOOT)
    assert proc.returncode == 0, proc.stderr
    assert "AUROC" in proc.stdout and "AUPRC" in proc.stdout
    score_path = wd.scores / "phenotyping" / "paired" / "good-pheno.json"
    first = score_path.read_bytes()
    result = json.loads(first)
    assert result["task"] == "phenotyping" and result["test_set"] == "paired" and result["baseline"] is False
    assert result["metadata"]["authors"] == META["authors"] and result["metadata"]["code_url"] == META["code_url"]
    for metric in ("auroc", "auprc"):
        assert set(result[metric]) == {"value", "ci_low", "ci_high", "valid_resamples"}
        assert 0 < result[metric]["valid_resamples"] <= 50
        assert result[metric]["ci_low"] <= result[metric]["value"] <= result[metric]["ci_high"]
    truth = select_test_set(pl.read_parquet(wd.samples("phenotyping")), "paired")
    labels = task_labels("phenotyping")
    aligned = truth.select("stay_id").join(frame, on="stay_id", how="left", maintain_order="left")
    ev = evaluate(truth.select(labels).to_numpy(), aligned.select(labels).to_numpy(), labels, n_resamples=50, seed=3)
    assert result["n"] == truth.height
    assert result["auroc"]["value"] == pytest.approx(ev.macro("auroc").value, abs=1e-12)
    assert result["auprc"]["ci_high"] == pytest.approx(ev.macro("auprc").ci_high, abs=1e-12)
    assert len(result["per_label"]) == 25
    # timestamp-free: scoring again gives the same bytes
    again = ["score", str(path), "--task", "phenotyping", "--test-set", "paired", "--workdir", str(wd.root), *BOOT]
    assert main(again) == 0
    assert score_path.read_bytes() == first
    score_path.unlink()


def test_pipeline_prediction_file_is_a_valid_submission(wd: Workdir, tmp_path: Path) -> None:
    source = wd.predictions("in-hospital-mortality", "medfuse-optimal", "partial")
    path = tmp_path / "pipeline.parquet"
    path.write_bytes(source.read_bytes())
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps(META))
    assert main(["score", str(path), "--task", "in-hospital-mortality", "--workdir", str(wd.root),
                 "--metadata", str(meta), "--name", "pipeline-copy", *BOOT]) == 0
    path = wd.scores / "in-hospital-mortality" / "partial" / "pipeline-copy.json"
    assert path.exists()
    path.unlink()


def test_leaderboard_ranks_submissions_and_baselines(wd: Workdir, tmp_path: Path) -> None:
    task = "in-hospital-mortality"
    strong = write(good_submission(wd, task, strength=3.0, seed=1), tmp_path / "strong.csv", META | {"name": "Strong"})
    weak = write(good_submission(wd, task, strength=0.05, seed=2), tmp_path / "weak.csv", META | {"name": "Weak"})
    for path in (strong, weak):
        assert main(["score", str(path), "--task", task, "--workdir", str(wd.root), *BOOT]) == 0
    assert main(["leaderboard", "--workdir", str(wd.root), "--task", task, "--test-set", "partial", *BOOT]) == 0
    board = pl.read_csv(wd.leaderboard / f"{task}_partial.csv")
    assert board["rank"].to_list() == list(range(1, board.height + 1))
    assert board["auroc"].is_sorted(descending=True)
    assert board["name"][0] == "strong" and board["name"][-1] == "weak"
    baselines = board.filter(pl.col("baseline"))["name"].to_list()
    assert sorted(baselines) == ["ehr-partial", "medfuse-optimal"]
    ev = leaderboard.baseline_scores(wd, task, "partial", 50, 3)
    by_name = {e["name"]: e["auroc"]["value"] for e in ev}
    assert board.filter(pl.col("name") == "medfuse-optimal")["auroc"][0] == pytest.approx(by_name["medfuse-optimal"])
    md = (wd.leaderboard / f"{task}_partial.md").read_text()
    assert "| 1 | Strong | A. Author, B. Author |" in md and "(baseline)" in md
    for path in (strong, weak):
        leaderboard.score_path(wd, task, "partial", path.stem).unlink()


def test_scores_of_one_submission_are_kept_per_task_and_test_set(wd: Workdir, tmp_path: Path) -> None:
    """The same entry name scored on both tasks and both test sets gives four score files, one per leaderboard."""
    pairs = [(task, test_set) for task in ("in-hospital-mortality", "phenotyping") for test_set in ("partial", "paired")]
    try:
        for task, test_set in pairs:
            folder = tmp_path / task / test_set
            folder.mkdir(parents=True)
            path = write(good_submission(wd, task, test_set, seed=7), folder / "model.csv")
            assert main(["score", str(path), "--task", task, "--test-set", test_set, "--workdir", str(wd.root),
                         *BOOT]) == 0
        for task, test_set in pairs:
            entries = leaderboard.submitted_scores(wd, task, test_set)
            assert [(e["name"], e["task"], e["test_set"]) for e in entries] == [("model", task, test_set)]
            assert leaderboard.score_path(wd, task, test_set, "model").exists()
    finally:
        for path in wd.scores.rglob("model.json"):
            path.unlink()


def test_score_file_in_the_wrong_folder_is_an_error(wd: Workdir) -> None:
    path = leaderboard.score_path(wd, "phenotyping", "paired", "moved")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"name": "moved", "task": "in-hospital-mortality", "test_set": "paired",
                                "auroc": {}, "auprc": {}}))
    try:
        with pytest.raises(MedfuseError, match="not for the folder it is in"):
            leaderboard.submitted_scores(wd, "phenotyping", "paired")
    finally:
        path.unlink()


def test_score_files_of_the_old_layout_are_named_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wd = make_workdir(tmp_path / "wd", n=80)
    wd.scores.mkdir(parents=True)
    for name in ("old-a", "old-b"):
        (wd.scores / f"{name}.json").write_text(json.dumps({
            "name": name, "task": "in-hospital-mortality", "test_set": "partial",
            "auroc": {"value": 0.99}, "auprc": {"value": 0.9}}))
    with caplog.at_level(logging.WARNING):
        assert main(["leaderboard", "--workdir", str(wd.root), *BOOT]) == 0  # both tasks, both test sets
    assert caplog.text.count("are ignored") == 1 and "2 score file(s)" in caplog.text
    assert "old-a.json, old-b.json" in caplog.text
    board = pl.read_csv(wd.leaderboard / "in-hospital-mortality_partial.csv")
    assert not set(board["name"]) & {"old-a", "old-b"}


def test_single_class_label_warned_once_per_leaderboard(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    wd = make_workdir(tmp_path / "wd", n=120)
    samples = pl.read_parquet(wd.samples("phenotyping"))
    samples.with_columns(pl.when(pl.col("split") == "test").then(0).otherwise(pl.col("Shock")).cast(pl.Int8)
                         .alias("Shock")).write_parquet(wd.samples("phenotyping"))
    for test_set in ("partial", "paired"):  # the baselines' truth columns follow the samples
        for experiment in ("ehr-partial", "medfuse-optimal"):
            path = wd.predictions("phenotyping", experiment, test_set)
            pl.read_parquet(path).with_columns(pl.lit(0, dtype=pl.Int8).alias("target:Shock")).write_parquet(path)
    with caplog.at_level(logging.WARNING):
        assert main(["leaderboard", "--workdir", str(wd.root), "--task", "phenotyping", "--test-set", "paired",
                     *BOOT]) == 0
    assert caplog.text.count("only one class") == 1, caplog.text
    assert "1 label(s) (Shock)" in caplog.text and "all 2 entries" in caplog.text


@pytest.mark.parametrize("command", ["score", "leaderboard"])
def test_help_describes_the_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    description = text.split("options:")[0].split("usage:")[1]
    assert "scores/{task}/{test_set}" in description and "95% bootstrap intervals" in description, description
    assert "%%" not in text


def test_doctests() -> None:
    for module in (leaderboard, submission):
        assert doctest.testmod(module).failed == 0, module.__name__


def test_leaderboard_shows_paired_differences_rank_groups_and_calibration(wd: Workdir, tmp_path: Path) -> None:
    task = "in-hospital-mortality"
    twin = write(pl.read_parquet(wd.predictions(task, "ehr-partial", "partial")).select(
        "stay_id", *task_labels(task)), tmp_path / "twin.parquet", META | {"name": "Twin"})
    assert main(["score", str(twin), "--task", task, "--workdir", str(wd.root), *BOOT]) == 0
    try:
        assert leaderboard.probabilities_path(leaderboard.score_path(wd, task, "partial", "twin")).exists()
        assert main(["leaderboard", "--workdir", str(wd.root), "--task", task, "--test-set", "partial", *BOOT,
                     "--paired-reference", "ehr-partial", "--calibration-bins", "5"]) == 0
        board = pl.read_csv(wd.leaderboard / f"{task}_partial.csv")
        rows = {r["name"]: r for r in board.iter_rows(named=True)}
        # the same probabilities as the reference: no difference, same group
        assert rows["twin"]["auroc_diff"] == 0.0 and rows["twin"]["auroc_diff_p"] == 1.0
        assert rows["twin"]["rank_group"] == rows["ehr-partial"]["rank_group"]
        assert rows["twin"]["ece"] == pytest.approx(rows["ehr-partial"]["ece"])
        better = rows["medfuse-optimal"]  # planted with a stronger signal on 96 stays
        assert better["auroc_diff"] > 0 and better["auroc_diff_ci_low"] <= better["auroc_diff"]
        assert board["rank_group"].to_list() == sorted(board["rank_group"].to_list())
        md = (wd.leaderboard / f"{task}_partial.md").read_text()
        assert "Δ AUROC vs ehr-partial" in md and "| Group | ECE |" in md
    finally:
        score = leaderboard.score_path(wd, task, "partial", "twin")
        score.unlink()
        leaderboard.probabilities_path(score).unlink()
