"""The leakage audit by icu-leakage-check on a small synthetic ETL: the default preset has no X-ray after the
prediction time, medfuse-2022 has (declared), a planted one fails the run with one line, a patient in two splits
blocks, and the window by storetime leaves no late value; the label checks of a multi-label task."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import polars as pl
import pytest

pytest.importorskip("icu_leakage_check")

from medfuse_bench import cli  # noqa: E402
from medfuse_bench import leakage_audit as LA  # noqa: E402
from medfuse_bench.etl.task_tables import read_task_definition  # noqa: E402
from medfuse_bench.fidelity import FidelityPolicy  # noqa: E402
from medfuse_bench.leakage_audit.run import _per_label  # noqa: E402
from medfuse_bench.leakage_audit import verdict  # noqa: E402

TASK = "in-hospital-mortality"


def _run(*args: str) -> None:
    assert cli.main([str(a) for a in args]) == 0, args


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """synth (150 stays) -> ingest -> cohort -> variables -> splits -> mortality task table and time series."""
    w = tmp_path_factory.mktemp("audit")
    raw, etl = w / "etl" / "raw", w / "etl"
    _run("synth", "--out", w / "synthetic", "--stays", 150, "--seed", 7)
    _run("ingest", "--mimic-iv", w / "synthetic" / "mimic-iv", "--mimic-cxr", w / "synthetic" / "mimic-cxr-jpg",
         "--out-dir", raw, "--provenance", etl / "provenance.json")
    _run("cohort", "--raw-dir", raw, "--out", etl / "stays.parquet", "--counts", etl / "counts.json")
    _run("variables", "--raw-dir", raw, "--stays", etl / "stays.parquet", "--out", etl / "events.parquet")
    _run("splits", "--stays", etl / "stays.parquet", "--raw-dir", raw, "--out", etl / "splits.parquet",
         "--salt", "s", "--train", 0.7, "--val", 0.1)
    for preset in ("medfuse", "medfuse-2022"):
        tasks = w / preset
        _run("task-tables", "--stays", etl / "stays.parquet", "--events", etl / "events.parquet", "--splits",
             etl / "splits.parquet", "--cxr-metadata", raw / "cxr_metadata.parquet", "--task", TASK, "--preset",
             preset, "--out", tasks / "samples.parquet")
        _run("timeseries", "--events", etl / "events.parquet", "--samples", tasks / "samples.parquet", "--out-dir",
             tasks, "--timestep", 2)
    return w


def _inputs(w: Path, tasks: Path, *, samples: pl.DataFrame | None = None, window_by: str = "charttime",
            cxr_metadata: pl.DataFrame | None = None) -> LA.TaskInputs:
    return LA.TaskInputs(
        task=TASK,
        samples=pl.read_parquet(tasks / "samples.parquet") if samples is None else samples,
        definition=read_task_definition(tasks / "samples.parquet"),
        stays=pl.read_parquet(w / "etl" / "stays.parquet"),
        events=pl.scan_parquet(w / "etl" / "events.parquet"),
        cxr_metadata=pl.read_parquet(w / "etl" / "raw" / "cxr_metadata.parquet") if cxr_metadata is None
        else cxr_metadata,
        timeseries_dir=tasks,
        policy=FidelityPolicy.preset("corrected").replace(window_by=window_by),
        raw_labevents=w / "etl" / "raw" / "labevents.parquet",
        truncation_stays=40,
    )


def _audit(inputs: LA.TaskInputs) -> tuple[object, dict]:
    result = LA.audit_task(inputs)
    return result, LA.summarize(result, TASK, inputs.policy, inputs.definition, inputs.facts)


def _problem(result, check: str, kind: str):
    found = [f for f in result.findings if f.check_id == check and f.leakage_type == kind and f.is_problem]
    return found[0] if found else None


def test_default_preset_links_no_xray_after_the_prediction_time(world: Path):
    result, summary = _audit(_inputs(world, world / "medfuse"))
    assert _problem(result, "event_timing", "FUTURE_EVENT") is None
    # (on 63 samples single vitals may separate the few deaths: findings to review, not blocking)
    assert summary["verdict"] in ("expected findings only", "to review") and LA.blocking_line(summary) is None
    # values charted in the 48 h but stored after them: the paper's window, an expected finding
    lag = _problem(result, "event_timing", "AVAILABILITY_LAG")
    facts = summary["facts"]
    assert lag is not None and lag.evidence["events_flagged"] == facts["charted_in_window_stored_after_prediction"] > 0
    readings = {(f["check_id"], f["reading"]) for f in summary["findings"]}
    assert {("event_timing", "expected"), ("truncation_invariance", "expected")} <= readings
    # the normaliser was fitted on the train split, and the auditor can tell
    (fit,) = [f for f in result.findings if f.check_id == "preprocessing_fit"]
    assert {s["matches"] for s in fit.evidence["steps"]} == {"training rows"}
    # every check of the auditor ran or is listed with what it needs
    assert {f.check_id for f in result.findings} == set(result.metadata["checks"])
    assert {n["check_id"] for n in summary["not_run"]} >= {"site_overlap", "threshold_selection"}
    assert all(n["needs"] and n["why"] for n in summary["not_run"])
    not_run = {n["check_id"]: n for n in summary["not_run"]}
    assert not_run["site_overlap"]["needs"] == ["site_id"]
    assert "test_set_used_once" in not_run["declarations"]["needs"]  # the practices left undeclared


def test_medfuse_2022_preset_is_caught_by_the_auditor(world: Path):
    result, summary = _audit(_inputs(world, world / "medfuse-2022"))
    future = _problem(result, "event_timing", "FUTURE_EVENT")
    assert future is not None and future.severity.name == "CRITICAL"
    assert set(future.evidence["events_by_source"]) == {LA.provenance.XRAY} and future.evidence["events_flagged"] > 0
    (reading,) = [f for f in summary["findings"]
                  if f["check_id"] == "event_timing" and f["leakage_type"] == "FUTURE_EVENT"]
    assert reading["reading"] == "expected" and "medfuse-2022" in reading["reason"]
    assert summary["verdict"].startswith("declared leak (medfuse-2022)")


def test_a_planted_xray_after_the_prediction_time_fails_the_run_with_one_line(world: Path, tmp_path: Path,
                                                                              capsys: pytest.CaptureFixture):
    tasks = world / "medfuse"
    samples = pl.read_parquet(tasks / "samples.parquet")
    stay = samples.filter(pl.col("cxr_dicom_id").is_not_null()).row(0, named=True)
    intime = pl.read_parquet(world / "etl" / "stays.parquet").filter(pl.col("stay_id") == stay["stay_id"])["intime"][0]
    later = intime + timedelta(hours=60)
    meta = pl.read_parquet(world / "etl" / "raw" / "cxr_metadata.parquet").with_columns(
        pl.when(pl.col("dicom_id") == stay["cxr_dicom_id"]).then(int(later.strftime("%Y%m%d")))
        .otherwise(pl.col("StudyDate")).alias("StudyDate"),
        pl.when(pl.col("dicom_id") == stay["cxr_dicom_id"]).then(float(later.strftime("%H%M%S")))
        .otherwise(pl.col("StudyTime")).alias("StudyTime"),
    )
    meta.write_parquet(tmp_path / "cxr_metadata.parquet")
    etl = world / "etl"
    code = cli.main(["leakage-audit", "--task", TASK, "--samples", str(tasks / "samples.parquet"), "--stays",
                     str(etl / "stays.parquet"), "--events", str(etl / "events.parquet"), "--cxr-metadata",
                     str(tmp_path / "cxr_metadata.parquet"), "--timeseries-dir", str(tasks), "--out-dir",
                     str(tmp_path / "audit"), "--truncation-stays", "20"])
    assert code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"medfuse-bench: error: leakage audit of {TASK}: CRITICAL event_timing (FUTURE_EVENT): "
                           "1 events recorded after the prediction time")
    assert "Chest X-ray" in last or "feeding 1 features" in last


def test_a_death_before_the_prediction_time_is_expected_only_where_the_cohort_keeps_it(world: Path):
    """A positive sample dying 40 h into its stay: its outcome precedes the prediction time and its last window
    events follow the death. Expected under death_before_prediction: kept, the one failure of the run under excluded."""
    tasks = world / "medfuse"
    samples = pl.read_parquet(tasks / "samples.parquet")
    dying = samples.filter(pl.col("mortality") == 1)["stay_id"][0]
    inputs = _inputs(world, tasks)
    inputs.stays = inputs.stays.with_columns(
        pl.when(pl.col("stay_id") == dying).then(pl.col("intime") + pl.duration(hours=40))
        .otherwise(pl.col("deathtime")).alias("deathtime"))
    result = LA.audit_task(inputs)
    outcome = _problem(result, "outcome_timing", "POST_OUTCOME_INSTANCE")
    assert outcome is not None and outcome.evidence["outcome_at_or_before_prediction"] == 1
    after_death = [f for f in result.findings if f.check_id == "event_timing" and f.leakage_type == "FUTURE_EVENT"
                   and f.is_problem and "median_hours_after_prediction" not in f.evidence]
    assert len(after_death) == 1
    kept = LA.summarize(result, TASK, inputs.policy.replace(death_before_prediction="kept"), inputs.definition,
                        inputs.facts)
    assert LA.blocking_line(kept) is None
    readings = {(f["check_id"], f["leakage_type"]): f["reading"] for f in kept["findings"]}
    assert readings[("outcome_timing", "POST_OUTCOME_INSTANCE")] == readings[("event_timing", "FUTURE_EVENT")] == \
        "expected"
    excluded = LA.summarize(result, TASK, inputs.policy, inputs.definition, inputs.facts)
    assert excluded["verdict"] == "FAIL"
    assert {f["check_id"] for f in excluded["findings"] if f["reading"] == "blocking"} == \
        {"outcome_timing", "event_timing"}


def test_a_patient_in_two_splits_blocks(world: Path):
    tasks = world / "medfuse"
    samples = pl.read_parquet(tasks / "samples.parquet")
    train = samples.filter(pl.col("split") == "train")["subject_id"][0]
    moved = samples.filter(pl.col("split") == "test")["stay_id"][0]
    planted = samples.with_columns(pl.when(pl.col("stay_id") == moved).then(train).otherwise(pl.col("subject_id"))
                                   .alias("subject_id"))
    result, summary = _audit(_inputs(world, tasks, samples=planted))
    assert summary["verdict"] == "FAIL"
    line = LA.blocking_line(summary)
    assert line is not None and "entity_overlap" in line and "\n" not in line


def test_window_by_storetime_leaves_no_value_stored_after_the_prediction_time(world: Path, tmp_path: Path):
    tasks = world / "medfuse"
    (tmp_path / "samples.parquet").write_bytes((tasks / "samples.parquet").read_bytes())
    _run("timeseries", "--events", world / "etl" / "events.parquet", "--samples", tmp_path / "samples.parquet",
         "--out-dir", tmp_path, "--timestep", 2, "--switch", "window_by=storetime")
    result, summary = _audit(_inputs(world, tmp_path, window_by="storetime"))
    assert _problem(result, "event_timing", "AVAILABILITY_LAG") is None
    assert _problem(result, "truncation_invariance", "FUTURE_EVENT") is None
    facts = summary["facts"]
    assert facts["window_events"] == facts["charted_in_window"] - facts["charted_in_window_stored_after_prediction"]
    assert {f["check_id"] for f in summary["findings"] if f["reading"] == "expected"} == {"eligibility_timing"}


def test_label_checks_run_once_per_label_and_name_it():
    rng = np.random.default_rng(0)
    n = 300
    data = pd.DataFrame({"subject_id": np.arange(n), "stay_id": np.arange(n), "split": ["train", "test"] * (n // 2),
                         "a": rng.integers(0, 2, n), "b": rng.integers(0, 2, n), "x": rng.normal(size=n),
                         "y": rng.normal(size=n)})
    data["copy"] = data["b"].astype(float)  # a feature identical to label b
    common = dict(split="split", patient_id="subject_id", stay_id="stay_id", feature_columns=["x", "y", "copy"])
    findings = _per_label(data, ["a", "b"], common)
    dominance = [f for f in findings if f.check_id == "single_feature_dominance"]
    assert [f.message.split(":")[0] for f in dominance if f.is_problem] == ["b"]
    missing = [f for f in findings if f.check_id == "missingness_proxy"]
    assert len(missing) == 1 and not missing[0].is_problem and "2 labels" in missing[0].message


def _synthetic_finding(continuous: list[str], fractional: float) -> SimpleNamespace:
    by_split = {s: {"minority_rows": 17, "minority_fractional_in_integer_columns": fractional,
                    "majority_fractional_in_integer_columns": 0.0, "minority_on_segment_between_neighbours": 0.06}
                for s in ("train", "test")}
    return SimpleNamespace(is_problem=True, check_id="synthetic_samples", leakage_type="SYNTHETIC_IN_EVALUATION",
                           severity=SimpleNamespace(name="CRITICAL"), evidence={
                               "continuous_columns_used": continuous, "by_split": by_split})


def test_synthetic_samples_blocks_unless_only_the_low_dimensional_segment_test_fired():
    """Whole-number vitals in two dimensions put a stay between two others by chance: to review, not blocking; a
    fractional value in a whole-number column, or the segment test in three or more dimensions, still blocks."""
    policy = FidelityPolicy.preset("corrected")
    reading, reason = verdict.classify(_synthetic_finding(["Glucose", "Heart Rate"], 0.0), policy, None)
    assert reading == verdict.REVIEW and "Glucose, Heart Rate" in reason
    assert verdict.classify(_synthetic_finding(["Glucose", "Heart Rate"], 0.2), policy, None)[0] == verdict.BLOCKING
    assert verdict.classify(_synthetic_finding(["Glucose", "Heart Rate", "pH"], 0.0), policy, None)[0] == \
        verdict.BLOCKING


def test_the_event_check_in_chunks_of_patients_adds_up_to_the_whole(world: Path):
    """A tiny chunk budget splits the event-level check into many chunks; the merged findings and the window counts
    equal those of one chunk (affected features and sources compared as sets: their order follows counts)."""
    one = _inputs(world, world / "medfuse")
    many = _inputs(world, world / "medfuse")
    many.chunk_events = 400
    whole, split = LA.audit_task(one), LA.audit_task(many)
    assert one.facts["event_audit_chunks"] == 1 and many.facts["event_audit_chunks"] > 5

    def timing(result):
        return {(f.leakage_type, f.title): f for f in result.findings if f.check_id == "event_timing"}

    a, b = timing(whole), timing(split)
    assert a.keys() == b.keys() and any(f.is_problem for f in a.values())
    for key, f in a.items():
        g = b[key]
        assert (f.status, f.severity, f.message, set(f.affected)) == (g.status, g.severity, g.message, set(g.affected))
        assert f.evidence == g.evidence, key
    facts = ("window_events", "charted_in_window", "charted_in_window_stored_after_prediction",
             "stays_with_late_values", "stays", "linked_xrays")
    assert {k: one.facts[k] for k in facts} == {k: many.facts[k] for k in facts}
    others = [(f.check_id, f.leakage_type, f.status, f.message) for f in whole.findings if f.check_id != "event_timing"]
    assert others == [(f.check_id, f.leakage_type, f.status, f.message) for f in split.findings
                      if f.check_id != "event_timing"]


def test_subject_ranges_cover_every_subject_once():
    from medfuse_bench.leakage_audit.event_chunks import in_range, subject_ranges

    events = pl.LazyFrame({"subject_id": [1, 1, 1, 2, 3, 3, 5, 5, 5, 5, 8]})
    ranges = subject_ranges(events, pl.Series([0, 1, 2, 3, 5, 8, 9]), 3)
    assert ranges == [(None, 1), (2, 3), (4, 5), (6, None)]  # 3, 1 + 2, 4 and 1 events
    subjects = pl.DataFrame({"subject_id": list(range(0, 10))})
    hits = [subjects.filter(in_range("subject_id", lo, hi))["subject_id"].to_list() for lo, hi in ranges]
    assert sorted(sum(hits, [])) == list(range(10))
    assert subject_ranges(events, pl.Series([42]), 3) == [(None, None)]


def _death_findings() -> list[SimpleNamespace]:
    """The two findings of an in-hospital-mortality cohort with deaths at or before the prediction time."""
    critical = SimpleNamespace(name="CRITICAL")
    return [
        SimpleNamespace(is_problem=True, check_id="outcome_timing", leakage_type="POST_OUTCOME_INSTANCE",
                        severity=critical, evidence={"positives_with_time": 9, "outcome_at_or_before_prediction": 2}),
        SimpleNamespace(is_problem=True, check_id="event_timing", leakage_type="FUTURE_EVENT", severity=critical,
                        evidence={"events_flagged": 1, "events_by_source": {"chartevents.valuenum": 1}}),
    ]


def test_deaths_at_or_before_the_prediction_time_are_expected_only_where_the_cohort_keeps_them():
    """Under death_before_prediction: kept (the original's cohort) the outcome at the prediction time and the events
    at or after the death are expected; under excluded they mean a defect and block."""
    corrected = FidelityPolicy.preset("corrected")
    assert corrected.death_before_prediction == "excluded"
    for finding in _death_findings():
        reading, reason = verdict.classify(finding, FidelityPolicy.preset("original"), None)
        assert reading == verdict.EXPECTED and "death_before_prediction: kept" in reason
        assert verdict.classify(finding, corrected.replace(death_before_prediction="kept"), None)[0] == \
            verdict.EXPECTED
        assert verdict.classify(finding, corrected, None)[0] == verdict.BLOCKING
    # an event after the prediction time (the auditor gives its lead) still blocks under kept
    after = SimpleNamespace(**{**vars(_death_findings()[1]), "evidence": {
        "events_flagged": 1, "events_by_source": {"chartevents.valuenum": 1}, "median_hours_after_prediction": 3.0}})
    assert verdict.classify(after, FidelityPolicy.preset("original"), None)[0] == verdict.BLOCKING
