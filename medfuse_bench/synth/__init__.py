"""Synthetic MIMIC-IV (2.2 by default; 1.0 and 3.1 too) + MIMIC-CXR-JPG 2.0.0: the embedded default input of the
pipeline and of every test.

The credentialed data cannot ship, so :func:`generate` writes files with exactly the real layouts (folders, file
names, gzip CSV columns in order, JPEG paths ``files/pNN/pSUBJECT/sSTUDY/DICOM_ID.jpg``) and the real quirks that
the extraction has to handle (item ids in several units, text-valued GCS, outliers, labs without stay_id, multi-stay
admissions, care-unit changes, ICD-9 and ICD-10 eras, X-rays outside stays, blank view positions, ...).

Modules, in the order the generator uses them:

* :mod:`~medfuse_bench.synth.plan`: the population (patients, admissions, ICU stays, times, deaths);
* :mod:`~medfuse_bench.synth.signal`: the planted signal (latent severity and image findings, and how vitals, images,
  CheXpert labels, mortality and phenotypes follow them; read its docstring for the exact relationships);
* :mod:`~medfuse_bench.synth.hosp`, :mod:`~medfuse_bench.synth.icd`: patients, admissions, transfers, icustays,
  diagnoses with real ICD codes;
* :mod:`~medfuse_bench.synth.cxr`, :mod:`~medfuse_bench.synth.images`: studies, metadata, CheXpert, split, JPEGs;
* :mod:`~medfuse_bench.synth.events` (shared schedules, outputevents), :mod:`~medfuse_bench.synth.chart_events`,
  :mod:`~medfuse_bench.synth.lab_events`: chartevents, outputevents, labevents, chunk by chunk;
* :mod:`~medfuse_bench.synth.versions`: the layout and columns of MIMIC-IV 1.0, 2.2 and 3.1;
* :mod:`~medfuse_bench.synth.release`: a later release of the same world (patients added and removed);
* :mod:`~medfuse_bench.synth.dataset`: orchestration, atomic output; :mod:`~medfuse_bench.synth.synth`: the command.
"""

from medfuse_bench.synth.dataset import generate

__all__ = ["generate"]
