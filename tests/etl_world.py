"""A small random world of ETL inputs (stays, events, phenotypes, X-ray tables) in the contracts of
docs/architecture.md, for the task-table, summary and time-series tests and for timing the discretiser."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import polars as pl

from medfuse_bench.resources import CHEXPERT_LABELS, phenotype_labels, variables

T0 = datetime(2150, 1, 1)


def make_world(n_stays: int = 200, seed: int = 0, events_per_hour: float = 3.0) -> dict[str, pl.DataFrame]:
    """Random stays (one per subject every other stay), events on the 17 variables, labels and X-rays."""
    rng = np.random.default_rng(seed)
    stay_id = np.arange(30000000, 30000000 + n_stays)
    subject_id = 10000000 + np.arange(n_stays) // 2 * 7
    start = rng.integers(0, 3600 * 24 * 365, n_stays)
    los_hours = np.round(rng.gamma(2.0, 30.0, n_stays) + 2.0, 3)
    intime = pl.Series(start * 1_000_000, dtype=pl.Int64).cast(pl.Duration("us")) + T0
    stays = pl.DataFrame({
        "subject_id": subject_id, "hadm_id": stay_id + 1000, "stay_id": stay_id, "intime": intime,
    }).with_columns(
        outtime=pl.col("intime") + pl.Series((los_hours * 3.6e9).astype(np.int64)).cast(pl.Duration("us")),
        los_hours=pl.Series(los_hours),
        age=pl.Series(rng.integers(18, 91, n_stays)),
        mortality=pl.Series(rng.random(n_stays) < 0.12).cast(pl.Int8),
    ).with_columns(  # deaths in the unit (deathtime = dischtime = outtime); survivors leave hospital a day later
        dischtime=pl.when(pl.col("mortality") == 1).then(pl.col("outtime"))
        .otherwise(pl.col("outtime") + pl.duration(hours=24)),
        deathtime=pl.when(pl.col("mortality") == 1).then(pl.col("outtime")),
    )
    # Events: a Poisson number per stay, hours uniform over [-5, los + 5].
    counts = rng.poisson(events_per_hour * (los_hours + 10.0))
    owner = np.repeat(np.arange(n_stays), counts)
    hours = rng.random(owner.size) * (los_hours[owner] + 10.0) - 5.0
    specs = variables()
    var_idx = rng.integers(0, len(specs), owner.size)
    names = np.array([v["name"] for v in specs])
    categorical = np.array([v["categorical"] for v in specs])
    value = rng.normal(80.0, 20.0, owner.size)
    choice = rng.integers(0, 1000, owner.size)
    texts = _category_texts(specs, var_idx, choice)
    events = pl.DataFrame({
        "stay_id": stay_id[owner],
        "hours": np.round(hours, 4),
        "variable": names[var_idx],
        "value": np.where(categorical[var_idx], np.nan, value),
        "value_text": texts.astype(str),
        "_categorical": categorical[var_idx],
    }).with_columns(
        pl.col("value").fill_nan(None),
        pl.when(pl.col("_categorical")).then(pl.col("value_text")).alias("value_text"),
    ).drop("_categorical")
    phenotypes = pl.DataFrame({"stay_id": stay_id}).with_columns(
        pl.Series(name, (rng.random(n_stays) < 0.2).astype(np.int8)) for name in phenotype_labels()
    )
    # X-rays: 0-3 per stay, at random hours in [-24, los + 24], AP or PA or LATERAL.
    n_img = rng.integers(0, 4, n_stays)
    img_owner = np.repeat(np.arange(n_stays), n_img)
    img_hours = rng.random(img_owner.size) * (los_hours[img_owner] + 48.0) - 24.0
    when = stays["intime"].to_numpy()[img_owner] + (img_hours * 3.6e9).astype("timedelta64[us]")
    when_pl = pl.Series("when", when)
    study_id = 50000000 + np.arange(img_owner.size)
    metadata = pl.DataFrame({
        "dicom_id": [f"d{i:07d}" for i in range(img_owner.size)],
        "subject_id": subject_id[img_owner],
        "study_id": study_id,
        "ViewPosition": rng.choice(["AP", "AP", "PA", "LATERAL"], img_owner.size),
        "StudyDate": when_pl.dt.strftime("%Y%m%d").cast(pl.Int64),
        "StudyTime": when_pl.dt.strftime("%H%M%S").cast(pl.Float64) + 0.25,
    })
    chexpert = pl.DataFrame({"subject_id": subject_id[img_owner], "study_id": study_id}).with_columns(
        pl.Series(name, rng.choice(np.array([1.0, 0.0, -1.0, np.nan]), img_owner.size)).fill_nan(None)
        for name in CHEXPERT_LABELS
    )
    # MIMIC-CXR's official split is by patient.
    patient_split = rng.choice(["train", "validate", "test"], n_stays, p=[0.9, 0.05, 0.05])
    cxr_split = metadata.select("dicom_id", "study_id", "subject_id").with_columns(
        split=pl.Series(patient_split[(subject_id[img_owner] - 10000000) // 7])
    )
    return {"stays": stays, "events": events, "phenotypes": phenotypes, "cxr_metadata": metadata,
            "cxr_chexpert": chexpert, "cxr_split": cxr_split}


def _category_texts(specs: list, var_idx: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """A possible value of each categorical event (one vectorised pick per variable)."""
    out = np.full(var_idx.size, "", dtype=object)
    for i, v in enumerate(specs):
        if v["categorical"]:
            sel = var_idx == i
            values = np.array(v["possible_values"], dtype=object)
            out[sel] = values[choice[sel] % len(values)]
    return out


def write_world(world: dict[str, pl.DataFrame], workdir: Path) -> None:
    """Write the world where the pipeline keeps it: etl/*.parquet and etl/raw/cxr_*.parquet."""
    (workdir / "etl" / "raw").mkdir(parents=True, exist_ok=True)
    for name in ("stays", "events", "phenotypes"):
        world[name].write_parquet(workdir / "etl" / f"{name}.parquet")
    for name in ("cxr_metadata", "cxr_chexpert", "cxr_split"):
        world[name].write_parquet(workdir / "etl" / "raw" / f"{name}.parquet")
