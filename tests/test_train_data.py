"""Experiment table, learning-rate draws, image cache, sample sets, batches, augmentation, metrics, selection."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import TASK, make_workdir  # noqa: E402

from medfuse_bench.errors import MedfuseError
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.train import experiments as ex
from medfuse_bench.train.augment import IMAGENET_MEAN, IMAGENET_STD, ImageTransform, sampling_matrices
from medfuse_bench.train.batches import BatchLoader, collate, pad_gather
from medfuse_bench.train.data import (
    cxr_uni_set,
    load_task_data,
    partial_set,
    split_set,
    unpaired_draws,
    unpaired_sample,
)
from medfuse_bench.train.image_cache import build_image_cache, open_image_cache
from medfuse_bench.train.metrics import macro_scores
from medfuse_bench.train.run import cxr_start, sets_for
from medfuse_bench.train.select import choose_run, select_runs


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    w = make_workdir(tmp_path_factory.mktemp("train_data"))
    build_image_cache(w.cxr_uni, w.mimic_cxr, 32, w.cache)
    return w


@pytest.fixture(scope="module")
def data(work):
    return load_task_data(work.tasks_dir, TASK, ["mortality"], work.cache)


# --------------------------------------------------------------------------------------------- experiments


def test_experiment_table_covers_the_contract():
    names = ex.experiment_names([0.0, 0.2, 1.0])
    assert names[:3] == ["ehr-paired", "ehr-partial", "cxr-paired"]
    assert names[-3:] == ["medfuse-p0", "medfuse-p20", "medfuse-p100"]
    assert len(set(names)) == len(names) == 19
    assert ex.get_experiment("daft").model_options("phenotyping") == {"layer_after": 3}
    assert ex.get_experiment("daft").model_options("in-hospital-mortality") == {"layer_after": 4}
    assert ex.get_experiment("early-partial-zeros").model_options(TASK) == {"missing": "zeros"}
    assert ex.test_sets("ehr-partial") == ("paired", "partial")
    assert ex.test_sets("medfuse-p30") == ()
    assert ex.test_sets("ensemble") == ("paired", "partial")
    assert ex.get_experiment("medfuse-p30").uni_fraction == pytest.approx(0.3)
    assert ex.resolve_uni_fraction(ex.get_experiment("medfuse-optimal"), 0.1) == 0.1
    assert ex.resolve_uni_fraction(ex.get_experiment("medfuse-pt"), 0.1) == 1.0
    assert ex.resolve_uni_fraction(ex.get_experiment("joint-paired"), 0.1) is None


def test_dependencies():
    assert ex.dependencies("ehr-partial", TASK) == []
    assert ex.dependencies("cxr-paired", TASK) == [("radiology", "cxr-pretrain")]
    assert ex.dependencies("early-partial") == [("{task}", "ehr-paired"), ("{task}", "cxr-paired")]
    assert ex.dependencies("medfuse-p40", "phenotyping") == [("phenotyping", "ehr-partial"), ("radiology", "cxr-pretrain")]
    assert ex.dependencies("medfuse-ri", TASK) == []
    assert ex.dependencies("ensemble", TASK) == [(TASK, "medfuse-optimal"), (TASK, "ehr-partial")]
    assert ex.dependencies("cxr-pretrain") == []


ORIGINAL, CORRECTED = FidelityPolicy.preset("original"), FidelityPolicy.preset("corrected")


def test_cxr_paired_start_follows_the_policy():
    """cxr_paired_start: the original's uni_paired_cxr.sh trains CXR_PAIRED from scratch; the default starts
    from the CXR_UNI pretraining."""
    assert ex.dependencies("cxr-paired", TASK, CORRECTED) == [("radiology", "cxr-pretrain")]
    assert ex.dependencies("cxr-paired", TASK, ORIGINAL) == []
    assert ex.get_experiment("cxr-paired", TASK, ORIGINAL).cxr_init is None
    # Early fusion still loads the (now scratch-trained) cxr-paired encoder.
    assert ex.dependencies("early-paired", TASK, ORIGINAL) == [(TASK, "ehr-paired"), (TASK, "cxr-paired")]


def test_table_a2_protocol_follows_the_policy():
    """table_a2_protocol: Table A2's four rows start from the EHR_PARTIAL and CXR_UNI encoders at lr 1e-4 in
    the original; by default early fusion starts from ehr-paired / cxr-paired and joint fusion from random."""
    pretrained = [(TASK, "ehr-partial"), ("radiology", "cxr-pretrain")]
    table_a2 = ("early-partial", "early-partial-zeros", "joint-partial", "joint-partial-zeros")
    for name in table_a2:
        assert ex.dependencies(name, TASK, ORIGINAL) == pretrained
    assert ex.dependencies("early-partial-zeros", TASK, CORRECTED) == [(TASK, "ehr-paired"), (TASK, "cxr-paired")]
    assert ex.dependencies("joint-partial", TASK, CORRECTED) == []
    assert ex.get_experiment("joint-partial", TASK, ORIGINAL).freeze_encoders is False
    assert ex.get_experiment("early-partial", TASK, ORIGINAL).freeze_encoders is True
    # Experiments outside Table A2 keep their starts.
    assert ex.dependencies("early-paired", TASK, ORIGINAL) == ex.dependencies("early-paired", TASK, CORRECTED)
    cfg = {"max_epochs": 50, "patience": 15, "lr_draws": 10}
    only_a2 = CORRECTED.replace(table_a2_protocol="fixed_lr_pretrained")
    for name in table_a2:
        assert ex.training_budget(name, only_a2, cfg) == ex.TrainingBudget(1e-4, 1, 50, 15)
        assert ex.training_budget(name, CORRECTED, cfg) == ex.TrainingBudget(None, 10, 50, 15)
    assert ex.training_budget("early-paired", only_a2, cfg) == ex.TrainingBudget(None, 10, 50, 15)


def test_token_early_stopping_and_cxr_pretrain_protocol_budgets():
    cfg = {"max_epochs": 50, "patience": 15, "lr_draws": 10}
    no_stop = CORRECTED.replace(token_early_stopping="none")
    assert ex.training_budget("joint-partial-zeros", no_stop, cfg).patience is None
    assert ex.training_budget("joint-paired", no_stop, cfg).patience == 15  # not a tokens-trainer model
    assert ex.training_budget("joint-partial-zeros", no_stop, cfg).cli_args() == "--max-epochs 50 --patience 0"
    fixed = CORRECTED.replace(cxr_pretrain_protocol="fixed_lr_100_epochs")
    assert ex.training_budget("cxr-pretrain", fixed, cfg) == ex.TrainingBudget(1e-4, 1, 100, 15)
    assert ex.training_budget("cxr-pretrain", fixed, cfg).cli_args() == "--max-epochs 100 --patience 15 --lr 0.0001"
    assert ex.training_budget("cxr-pretrain", CORRECTED, cfg) == ex.TrainingBudget(None, 10, 50, 15)
    assert ex.training_budget("cxr-pretrain", fixed, {**cfg, "max_epochs": 2}).max_epochs == 4
    with pytest.raises(MedfuseError, match="unknown experiment"):
        ex.training_budget("nope", CORRECTED, cfg)


def test_cxr_pretrain_init_follows_the_policy(tmp_path):
    """cxr_pretrain_init: imagenet uses the named weights file and, without one, says that the encoder starts
    from random weights; random starts from random weights and refuses a weights file."""
    pretrain, weights = ex.get_experiment("cxr-pretrain"), tmp_path / "resnet34.pt"
    assert cxr_start(pretrain, "radiology", ORIGINAL, weights) == (weights, "imagenet (resnet34.pt)")
    assert cxr_start(pretrain, "radiology", ORIGINAL, None) == (None, "random (no ImageNet weights file)")
    assert cxr_start(pretrain, "radiology", CORRECTED, None) == (None, "random")
    with pytest.raises(MedfuseError, match="cxr_pretrain_init"):
        cxr_start(pretrain, "radiology", CORRECTED, weights)
    assert cxr_start(ex.get_experiment("cxr-paired"), TASK, CORRECTED, None) == (None, "radiology/cxr-pretrain")
    assert cxr_start(ex.get_experiment("cxr-paired", TASK, ORIGINAL), TASK, ORIGINAL, None) == (None, "random")
    assert cxr_start(ex.get_experiment("early-paired"), TASK, ORIGINAL, None) == (None, f"{TASK}/cxr-paired")
    assert cxr_start(ex.get_experiment("ehr-partial"), TASK, ORIGINAL, None) == (None, None)


@pytest.mark.parametrize("name, task", [("nope", TASK), ("medfuse-p101", TASK), ("ehr-paired", "radiology"),
                                        ("cxr-pretrain", TASK), ("ehr-paired", "sepsis")])
def test_unknown_experiment_is_an_error(name, task):
    with pytest.raises(MedfuseError):
        ex.get_experiment(name, task)


def test_lr_draws_are_deterministic_log_uniform_and_independent():
    draws = [ex.lr_for_draw(1002, k) for k in range(10)]
    assert draws == [ex.lr_for_draw(1002, k) for k in range(10)]
    assert all(1e-5 <= lr <= 1e-3 for lr in draws)
    assert len(set(draws)) == 10
    assert draws != [ex.lr_for_draw(7, k) for k in range(10)]
    many = np.log10([ex.lr_for_draw(3, k) for k in range(2000)])
    assert many.mean() == pytest.approx(-4.0, abs=0.05)  # uniform in log10 over [-5, -3]
    assert np.histogram(many, bins=4, range=(-5, -3))[0].min() > 400
    with pytest.raises(MedfuseError):
        ex.lr_for_draw(1, 0, 1e-3, 1e-5)


# --------------------------------------------------------------------------------------------- image cache


def _png_cxr_uni(root: Path, images: dict[str, np.ndarray]) -> Path:
    rows = []
    for i, (dicom, pixels) in enumerate(images.items()):
        rel = f"files/{dicom}.png"
        (root / "files").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / rel)
        rows.append({"dicom_id": dicom, "subject_id": i, "split": "train", "path": rel})
    path = root / "cxr_uni.parquet"
    pl.DataFrame(rows).write_parquet(path)
    return path


def test_image_cache_round_trip(tmp_path):
    band = np.zeros((80, 40), np.uint8)
    band[20:60] = 200  # tall image: the centre square after resizing is the bright band
    images = {
        "flat10": np.full((30, 50), 10, np.uint8),
        "rgb": np.dstack([np.full((40, 40), 90, np.uint8)] * 3),
        "band": band,
    }
    cxr_uni = _png_cxr_uni(tmp_path, images)
    build_image_cache(cxr_uni, tmp_path, 20, tmp_path / "cache", workers=2)
    array, index = open_image_cache(tmp_path / "cache")
    assert array.dtype == np.uint8 and array.shape == (3, 20, 20)
    assert index.select("dicom_id", "row").rows() == [("flat10", 0), ("rgb", 1), ("band", 2)]
    assert index["readable"].all()
    assert (array[0] == 10).all()
    assert (array[1] == 90).all()
    assert (array[2, 2:-2] == 200).all() and array[2].min() > 150  # the band fills the square (edges blur)


def test_image_cache_names_a_missing_or_broken_file(tmp_path):
    cxr_uni = _png_cxr_uni(tmp_path, {"ok": np.zeros((20, 20), np.uint8)})
    frame = pl.read_parquet(cxr_uni)
    missing = frame.with_columns(pl.lit("files/gone.jpg").alias("path"), pl.lit("gone").alias("dicom_id"))
    pl.concat([frame, missing]).write_parquet(cxr_uni)
    with pytest.raises(MedfuseError, match="gone.jpg"):
        build_image_cache(cxr_uni, tmp_path, 16, tmp_path / "cache")
    assert not (tmp_path / "cache" / "images.npy").exists()  # nothing half-written
    (tmp_path / "files" / "gone.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(MedfuseError, match="gone.jpg"):
        build_image_cache(cxr_uni, tmp_path, 16, tmp_path / "cache")
    with pytest.raises(MedfuseError, match="images.npy"):
        open_image_cache(tmp_path / "cache")


# --------------------------------------------------------------------------------------------- sets and batches


def test_task_data_joins_index_and_images(work, data):
    samples = pl.read_parquet(work.tasks_dir / TASK / "samples.parquet")
    assert data.samples["stay_id"].to_list() == samples["stay_id"].to_list()
    paired = data.samples.filter(pl.col("cxr_dicom_id").is_not_null())
    _, index = open_image_cache(work.cache)
    rows = dict(zip(index["dicom_id"], index["row"]))
    assert paired["image_row"].to_list() == [rows[d] for d in paired["cxr_dicom_id"]]
    assert (data.samples.filter(pl.col("cxr_dicom_id").is_null())["image_row"] == -1).all()


def test_missing_task_inputs_are_named(work, tmp_path):
    with pytest.raises(MedfuseError, match="samples.parquet"):
        load_task_data(tmp_path, TASK, ["mortality"], None)
    with pytest.raises(MedfuseError, match="images.npy"):
        load_task_data(work.tasks_dir, TASK, ["mortality"], tmp_path)


def test_pad_gather_pads_with_zeros():
    ts = np.arange(20, dtype=np.float32).reshape(10, 2)
    out = pad_gather(ts, np.array([8, 1, 5]), np.array([2, 4, 0]))
    assert out.shape == (3, 4, 2)
    assert out[0, :2].tolist() == [[16, 17], [18, 19]] and not out[0, 2:].any()
    assert out[1].tolist() == ts[1:5].tolist()
    assert not out[2].any()


def test_collate_gathers_only_present_images(data):
    fusion = split_set(data, "train", stays="all")
    rows = np.arange(16)
    batch = collate(fusion, rows)
    has = fusion.image_row[rows] >= 0
    lengths = fusion.ts_length[rows]
    assert batch["ehr"].shape == (16, lengths.max(), 76) and batch["ehr"].dtype == torch.float32
    assert batch["ehr_lengths"].tolist() == lengths.tolist()
    for i in range(16):
        start = fusion.ts_offset[rows[i]]
        np.testing.assert_array_equal(batch["ehr"][i, : lengths[i]].numpy(), fusion.timeseries[start : start + lengths[i]])
        assert not batch["ehr"][i, lengths[i]:].any()
    assert batch["has_cxr"].tolist() == has.tolist()
    assert batch["cxr_uint8"].shape == (has.sum(), 32, 32) and batch["cxr_uint8"].dtype == torch.uint8
    np.testing.assert_array_equal(batch["cxr_uint8"].numpy(), fusion.images[fusion.image_row[rows][has]])
    assert batch["keys"].tolist() == fusion.keys[rows].tolist()
    ehr_only = collate(split_set(data, "train", stays="all", images=False), rows)
    assert ehr_only["cxr_uint8"].shape[0] == 0 and not ehr_only["has_cxr"].any()
    cxr_only = collate(split_set(data, "train", stays="paired", ehr=False), np.arange(4))
    assert cxr_only["cxr_uint8"].shape[0] == 4 and cxr_only["ehr"].shape == (4, 1, 76)


def test_loader_epochs_are_reproducible_and_shuffled(data):
    train = split_set(data, "train", stays="all")
    loader = BatchLoader(train, 16, shuffle=True, drop_last=True, seed=5)
    first = [b["keys"].tolist() for b in loader.epoch(1)]
    assert first == [b["keys"].tolist() for b in loader.epoch(1)]
    assert first != [b["keys"].tolist() for b in loader.epoch(2)]
    assert len(first) == len(train) // 16 and all(len(k) == 16 for k in first)
    assert len({k for keys in first for k in keys}) == len(first) * 16
    ordered = BatchLoader(train, 50, shuffle=False, drop_last=False, prefetch=0)
    assert [k for b in ordered.epoch(0) for k in b["keys"].tolist()] == train.keys.tolist()


def test_unpaired_sampling_corrected_is_without_replacement():
    chosen = unpaired_sample(101, 0.2, seed=3)
    assert chosen.shape == (20,) and len(set(chosen.tolist())) == 20 and (np.diff(chosen) > 0).all()
    assert chosen.tolist() == unpaired_sample(101, 0.2, seed=3).tolist()
    assert chosen.tolist() != unpaired_sample(101, 0.2, seed=4).tolist()
    assert unpaired_sample(101, 0.0, seed=3).size == 0
    assert unpaired_sample(101, 1.0, seed=3).tolist() == list(range(101))
    draws = unpaired_draws(1000, 1.0, np.random.default_rng(0))
    assert draws.shape == (1000,) and len(set(draws.tolist())) < 700  # with replacement: ~63 % unique


def test_unimodal_sampling_switch(data):
    """unimodal_sampling: without_replacement is a fixed sample of distinct stays; with_replacement (the
    original) draws unpaired stays with replacement, anew every epoch."""
    train = data.samples.filter(pl.col("split") == "train")
    n_paired = train["cxr_dicom_id"].is_not_null().sum()
    n_unpaired = train.height - n_paired
    corrected = partial_set(data, "train", 0.5, with_replacement=False, seed=1)
    assert len(corrected) == n_paired + round(0.5 * n_unpaired)
    assert corrected.paired_count == n_paired and len(set(corrected.keys.tolist())) == len(corrected)
    order = {s: i for i, s in enumerate(train["stay_id"])}
    assert all(order[a] < order[b] for a, b in zip(corrected.keys, corrected.keys[1:]))  # samples.parquet order
    original = partial_set(data, "train", 0.5, with_replacement=True, seed=1)
    rows1 = original.epoch_rows(np.random.default_rng(1))
    rows2 = original.epoch_rows(np.random.default_rng(2))
    assert rows1.shape == rows2.shape == (n_paired + int(0.5 * n_unpaired),)
    assert rows1.tolist() != rows2.tolist()
    assert (original.image_row[rows1[:n_paired]] >= 0).all() and (original.image_row[rows1[n_paired:]] < 0).all()
    spec, common = ex.get_experiment("medfuse-pt"), {"fraction": 0.5, "seed": 1, "training": True}
    assert sets_for(spec, data, "train", policy=ORIGINAL, **common).resample is not None
    assert sets_for(spec, data, "train", policy=CORRECTED, **common).resample is None


def test_partial_validation_switch(data):
    """partial_validation: all_stays validates partial-trained models on every val stay; paired_only (the
    original) on the paired ones; EHR_PARTIAL validates on every stay under both."""
    spec = ex.get_experiment("medfuse-optimal")
    val = data.samples.filter(pl.col("split") == "val")
    common = {"fraction": 0.1, "seed": 0, "training": False}
    assert len(sets_for(spec, data, "val", policy=CORRECTED, **common)) == val.height
    original = sets_for(spec, data, "val", policy=CORRECTED.replace(partial_validation="paired_only"), **common)
    assert len(original) == val["cxr_dicom_id"].is_not_null().sum() and (original.image_row >= 0).all()
    ehr_partial = sets_for(ex.get_experiment("ehr-partial"), data, "val", policy=ORIGINAL, **common)
    assert len(ehr_partial) == val.height and ehr_partial.has_ehr and (ehr_partial.image_row < 0).all()


@pytest.mark.parametrize("fidelity", ["corrected", "original"])
def test_validation_stays_names_the_set_training_validates_on(data, fidelity):
    """The report counts validation positives with validation_stays; it must pick the stays sets_for validates on."""
    policy = FidelityPolicy.preset(fidelity)
    val = data.samples.filter(pl.col("split") == "val")
    for name in ex.experiment_names([0.5]):
        spec = ex.get_experiment(name)
        built = sets_for(spec, data, "val", fraction=0.5, policy=policy, seed=0, training=False)
        stays = ex.validation_stays(spec.training_set, policy.partial_validation)
        expected = val if stays == "all" else val.filter(pl.col("cxr_dicom_id").is_not_null())
        assert built.keys.tolist() == expected["stay_id"].to_list(), (name, fidelity)
    with pytest.raises(MedfuseError, match="cxr_uni"):
        ex.validation_stays("cxr_uni", policy.partial_validation)


def test_cxr_uni_set(work):
    train = cxr_uni_set(work.cxr_uni, work.cache, "train", list(ex.CHEXPERT_LABELS))
    frame = pl.read_parquet(work.cxr_uni).filter(pl.col("split") == "train")
    assert len(train) == frame.height and train.labels.shape == (frame.height, 14) and not train.has_ehr
    assert train.labels[:, 1].tolist() == frame["Cardiomegaly"].cast(pl.Float32).to_list()


# --------------------------------------------------------------------------------------------- augmentation


def test_augmentation_differs_per_sample_and_eval_crop_is_fixed():
    image = torch.zeros(32, 32, dtype=torch.uint8)
    image[4:14, 6:26] = 255  # asymmetric, so flips and rotations show
    batch = image.expand(8, 32, 32).clone()
    train = ImageTransform(28, train=True)
    out = train(batch, torch.Generator().manual_seed(0))
    assert out.shape == (8, 3, 28, 28)
    assert len({tuple(o[0].flatten().tolist()) for o in out}) == 8
    again = train(batch, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    evaluate = ImageTransform(28, train=False)
    first, second = evaluate(batch), evaluate(batch)
    assert torch.equal(first, second) and torch.equal(first[0], first[7])
    expected = (image[2:30, 2:30].float() / 255 - IMAGENET_MEAN[1]) / IMAGENET_STD[1]
    torch.testing.assert_close(first[0, 1], expected)
    assert ImageTransform(28, train=False)(torch.zeros(0, 32, 32, dtype=torch.uint8)).shape == (0, 3, 28, 28)


def test_random_crop_without_augmentation_is_an_exact_shifted_window():
    g = torch.Generator().manual_seed(1)
    theta = sampling_matrices(50, 32, 28, g, augment=False, random_crop=True)
    offsets = set()
    for t in theta:
        assert torch.allclose(t[:, :2], torch.eye(2) * 28 / 32)
        offsets.add(tuple(((t[:, 2] * 16) + 16 - 14).round().int().tolist()))
    assert len(offsets) > 5 and all(0 <= o <= 4 for pair in offsets for o in pair)
    centre = sampling_matrices(3, 32, 28, None, augment=False, random_crop=False)
    assert torch.allclose(centre[:, :, 2], torch.zeros(3, 2), atol=1e-6)


# --------------------------------------------------------------------------------------------- metrics, select


def test_macro_scores_skip_single_class_labels():
    y = np.array([[0, 1], [1, 1], [0, 1], [1, 1]])
    p = np.array([[0.1, 0.3], [0.9, 0.2], [0.2, 0.9], [0.8, 0.1]])
    auroc, auprc = macro_scores(y, p)
    assert auroc == 1.0 and auprc == 1.0
    assert all(math.isnan(v) for v in macro_scores(np.ones((3, 1)), np.full((3, 1), 0.5)))


def _fake_run(root: Path, draw: int, auroc: float | None) -> Path:
    run = root / f"lr{draw}"
    run.mkdir(parents=True)
    (run / "checkpoint.pt").write_bytes(f"weights of draw {draw}".encode())
    result = {"experiment": "ehr-paired", "task": TASK, "draw": draw, "lr": 1e-4 * (draw + 1), "best_epoch": 2,
              "val_auroc": auroc, "val_auprc": 0.5, "epochs_run": 3, "train_samples": 1, "val_samples": 1, "seconds": 1.0}
    (run / "result.json").write_text(json.dumps(result))
    return run


def test_select_picks_the_best_draw_ties_lower(tmp_path):
    runs = [_fake_run(tmp_path, 0, 0.70), _fake_run(tmp_path, 1, 0.81), _fake_run(tmp_path, 2, None),
            _fake_run(tmp_path, 3, 0.81)]
    selected = select_runs(list(reversed(runs)), tmp_path / "selected.json")
    assert selected["draw"] == 1 and selected["lr"] == pytest.approx(2e-4)
    on_disk = json.loads((tmp_path / "selected.json").read_text())
    # The chosen checkpoint is copied beside selected.json, so the run folders' checkpoints may go.
    assert on_disk["checkpoint"] == str(tmp_path / "checkpoint.pt") and on_disk["run"] == str(runs[1])
    assert (tmp_path / "checkpoint.pt").read_bytes() == b"weights of draw 1"
    assert set(on_disk) >= {"experiment", "task", "draw", "lr", "val_auroc", "val_auprc", "best_epoch", "checkpoint", "runs"}
    assert len(on_disk["runs"]) == 4
    assert choose_run([{"draw": 0, "val_auroc": None}]) == 0
    with pytest.raises(MedfuseError, match="result.json"):
        select_runs([tmp_path / "nothing"], tmp_path / "s.json")


def test_select_copies_to_the_given_place_and_needs_the_chosen_checkpoint(tmp_path):
    runs = [_fake_run(tmp_path / "runs", 0, 0.6), _fake_run(tmp_path / "runs", 1, 0.7)]
    (runs[0] / "checkpoint.pt").unlink()  # a draw that was not chosen may lack its checkpoint
    selected = select_runs(runs, tmp_path / "sel" / "selected.json", tmp_path / "best.pt")
    assert selected["checkpoint"] == str(tmp_path / "best.pt")
    assert (tmp_path / "best.pt").read_bytes() == b"weights of draw 1" and not (tmp_path / "sel" / "checkpoint.pt").exists()
    (runs[1] / "checkpoint.pt").unlink()
    with pytest.raises(MedfuseError, match="lr1/checkpoint.pt"):
        select_runs(runs, tmp_path / "again.json")
    assert not (tmp_path / "again.json").exists()
    # selecting inside the run folder itself leaves its checkpoint in place
    run = _fake_run(tmp_path / "alone", 0, 0.5)
    assert select_runs([run], run / "selected.json")["checkpoint"] == str(run / "checkpoint.pt")
    assert (run / "checkpoint.pt").read_bytes() == b"weights of draw 0"


def test_image_cache_adds_linked_images_without_chexpert_rows(tmp_path):
    """A paired stay may link an image that has no CheXpert row; the cache must still hold it."""
    import numpy as np
    import polars as pl
    from PIL import Image

    from medfuse_bench.train.image_cache import build_image_cache, open_image_cache

    root = tmp_path / "cxr"
    rows = []
    for i, (subject, study, dicom) in enumerate([(10000001, 5, "a"), (10000002, 6, "b")]):
        path = root / f"files/p10/p{subject}/s{study}/{dicom}.jpg"
        path.parent.mkdir(parents=True)
        Image.fromarray(np.full((12, 10), 40 * (i + 1), np.uint8)).save(path)
        rows.append({"dicom_id": dicom, "subject_id": subject, "study_id": study})
    uni = pl.DataFrame({"dicom_id": ["a"], "split": ["train"], "path": ["files/p10/p10000001/s5/a.jpg"]})
    uni.write_parquet(tmp_path / "uni.parquet")
    pl.DataFrame(rows).write_parquet(tmp_path / "meta.parquet")
    pl.DataFrame({"cxr_dicom_id": ["b", None, "a"]}).write_parquet(tmp_path / "samples.parquet")

    build_image_cache(tmp_path / "uni.parquet", root, 8, tmp_path / "cache",
                      samples_paths=[tmp_path / "samples.parquet"], metadata_path=tmp_path / "meta.parquet")
    images, index = open_image_cache(tmp_path / "cache")
    assert index["dicom_id"].to_list() == ["a", "b"]
    assert images.shape == (2, 8, 8)
    assert int(images[1].mean()) == 80 and int(images[0].mean()) == 40


def test_select_starts_without_scikit_learn():
    """`select` runs once per experiment as its own process; importing scikit-learn would be most of its time."""
    import subprocess

    code = "import sys, medfuse_bench.cli as c; c.build_parser('select'); import medfuse_bench.train.select; " \
           "print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1]).stdout
    assert out.strip() == "False"
