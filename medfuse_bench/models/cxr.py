"""The chest X-ray encoder f_cxr (paper section 3.1) and the CXR-only ResNet-34 baseline.

f_cxr is torchvision's ResNet-34 built without weights (nothing is ever downloaded) with its ``fc``
replaced by the identity, so v_cxr is the 512-d globally average-pooled feature. An optional local
file of torchvision ResNet-34 weights (a state dict, e.g. ImageNet weights saved beforehand) can start
it; its ``fc.*`` entries are ignored and every other tensor must match.

The stem and layer1..4 are reachable one at a time (``stage``) so that MMTM and DAFT can act between
them. The network works on small images too (28-56 px for tests and the smoke scale). Below 33 px
layer4's map is 1x1, and PyTorch's BatchNorm refuses a training batch with one value per channel;
the BatchNorm used here normalises such a batch (a single image) with its running statistics instead
of failing, and leaves those statistics untouched.

The CXR-only baseline also serves CheXpert pretraining (14 labels on CXR_UNI): its batch needs only
``cxr`` (and, if given, ``has_cxr`` must be all True).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from medfuse_bench.errors import MedfuseError
from medfuse_bench.models.base import MedfuseModel
from medfuse_bench.models.batch import cxr_inputs, require_all_images

CXR_FEATURES = 512
# Output channels of the stem and of layer1..4 (stage 0..4).
STAGE_CHANNELS: tuple[int, ...] = (64, 64, 128, 256, 512)


class BatchNorm2dSingleValueSafe(nn.BatchNorm2d):
    """BatchNorm2d that, when training on a batch with one value per channel, normalises with running stats."""

    def forward(self, x: Tensor) -> Tensor:
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] == 1:
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, training=False, eps=self.eps
            )
        return super().forward(x)


def read_torchvision_weights(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a torchvision state dict file (optionally wrapped as ``{"state_dict": ...}``)."""
    path = Path(path)
    if not path.is_file():
        raise MedfuseError(
            f"CXR weights file {path} does not exist; set train.cxr_weights to a local torchvision ResNet-34 "
            "state dict (torch.save(model.state_dict(), path)) or to null for random initialisation"
        )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt or foreign file
        raise MedfuseError(f"CXR weights file {path} cannot be read as a PyTorch state dict: {exc}") from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise MedfuseError(f"CXR weights file {path} does not hold a state dict (a mapping of names to tensors)")
    return state


def load_torchvision_weights(backbone: nn.Module, path: str | os.PathLike[str]) -> None:
    """Load every trunk tensor of ``backbone`` from ``path``; ``fc.*`` entries are ignored, all others must match."""
    state = {k: v for k, v in read_torchvision_weights(path).items() if not k.startswith("fc.")}
    expected = backbone.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = [k for k in expected if k in state and state[k].shape != expected[k].shape]
    if missing or unexpected or mismatched:
        details = []
        if missing:
            details.append(f"missing {len(missing)} tensors (e.g. {missing[:3]})")
        if unexpected:
            details.append(f"{len(unexpected)} unexpected tensors (e.g. {unexpected[:3]})")
        if mismatched:
            details.append(f"{len(mismatched)} tensors of another shape (e.g. {mismatched[:3]})")
        raise MedfuseError(
            f"CXR weights file {path} is not a torchvision ResNet-34 state dict: {'; '.join(details)}"
        )
    backbone.load_state_dict(state, strict=True)


class CXREncoder(nn.Module):
    """f_cxr: ResNet-34 trunk; ``forward(images [N, 3, H, W])`` returns v_cxr [N, 512]."""

    feats_dim = CXR_FEATURES
    stage_channels = STAGE_CHANNELS

    def __init__(self, weights_path: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.backbone = torchvision.models.resnet34(weights=None, norm_layer=BatchNorm2dSingleValueSafe)
        self.backbone.fc = nn.Identity()
        if weights_path is not None:
            load_torchvision_weights(self.backbone, weights_path)

    def stage(self, index: int, x: Tensor) -> Tensor:
        """Run stage ``index``: 0 = stem (conv1, bn1, relu, maxpool), 1..4 = layer1..layer4."""
        net = self.backbone
        if index == 0:
            return net.maxpool(net.relu(net.bn1(net.conv1(x))))
        if 1 <= index <= 4:
            return getattr(net, f"layer{index}")(x)
        raise ValueError(f"ResNet stage index must be 0..4, got {index}")

    def pool(self, feature_map: Tensor) -> Tensor:
        """Global average pooling of a layer4 map: [N, 512, h, w] -> [N, 512]."""
        return torch.flatten(self.backbone.avgpool(feature_map), 1)

    def forward(self, images: Tensor) -> Tensor:
        x = images
        for index in range(5):
            x = self.stage(index, x)
        return self.pool(x)


class CXRResNet(MedfuseModel):
    """The CXR-only baseline (and CheXpert pretraining model): f_cxr followed by a linear classifier g_cxr."""

    family = "cxr_resnet"

    def __init__(self, num_classes: int, *, cxr_weights: str | os.PathLike[str] | None = None) -> None:
        super().__init__()
        self.cxr_encoder = CXREncoder(cxr_weights)
        self.classifier = nn.Linear(CXR_FEATURES, num_classes)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        if "has_cxr" in batch:
            images, has_cxr = cxr_inputs(batch, None, self.family)
            require_all_images(has_cxr, self.family)
        else:
            images = batch.get("cxr")
        if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[0] == 0:
            raise MedfuseError("model 'cxr_resnet': the batch needs a non-empty tensor 'cxr' [N, 3, H, W]")
        features = self.cxr_encoder(images)
        return {"logits": self.classifier(features), "features": features}
