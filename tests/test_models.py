"""Model families: output shapes, parameter counts, packing, missing images, freezing, weight loading."""

from __future__ import annotations

import doctest
import importlib

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from medfuse_bench.errors import MedfuseError
from medfuse_bench.models import (
    MODEL_FAMILIES,
    build_model,
    encoder_state,
    ensemble_probabilities,
    freeze_encoder,
    load_encoder,
    model_options,
    parameter_count,
    unified_loss,
)
from medfuse_bench.models.daft import daft_bottleneck
from medfuse_bench.models.ehr import EHREncoder

B, T, F, PX = 4, 12, 76, 32
LENGTHS = [12, 5, 1, 8]
PAIRED_ONLY = {"mmtm", "daft", "cxr_resnet"}


def lstm_params(inputs: int, hidden: int) -> int:
    """One single-layer LSTM: four gates of input and hidden weights, two bias vectors per gate."""
    return 4 * hidden * (inputs + hidden) + 8 * hidden


def make_batch(has_cxr: list[bool], lengths: list[int] = LENGTHS, steps: int = T, seed: int = 0) -> dict:
    generator = torch.Generator().manual_seed(seed)
    ehr = torch.randn(len(lengths), steps, F, generator=generator)
    for row, length in enumerate(lengths):
        ehr[row, length:] = 0.0
    flags = torch.tensor(has_cxr, dtype=torch.bool)
    images = torch.randn(len(has_cxr), 3, PX, PX, generator=generator)
    return {
        "ehr": ehr,
        "ehr_lengths": torch.tensor(lengths, dtype=torch.int64),
        "cxr": images[flags],
        "has_cxr": flags,
    }


def subset(batch: dict, rows: list[int], all_images: torch.Tensor) -> dict:
    """Rows of a batch, with images taken from ``all_images`` (one per sample) where has_cxr is set."""
    flags = batch["has_cxr"][rows]
    return {
        "ehr": batch["ehr"][rows],
        "ehr_lengths": batch["ehr_lengths"][rows],
        "cxr": all_images[rows][flags],
        "has_cxr": flags,
    }


def options_for(family: str) -> dict:
    return {"missing": "learnable"} if family in {"early", "joint"} else {}


@pytest.mark.parametrize("num_classes", [1, 25])
@pytest.mark.parametrize("family", sorted(MODEL_FAMILIES))
def test_output_shapes(family: str, num_classes: int) -> None:
    torch.manual_seed(0)
    model = build_model(family, num_classes, **options_for(family))
    flags = [True] * B if family in PAIRED_ONLY else [True, False, True, False]
    out = model(make_batch(flags))
    rows = B
    assert out["logits"].shape == (rows, num_classes)
    assert torch.isfinite(out["logits"]).all()
    for key in ("ehr_logits", "cxr_logits", "dynamic_logits"):
        if key in out:
            assert out[key].shape == (rows, num_classes)
    assert out["features"].shape[0] == rows


def test_output_keys_of_auxiliary_heads() -> None:
    assert {"ehr_logits", "cxr_logits"} <= set(build_model("mmtm", 1)(make_batch([True] * B)))
    assert {"ehr_logits", "cxr_logits", "dynamic_logits"} <= set(build_model("unified", 1)(make_batch([True] * B)))


def test_ehr_encoder_parameter_count() -> None:
    expected = lstm_params(76, 256) + lstm_params(256, 256)
    assert expected == 868_352
    assert parameter_count(EHREncoder()) == expected
    assert parameter_count(EHREncoder(hidden_dim=64, layers=3)) == lstm_params(76, 64) + 2 * lstm_params(64, 64)
    assert parameter_count(build_model("ehr_lstm", 25)) == expected + 256 * 25 + 25


def test_resnet34_trunk_parameter_count() -> None:
    model = build_model("cxr_resnet", 14)
    assert parameter_count(model.cxr_encoder) == 21_284_672
    assert parameter_count(model) == 21_284_672 + 512 * 14 + 14


def test_medfuse_fusion_parameter_count() -> None:
    model = build_model("medfuse", 25)
    phi = 512 * 256 + 256
    fusion_lstm = lstm_params(256, 512)
    classifier = 512 * 25 + 25
    assert parameter_count(model.projection) == phi == 131_328
    assert parameter_count(model.fusion_lstm) == fusion_lstm == 1_576_960
    assert parameter_count(model.classifier) == classifier
    assert parameter_count(model) == 868_352 + 21_284_672 + phi + fusion_lstm + classifier


def test_mmtm_and_daft_block_sizes() -> None:
    mmtm = build_model("mmtm", 1)
    block = mmtm.mmtm["stage4"]
    assert (block.fc_squeeze.in_features, block.fc_squeeze.out_features) == (768, 384)
    assert (block.fc_image.out_features, block.fc_ehr.out_features) == (512, 256)
    assert (mmtm.joint_head.in_features, mmtm.projection.out_features) == (1024, 512)
    assert daft_bottleneck(512) == 75 and daft_bottleneck(256) == 38
    assert build_model("daft", 1).layer_after == 4 and build_model("daft", 25).layer_after == 3
    daft = build_model("daft", 25)
    aux = daft.daft["stage3"].aux
    assert (aux.aux_base.in_features, aux.aux_base.out_features, aux.aux_out.out_features) == (512, 38, 512)
    assert aux.aux_base.bias is None and aux.aux_out.bias is None


@pytest.mark.parametrize("family", sorted(MODEL_FAMILIES))
def test_batch_of_one(family: str) -> None:
    torch.manual_seed(0)
    model = build_model(family, 25, **options_for(family))
    batch = make_batch([True], lengths=[3], steps=5)
    # Training mode too: one 32 px image leaves layer4 a 1x1 map, one value per BatchNorm channel.
    for training in (True, False):
        model.train(training)
        assert model(batch)["logits"].shape == (1, 25)
    if family not in PAIRED_ONLY:
        assert model(make_batch([False], lengths=[3], steps=5))["logits"].shape == (1, 25)


@pytest.mark.parametrize("family", ["ehr_lstm", "medfuse", "mmtm", "daft", "unified"])
def test_extra_padding_does_not_change_predictions(family: str) -> None:
    torch.manual_seed(0)
    model = build_model(family, 3).eval()
    flags = [True] * B if family in PAIRED_ONLY else [True, False, True, True]
    batch = make_batch(flags)
    longer = dict(batch, ehr=torch.cat([batch["ehr"], torch.randn(B, 7, F)], dim=1))  # junk past the true lengths
    longer["ehr"][1, 5:T] = 99.0
    with torch.no_grad():
        torch.testing.assert_close(model(batch)["logits"], model(longer)["logits"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["mmtm", "daft"])
def test_padded_time_mean_averages_over_padding(family: str) -> None:
    """Switch padded_time_mean: the original's time mean over the padded length makes a stay's prediction
    depend on the longest stay of its batch; the default mean over valid steps does not."""
    torch.manual_seed(0)
    short = make_batch([True], lengths=[3], steps=3)
    other = make_batch([True], lengths=[12], steps=12, seed=1)
    padded_short = torch.cat([short["ehr"], torch.zeros(1, 9, F)], dim=1)
    together = {
        "ehr": torch.cat([padded_short, other["ehr"]]),
        "ehr_lengths": torch.tensor([3, 12]),
        "cxr": torch.cat([short["cxr"], other["cxr"]]),
        "has_cxr": torch.tensor([True, True]),
    }
    for padded, same in ((False, True), (True, False)):
        torch.manual_seed(0)
        model = build_model(family, 1, padded_time_mean=padded).eval()
        with torch.no_grad():
            alone, batched = model(short)["logits"][0], model(together)["logits"][0]
        assert torch.allclose(alone, batched, atol=1e-5) == same, padded


def test_medfuse_ehr_only_prediction_ignores_other_samples_images() -> None:
    torch.manual_seed(0)
    model = build_model("medfuse", 25).eval()
    images = torch.randn(B, 3, PX, PX)
    base = make_batch([False] * B)
    predictions = []
    for flags in ([False, False, False, False], [False, True, False, True], [False, True, True, True]):
        batch = dict(base, has_cxr=torch.tensor(flags))
        batch["cxr"] = images[batch["has_cxr"]]
        with torch.no_grad():
            predictions.append(model(batch)["logits"][0])
    for other in predictions[1:]:
        torch.testing.assert_close(predictions[0], other, atol=1e-5, rtol=1e-5)
    # An EHR-only sample is the one-token sequence [v_ehr]; a paired one [v_ehr, phi(v_cxr)].
    with torch.no_grad():
        v_ehr = model.ehr_encoder(base["ehr"], base["ehr_lengths"])
        _, (h_one, _) = model.fusion_lstm(v_ehr[:, None])
        torch.testing.assert_close(predictions[0], model.classifier(h_one[-1])[0], atol=1e-5, rtol=1e-5)
        tokens = torch.stack([v_ehr, model.projection(model.cxr_encoder(images))], dim=1)
        _, (h_two, _) = model.fusion_lstm(tokens)
        paired = model(dict(base, has_cxr=torch.ones(B, dtype=torch.bool), cxr=images))["logits"]
        torch.testing.assert_close(paired, model.classifier(h_two[-1]), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["medfuse", "unified", "joint", "early"])
def test_cnn_runs_only_on_present_images(family: str) -> None:
    model = build_model(family, 1, **options_for(family))
    seen: list[int] = []
    model.cxr_encoder.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape[0]))
    model(make_batch([False] * B))
    assert seen == []
    no_key = make_batch([False] * B)
    del no_key["cxr"]
    model(no_key)
    assert seen == []
    model(make_batch([True, False, False, True]))
    assert seen == [2]
    model(make_batch([True] * B))
    assert seen == [2, B]


def test_early_fusion_freezes_encoders() -> None:
    torch.manual_seed(0)
    model = build_model("early", 1, missing="zeros")
    model.train()
    assert model.training and not model.ehr_encoder.training and not model.cxr_encoder.training
    stats = {k: v.clone() for k, v in model.cxr_encoder.state_dict().items() if "running" in k}
    batch = make_batch([True, False, True, True])
    first = model(batch)["logits"]
    first.sum().backward()
    assert all(p.grad is None for p in model.ehr_encoder.parameters())
    assert all(p.grad is None for p in model.cxr_encoder.parameters())
    assert model.projection.weight.grad is not None and model.classifier.weight.grad is not None
    for key, value in model.cxr_encoder.state_dict().items():
        if key in stats:
            torch.testing.assert_close(value, stats[key], rtol=0, atol=0)
    torch.testing.assert_close(model(batch)["logits"], first)  # frozen dropout: deterministic in train mode
    assert parameter_count(model, trainable_only=True) == (512 * 256 + 256) + (512 + 1)

    joint = build_model("joint", 1)
    joint.train()
    assert joint.ehr_encoder.training and joint.cxr_encoder.training
    assert parameter_count(joint, trainable_only=True) == parameter_count(joint)


def test_freeze_encoder_helper_and_medfuse_option() -> None:
    model = build_model("medfuse", 1, freeze_encoders=True)
    assert model.frozen_encoders == {"ehr", "cxr"}
    model = build_model("ehr_lstm", 1)
    freeze_encoder(model, "ehr")
    model.train()
    assert not model.ehr_encoder.training and model.classifier.weight.requires_grad
    with pytest.raises(MedfuseError, match="no cxr encoder"):
        freeze_encoder(model, "cxr")


def test_missing_image_vectors() -> None:
    torch.manual_seed(0)
    batch = make_batch([True, False, True, False])
    learnable = build_model("joint", 1, missing="learnable")
    assert isinstance(learnable.missing_vector, nn.Parameter)
    initial = learnable.missing_vector.detach()
    assert 0.0 <= float(initial.min()) and float(initial.max()) <= 1.0
    out = learnable(batch)
    for row in (1, 3):
        torch.testing.assert_close(out["features"][row, 256:], learnable.missing_vector)
    out["logits"].sum().backward()
    assert learnable.missing_vector.grad is not None and learnable.missing_vector.grad.abs().sum() > 0

    zeros = build_model("joint", 1, missing="zeros")
    features = zeros(batch)["features"]
    assert torch.all(features[[1, 3], 256:] == 0) and torch.any(features[[0, 2], 256:] != 0)
    assert "missing_vector" not in zeros.state_dict()
    assert "missing_vector" in learnable.state_dict()

    with pytest.raises(MedfuseError, match="needs an X-ray for every sample"):
        build_model("joint", 1)(batch)
    with pytest.raises(MedfuseError, match="missing must be one of"):
        build_model("early", 1, missing="mean")


@pytest.mark.parametrize("family", ["mmtm", "daft"])
def test_paired_only_families_reject_missing_images(family: str) -> None:
    with pytest.raises(MedfuseError, match=f"model '{family}' needs an X-ray for every sample"):
        build_model(family, 1)(make_batch([True, False, True, True]))


def test_unified_heads_and_loss() -> None:
    torch.manual_seed(0)
    model = build_model("unified", 2)
    batch = make_batch([True, False, True, False])
    out = model(batch)
    assert torch.all(out["cxr_logits"][[1, 3]] == 0)
    torch.testing.assert_close(out["dynamic_logits"][[1, 3]], out["ehr_logits"][[1, 3]])
    torch.testing.assert_close(out["dynamic_logits"][[0, 2]], out["logits"][[0, 2]])
    torch.testing.assert_close(out["features"][[1, 3], 256:], torch.zeros(2, 256))
    targets = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=torch.float32)
    loss = unified_loss(out, targets, batch["has_cxr"])
    loss.backward()
    assert torch.isfinite(loss) and model.cxr_head.weight.grad is not None
    none_paired = make_batch([False] * B)
    assert torch.isfinite(unified_loss(model(none_paired), targets, none_paired["has_cxr"]))


def test_bad_batches_are_named() -> None:
    model = build_model("medfuse", 1)
    batch = make_batch([True, False, True, False])
    with pytest.raises(MedfuseError, match="holds 1 images but has_cxr marks 2"):
        model(dict(batch, cxr=batch["cxr"][:1]))
    with pytest.raises(MedfuseError, match="ehr_lengths"):
        model(dict(batch, ehr_lengths=torch.tensor([0, 1, 2, 3])))
    with pytest.raises(MedfuseError, match="no key 'has_cxr'"):
        model({k: v for k, v in batch.items() if k != "has_cxr"})
    with pytest.raises(MedfuseError, match="expects 76"):
        model(dict(batch, ehr=batch["ehr"][..., :70]))


def test_cxr_weights_file(tmp_path) -> None:
    torch.manual_seed(1)
    reference = torchvision.models.resnet34(weights=None)
    path = tmp_path / "resnet34.pt"
    torch.save(reference.state_dict(), path)
    model = build_model("cxr_resnet", 14, cxr_weights=str(path))
    loaded = model.cxr_encoder.backbone.state_dict()
    for key, value in reference.state_dict().items():
        if not key.startswith("fc."):
            torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)
    reference.fc = nn.Identity()
    images = torch.randn(2, 3, PX, PX)
    with torch.no_grad():
        torch.testing.assert_close(model.eval().cxr_encoder(images), reference.eval()(images))

    with pytest.raises(MedfuseError, match="does not exist"):
        build_model("medfuse", 1, cxr_weights=str(tmp_path / "absent.pt"))
    foreign = tmp_path / "foreign.pt"
    torch.save({"conv1.weight": torch.zeros(3, 3)}, foreign)
    with pytest.raises(MedfuseError, match="not a torchvision ResNet-34 state dict"):
        build_model("cxr_resnet", 1, cxr_weights=str(foreign))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(MedfuseError, match="cannot be read"):
        build_model("cxr_resnet", 1, cxr_weights=str(garbage))


def test_encoder_state_moves_between_families() -> None:
    torch.manual_seed(0)
    ehr_model = build_model("ehr_lstm", 25)
    cxr_model = build_model("cxr_resnet", 14)
    fusion = build_model("medfuse", 25)
    load_encoder(fusion, "ehr", ehr_model.state_dict())  # a whole model's checkpoint
    load_encoder(fusion, "cxr", encoder_state(cxr_model, "cxr"))  # an encoder's own state
    for a, b in zip(fusion.ehr_encoder.state_dict().values(), ehr_model.ehr_encoder.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    for a, b in zip(fusion.cxr_encoder.state_dict().values(), cxr_model.cxr_encoder.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(MedfuseError, match="cannot load ehr encoder"):
        load_encoder(fusion, "ehr", encoder_state(build_model("ehr_lstm", 1, ehr_hidden_dim=64), "ehr"))
    with pytest.raises(MedfuseError, match="has no ehr encoder"):
        encoder_state(cxr_model, "ehr")


def test_factory_rejects_unknown_names() -> None:
    assert set(MODEL_FAMILIES) == {"ehr_lstm", "cxr_resnet", "early", "joint", "mmtm", "daft", "unified", "medfuse"}
    assert model_options("medfuse")["fusion_hidden_dim"] == 512
    with pytest.raises(MedfuseError, match="unknown model family 'lstm'"):
        build_model("lstm", 1)
    with pytest.raises(MedfuseError, match=r"has no option\(s\) \['missing'\]"):
        build_model("medfuse", 1, missing="zeros")
    with pytest.raises(MedfuseError, match="layer_after must be"):
        build_model("mmtm", 1, layer_after=5)
    with pytest.raises(MedfuseError, match=r"has no option\(s\) \['fidelity'\]"):
        build_model("daft", 1, fidelity="original")
    with pytest.raises(MedfuseError, match="ehr_layers must be >= 2"):
        build_model("mmtm", 1, ehr_layers=1)
    with pytest.raises(MedfuseError, match="scale_activation must be one of"):
        build_model("daft", 1, scale_activation="relu")


@pytest.mark.parametrize("layer_after", [0, 3, -1])
def test_fusion_blocks_at_other_stages(layer_after: int) -> None:
    batch = make_batch([True] * B)
    for family in ("mmtm", "daft"):
        assert build_model(family, 2, layer_after=layer_after)(batch)["logits"].shape == (B, 2)


def test_ensemble_probabilities() -> None:
    fusion = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    ehr = np.array([[0.5, 0.5], [0.4, 0.6], [0.3, 0.7]])
    flags = np.array([True, False, True])
    np.testing.assert_array_equal(ensemble_probabilities(fusion, ehr, flags), [[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]])
    result = ensemble_probabilities(torch.tensor(fusion), torch.tensor(ehr), torch.tensor(flags))
    assert isinstance(result, torch.Tensor)
    np.testing.assert_array_equal(result.numpy(), [[0.9, 0.1], [0.4, 0.6], [0.7, 0.3]])
    with pytest.raises(MedfuseError, match="same shape"):
        ensemble_probabilities(fusion, ehr[:2], flags)
    with pytest.raises(MedfuseError, match="one flag per sample"):
        ensemble_probabilities(fusion, ehr, flags[:2])


def test_bf16_autocast_forward() -> None:
    batch = make_batch([True, False, True, True])
    for family in ("medfuse", "unified", "joint"):
        model = build_model(family, 2, **options_for(family))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(batch)["logits"]
        assert logits.shape == (B, 2) and torch.isfinite(logits.float()).all()


@pytest.mark.parametrize(
    "module", ["batch", "ehr", "daft", "ensemble", "medfuse_bench.models"]
)
def test_docstring_examples(module: str) -> None:
    name = module if "." in module else f"medfuse_bench.models.{module}"
    result = doctest.testmod(importlib.import_module(name))
    assert result.failed == 0
