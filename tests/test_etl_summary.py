"""ETL summary: counts, prevalence, preset counts and the Markdown rendering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import polars as pl

from medfuse_bench.etl import cxr, exclusions, presets, splits, summary, task_tables

sys.path.insert(0, str(Path(__file__).parent))
from etl_world import make_world, write_world  # noqa: E402

CLI = "import sys; from medfuse_bench import cli; sys.exit(cli.main(sys.argv[1:]))"


def _ihm_samples() -> pl.DataFrame:
    return pl.DataFrame({
        "subject_id": [1, 2, 3, 3, 5, 6, 7],
        "stay_id": [11, 12, 13, 14, 15, 16, 17],
        "split": ["train", "train", "train", "train", "val", "test", "test"],
        "cxr_dicom_id": ["a", None, "c", None, None, "f", None],
        "period_length": [48.0] * 7,
        "age": [50] * 7,
        "mortality": [1, 0, 0, 1, 0, 1, 0],
    }, schema_overrides={"mortality": pl.Int8})


def test_task_summary_counts_and_prevalence():
    definition = presets.task_definition("in-hospital-mortality", "medfuse-2022")
    got = summary.task_summary("in-hospital-mortality", _ihm_samples(), definition)
    assert got["samples"] == {"train": 4, "val": 1, "test": 2}
    assert got["paired"] == {"train": 2, "val": 0, "test": 1}
    assert got["unpaired"] == {"train": 2, "val": 1, "test": 1}
    assert got["subjects"] == {"train": 3, "val": 1, "test": 2}
    assert got["leaky"] is True and got["definition"]["preset"] == "medfuse-2022"
    partial, paired = got["labels"]["partial"], got["labels"]["paired"]
    assert partial["train"]["mortality"] == {"positives": 2, "prevalence": 0.5}
    assert partial["val"]["mortality"] == {"positives": 0, "prevalence": 0.0}
    assert paired["train"]["mortality"] == {"positives": 1, "prevalence": 0.5}
    assert paired["val"]["mortality"] == {"positives": 0, "prevalence": None}
    assert paired["test"]["mortality"] == {"positives": 1, "prevalence": 1.0}


def test_build_summary_and_markdown():
    uni = pl.DataFrame({"dicom_id": ["a", "b", "c"], "subject_id": [1, 1, 9], "study_id": [1, 2, 3],
                        "split": ["train", "train", "test"], "view_position": ["AP", "PA", "AP"]})
    result = summary.build_summary(
        {"in-hospital-mortality": (_ihm_samples(), presets.task_definition("in-hospital-mortality", "medfuse"))},
        uni,
        cohort_counts={"icu_stays": 100, "stays": 80},
        phenotype_mapping={"mode": "gem", "stays": 80, "codes": ["x"] * 1000, "by_icd_version": {
            "9": {"rows": 50, "rows_unmapped": 3, "distinct_codes_unmapped": 2, "most_frequent_unmapped": {"V1": 2}},
            "10": {"rows": 40, "rows_unmapped": 12, "distinct_codes_unmapped": 5, "most_frequent_unmapped": {}}}},
        presets={"medfuse": {"in-hospital-mortality": {"total": {"train": 4, "val": 1, "test": 2},
                                                        "paired": {"train": 2, "val": 0, "test": 1}, "leaky": False}}},
    )
    assert result["leaky"] is False
    assert result["cxr_uni"]["images"] == {"train": 2, "val": 0, "test": 1}
    assert result["cxr_uni"]["subjects"] == {"train": 1, "val": 0, "test": 1}
    assert result["cxr_uni"]["views"] == {"AP": 2, "PA": 1}
    assert result["phenotype_mapping"] == {"mode": "gem", "stays": 80, "by_icd_version": {
        "9": {"rows": 50, "rows_unmapped": 3, "distinct_codes_unmapped": 2, "most_frequent_unmapped": {"V1": 2}},
        "10": {"rows": 40, "rows_unmapped": 12, "distinct_codes_unmapped": 5, "most_frequent_unmapped": {}}}}
    json.dumps(result)  # serialisable as is
    md = summary.render_markdown(result)
    assert "| train | 4 | 2 | 2 | 3 |" in md
    assert "| mortality | 50.0% (2) | 0.0% (0) | 50.0% (1) | 50.0% (1) |  | 100.0% (1) |" in md
    assert "| medfuse | in-hospital-mortality | 4 / 2 | 1 / 0 | 2 / 1 | no |" in md
    assert "| version | rows | rows unmapped | distinct codes unmapped |" in md
    assert "| ICD-10 | 40 | 12 | 5 |" in md and "Most frequent unmapped ICD-9 codes: V1 (2)" in md
    assert "| mode | gem |" in md and "| icu_stays | 100 |" in md
    assert "LEAKY" not in md and "leaky task definition" not in md


def test_etl_summary_cli_on_a_small_world(tmp_path):
    world = make_world(120, seed=5)
    work = tmp_path / "w"
    write_world(world, work)
    negative = exclusions.record("cohort", "icustays", "outtime", "impossible length of stay: outtime before intime",
                                 2, example="stay_id 7: ...")
    (work / "etl" / "cohort_counts.json").write_text(
        json.dumps({"icu_stays": 150, "stays": 120, "exclusions": [negative]}))
    not_a_number = exclusions.record("variables", "labevents", "value (Glucose)", "not a number", 3, example="'NEG'")
    (work / "etl" / "variables_counts.json").write_text(json.dumps({"rows_in": 9, "exclusions": [not_a_number]}))
    patient_splits = splits.build_splits(world["stays"]["subject_id"], [world["cxr_metadata"]["subject_id"]], "s")
    patient_splits.write_parquet(work / "etl" / "splits.parquet")
    (work / "cxr").mkdir()
    cxr.build_cxr_uni(world["cxr_metadata"], world["cxr_chexpert"], world["cxr_split"], patient_splits).write_parquet(
        work / "cxr" / "cxr_uni.parquet")
    built = {}
    for task, preset in (("in-hospital-mortality", "medfuse-2022"), ("phenotyping", "medfuse")):
        definition = presets.task_definition(task, preset)
        built[task], left_out = task_tables.build_task_table(world["stays"], world["events"], patient_splits,
                                                             world["cxr_metadata"], definition,
                                                             phenotypes=world["phenotypes"])
        task_tables.write_samples(built[task], definition, work / "tasks" / task / "samples.parquet", left_out)
    res = subprocess.run([sys.executable, "-c", CLI, "etl-summary", "--workdir", str(work),
                          "--presets-out", str(tmp_path / "presets.json")], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    result = json.loads((work / "tasks" / "summary.json").read_text())
    md = (work / "tasks" / "summary.md").read_text()
    assert result["leaky"] is True and "leaky task definition" in md
    assert result["cohort_counts"] == {"icu_stays": 150, "stays": 120}
    # every stage's records of dropped rows, in one table
    stages = [r["stage"] for r in result["exclusions"]]
    assert result["exclusions"][:2] == [negative, not_a_number]
    assert "task_tables (in-hospital-mortality)" in stages
    short = next(r for r in result["exclusions"] if r["reason"].startswith("ICU stay shorter"))
    stays = world["stays"]
    assert short["rows"] == stays.filter(pl.col("los_hours") < 48 - 1e-6).height > 0
    assert "## Rows dropped or changed" in md
    assert "| cohort | icustays | outtime | impossible length of stay: outtime before intime | dropped | 2 | " in md
    assert "| variables | labevents | value (Glucose) | not a number | dropped | 3 | 'NEG' |" in md
    for task, samples in built.items():
        assert result["tasks"][task]["samples"] == task_tables.sample_counts(samples)["total"]
    # preset counts come from the same selection and linking as the task tables
    for preset in presets.PRESET_NAMES:
        for task in built:
            definition = presets.task_definition(task, preset)
            full = task_tables.build_task_samples(world["stays"], world["events"], patient_splits,
                                                  world["cxr_metadata"], definition, phenotypes=world["phenotypes"])
            counts = task_tables.sample_counts(full)
            assert result["presets"][preset][task] == {**counts, "leaky": definition.leaky}
    assert json.loads((tmp_path / "presets.json").read_text()) == result["presets"]
    ihm = result["presets"]
    assert sum(ihm["medfuse-2022"]["in-hospital-mortality"]["paired"].values()) >= \
        sum(ihm["medfuse"]["in-hospital-mortality"]["paired"].values())
    assert "## CXR_UNI" in md and "## Samples under each preset" in md and "## Cohort filters" in md
    check = subprocess.run([sys.executable, "-c", CLI, "check-splits", "--workdir", str(work)],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_etl_summary_cli_without_preset_inputs_still_writes(tmp_path):
    work = tmp_path / "w"
    path = work / "tasks" / "in-hospital-mortality" / "samples.parquet"
    path.parent.mkdir(parents=True)
    _ihm_samples().write_parquet(path)
    res = subprocess.run([sys.executable, "-c", CLI, "etl-summary", "--workdir", str(work)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    result = json.loads((work / "tasks" / "summary.json").read_text())
    assert result["presets"] is None and result["cxr_uni"] is None
    assert result["tasks"]["in-hospital-mortality"]["definition"] is None


def test_etl_summary_reads_the_files_it_is_given_and_names_a_missing_one(tmp_path):
    samples = tmp_path / "somewhere" / "ihm.parquet"
    samples.parent.mkdir()
    _ihm_samples().write_parquet(samples)
    out_json, out_md = tmp_path / "s.json", tmp_path / "s.md"
    res = subprocess.run([sys.executable, "-c", CLI, "etl-summary", "--samples", f"in-hospital-mortality={samples}",
                          "--out-json", str(out_json), "--out-md", str(out_md)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert sum(json.loads(out_json.read_text())["tasks"]["in-hospital-mortality"]["samples"].values()) == 7  # its rows
    assert out_md.exists()
    # a file named on the command line must exist: no silent fallback to a smaller summary
    missing = tmp_path / "etl" / "cohort_counts.json"
    res = subprocess.run([sys.executable, "-c", CLI, "etl-summary", "--samples", f"in-hospital-mortality={samples}",
                          "--cohort-counts", str(missing), "--out-json", str(out_json), "--out-md", str(out_md)],
                         capture_output=True, text=True)
    assert res.returncode == 2 and f"'{missing}' does not exist" in res.stderr, res.stderr
    res = subprocess.run([sys.executable, "-c", CLI, "etl-summary", "--samples", f"in-hospital-mortality={samples}"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "--out-json and --out-md" in res.stderr
