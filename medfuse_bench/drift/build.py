"""Put the drift record together from two workdirs and write drift.json and drift.md."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from medfuse_bench.drift import compare, models
from medfuse_bench.drift.data import load_release, settings_diff
from medfuse_bench.drift.render import render
from medfuse_bench.errors import MedfuseError
from medfuse_bench.io import write_json, write_text
from medfuse_bench.report.inputs import Workdir

log = logging.getLogger(__name__)


def build_drift(previous: str | os.PathLike[str], current: str | os.PathLike[str], *, tasks: list[str] | None = None,
                n_resamples: int = 1000, seed: int = 2022, new_models: bool = False) -> dict[str, Any]:
    """The drift record of ``current`` against ``previous`` (both workdirs); see the package docstring."""
    if Path(previous).resolve() == Path(current).resolve():
        raise MedfuseError(f"the previous workdir '{previous}' is the current one; set drift.previous_workdir to the "
                           "workdir of the earlier release")
    a, b = load_release(previous, tasks), load_release(current, tasks)
    shared = [t for t in a.samples if t in b.samples]
    notes = [*(f"previous: {n}" for n in a.notes), *(f"current: {n}" for n in b.notes)]
    notes += [f"task '{t}' has samples in one workdir only; not compared"
              for t in sorted(a.samples.keys() ^ b.samples.keys())]
    membership = {}
    if a.raw_stays is not None and b.raw_stays is not None:
        membership["raw ICU stays"] = compare.membership(a.raw_stays["stay_id"], b.raw_stays["stay_id"])
        membership["raw ICU patients"] = compare.membership(a.raw_stays["subject_id"], b.raw_stays["subject_id"])
    membership["cohort stays"] = compare.membership(a.stays["stay_id"], b.stays["stay_id"])
    membership["cohort patients"] = compare.membership(a.stays["subject_id"], b.stays["subject_id"])
    record: dict[str, Any] = {
        "previous_workdir": str(previous),
        "current_workdir": str(current),
        "versions": {"previous": a.version(), "current": b.version()},
        "settings_differ": settings_diff(a.config, b.config),
        "membership": membership,
        "splits": compare.split_stability(a.splits, b.splits),
        "tasks": {},
        "bootstrap": n_resamples,
        "seed": seed,
        "new_models": new_models,
        "models": [],
        "notes": notes,
    }
    for task in shared:
        sa, sb = a.samples[task], b.samples[task]
        record["tasks"][task] = {
            "stays": compare.membership(sa["stay_id"], sb["stay_id"]),
            "counts": compare.cohort_counts(task, sa, sb),
            "prevalence": compare.prevalence_change(task, sa, sb, n_resamples, seed),
            "kept_rows": compare.kept_rows(task, sa, sb),
        }
        record["models"] += models.compare_models(task, a.workdir, sb, b.workdir if new_models else None,
                                                  n_resamples, seed)
    s = record["splits"]
    log.info("drift: %d kept patients, %d moved split; %d old prediction files compared", s["kept_patients"],
             s["moved"], len(record["models"]))
    return record


def write_drift(record: dict[str, Any], out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``drift.json`` and ``drift.md`` into ``out_dir`` (atomically)."""
    out = Path(out_dir)
    write_json(record, out / "drift.json")
    write_text(render(record), out / "drift.md")
    return out / "drift.json", out / "drift.md"


def default_out_dir(workdir: str | os.PathLike[str]) -> Path:
    return Workdir.at(workdir).root / "drift"
