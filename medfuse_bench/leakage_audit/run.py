"""Run icu-leakage-check on one task: the main audit of the samples, plus the checks whose inputs live at another
level (the normaliser on time steps, the truncation check on a sample of stays, label checks once per phenotype).

Every check of the auditor runs once; the findings are put together into one ``AuditResult`` in the auditor's
check order, so its HTML / JSON / Markdown renderers write the whole audit.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from medfuse_bench.etl.presets import TaskDefinition
from medfuse_bench.etl.discretiser import channel_layout, discretize
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.leakage_audit import provenance as P
from medfuse_bench.leakage_audit.event_chunks import DEFAULT_CHUNK_EVENTS, EventTimingParts, chunks, in_range, \
    subject_ranges
from medfuse_bench.resources import task_labels

log = logging.getLogger(__name__)

#: Checks that need one binary label; a task with several labels runs them once per label.
LABEL_CHECKS: tuple[str, ...] = ("single_feature_dominance", "missingness_proxy", "synthetic_samples")
#: Checks run on their own data (time steps, a sample of stays) rather than on the samples.
OWN_DATA_CHECKS: tuple[str, ...] = ("preprocessing_fit", "truncation_invariance")
#: Practices the pipeline enforces in code but that data cannot show: the learning rate and the epoch are chosen on
#: validation AUROC (train/select.py), and uni-modal stays are sampled among the train stays (train/data.py).
DECLARATIONS: dict[str, bool] = {"hyperparameters_tuned_without_test": True, "resampling_inside_training_only": True}


@dataclass
class TaskInputs:
    """Everything the audit of one task reads (see :mod:`medfuse_bench.leakage_audit`)."""

    task: str
    samples: pl.DataFrame
    definition: TaskDefinition | None
    stays: pl.DataFrame
    events: pl.LazyFrame
    cxr_metadata: pl.DataFrame
    timeseries_dir: Path
    policy: FidelityPolicy
    raw_labevents: Path | None = None
    truncation_stays: int = 500
    seed: int = 0
    #: Events per chunk of the event-level check (:mod:`.event_chunks`); bounds the audit's memory.
    chunk_events: int = DEFAULT_CHUNK_EVENTS
    facts: dict[str, Any] = field(default_factory=dict)


def audit_task(inputs: TaskInputs):
    """The auditor's ``AuditResult`` of the task; ``inputs.facts`` gets the counts the summary reports."""
    from icu_leakage_check import LeakageAudit
    from icu_leakage_check.checks import DEFAULT_CHECKS
    from icu_leakage_check.findings import AuditResult

    labels = task_labels(inputs.task)
    min_stay = inputs.definition.min_stay_hours if inputs.definition else None
    times = P.sample_times(inputs.samples, inputs.stays, min_stay)
    features = P.last_step_features(inputs.timeseries_dir, inputs.samples["stay_id"])
    data = P.prediction_frame(inputs.samples, times, features, inputs.task)
    channels = list(channel_layout().names)
    sources = P.source_tables()
    common: dict[str, Any] = dict(
        split="split", patient_id="subject_id", encounter_id="hadm_id", stay_id="stay_id", index_time="index_time",
        dataset="mimic-iv", feature_columns=[*channels, P.XRAY], split_strategy="patient",
        feature_sources={c: sources.get(c, "chartevents.valuenum") for c in channels},
    )
    single = labels[0] if len(labels) == 1 else None
    outcome = dict(label=single, outcome_time="outcome_time" if single else None)
    main = LeakageAudit(data, eligibility_time="eligibility_time", declarations=DECLARATIONS, **outcome, **common,
                        ).run(skip=(*OWN_DATA_CHECKS, "event_timing"))
    findings = list(main.findings) + _event_audit(inputs, times, data, {**outcome, **common})
    if single is None:
        findings = [f for f in findings if f.check_id not in LABEL_CHECKS]
        findings += _per_label(data, labels, common)
    findings += _normaliser_audit(inputs)
    findings += _truncation_audit(inputs, data, times)
    order = {c.check_id: i for i, c in enumerate(DEFAULT_CHECKS)}
    findings.sort(key=lambda f: order.get(f.check_id, len(order)))
    metadata = dict(main.metadata)
    metadata["checks"] = [c.check_id for c in DEFAULT_CHECKS]
    metadata["inputs"] = {**metadata.get("inputs", {}), "events": True, "preprocessor": True,
                          "feature_builder": True}
    metadata["label"] = single or f"each of {len(labels)} labels"
    metadata["pipeline"] = {"task": inputs.task, "window_by": inputs.policy.window_by,
                            "cohort_preset": inputs.definition.preset if inputs.definition else None,
                            **{k: v for k, v in inputs.facts.items() if not isinstance(v, dict)}}
    result = AuditResult(findings=findings, metadata=metadata)
    log.info("%s: %s", inputs.task, ", ".join(f"{n} {k}" for k, n in result.counts.items()))
    return result


def _event_audit(inputs: TaskInputs, times: pl.DataFrame, data: pd.DataFrame, common: dict[str, Any]) -> list:
    """event_timing on the window events and linked X-rays, by chunks of patients (:mod:`.event_chunks`);
    ``inputs.facts`` gets the window counts, added up over the chunks."""
    from icu_leakage_check import LeakageAudit

    ranges = subject_ranges(inputs.events, times["subject_id"], inputs.chunk_events)
    labs = P.lab_keys(inputs.raw_labevents, times["subject_id"])
    parts, counts = EventTimingParts(), Counter()
    for low, high in chunks(ranges):
        mine = in_range("subject_id", low, high)
        part_times = times.filter(mine)
        part_events = inputs.events.filter(mine)
        window = P.window_events(part_events, part_times, inputs.policy.window_by,
                                 None if labs is None else labs.filter(mine))
        # the window as charted, for the counts: the same events when the window is selected by charttime
        charted = (window if inputs.policy.window_by == "charttime"
                   else P.window_events(part_events, part_times, "charttime"))
        xrays = P.xray_events(inputs.samples.filter(mine), inputs.cxr_metadata)
        counts.update(_window_counts(part_times, window, charted, xrays))
        events = P.to_auditor_events(window, xrays)
        part_data = data[data["stay_id"].isin(part_times["stay_id"].to_numpy())]
        result = LeakageAudit(part_data, events=events, **common).run(checks=["event_timing"])
        index_times = part_data[["stay_id", "index_time"]].rename(columns={"stay_id": "entity_id"})
        parts.add(result.findings, events, index_times)
        del window, charted, events
    inputs.facts.update(dict(counts))
    inputs.facts["event_audit_chunks"] = len(ranges)
    return parts.merged()


def _window_counts(times: pl.DataFrame, window: pl.DataFrame, charted: pl.DataFrame, xrays: pl.DataFrame
                   ) -> dict[str, Any]:
    """Events charted inside the windows (``charted``: the window selected by charttime, whatever the switch) and
    those of them stored after the prediction time."""
    ends = times.select(pl.col("stay_id").alias("entity_id"), "index_time")
    late = charted.join(ends, on="entity_id").filter(pl.col("available_time") > pl.col("index_time"))
    return {
        "window_events": window.height,
        "charted_in_window": charted.height,
        "charted_in_window_stored_after_prediction": late.height,
        "stays_with_late_values": late["entity_id"].n_unique(),
        "stays": times.height,
        "linked_xrays": xrays.height,
    }


def _per_label(data: pd.DataFrame, labels: list[str], common: dict[str, Any]) -> list:
    """The label checks once per label: every problem found (its message names the label), or one result per check
    saying that no label has any."""
    from icu_leakage_check import LeakageAudit
    from icu_leakage_check.findings import Finding, Severity, Status

    out, runs = [], {c: [] for c in LABEL_CHECKS}
    for label in labels:
        result = LeakageAudit(data, label=label, **common).run(checks=LABEL_CHECKS)
        for f in result.findings:
            runs[f.check_id].append(f)
            if f.is_problem:
                f.message = f"{label}: {f.message}"
                out.append(f)
    for check, found in runs.items():
        if any(f.is_problem for f in found):
            continue
        status = Status.SKIPPED if all(f.status == Status.SKIPPED for f in found) else Status.PASS
        first = found[0]
        message = (first.message if status == Status.SKIPPED
                   else f"No finding for any of the {len(labels)} labels (one audit per label).")
        out.append(Finding(check_id=check, leakage_type=first.leakage_type, title=first.title, status=status,
                           severity=Severity.INFO, message=message,
                           evidence={"labels": len(labels), "per_label": [f.message for f in found]}))
    return out


def _normaliser_audit(inputs: TaskInputs) -> list:
    """preprocessing_fit on every time step: which rows the fitted normaliser's means and variances match."""
    from icu_leakage_check import LeakageAudit

    normaliser = P.read_normaliser(inputs.timeseries_dir)
    rows = P.normaliser_rows(inputs.timeseries_dir, normaliser)
    inputs.facts["normaliser"] = normaliser.get("normalizer", "train_split")
    inputs.facts["normaliser_rows"] = len(rows)
    result = LeakageAudit(rows, split="split", preprocessor=P.normaliser_scaler(normaliser),
                          feature_columns=list(normaliser["normalized_features"])).run(checks=["preprocessing_fit"])
    for f in result.findings:
        f.evidence = {**f.evidence, "level": f"{len(rows):,} time steps of the three splits"}
    return result.findings


def _truncation_audit(inputs: TaskInputs, data: pd.DataFrame, times: pl.DataFrame) -> list:
    """truncation_invariance on a seeded sample of stays, rebuilding their 76 features with the time-series stage
    from every event of the stay and from the events available at the prediction time."""
    from icu_leakage_check import LeakageAudit

    ids = data["stay_id"].to_numpy()
    if len(ids) > inputs.truncation_stays:
        ids = np.sort(np.random.default_rng(inputs.seed).choice(ids, inputs.truncation_stays, replace=False))
    subset = data[data["stay_id"].isin(ids)].reset_index(drop=True)
    raw = P.stay_events(inputs.events, times, ids)
    timestep = float(P.read_normaliser(inputs.timeseries_dir)["timestep_hours"])
    builder = feature_builder(times, timestep, inputs.policy.window_by)
    inputs.facts["truncation_stays"] = len(ids)
    result = LeakageAudit(subset, split="split", stay_id="stay_id", index_time="index_time", raw_events=raw,
                          feature_builder=builder, dataset="mimic-iv",
                          options={"truncation_invariance.sample_size": len(ids)}).run(checks=["truncation_invariance"])
    return result.findings


def feature_builder(times: pl.DataFrame, timestep: float, window_by: str):
    """The auditor's feature function: the stays' 76 time-series features as the pipeline builds them (window
    selected by ``window_by``), summarised per stay by the last time step and the mean over the window."""
    spans = times.select("stay_id", "intime", "period_length")
    names = P.feature_names()

    def build(raw: pd.DataFrame, index: pd.DataFrame) -> pd.DataFrame:
        def hours(column: str) -> pl.Expr:
            return (pl.col(column) - pl.col("intime")).dt.total_microseconds().cast(pl.Float64) / 3.6e9

        events = pl.from_pandas(raw[["entity_id", "variable", "value", "value_text", "event_time", "available_time"]])
        events = (events.rename({"entity_id": "stay_id"}).join(spans, on="stay_id", how="inner")
                  .select("stay_id", "variable", "value", "value_text", hours("event_time").alias("hours"),
                          hours("available_time").alias("available_hours")))
        samples = (pl.DataFrame({"stay_id": index["entity_id"].to_numpy()}).join(spans, on="stay_id", how="left")
                   .select("stay_id", pl.lit("train").alias("split"), "period_length"))
        array, idx = discretize(events, samples, timestep, window_by)
        offset, length = idx["offset"].to_numpy(), idx["length"].to_numpy()
        last = array[offset + length - 1]
        mean = np.add.reduceat(array.astype(np.float64), offset, axis=0) / length[:, None]
        columns = [f"{n} (last step)" for n in names] + [f"{n} (window mean)" for n in names]
        return pd.DataFrame(np.hstack([last, mean]), index=pd.Index(idx["stay_id"].to_numpy()), columns=columns)

    return build
