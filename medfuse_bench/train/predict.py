"""Test-set predictions of a selected model, and the ensemble of appendix A.7.

A prediction file ``{test_set}.parquet`` holds stay_id, then ``target:<label>`` (Int8 truth) per label, then
``<label>`` (Float64 probability) per label, rows in samples.parquet order. Every test set is complete in
both fidelities (the original's partial test set draws unpaired stays with replacement, anew at each
evaluation; that is not reproduced, so predictions are deterministic and every stay is scored once).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import polars as pl
import torch

from medfuse_bench.errors import MedfuseError
from medfuse_bench.io import write_parquet
from medfuse_bench.train.checkpoints import build_from_checkpoint, checkpoint_path, read_selected, read_torch
from medfuse_bench.train.data import load_task_data
from medfuse_bench.train.experiments import ENSEMBLE_TEST_SETS, RADIOLOGY, get_experiment, labels_of
from medfuse_bench.train.loop import predict, resolve_device
from medfuse_bench.train.run import test_set

log = logging.getLogger(__name__)


def prediction_frame(keys: np.ndarray, targets: np.ndarray, probabilities: np.ndarray, labels: list[str]) -> pl.DataFrame:
    """The prediction-file layout.

    >>> prediction_frame(np.array([5]), np.array([[1.0]]), np.array([[0.25]]), ["mortality"]).columns
    ['stay_id', 'target:mortality', 'mortality']
    """
    columns: dict[str, pl.Series] = {"stay_id": pl.Series("stay_id", keys, dtype=pl.Int64)}
    for i, label in enumerate(labels):
        columns[f"target:{label}"] = pl.Series(f"target:{label}", targets[:, i].round(), dtype=pl.Float64).cast(pl.Int8)
    for i, label in enumerate(labels):
        columns[label] = pl.Series(label, probabilities[:, i], dtype=pl.Float64)
    return pl.DataFrame(columns)


def predict_experiment(
    selected: str | os.PathLike[str],
    tasks_dir: str | os.PathLike[str],
    task: str,
    experiment: str,
    out_dir: str | os.PathLike[str],
    *,
    image_cache: str | os.PathLike[str] | None = None,
    device: str = "auto",
    batch_size: int = 64,
    threads: int | None = None,
) -> list[Path]:
    """Write the experiment's test-set predictions into ``out_dir``; return the files written."""
    if task == RADIOLOGY:
        raise MedfuseError("radiology/cxr-pretrain has no task test sets to predict; it only starts other encoders")
    spec = get_experiment(experiment, task)
    if not spec.test_sets:
        raise MedfuseError(f"experiment '{experiment}' has no test sets (it is validated only)")
    if threads:
        torch.set_num_threads(threads)
    checkpoint = read_torch(checkpoint_path(selected))
    meta = checkpoint.get("meta", {})
    # medfuse-optimal chosen from the uni-modal sweep names the checkpoint of that sweep point
    chosen = read_selected(selected).get("chosen_experiment") if Path(selected).suffix == ".json" else None
    if meta.get("task") not in (None, task) or meta.get("experiment") not in (None, experiment, chosen):
        raise MedfuseError(
            f"'{selected}' holds {meta.get('task')}/{meta.get('experiment')}, not {task}/{experiment}; check --selected"
        )
    if spec.uses_images and image_cache is None:
        raise MedfuseError(f"--image-cache is required for experiment '{experiment}'")
    labels = labels_of(task)
    data = load_task_data(tasks_dir, task, labels, image_cache if spec.uses_images else None, spec.timeseries)
    if spec.uses_images and meta.get("image_size") and data.images is not None and data.images.shape[1] != meta["image_size"]:
        raise MedfuseError(
            f"the image cache holds {data.images.shape[1]} px images but the model was trained on {meta['image_size']} px; "
            "use the cache it was trained with"
        )
    run_device = resolve_device(device)
    model = build_from_checkpoint(checkpoint).to(run_device)
    written = []
    for name in spec.test_sets:
        sample_set = test_set(spec, data, name)
        probabilities, targets, _ = predict(model, sample_set, device=run_device, crop=meta.get("crop"),
                                            batch_size=batch_size, progress=True)
        path = Path(out_dir) / f"{name}.parquet"
        write_parquet(prediction_frame(sample_set.keys, targets, probabilities, labels), path)
        log.info("wrote %s (%d rows)", path, len(sample_set))
        written.append(path)
    return written


def read_predictions(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise MedfuseError(f"prediction file '{path}' does not exist; run `medfuse-bench predict` for it first")
    return pl.read_parquet(path)


def ensemble_predictions(
    fusion_dir: str | os.PathLike[str],
    ehr_dir: str | os.PathLike[str],
    tasks_dir: str | os.PathLike[str],
    task: str,
    out_dir: str | os.PathLike[str],
) -> list[Path]:
    """MedFuse (OPTIMAL) where the stay has an X-ray, the EHR-only LSTM elsewhere (appendix A.7)."""
    from medfuse_bench.models import ensemble_probabilities

    labels = labels_of(task)
    samples_path = Path(tasks_dir) / task / "samples.parquet"
    if not samples_path.is_file():
        raise MedfuseError(f"task file '{samples_path}' does not exist; run the ETL for task '{task}' first")
    paired = pl.read_parquet(samples_path, columns=["stay_id", "cxr_dicom_id"]).select(
        "stay_id", pl.col("cxr_dicom_id").is_not_null().alias("has_cxr")
    )
    written = []
    for name in ENSEMBLE_TEST_SETS:
        fusion = read_predictions(Path(fusion_dir) / f"{name}.parquet")
        ehr = read_predictions(Path(ehr_dir) / f"{name}.parquet")
        if fusion["stay_id"].to_list() != ehr["stay_id"].to_list():
            raise MedfuseError(
                f"'{Path(fusion_dir) / name}.parquet' and '{Path(ehr_dir) / name}.parquet' hold different stays; "
                "predict both from the same task tables"
            )
        has_cxr = fusion.select("stay_id").join(paired, on="stay_id", how="left", maintain_order="left")["has_cxr"]
        mixed = ensemble_probabilities(
            fusion.select(labels).to_numpy(), ehr.select(labels).to_numpy(), has_cxr.fill_null(False).to_numpy()
        )
        out = fusion.with_columns(pl.Series(label, mixed[:, i], dtype=pl.Float64) for i, label in enumerate(labels))
        path = Path(out_dir) / f"{name}.parquet"
        write_parquet(out, path)
        written.append(path)
    return written
