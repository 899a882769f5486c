"""The version-bump drift report: what changed between the data of two MIMIC-IV releases (docs/version-bump.md).

``medfuse-bench drift`` (rule ``drift``) reads the ETL outputs of an earlier workdir (the previous release) and of the
current one and writes ``{workdir}/drift/drift.json`` and ``drift.md``:

* the MIMIC-IV version of each and the ETL settings that differ between them (:mod:`.data`);
* patients and stays added, removed and kept (raw ICU stays, cohort, each task's samples), the share of kept
  patients that kept their split with every exception, samples per task and split with the linked-X-ray share,
  the task rows of the kept stays, label prevalence and its change (:mod:`.compare`);
* the models of the previous release on the kept test stays, paired (:mod:`.models`).

This module stays light: the report imports :func:`report_link` from it.
"""

from __future__ import annotations

import os
from pathlib import Path

DRIFT_DIR = "drift"


def report_link(workdir: str | Path, report_dir: str | Path) -> list[str]:
    """report.md lines (in ``report_dir``) linking ``{workdir}/drift/drift.md`` when a drift report was made."""
    md = Path(workdir) / DRIFT_DIR / "drift.md"
    if not md.exists():
        return []
    link = Path(os.path.relpath(md.resolve(), Path(report_dir).resolve())).as_posix()
    return ["## Drift from the previous release", "",
            f"This workdir's data compared with an earlier release's: [`{DRIFT_DIR}/drift.md`]({link}) (patients "
            "added and removed, splits, samples, label prevalence, linked X-rays, the previous models on the kept "
            "test stays).", ""]
