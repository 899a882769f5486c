"""The original extraction's approach, re-implemented to time it on the same input: ``python -m benchmarks.etl
--baseline``.

The original MedFuse extraction (a port of the MIMIC-III benchmark scripts) reads the event tables with Python's
``csv`` module one row at a time, writes one folder per subject, and then reads every subject's files back with
pandas in each later script. This module does the same passes with the same kind of per-row, per-subject and
per-stay work, in the layouts this package reads (the original itself only reads MIMIC-IV 1.0):

1. subjects: cohort filters on the stays table; one ``stays.csv`` and ``diagnoses.csv`` per subject, each cut out
   of the whole table with a boolean mask; the event tables streamed row by row, rows of cohort subjects and mapped
   item ids appended to the subject's ``events.csv`` whenever the subject changes;
2. validation: per subject, events without a cohort admission dropped, lab events given their admission's stay;
3. episodes: per subject, item ids mapped, values cleaned per variable, the last value per (time, variable) pivoted
   to one row per time, one ``episode{N}_timeseries.csv`` per stay;
4. tasks: per stay, the episode read back and cut to the in-hospital-mortality window (48 h) and the phenotyping
   window (the stay), each written to the task's folder with its listfile, phenotype labels from the diagnoses;
5. discretise: what the ETL's time-series stage stores, the original computes when training reads a sample: per task,
   every sample's file read with ``str.split``, binned, imputed and one-hot encoded by a line-for-line port of its
   ``Discretizer`` (``tests/original_discretiser.py``; 1 h bins, previous-value imputation, masks), the train
   samples' sums fed to a ``Normalizer`` (the original's ``create_normalizer_state``) and every sample normalised.
   The arrays equal those the time-series stage stores under the ``original`` preset with ``normalizer: train_split``
   (the original's training loads a fixed MIMIC-III state instead; a test checks every value), so both sides do the
   same work.

Per-subject files are read back as pandas 0.23 (the original's environment) read them: "None", a GCS eye value,
is text there and a missing value in pandas 2 and later. Only the timing matters: the files go to a scratch folder
and nothing in the pipeline reads them. The per-stage
seconds are returned so the benchmark can report where the original approach spends its time. The work is, if
anything, less than the original's: outputevents (which it also streams, though none of the 17 variables comes from
it) is not read, the per-episode static file holds 4 columns instead of its 260, and each sample is discretised once
(the normaliser's sums come from that same pass), where the original discretises the train samples a second time to
build the normaliser and every sample again in every epoch. So the measured time is a lower bound for the original
approach on the same input and machine.
"""

from __future__ import annotations

import csv
import gzip
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from medfuse_bench import resources
from medfuse_bench.errors import MedfuseError
from medfuse_bench.etl.layout import detect_layout
from medfuse_bench.etl.variable_rules import NUMERIC_AFTER_CLEANING

# The port of the original's discretiser and normaliser is the tests' oracle for the time-series stage; the
# baseline times that same code.
from tests.original_discretiser import Discretizer, Normalizer

EVENT_HEADER = ["subject_id", "hadm_id", "stay_id", "charttime", "itemid", "value", "valuenum"]
EPS = 1e-6
#: The texts pandas 0.23 (the original's environment) reads as missing. Later versions add "None", a GCS eye value.
PANDAS_023_NA = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "N/A",
                 "NA", "NULL", "NaN", "n/a", "nan", "null"]


def _pandas():  # noqa: ANN202 - the pandas module
    try:
        import pandas as pd
    except ImportError as exc:  # pragma: no cover - pandas comes with the test and bench extras
        raise MedfuseError("the baseline timing needs pandas: pip install -e '.[bench]'") from exc
    return pd


def _rows(path: Path) -> Iterator[dict[str, str]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", newline="") as fh:
        yield from csv.DictReader(fh)


def extract_subjects(files: dict[str, Path], out: Path, progress: bool = False) -> dict[str, int]:
    """Stage 1: the cohort's stays, diagnoses and events, broken up into one folder per subject."""
    pd = _pandas()
    patients = pd.read_csv(files["patients"], parse_dates=["dod"])
    admissions = pd.read_csv(files["admissions"], parse_dates=["admittime", "dischtime", "deathtime"])
    stays = pd.read_csv(files["icustays"], parse_dates=["intime", "outtime"])
    stays = stays[stays.first_careunit == stays.last_careunit]
    stays = stays.merge(admissions, on=["subject_id", "hadm_id"]).merge(patients, on="subject_id")
    per_adm = stays.groupby("hadm_id").stay_id.count()
    stays = stays[stays.hadm_id.isin(per_adm[per_adm == 1].index)]
    stays = stays.assign(age=stays.anchor_age)
    stays = stays[stays.age >= 18]
    died = ((stays.dod.notnull() & (stays.admittime <= stays.dod) & (stays.dod <= stays.dischtime))
            | (stays.deathtime.notnull() & (stays.admittime <= stays.deathtime) & (stays.deathtime <= stays.dischtime)))
    stays = stays.assign(mortality=died.astype(int))
    stays.to_csv(out / "all_stays.csv", index=False)

    diagnoses = pd.read_csv(files["diagnoses_icd"], dtype={"icd_code": str})
    diagnoses = diagnoses[diagnoses.hadm_id.isin(stays.hadm_id)].merge(stays[["hadm_id", "stay_id"]], on="hadm_id")
    subjects = stays.subject_id.unique()
    for subject in tqdm(subjects, desc="baseline: subjects", disable=not progress):
        folder = out / str(subject)
        folder.mkdir(exist_ok=True)
        stays[stays.subject_id == subject].sort_values("intime").to_csv(folder / "stays.csv", index=False)
        diagnoses[diagnoses.subject_id == subject].to_csv(folder / "diagnoses.csv", index=False)

    keep_subjects = {str(s) for s in subjects}
    keep_items = {str(i) for i in resources.itemid_map(include_corrected=True, source=None)}
    rows_read = 0
    for table in ("chartevents", "labevents"):
        current, buffer = "", []

        def flush() -> None:
            path = out / current / "events.csv"
            new = not path.exists()
            with path.open("a", newline="") as fh:
                writer = csv.DictWriter(fh, fieldnames=EVENT_HEADER)
                if new:
                    writer.writeheader()
                writer.writerows(buffer)

        for row in tqdm(_rows(files[table]), desc=f"baseline: {table}", unit=" rows", disable=not progress):
            rows_read += 1
            if row["subject_id"] not in keep_subjects or row["itemid"] not in keep_items:
                continue
            out_row = {k: row.get(k, "") for k in EVENT_HEADER}
            if current and current != row["subject_id"]:
                flush()
                buffer = []
            buffer.append(out_row)
            current = row["subject_id"]
        if current:
            flush()
    return {"subjects": len(subjects), "stays": len(stays), "event_rows_read": rows_read}


def _subject_folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def validate_events(root: Path, progress: bool = False) -> None:
    """Stage 2: per subject, events need a cohort admission; lab events take their admission's stay."""
    pd = _pandas()
    for folder in tqdm(_subject_folders(root), desc="baseline: validate", disable=not progress):
        if not (folder / "events.csv").exists():
            continue
        stays = pd.read_csv(folder / "stays.csv")
        events = pd.read_csv(folder / "events.csv", dtype={"value": str}, keep_default_na=False,
                             na_values=PANDAS_023_NA)
        events = events[events.hadm_id.notnull()]
        events = events.merge(stays[["hadm_id", "stay_id"]].rename(columns={"stay_id": "adm_stay"}), on="hadm_id")
        events["stay_id"] = events.stay_id.fillna(events.adm_stay)
        events = events[events.stay_id == events.adm_stay].drop(columns="adm_stay")
        events.to_csv(folder / "events.csv", index=False)


def _clean(events: Any, pd: Any) -> Any:
    """The original's per-variable cleaning rules on a subject's events (``variable`` and text ``value``)."""
    value = events.value.astype(str)
    number = pd.to_numeric(value, errors="coerce")
    var = events.variable
    out = number.copy()
    for name in ("Systolic blood pressure", "Diastolic blood pressure"):
        idx = var == name
        if not idx.any():
            continue
        parts = value[idx].str.split("/", expand=True)
        part = parts[0] if name.startswith("Systolic") or parts.shape[1] < 2 else parts[1].fillna(parts[0])
        out[idx] = pd.to_numeric(part, errors="coerce")
    idx = var == "Fraction inspired oxygen"
    out[idx] = number[idx] / 100.0
    idx = var == "Oxygen saturation"
    out[idx] = number[idx].where(number[idx] > 1, number[idx] * 100.0)
    idx = var == "Temperature"
    out[idx] = number[idx].where(number[idx] < 79, (number[idx] - 32) * 5.0 / 9.0)
    idx = (var == "Weight") & events.itemid.eq(226531)
    out[idx] = number[idx] * 0.453592
    refill = {"Normal <3 secs": 0.0, "Brisk": 0.0, "Abnormal >3 secs": 1.0, "Delayed": 1.0}
    idx = var == "Capillary refill rate"
    out[idx] = value[idx].map(refill)
    categorical = var.str.startswith("Glascow")
    cleaned = out.astype(object)
    cleaned[categorical] = value[categorical]
    events = events.assign(value=cleaned)
    return events[events.value.notnull()]


def extract_episodes(root: Path, progress: bool = False) -> int:
    """Stage 3: per subject, events mapped and cleaned, pivoted per time, one time-series file per stay."""
    pd = _pandas()
    mapping = resources.itemid_map(source=None)
    items = pd.DataFrame({"itemid": list(mapping), "variable": [v for v, _ in mapping.values()]})
    names = sorted(resources.variable_names())
    episodes = 0
    for folder in tqdm(_subject_folders(root), desc="baseline: episodes", disable=not progress):
        if not (folder / "events.csv").exists():
            continue
        stays = pd.read_csv(folder / "stays.csv", parse_dates=["intime", "outtime"])
        events = pd.read_csv(folder / "events.csv", parse_dates=["charttime"], dtype={"value": str},
                             keep_default_na=False, na_values=PANDAS_023_NA)
        events = _clean(events.merge(items, on="itemid").assign(text=lambda e: e.value), pd)
        # The last value per (time, variable) wins after a sort on the value: the channels the original's cleaning
        # turned into numbers compare as numbers, the others as their charted text.
        numeric = events.variable.isin(NUMERIC_AFTER_CLEANING)
        events = events.assign(_number=pd.to_numeric(events.value.where(numeric), errors="coerce"),
                               _text=events.text.where(~numeric, ""))
        events = events.sort_values(["charttime", "variable", "_number", "_text"])
        last = events.drop_duplicates(["charttime", "variable"], keep="last")
        wide = last.pivot(index="charttime", columns="variable", values="value").reindex(columns=names)
        first_stay = events.groupby("charttime").stay_id.first()
        wide = wide.merge(first_stay, left_index=True, right_index=True).sort_index()
        for n, stay in enumerate(stays.itertuples(), start=1):
            in_stay = (wide.stay_id == stay.stay_id) | ((wide.index >= stay.intime) & (wide.index <= stay.outtime))
            part = wide[in_stay].drop(columns="stay_id")
            if part.empty:
                continue
            part.index = (part.index - stay.intime).total_seconds() / 3600.0
            part.index.name = "Hours"
            part.to_csv(folder / f"episode{n}_timeseries.csv")
            pd.DataFrame({"Icustay": [stay.stay_id], "Age": [stay.age], "Length of Stay": [stay.los],
                          "Mortality": [stay.mortality]}).to_csv(folder / f"episode{n}.csv", index=False)
            episodes += 1
    return episodes


def create_tasks(root: Path, out: Path, code_groups: dict[str, str], progress: bool = False) -> dict[str, Any]:
    """Stage 4: per stay, the episode cut to each task's window and written with the task's listfile; returns the
    number of samples and of positive labels per task."""
    pd = _pandas()
    labels = resources.phenotype_labels()
    ihm, pheno = out / "in-hospital-mortality", out / "phenotyping"
    ihm.mkdir(parents=True, exist_ok=True)
    pheno.mkdir(parents=True, exist_ok=True)
    ihm_rows, pheno_rows = [], []
    for folder in tqdm(_subject_folders(root), desc="baseline: tasks", disable=not progress):
        diagnoses = pd.read_csv(folder / "diagnoses.csv", dtype={"icd_code": str})
        for ts_file in sorted(folder.glob("episode*_timeseries.csv")):
            episode = pd.read_csv(folder / ts_file.name.replace("_timeseries", ""))
            series = pd.read_csv(ts_file, keep_default_na=False, na_values=PANDAS_023_NA)
            stay_id, los = int(episode.Icustay[0]), 24.0 * float(episode["Length of Stay"][0])
            name = f"{folder.name}_{ts_file.name}"
            if los >= 48 - EPS:
                window = series[(series.Hours > -EPS) & (series.Hours < 48 + EPS)]
                if not window.empty:
                    window.to_csv(ihm / name, index=False)
                    ihm_rows.append((name, 0, stay_id, int(episode.Mortality[0])))
            window = series[(series.Hours > -EPS) & (series.Hours < los + EPS)]
            if not window.empty:
                window.to_csv(pheno / name, index=False)
                groups = set(diagnoses[diagnoses.stay_id == stay_id].icd_code.map(code_groups).dropna())
                pheno_rows.append((name, los, stay_id, *(int(g in groups) for g in labels)))
    ihm_list = pd.DataFrame(ihm_rows, columns=["stay", "period_length", "stay_id", "mortality"])
    pheno_list = pd.DataFrame(pheno_rows, columns=["stay", "period_length", "stay_id", *labels])
    ihm_list.to_csv(ihm / "listfile.csv", index=False)
    pheno_list.to_csv(pheno / "listfile.csv", index=False)
    return {
        "samples": {"in-hospital-mortality": len(ihm_list), "phenotyping": len(pheno_list)},
        "positives": {"in-hospital-mortality": {"mortality": int(ihm_list.mortality.sum())},
                      "phenotyping": {label: int(pheno_list[label].sum()) for label in labels}},
    }


def _read_timeseries(path: Path) -> tuple[np.ndarray, list[str]]:
    """The original reader's ``_read_timeseries``: the header, then every line split on commas."""
    ret = []
    with path.open() as tsfile:
        header = tsfile.readline().strip().split(",")
        for line in tsfile:
            ret.append(np.array(line.strip().split(",")))
    return np.stack(ret), header


def discretise_task(tasks: Path, task: str, train_subjects: set[str], progress: bool = False) -> dict[int, np.ndarray]:
    """Every sample of ``task`` discretised, then normalised with a normaliser fitted on the train samples; by stay id.
    """
    discretizer = Discretizer()
    normalizer = Normalizer([i for i, name in enumerate(resources.feature_names()) if "->" not in name])
    rows = [line.split(",") for line in (tasks / task / "listfile.csv").read_text().splitlines()[1:]]
    arrays: dict[int, np.ndarray] = {}
    for row in tqdm(rows, desc=f"baseline: discretise {task}", disable=not progress):
        X, header = _read_timeseries(tasks / task / row[0])
        period = float(row[1])
        data = discretizer.transform(X, header, end=48.0 if period == 0.0 else period)
        if row[0].split("_")[0] in train_subjects:
            normalizer.feed(data)
        arrays[int(row[2])] = data
    if arrays:
        normalizer.fit()
        arrays = {stay: normalizer.transform(data) for stay, data in arrays.items()}
    return arrays


def discretise_tasks(tasks: Path, train_subjects: set[str], progress: bool = False) -> dict[str, Any]:
    """Stage 5: :func:`discretise_task` for both tasks; returns the number of time steps per task."""
    steps = {}
    for task in ("in-hospital-mortality", "phenotyping"):
        steps[task] = sum(a.shape[0] for a in discretise_task(tasks, task, train_subjects, progress).values())
    return {"time_steps": steps}


def _train_subjects(root: Path) -> set[str]:
    """Subjects of the train split under the package's salted hash (the original reads its split lists)."""
    from medfuse_bench.etl.splits import DEFAULT_SALT, assign_splits

    subjects = [int(p.name) for p in _subject_folders(root)]
    splits = assign_splits(subjects, DEFAULT_SALT)
    return {str(s) for s, split in splits.iter_rows() if split == "train"}


def _code_groups(files: dict[str, Path]) -> dict[str, str]:
    """ICD code -> benchmark phenotype for the codes of the diagnoses table (the original reads these from YAML)."""
    import polars as pl

    from medfuse_bench.etl.phenotype_codes import map_codes_with_gem, normalize_code, packaged_gem

    codes = (pl.read_csv(files["diagnoses_icd"], columns=["icd_code", "icd_version"], infer_schema=False)
             .select(icd_code=normalize_code(pl.col("icd_code")), icd_version=pl.col("icd_version").cast(pl.Int64))
             .unique())
    mapped = map_codes_with_gem(codes, packaged_gem()).filter(pl.col("phenotype").is_not_null())
    return dict(mapped.select("icd_code", "phenotype").iter_rows())


#: The original extraction's stages, in the order :func:`run_baseline` runs them.
BASELINE_STAGES = ("subjects", "validate", "episodes", "tasks", "discretise")


def run_baseline(mimic_iv_dir: str | Path, scratch: str | Path, *, progress: bool = False,
                 after_stage: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the five stages on ``mimic_iv_dir``, writing under ``scratch``; return the seconds of each stage.

    ``after_stage(name)``, when given, is called after each stage, outside its timing: the benchmark runs the ETL
    there, so that both are timed over the same stretch of a machine whose speed drifts.
    """
    files = detect_layout(mimic_iv_dir).files
    scratch = Path(scratch)
    root, tasks = scratch / "root", scratch / "tasks"
    root.mkdir(parents=True, exist_ok=False)
    seconds: dict[str, float] = {}

    def timed(stage: str, step: Any) -> Any:
        start = time.perf_counter()
        result = step()
        seconds[stage] = time.perf_counter() - start
        if after_stage is not None:
            after_stage(stage)
        return result

    counts = timed("subjects", lambda: extract_subjects(files, root, progress))
    timed("validate", lambda: validate_events(root, progress))
    counts["episodes"] = timed("episodes", lambda: extract_episodes(root, progress))
    groups = _code_groups(files)
    counts.update(timed("tasks", lambda: create_tasks(root, tasks, groups, progress)))
    train = _train_subjects(root)
    counts.update(timed("discretise", lambda: discretise_tasks(tasks, train, progress)))
    return {"seconds": {k: round(v, 3) for k, v in seconds.items()},
            "total_seconds": round(sum(seconds.values()), 3), "counts": counts}
