"""Extraction from raw MIMIC-IV / MIMIC-CXR-JPG tables to the benchmark's task tables.

Each workflow rule runs one ``medfuse-bench`` subcommand, registered and run by the module named after the rule
(inputs and outputs in docs/architecture.md):

1. ``ingest`` (:mod:`.ingest`; layouts :mod:`.layout`, conversion :mod:`.table_conversion`): convert the needed
   tables to Parquet, chartevents / labevents filtered to the item ids of the 17 variables.
2. ``cohort`` (:mod:`.cohort`): ICU stays of the benchmark cohort with age and in-hospital mortality.
3. ``variables`` (:mod:`.variables`; rules :mod:`.variable_rules`, :mod:`.variable_linking`; batches
   :mod:`.variable_batches`): events mapped to the 17 clinical variables, cleaned, assigned to stays.
4. ``phenotypes`` (:mod:`.phenotypes`; code mapping :mod:`.phenotype_codes`): the 25 CCS phenotype labels of each
   stay from its ICD codes.
5. ``splits``, ``cxr_uni``, ``task_tables``, ``timeseries`` (:mod:`.discretiser`, :mod:`.normaliser`),
   ``check_splits``, ``etl_summary``: patient splits, X-ray linking, one table per task, discretised time series,
   the split check and the summary.

The stages read their own switches of the fidelity policy (:class:`medfuse_bench.fidelity.FidelityPolicy`,
docs/fidelity.md): the ``original`` preset reproduces the original extraction's quirks, ``corrected`` fixes them, and
each switch can be set on its own. Timing harnesses are outside the package, in benchmarks/.
"""

from __future__ import annotations

from typing import Any

from medfuse_bench.fidelity import SWITCHES, FidelityPolicy

#: The policy of a stage function called without one: the default preset.
DEFAULT_POLICY = FidelityPolicy.preset("corrected")


def policy_record(policy: FidelityPolicy, stage: str) -> dict[str, Any]:
    """What a stage writes into its counts about the policy: the preset and the values of the stage's switches.

    >>> policy_record(FidelityPolicy.preset("original"), "cohort")
    {'preset': 'original', 'age': 'anchor_age', 'mortality': 'dod_or_deathtime', 'los_hours': 'icustays_los'}
    """
    return {"preset": policy.preset_name, **{s.name: getattr(policy, s.name) for s in SWITCHES if s.stage == stage}}
