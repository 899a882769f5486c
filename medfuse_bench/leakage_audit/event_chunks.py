"""The event-level check of the audit (``event_timing``) in bounded chunks of patients.

The auditor is given its events as one pandas frame and copies it a few times; every event of a phenotyping window
at MIMIC-IV's size is tens of millions of rows, more memory than the rest of the ETL together. events.parquet is
sorted by subject_id, so the audit reads it by subject_id ranges of about ``budget`` events each (Parquet's row-group
statistics skip the rest), runs ``event_timing`` on each range, and puts the findings together: counts add up
(a stay lies in one range), ``events_by_source`` adds up by source, and the medians are taken again over the flagged
events of every range, with the auditor's own definitions. With one range, the auditor's findings pass unchanged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

#: Event rows per chunk: the auditor holds a chunk's events a few times over (about 0.5 GB at this size).
DEFAULT_CHUNK_EVENTS = 3_000_000

_AFTER_OUTCOME = "after_outcome"
_LABELS = {  # the auditor's wording, by kind of event_timing finding
    "FUTURE_EVENT": "events recorded after the prediction time",
    "AVAILABILITY_LAG": "events charted before the prediction time but only available after it",
    "INTERVAL_CROSSING": "interval events still running at the prediction time",
    "UNDATED_SOURCE": "events without any time stamp",
}
_MEDIANS = {"FUTURE_EVENT": "median_hours_after_prediction", "AVAILABILITY_LAG": "median_hours_until_available"}


def subject_ranges(events: pl.LazyFrame, subjects: pl.Series, budget: int) -> list[tuple[int | None, int | None]]:
    """Inclusive subject_id ranges, in order, of about ``budget`` events of ``subjects`` each; open at both ends
    (None), so that every subject falls in one range."""
    if budget < 1:
        raise ValueError(f"the chunk budget must be at least one event, not {budget}")
    counts = (
        events.select(pl.col("subject_id").cast(pl.Int64))
        .filter(pl.col("subject_id").is_in(subjects.cast(pl.Int64).unique().implode()))
        .group_by("subject_id").agg(pl.len().alias("n"))
        .sort("subject_id")
        .collect()
    )
    if counts.height == 0:
        return [(None, None)]
    before = counts["n"].cum_sum() - counts["n"]
    chunk = (before // budget).to_numpy()
    ends = counts["subject_id"].to_numpy()[np.flatnonzero(np.diff(chunk, append=chunk[-1] + 1))]
    bounds: list[tuple[int | None, int | None]] = []
    low: int | None = None
    for high in ends[:-1].tolist():
        bounds.append((low, int(high)))
        low = int(high) + 1
    bounds.append((low, None))
    return bounds


def in_range(column: str, low: int | None, high: int | None) -> pl.Expr:
    """``column`` within the inclusive range, None meaning open."""
    expr = pl.lit(True)
    if low is not None:
        expr = expr & (pl.col(column) >= low)
    if high is not None:
        expr = expr & (pl.col(column) <= high)
    return expr


def chunks(ranges: list[tuple[int | None, int | None]]) -> Iterator[tuple[int | None, int | None]]:
    """The ranges, with a progress bar when there are several."""
    if len(ranges) == 1:
        yield from ranges
        return
    from tqdm import tqdm

    yield from tqdm(ranges, desc="event audit chunks", unit="chunk", mininterval=5.0)


@dataclass
class EventTimingParts:
    """The ``event_timing`` findings of every chunk, and the flagged events' hours the medians are taken over."""

    findings: list[list[Any]] = field(default_factory=list)
    hours: dict[str, list[np.ndarray]] = field(default_factory=lambda: {k: [] for k in _MEDIANS})

    def add(self, findings: list, events: pd.DataFrame, index_times: pd.DataFrame) -> None:
        """One chunk's findings and, for the medians, its events (the auditor's columns) and the samples'
        ``entity_id`` / ``index_time``."""
        self.findings.append(list(findings))
        if events.empty:
            return
        ev = events[["entity_id", "event_time", "available_time"]].merge(index_times, on="entity_id", how="inner")
        et, at, it = ev["event_time"], ev["available_time"], ev["index_time"]
        future = et.notna() & (et > it)
        lag = et.notna() & (et <= it) & at.notna() & (at > it)
        self.hours["FUTURE_EVENT"].append(_hours(et[future] - it[future]))
        self.hours["AVAILABILITY_LAG"].append(_hours(at[lag] - it[lag]))

    def merged(self) -> list:
        """The findings of all chunks as one check's findings, in the auditor's order."""
        ran = [part for part in self.findings if any(f.status != "skipped" for f in part)]
        if len(ran) <= 1:
            return ran[0] if ran else self.findings[0]
        groups: dict[tuple[str, str], list] = {}
        for part in ran:
            for f in part:
                groups.setdefault(_kind(f), []).append(f)
        checked = sum(_events_checked(part) for part in ran)
        return [self._merge(kind, found, checked) for kind, found in groups.items()]

    def _merge(self, kind: tuple[str, str], found: list, checked: int):
        leakage_type, after = kind
        problems = [f for f in found if f.is_problem]
        first = problems[0] if problems else found[0]
        if not problems:
            return replace(first, evidence={**first.evidence, "events_checked": checked})
        n = sum(int(f.evidence["events_flagged"]) for f in problems)
        sources: Counter[str] = Counter()
        for f in problems:
            sources.update({k: int(v) for k, v in f.evidence.get("events_by_source", {}).items()})
        by_source = dict(sorted(sources.items(), key=lambda kv: (-kv[1], kv[0]))[:25])
        affected = list(dict.fromkeys(a for f in problems for a in f.affected))
        if after:
            return replace(first, message=f"{n:,} events are recorded at or after the outcome itself.",
                           evidence={**first.evidence, "events_flagged": n, "events_by_source": by_source},
                           affected=sorted(affected))
        units = sum(int(f.evidence["entities_affected"]) for f in problems)
        evidence = {**first.evidence, "events_flagged": n, "events_checked": checked,
                    "fraction_of_events": round(_fraction(n, checked), 4), "entities_affected": units,
                    "events_by_source": by_source}
        if leakage_type in _MEDIANS:
            evidence[_MEDIANS[leakage_type]] = round(float(np.median(np.concatenate(self.hours[leakage_type]))), 2)
        label = _LABELS[leakage_type]
        message = (f"{n:,} {label} ({_fraction(n, checked):.1%} of events, {units:,} prediction units), "
                   f"feeding {len(affected)} features.")
        return replace(first, message=message, evidence=evidence, affected=affected)


def _kind(finding) -> tuple[str, str]:
    """(leakage type, '' or 'after_outcome'): the auditor reports events after the outcome as a second
    FUTURE_EVENT finding, the one without a median lead over the prediction time."""
    after = (finding.leakage_type == "FUTURE_EVENT" and finding.is_problem
             and _MEDIANS["FUTURE_EVENT"] not in finding.evidence)
    return finding.leakage_type, _AFTER_OUTCOME if after else ""


def _events_checked(findings: list) -> int:
    return max((int(f.evidence.get("events_checked", 0)) for f in findings), default=0)


def _hours(delta: pd.Series) -> np.ndarray:
    if pd.api.types.is_timedelta64_dtype(delta):
        return (delta.dt.total_seconds() / 3600.0).to_numpy(dtype=np.float64)
    return delta.to_numpy(dtype=np.float64) / 60.0  # minute offsets, as the auditor reads them


def _fraction(n: int, d: int) -> float:
    return float(n) / float(d) if d else 0.0
