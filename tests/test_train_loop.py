"""Training runs on tiny fabricated data: learning, fusion beating EHR-only, frozen encoders, resume, every
family, predictions, ensemble, the training switches of the fidelity policy, and the command line's error
paths."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).parent))
from train_fixtures import TASK, make_workdir  # noqa: E402

from medfuse_bench.errors import MedfuseError
from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.train import loop
from medfuse_bench.train.checkpoints import read_torch
from medfuse_bench.train.data import load_task_data
from medfuse_bench.train.experiments import get_experiment
from medfuse_bench.train.image_cache import build_image_cache
from medfuse_bench.train.loop import FitSettings, fit, seed_everything
from medfuse_bench.train.run import RunInputs, model_options, sets_for, train_run
from medfuse_bench.train.steps import MMTMThreePassStep, SingleStep, make_step

CROP = 28
RESULT_KEYS = {"experiment", "task", "draw", "lr", "cxr_init", "best_epoch", "val_auroc", "val_auprc", "epochs_run",
               "train_samples", "val_samples", "seconds"}
ORIGINAL, CORRECTED = FidelityPolicy.preset("original"), FidelityPolicy.preset("corrected")


def train_args(work, experiment: str, out: Path, *extra: object, epochs: int = 1) -> list[object]:
    return ["train", "--tasks-dir", work.tasks_dir, "--image-cache", work.cache, "--cxr-uni", work.cxr_uni,
            "--task", TASK, "--experiment", experiment, "--lr", "1e-3", "--out-dir", out, "--max-epochs", epochs,
            "--patience", 5, "--crop", CROP, "--device", "cpu", "--threads", 1, "--quiet", "--keep-resume-state", *extra]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a shared 2-core machine more threads oversubscribe and run far slower."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    w = make_workdir(tmp_path_factory.mktemp("train_small"), counts={"train": 40, "val": 24, "test": 8}, extra_images=3)
    build_image_cache(w.cxr_uni, w.mimic_cxr, 32, w.cache)
    return w


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    w = make_workdir(tmp_path_factory.mktemp("train_loop"))
    build_image_cache(w.cxr_uni, w.mimic_cxr, 32, w.cache)
    return w


@pytest.fixture(scope="module")
def trained(work, cli):
    """ehr-partial and medfuse-ri trained for 3 epochs, selected and predicted through the CLI."""
    models, predictions = work.root / "models" / TASK, work.root / "predictions" / TASK
    for experiment in ("ehr-partial", "medfuse-ri"):
        run = models / experiment / "runs" / "lr0"
        assert cli(*train_args(work, experiment, run, epochs=3)) == 0
        assert cli(*["select", "--runs", run, "--out", models / experiment / "selected.json"]) == 0
        assert cli(*["predict", "--selected", models / experiment / "selected.json", "--tasks-dir", work.tasks_dir,
                        "--image-cache", work.cache, "--task", TASK, "--experiment", experiment,
                        "--out-dir", predictions / experiment, "--device", "cpu", "--threads", 1]) == 0
    return models, predictions


def _auroc(path: Path) -> float:
    frame = pl.read_parquet(path)
    return roc_auc_score(frame["target:mortality"], frame["mortality"])


def test_ehr_lstm_learns_the_planted_signal(trained):
    _, predictions = trained
    # The EHR carries about 0.87 AUROC of the label (the rest is in the images).
    assert _auroc(predictions / "ehr-partial" / "partial.parquet") > 0.75
    assert _auroc(predictions / "ehr-partial" / "paired.parquet") > 0.7


def test_medfuse_beats_ehr_lstm_where_the_image_carries_signal(trained):
    _, predictions = trained
    fusion = _auroc(predictions / "medfuse-ri" / "paired.parquet")
    ehr = _auroc(predictions / "ehr-partial" / "paired.parquet")
    assert fusion > ehr + 0.05, (fusion, ehr)
    # Without its X-ray MedFuse loses the image signal.
    assert _auroc(predictions / "medfuse-ri" / "paired_nocxr.parquet") < fusion - 0.05


def test_run_files(trained):
    models, _ = trained
    run = models / "medfuse-ri" / "runs" / "lr0"
    history = pl.read_csv(run / "history.csv")
    assert history.columns == ["epoch", "train_loss", "val_loss", "val_auroc", "val_auprc", "lr", "seconds"]
    assert history["epoch"].to_list() == [1, 2, 3]
    result = json.loads((run / "result.json").read_text())
    assert set(result) == RESULT_KEYS and result["cxr_init"] == "random"
    assert result["epochs_run"] == 3 and result["val_auroc"] == history["val_auroc"].max()
    assert result["val_auroc"] == history["val_auroc"][result["best_epoch"] - 1]
    best = read_torch(run / "checkpoint.pt")
    assert best["epoch"] == result["best_epoch"] and best["meta"]["family"] == "medfuse"
    assert best["meta"]["fidelity"] == CORRECTED.as_dict()
    last = read_torch(run / "last.pt")
    assert {"model", "optimizers", "scheduler", "rng", "loop"} <= set(last) and last["loop"]["epoch"] == 3
    selected = json.loads((models / "medfuse-ri" / "selected.json").read_text())
    assert selected["draw"] == 0 and selected["checkpoint"] == str(models / "medfuse-ri" / "checkpoint.pt")
    assert read_torch(selected["checkpoint"])["epoch"] == best["epoch"]
    assert selected["cxr_init"] == result["cxr_init"]  # where the report reads how the CXR encoder started


def test_prediction_files_follow_the_contract(work, trained):
    _, predictions = trained
    samples = pl.read_parquet(work.tasks_dir / TASK / "samples.parquet").filter(pl.col("split") == "test")
    paired = samples.filter(pl.col("cxr_dicom_id").is_not_null())
    assert sorted(p.name for p in (predictions / "medfuse-ri").iterdir()) == [
        "paired.parquet", "paired_nocxr.parquet", "partial.parquet"]
    assert sorted(p.name for p in (predictions / "ehr-partial").iterdir()) == ["paired.parquet", "partial.parquet"]
    for name, expected in (("paired", paired), ("partial", samples), ("paired_nocxr", paired)):
        frame = pl.read_parquet(predictions / "medfuse-ri" / f"{name}.parquet")
        assert frame.columns == ["stay_id", "target:mortality", "mortality"]
        assert frame.dtypes == [pl.Int64, pl.Int8, pl.Float64]
        assert frame["stay_id"].to_list() == expected["stay_id"].to_list()
        assert frame["target:mortality"].to_list() == expected["mortality"].to_list()
        assert frame["mortality"].is_between(0, 1).all()


def test_ensemble_takes_fusion_with_an_xray_and_ehr_without(work, trained, cli):
    _, predictions = trained
    out = work.root / "predictions" / TASK / "ensemble"
    assert cli(*["ensemble", "--fusion-dir", predictions / "medfuse-ri", "--ehr-dir", predictions / "ehr-partial",
                    "--tasks-dir", work.tasks_dir, "--task", TASK, "--out-dir", out]) == 0
    fusion = pl.read_parquet(predictions / "medfuse-ri" / "partial.parquet")
    ehr = pl.read_parquet(predictions / "ehr-partial" / "partial.parquet")
    mixed = pl.read_parquet(out / "partial.parquet")
    samples = pl.read_parquet(work.tasks_dir / TASK / "samples.parquet").filter(pl.col("split") == "test")
    has = samples["cxr_dicom_id"].is_not_null().to_numpy()
    expected = np.where(has, fusion["mortality"].to_numpy(), ehr["mortality"].to_numpy())
    np.testing.assert_array_equal(mixed["mortality"].to_numpy(), expected)
    assert mixed.columns == fusion.columns
    assert pl.read_parquet(out / "paired.parquet").equals(pl.read_parquet(predictions / "medfuse-ri" / "paired.parquet"))


def test_pretraining_and_early_fusion_keep_loaded_encoders_frozen(work, trained, cli):
    models, _ = trained
    pretrain = work.root / "models" / "radiology" / "cxr-pretrain" / "runs" / "lr0"
    assert cli(*["train", "--cxr-uni", work.cxr_uni, "--image-cache", work.cache, "--task", "radiology",
                    "--experiment", "cxr-pretrain", "--lr", "1e-3", "--out-dir", pretrain, "--max-epochs", 1,
                    "--crop", CROP, "--device", "cpu", "--threads", 1, "--quiet", "--fidelity", "original"]) == 0
    result = json.loads((pretrain / "result.json").read_text())
    assert result["train_samples"] > 0
    # cxr_pretrain_init=imagenet without a weights file: random weights, said in result.json and the checkpoint.
    assert result["cxr_init"] == "random (no ImageNet weights file)"
    meta = read_torch(pretrain / "checkpoint.pt")["meta"]
    assert meta["cxr_init"] == result["cxr_init"] and meta["fidelity"] == ORIGINAL.as_dict()
    early = work.root / "models" / TASK / "early-paired" / "runs" / "lr0"
    assert cli(*train_args(work, "early-paired", early, "--ehr-init", models / "ehr-partial" / "selected.json",
                              "--cxr-init", pretrain / "checkpoint.pt")) == 0
    trained_state = read_torch(early / "last.pt")["model"]
    sources = {"ehr_encoder.": read_torch(models / "ehr-partial" / "runs" / "lr0" / "checkpoint.pt")["model"],
               "cxr_encoder.": read_torch(pretrain / "checkpoint.pt")["model"]}
    compared = 0
    for prefix, source in sources.items():
        for key, value in trained_state.items():
            if key.startswith(prefix):
                torch.testing.assert_close(value, source[key], rtol=0, atol=0, msg=key)
                compared += 1
    assert compared > 100  # LSTM weights and every ResNet tensor, BatchNorm statistics included
    seed_everything(1002)
    from medfuse_bench.models import build_model

    fresh = build_model("early", 1).state_dict()
    assert not torch.equal(fresh["classifier.weight"], trained_state["classifier.weight"])


def test_missing_init_is_an_error(work, tmp_path, capsys, cli):
    assert cli(*train_args(work, "early-paired", tmp_path / "run")) == 2
    assert "--ehr-init" in capsys.readouterr().err


def _settings(**kw) -> FitSettings:
    return FitSettings(**{"lr": 1e-3, "max_epochs": 2, "patience": 5, "crop": CROP, "device": "cpu", "progress": False, **kw})


class Killed(Exception):
    pass


def test_resume_after_a_kill_matches_an_uninterrupted_run(work, tmp_path):
    inputs = RunInputs(tasks_dir=work.tasks_dir, image_cache=work.cache)
    small = {"ehr_hidden_dim": 32}
    whole = train_run(TASK, "ehr-paired", inputs, tmp_path / "whole", _settings(), model_overrides=small)

    def kill(epoch: int) -> None:
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        train_run(TASK, "ehr-paired", inputs, tmp_path / "killed", _settings(), model_overrides=small, on_epoch_end=kill)
    assert not (tmp_path / "killed" / "result.json").exists()
    resumed = train_run(TASK, "ehr-paired", inputs, tmp_path / "killed", _settings(), model_overrides=small)
    drop = lambda d: {k: v for k, v in d.items() if k != "seconds"}  # noqa: E731
    assert drop(resumed) == drop(whole) and resumed["epochs_run"] == 2
    a = pl.read_csv(tmp_path / "whole" / "history.csv").drop("seconds")
    b = pl.read_csv(tmp_path / "killed" / "history.csv").drop("seconds")
    assert a.equals(b)
    for name in ("last.pt", "checkpoint.pt"):
        left, right = read_torch(tmp_path / "whole" / name)["model"], read_torch(tmp_path / "killed" / name)["model"]
        for key in left:
            assert torch.equal(left[key], right[key]), (name, key)
    # Snakemake deletes an incomplete job's outputs before rerunning it: the resumed run still ends with the best
    # epoch's checkpoint, here killed after its last epoch, so the resumed run trains no epoch that could save one.
    def kill_last(epoch: int) -> None:
        if epoch == 2:
            raise Killed

    with pytest.raises(Killed):
        train_run(TASK, "ehr-paired", inputs, tmp_path / "deleted", _settings(), model_overrides=small,
                  on_epoch_end=kill_last)
    (tmp_path / "deleted" / "checkpoint.pt").unlink()
    train_run(TASK, "ehr-paired", inputs, tmp_path / "deleted", _settings(), model_overrides=small)
    restored = read_torch(tmp_path / "deleted" / "checkpoint.pt")
    assert restored["epoch"] == read_torch(tmp_path / "whole" / "checkpoint.pt")["epoch"]
    # A finished run reruns to the same result without training; other settings are refused.
    again = train_run(TASK, "ehr-paired", inputs, tmp_path / "whole", _settings(), model_overrides=small)
    assert drop(again) == drop(whole)
    with pytest.raises(MedfuseError, match="other settings"):
        train_run(TASK, "ehr-paired", inputs, tmp_path / "whole", _settings(lr=1e-4), model_overrides=small)
    # A changed training switch is a changed setting too, named in the message.
    with pytest.raises(MedfuseError, match="adam_betas: beta2_0.999 -> beta2_0.9"):
        train_run(TASK, "ehr-paired", inputs, tmp_path / "whole", _settings(policy=CORRECTED.replace(
            adam_betas="beta2_0.9")), model_overrides=small)
    # Same seed, same metrics: a fresh run reproduces the numbers.
    repeat = train_run(TASK, "ehr-paired", inputs, tmp_path / "repeat", _settings(), model_overrides=small)
    assert drop(repeat) == drop(whole)


@pytest.mark.parametrize("experiment, preset", [
    ("joint-partial", "corrected"), ("early-partial-zeros", "original"), ("mmtm", "original"), ("mmtm", "corrected"),
    ("daft", "original"), ("multihead-partial", "corrected"), ("medfuse-optimal", "original"), ("cxr-paired", "corrected"),
])
def test_every_family_trains_an_epoch(small, tmp_path, experiment, preset):
    policy = FidelityPolicy.preset(preset)
    spec = get_experiment(experiment, TASK)
    data = load_task_data(small.tasks_dir, TASK, ["mortality"], small.cache)
    common = {"fraction": 0.5, "policy": policy, "seed": 0}
    train = sets_for(spec, data, "train", training=True, **common)
    val = sets_for(spec, data, "val", training=False, **common)
    from medfuse_bench.models import build_model

    seed_everything(0)
    model = build_model(spec.family, 1, **model_options(spec, TASK, policy, None), ehr_hidden_dim=32) \
        if spec.uses_ehr else build_model(spec.family, 1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    settings = _settings(max_epochs=1, policy=policy)
    settings.meta = {"task": TASK, "experiment": experiment, "family": spec.family}
    result = fit(model, train, val, settings, tmp_path)
    assert result["epochs_run"] == 1 and (math.isnan(result["val_auroc"]) or 0 <= result["val_auroc"] <= 1)
    changed = [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]
    assert changed


# ------------------------------------------------------------------------------------- training switches


def _mmtm_batch() -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    batch = {"ehr": torch.randn(4, 5, 76), "ehr_lengths": torch.tensor([5, 3, 2, 4]),
             "cxr": torch.randn(4, 3, CROP, CROP), "has_cxr": torch.ones(4, dtype=torch.bool)}
    return batch, torch.tensor([[1.0], [0.0], [1.0], [0.0]])


def test_mmtm_step_three_passes_each_on_the_weights_of_the_previous_step():
    """mmtm_step=three_passes: three forward passes per batch (EHR head, CXR head, joint), each after the
    previous optimizer step; the first two optimizers hold only CXR weights (the original's bug)."""
    from medfuse_bench.models import build_model

    seed_everything(0)
    model = build_model("mmtm", 1, ehr_hidden_dim=32, layer_after=4)
    step = make_step(model, 1e-3, ORIGINAL)
    assert isinstance(step, MMTMThreePassStep) and len(step.optimizers) == 3
    cxr_ids = {id(p) for p in (*model.cxr_encoder.parameters(), *model.cxr_head.parameters())}
    assert all(id(p) in cxr_ids for o in step.optimizers[:2] for g in o.param_groups for p in g["params"])
    assert len(step.optimizers[2].param_groups[0]["params"]) == len(list(model.parameters()))
    seen: list[dict[str, torch.Tensor]] = []
    model.register_forward_pre_hook(lambda m, args: seen.append(
        {k: v.detach().clone() for k, v in (*m.named_parameters(), *m.named_buffers())}))
    start = {k: v.detach().clone() for k, v in model.named_parameters()}
    model.train()
    batch, targets = _mmtm_batch()
    assert step(batch, targets, torch.autocast("cpu", enabled=False)) > 0
    assert len(seen) == 3
    conv, lstm, bn = "cxr_encoder.backbone.conv1.weight", "ehr_encoder.layers.0.weight_ih_l0", \
        "cxr_encoder.backbone.bn1.num_batches_tracked"
    # Pass 2 runs on the CXR weights that optimizer_ehr moved, pass 3 on those optimizer_visual moved; the
    # EHR encoder moves only in the joint step.
    assert not torch.equal(seen[1][conv], seen[0][conv]) and not torch.equal(seen[2][conv], seen[1][conv])
    assert torch.equal(seen[1][lstm], seen[0][lstm]) and torch.equal(seen[2][lstm], seen[0][lstm])
    assert not torch.equal(model.ehr_encoder.layers[0].weight_ih_l0, start[lstm])
    assert [int(s[bn]) for s in seen] == [0, 1, 2] and int(model.cxr_encoder.backbone.bn1.num_batches_tracked) == 3
    # The EHR head is in no optimizer that its loss reaches: it never trains, as in the original.
    assert torch.equal(model.ehr_head.weight, start["ehr_head.weight"])
    assert not torch.equal(model.cxr_head.weight, start["cxr_head.weight"])
    assert all(s["step"] == 1 for o in step.optimizers for s in o.state.values())


def test_mmtm_step_summed_loss_is_one_pass_training_every_head():
    from medfuse_bench.models import build_model

    seed_everything(0)
    model = build_model("mmtm", 1, ehr_hidden_dim=32, layer_after=4)
    step = make_step(model, 1e-3, CORRECTED)
    assert isinstance(step, SingleStep) and len(step.optimizers) == 1
    calls: list[int] = []
    model.register_forward_pre_hook(lambda m, args: calls.append(1))
    head = model.ehr_head.weight.detach().clone()
    model.train()
    batch, targets = _mmtm_batch()
    step(batch, targets, torch.autocast("cpu", enabled=False))
    assert len(calls) == 1 and not torch.equal(model.ehr_head.weight, head)
    # Other families take one step under either value.
    assert isinstance(make_step(build_model("daft", 1, ehr_hidden_dim=32), 1e-3, ORIGINAL), SingleStep)


def test_adam_betas_switch():
    from medfuse_bench.models import build_model

    model = build_model("ehr_lstm", 1, ehr_hidden_dim=8)
    assert make_step(model, 1e-3, ORIGINAL).optimizers[0].param_groups[0]["betas"] == (0.9, 0.9)
    assert make_step(model, 1e-3, CORRECTED).optimizers[0].param_groups[0]["betas"] == (0.9, 0.999)


def test_padded_time_mean_switch_reaches_the_model_options():
    for name in ("mmtm", "daft"):
        spec = get_experiment(name, TASK)
        assert model_options(spec, TASK, ORIGINAL, None)["padded_time_mean"] is True
        assert model_options(spec, TASK, CORRECTED, None)["padded_time_mean"] is False
    assert "padded_time_mean" not in model_options(get_experiment("medfuse-pt"), TASK, ORIGINAL, None)


def _fit_early_paired(small, tmp_path, policy, monkeypatch):
    """One epoch of early fusion with frozen encoders; returns (model before, model after, crop modes used)."""
    from medfuse_bench.models import build_model, freeze_encoder

    spec = get_experiment("early-paired", TASK)
    data = load_task_data(small.tasks_dir, TASK, ["mortality"], small.cache)
    common = {"fraction": None, "policy": policy, "seed": 0}
    train = sets_for(spec, data, "train", training=True, **common)
    val = sets_for(spec, data, "val", training=False, **common)
    seed_everything(0)
    model = build_model("early", 1, ehr_hidden_dim=32)
    for which in ("ehr", "cxr"):
        freeze_encoder(model, which)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    crops: list[bool] = []
    real = loop.ImageTransform

    def spy(*args, **kwargs):
        if kwargs.get("train"):
            crops.append(kwargs["random_crop"])
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "ImageTransform", spy)
    fit(model, train, val, _settings(max_epochs=1, policy=policy), tmp_path)
    return before, model.state_dict(), crops


@pytest.mark.parametrize("value, moves", [("train_mode", True), ("eval_mode", False)])
def test_frozen_encoders_switch(small, tmp_path, monkeypatch, value, moves):
    """frozen_encoders: train_mode (the original) lets frozen encoders' BatchNorm statistics move; eval_mode
    keeps them as loaded. Their weights stay in both."""
    before, after, _ = _fit_early_paired(small, tmp_path, CORRECTED.replace(frozen_encoders=value), monkeypatch)
    stats = [k for k in before if k.startswith("cxr_encoder.") and k.endswith("running_mean")]
    weights = [k for k in before if k.startswith(("cxr_encoder.", "ehr_encoder.")) and k.endswith("weight")]
    assert stats and all(torch.equal(before[k], after[k]) for k in weights)
    assert any(not torch.equal(before[k], after[k]) for k in stats) == moves


@pytest.mark.parametrize("value, random_crop", [("center", False), ("random", True)])
def test_train_crop_switch(small, tmp_path, monkeypatch, value, random_crop):
    _, _, crops = _fit_early_paired(small, tmp_path, CORRECTED.replace(train_crop=value), monkeypatch)
    assert crops == [random_crop]


@pytest.mark.parametrize("value, steps", [("never_stepped", 0), ("stepped", 2)])
def test_mmtm_daft_scheduler_switch(small, tmp_path, value, steps):
    from medfuse_bench.models import build_model

    policy = CORRECTED.replace(mmtm_daft_scheduler=value)
    spec = get_experiment("daft", TASK)
    data = load_task_data(small.tasks_dir, TASK, ["mortality"], small.cache)
    common = {"fraction": None, "policy": policy, "seed": 0}
    train, val = (sets_for(spec, data, split, training=split == "train", **common) for split in ("train", "val"))
    seed_everything(0)
    model = build_model("daft", 1, ehr_hidden_dim=32, layer_after=0)
    fit(model, train, val, _settings(max_epochs=2, policy=policy), tmp_path)
    assert read_torch(tmp_path / "last.pt")["scheduler"]["last_epoch"] == steps


@pytest.mark.parametrize("patience, epochs", [(1, 2), (None, 4)])
def test_no_early_stopping_runs_every_epoch(small, tmp_path, patience, epochs):
    """token_early_stopping=none reaches fit as patience None: every epoch runs though none improves."""
    from medfuse_bench.models import build_model

    spec = get_experiment("ehr-paired", TASK)
    data = load_task_data(small.tasks_dir, TASK, ["mortality"], None)
    common = {"fraction": None, "policy": CORRECTED, "seed": 0}
    train, val = (sets_for(spec, data, split, training=split == "train", **common) for split in ("train", "val"))
    seed_everything(0)
    model = build_model("ehr_lstm", 1, ehr_hidden_dim=8)
    result = fit(model, train, val, _settings(lr=0.0, max_epochs=4, patience=patience), tmp_path)
    assert result["epochs_run"] == epochs and result["best_epoch"] == 1


@pytest.mark.parametrize("args, message", [
    (["train", "--tasks-dir", "{tmp}/none", "--task", TASK, "--experiment", "ehr-paired", "--out-dir", "{tmp}/r"],
     "none' does not exist"),
    (["train", "--tasks-dir", "{tmp}", "--task", TASK, "--experiment", "ehr-paired", "--out-dir", "{tmp}/r"],
     "samples.parquet"),
    (["train", "--task", TASK, "--experiment", "ehr-paired", "--out-dir", "{tmp}/r"], "--tasks-dir"),
    (["train", "--tasks-dir", "{tmp}", "--task", TASK, "--experiment", "medfuse-x", "--out-dir", "{tmp}/r"],
     "unknown experiment"),
    (["image-cache", "--cxr-uni", "{tmp}/cxr_uni.parquet", "--mimic-cxr", "{tmp}", "--size", "16", "--out-dir", "{tmp}/c"],
     "cxr_uni.parquet"),
    (["select", "--runs", "{tmp}/lr0", "--out", "{tmp}/selected.json"], "result.json"),
    (["predict", "--selected", "{tmp}/selected.json", "--tasks-dir", "{tmp}", "--task", TASK,
      "--experiment", "ehr-paired", "--out-dir", "{tmp}/p"], "selected.json"),
    (["ensemble", "--fusion-dir", "{tmp}/f", "--ehr-dir", "{tmp}/e", "--tasks-dir", "{tmp}", "--task", TASK,
      "--out-dir", "{tmp}/o"], "samples.parquet"),
])
def test_cli_errors_name_the_input(tmp_path, capsys, args, message, cli):
    assert cli(*[a.replace("{tmp}", str(tmp_path)) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("medfuse-bench: error:") and message in err


def test_finished_run_drops_its_resume_state_unless_asked(work, tmp_path, cli):
    """last.pt only serves to resume a killed run: the train command deletes it once the run has finished."""
    args = [a for a in train_args(work, "ehr-partial", tmp_path / "run") if a != "--keep-resume-state"]
    assert cli(*args) == 0
    assert (tmp_path / "run" / "checkpoint.pt").exists() and (tmp_path / "run" / "result.json").exists()
    assert not (tmp_path / "run" / "last.pt").exists()


def test_quiet_training_logs_every_epoch_and_the_time_left_into_its_log(work, tmp_path, cli_process):
    """The workflow runs `train --quiet > log 2>&1`: without progress bars the log still shows each epoch's
    scores, its time and the time left, and the summary line comes last."""
    log_file = tmp_path / "train.log"
    with log_file.open("w") as out:
        proc = cli_process(*train_args(work, "ehr-partial", tmp_path / "run", epochs=2), stdout=out,
                           stderr=subprocess.STDOUT)
    text = log_file.read_text()
    assert proc.returncode == 0, text
    assert "epoch 1/2: train loss" in text and "left (1 epoch)" in text, text
    assert "epoch 2/2: train loss" in text and "last epoch" in text, text
    assert text.rstrip().splitlines()[-1].startswith(f"{TASK}/ehr-partial draw 0 (lr 0.001): best val AUROC")


def test_training_benchmark_names_an_unknown_family(tmp_path, capsys):
    from benchmarks.train import main as bench_train

    assert bench_train(["--tasks-dir", str(tmp_path), "--image-cache", str(tmp_path), "--task", TASK,
                        "--models", "resnet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m benchmarks.train: error: --models") and "ehr_lstm" in err
