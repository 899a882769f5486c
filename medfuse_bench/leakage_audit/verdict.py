"""How the pipeline reads the auditor's findings: expected by the benchmark's protocol, blocking, or to review.

- **expected**: what the protocol of the run has by design, each with the reason: values charted inside the window
  but stored after the prediction time under ``window_by: charttime`` (the paper's window); the linked X-ray taken
  after the prediction time under a cohort preset that declares it (``leaky``: ``medfuse-2022``); cohort rules
  decided at the admission's end (one ICU stay per admission, one care unit per stay, as the benchmark's cohort);
  the original's fixed MIMIC-III normaliser, which matches no split of this data; under
  ``death_before_prediction: kept`` (the original's cohort), positive mortality samples whose death is at or before
  the prediction time (``outcome_timing``) and window events at or after that death (``event_timing``).
- **review**, not blocking: a ``synthetic_samples`` failure from the auditor's segment test alone in fewer than
  three dimensions (:func:`chance_collinearity`).
- **blocking**: any other CRITICAL finding, and any identifier shared between splits (the benchmark declares a
  patient-level split). One blocking finding fails the run with one line naming it.
- **review**: the other warnings and failures, shown in the report.

Every check the auditor could not run is listed with the input it would need and why the pipeline has none.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medfuse_bench.etl.presets import TaskDefinition
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.io import write_json, write_text
from medfuse_bench.leakage_audit.provenance import XRAY

BLOCKING = "blocking"
EXPECTED = "expected"
REVIEW = "review"

#: Why the pipeline cannot give a check its missing input, by check id.
NOT_AVAILABLE: dict[str, str] = {
    "site_overlap": "MIMIC-IV is one hospital's record, so there is no site to hold out",
    "threshold_selection": "the benchmark reports threshold-free metrics (AUROC, AUPRC) "
                           "and never picks a decision threshold",
    "outcome_timing": "phenotype labels are the admission's discharge diagnoses, which carry no time "
                      "of onset",
    "declarations": "the pipeline declares only the practices its code enforces (learning rates and epochs chosen "
                    "on validation, uni-modal stays sampled in train)",
}


def classify(finding, policy: FidelityPolicy, definition: TaskDefinition | None) -> tuple[str, str]:
    """(reading, reason) of one finding; ``reading`` is '' for a pass or a skipped check."""
    if not finding.is_problem:
        return "", ""
    check, kind = finding.check_id, finding.leakage_type
    charttime = policy.window_by == "charttime"
    if charttime and check == "event_timing" and kind == "AVAILABILITY_LAG":
        return EXPECTED, ("the paper's window selects events by charttime (window_by: charttime); window_by: "
                          "storetime leaves these values out")
    if charttime and check == "truncation_invariance":
        return EXPECTED, ("values charted inside the window but stored after the prediction time change the features "
                          "(window_by: charttime)")
    after_prediction = "median_hours_after_prediction" in finding.evidence  # not the events after the outcome
    if check == "event_timing" and kind == "FUTURE_EVENT" and after_prediction and set(_sources(finding)) == {XRAY} \
            and definition is not None and definition.leaky:
        return EXPECTED, (f"cohort preset {definition.preset} links X-rays taken after the time series' window "
                          "(declared leaky; for reproducing published numbers only)")
    if policy.death_before_prediction == "kept":
        died = ("death_before_prediction: kept (the original's cohort) keeps mortality stays whose death is at or "
                "before the prediction time; death_before_prediction: excluded leaves them out")
        if check == "outcome_timing" and kind == "POST_OUTCOME_INSTANCE" and "within_gap" not in finding.evidence:
            return EXPECTED, died
        if check == "event_timing" and kind == "FUTURE_EVENT" and not after_prediction:
            return EXPECTED, f"events of the window at or after the death: {died}"
    if check == "eligibility_timing":
        return EXPECTED, ("the benchmark's cohort keeps admissions with one ICU stay and stays that end in the care "
                          "unit they began in, both known only when the admission ends")
    if check == "preprocessing_fit" and policy.normalizer == "original_mimic3":
        return EXPECTED, "normalizer: original_mimic3 uses the original's fixed MIMIC-III statistics"
    if check == "synthetic_samples" and chance_collinearity(finding.evidence):
        used = finding.evidence.get("continuous_columns_used") or []
        return REVIEW, (f"only the auditor's segment test fired, in {len(used)} dimension(s) ({', '.join(used)}): "
                        "charted values are whole numbers, so a stay can lie exactly between two others by chance; "
                        "no minority row has a fractional value in a whole-number column, and no stage of the pipeline "
                        "makes a sample from others")
    if finding.severity.name == "CRITICAL" or check == "entity_overlap":
        return BLOCKING, "a CRITICAL finding, or an identifier in two splits of a patient-level split"
    return REVIEW, "not explained by the protocol of this run"


def chance_collinearity(evidence: dict[str, Any]) -> bool:
    """Whether a ``synthetic_samples`` failure rests on its segment test alone, in fewer than three dimensions.

    The check flags oversampled rows two ways: fractional values in whole-number columns, and minority rows lying
    exactly on the segment between two other minority rows of the complete continuous columns. With two such columns
    of whole-number vitals (heart rate, glucose), the second happens by chance; an interpolating oversampler would
    also leave fractional values, which the first test sees.
    """
    splits = (evidence.get("by_split") or {}).values()
    fractional = any((s.get("minority_fractional_in_integer_columns") or 0) > 0 for s in splits)
    return not fractional and len(evidence.get("continuous_columns_used") or []) < 3


def _sources(finding) -> list[str]:
    return list(finding.evidence.get("events_by_source", {}))


def summarize(result, task: str, policy: FidelityPolicy, definition: TaskDefinition | None,
              facts: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's reading of an audit: verdict, every problem with its reading, the checks not run."""
    findings, not_run = [], []
    for f in result.findings:
        reading, reason = classify(f, policy, definition)
        if f.status == "skipped":
            # declarations lists the practices not declared; the other checks their missing inputs
            needs = f.evidence.get("missing_inputs") or f.evidence.get("items") or [f.message]
            not_run.append({"check_id": f.check_id, "needs": needs, "why": NOT_AVAILABLE.get(f.check_id, "")})
        elif reading:
            findings.append({"check_id": f.check_id, "leakage_type": f.leakage_type, "severity": f.severity.name,
                             "status": f.status, "message": f.message, "reading": reading, "reason": reason})
    readings = {f["reading"] for f in findings}
    declared = bool(definition and definition.leaky) and any(
        f["reading"] == EXPECTED and f["leakage_type"] == "FUTURE_EVENT" for f in findings)
    parts = [f"declared leak ({definition.preset})"] if declared else []
    parts += ["to review"] if REVIEW in readings else []
    if BLOCKING in readings:
        verdict = "FAIL"
    elif parts:
        verdict = ", ".join(parts)
    else:
        verdict = "expected findings only" if findings else "pass"
    charted = facts.get("charted_in_window") or 0
    late = facts.get("charted_in_window_stored_after_prediction") or 0
    return {
        "task": task,
        "verdict": verdict,
        "auditor": {"package": "icu-leakage-check", "version": result.metadata.get("version")},
        "counts": result.counts,
        "worst_severity": None if result.worst_severity is None else result.worst_severity.name,
        "window_by": policy.window_by,
        "cohort_preset": definition.preset if definition else None,
        "leaky_preset": bool(definition and definition.leaky),
        "facts": {**facts, "share_charted_in_window_stored_after_prediction": late / charted if charted else None},
        "findings": findings,
        "not_run": not_run,
    }


def blocking_line(summary: dict[str, Any], log_path: str | None = None) -> str | None:
    """One line naming every blocking finding, or None."""
    blocking = [f for f in summary["findings"] if f["reading"] == BLOCKING]
    if not blocking:
        return None
    named = "; ".join(f"{f['severity']} {f['check_id']} ({f['leakage_type']}): {f['message']}" for f in blocking)
    where = f"; the auditor's full text is in {log_path}" if log_path else ""
    return f"leakage audit of {summary['task']}: {named}{where}"


def write_reports(result, summary: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """The auditor's HTML, JSON and Markdown and the pipeline's summary.json under ``out_dir``."""
    out = Path(out_dir)
    paths = {"html": out / "leakage.html", "json": out / "leakage.json", "md": out / "leakage.md",
             "summary": out / "summary.json"}
    write_text(result.to_html(), paths["html"])
    write_text(result.to_json() + "\n", paths["json"])
    write_text(result.to_markdown(), paths["md"])
    write_json(summary, paths["summary"])
    return paths
