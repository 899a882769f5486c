"""Extraction from raw MIMIC-IV / MIMIC-CXR-JPG tables to the benchmark's task tables.

Stages, each one ``medfuse-bench`` subcommand and one module (inputs and outputs in docs/architecture.md):

1. ``ingest`` (:mod:`.layout`, :mod:`.ingest`): detect the MIMIC-IV layout, convert the needed tables to Parquet,
   chartevents / labevents filtered to the item ids of the 17 variables.
2. ``cohort`` (:mod:`.cohort`): ICU stays of the benchmark cohort with age and in-hospital mortality.
3. ``variables`` (:mod:`.variables`): events mapped to the 17 clinical variables, cleaned, assigned to stays.
4. ``phenotypes`` (:mod:`.phenotypes`): the 25 CCS phenotype labels of each stay from its ICD codes.
5. ``splits``, ``cxr-uni``, ``task-tables``, ``timeseries``, ``etl-summary``: patient splits, X-ray linking,
   one table per task, discretised time series and the summary.

``bench-etl`` (:mod:`.bench`) times the stages on a synthetic dataset. Two fidelity modes run through the stages:
``original`` reproduces the original extraction's quirks, ``corrected`` fixes them (docs/fidelity.md).
"""

FIDELITY_MODES: tuple[str, ...] = ("original", "corrected")
