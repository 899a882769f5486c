"""``leakage-audit``: an outside tool, icu-leakage-check (PyPI, MIT), audits each task's cohort for leakage.

The pipeline's own ``check-splits`` guards patient overlap between splits; this step hands a tool nobody here wrote
the full provenance the pipeline has and lets it run its 16 checks with its own knowledge of when each MIMIC-IV
table's values become available (``storetime`` for chart and lab events):

- one row per sample: subject, admission and stay ids, split, labels, the prediction time (intime + 48 h for
  in-hospital mortality, the end of the stay for phenotyping: intime + the sample's period length), the outcome time
  (mortality: the death), the time the stay became eligible for the cohort, and the model's input at the prediction
  time (each channel's value at the last time step, NaN when never observed in the window; whether an X-ray is
  linked);
- the events that feed the 76 features, selected as the time-series stage selects them (switch ``window_by``), with
  charttime, the time each value became available (``available_hours`` of events.parquet) and source table, and
  the linked X-ray at its study time;
- the fitted normaliser as a scikit-learn scaler, checked on every time step of the three splits;
- the time-series stage itself as the feature function of the truncation check, on a seeded sample of stays;
- the event-level check by chunks of patients of a bounded number of events (:mod:`.event_chunks`), so that the
  audit's memory does not grow with the cohort.

Outputs under ``{workdir}/audit/{task}/``: the auditor's ``leakage.html``, ``leakage.json`` and ``leakage.md``, and
``summary.json``, the pipeline's reading (:mod:`medfuse_bench.leakage_audit.verdict`): findings expected by the
protocol of the run, blocking findings (any other CRITICAL one, an identifier in two splits), findings to review,
and the checks not run with the input each would need. A blocking finding fails the step with one line naming it.
docs/leakage.md describes the checks and what they found on the synthetic data.
"""

from medfuse_bench.leakage_audit.event_chunks import DEFAULT_CHUNK_EVENTS
from medfuse_bench.leakage_audit.run import TaskInputs, audit_task
from medfuse_bench.leakage_audit.verdict import blocking_line, summarize, write_reports

__all__ = ["DEFAULT_CHUNK_EVENTS", "TaskInputs", "audit_task", "blocking_line", "summarize", "write_reports"]
