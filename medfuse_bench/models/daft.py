"""DAFT fusion baseline (Pölsterl / Wolf et al.), as MedFuse's original code applies it (paper section 4.3).

The image conditions the EHR sequence: after ResNet stage ``layer_after`` (0 = stem, 1..4 = layerN,
-1 = every stage), a DAFT block computes

    aux = Linear(C_img + 256 -> b, no bias) -> ReLU -> Linear(b -> 512, no bias),  b = int((16 + C_img) / 7)

over the concatenation of the globally average-pooled CNN map and the EHR first-layer sequence's time
mean (b = 75 after layer4, 38 after layer3), splits it into a 256-d scale and a 256-d shift (linear
activation by default, as in the original) and returns ``scale * sequence + shift`` at every step.
The EHR's remaining LSTM layer(s) -> final hidden state -> dropout -> EHR head give the only output,
"logits". ``layer_after=None`` takes the original's choice: 4 for a single label (in-hospital
mortality), 3 for several (phenotyping).

The time mean counts each stay's valid steps only; ``padded_time_mean=True`` divides by the padded
length, as the original does. ResNet stages after the last DAFT block cannot change the output and
are not run (the original runs them and discards the result). Paired samples only.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import torch
from torch import Tensor, nn

from medfuse_bench.errors import MedfuseError
from medfuse_bench.models.base import MedfuseModel
from medfuse_bench.models.batch import cxr_inputs, ehr_inputs, require_all_images
from medfuse_bench.models.cxr import STAGE_CHANNELS, CXREncoder
from medfuse_bench.models.ehr import EHR_FEATURES, EHREncoder, init_linear, time_mean
from medfuse_bench.models.mmtm import require_two_lstm_layers, stages_after

SCALE_ACTIVATIONS: dict[str, type[nn.Module]] = {"linear": nn.Identity, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}


def daft_bottleneck(image_channels: int) -> int:
    """The original's bottleneck width, int((4 * 4 + C_img) / 7).

    >>> daft_bottleneck(512), daft_bottleneck(256)
    (75, 38)
    """
    return int((16 + image_channels) / 7.0)


class DAFTBlock(nn.Module):
    """Scale and shift an EHR sequence [N, T, D] by an affine map predicted from image and EHR summaries."""

    def __init__(self, image_channels: int, ehr_dim: int, scale_activation: str = "linear") -> None:
        super().__init__()
        if scale_activation not in SCALE_ACTIVATIONS:
            raise MedfuseError(
                f"model 'daft': scale_activation must be one of {sorted(SCALE_ACTIVATIONS)}, got {scale_activation!r}"
            )
        bottleneck = daft_bottleneck(image_channels)
        self.ehr_dim = ehr_dim
        self.aux = nn.Sequential(
            OrderedDict(
                aux_base=nn.Linear(image_channels + ehr_dim, bottleneck, bias=False),
                aux_relu=nn.ReLU(),
                aux_out=nn.Linear(bottleneck, 2 * ehr_dim, bias=False),
            )
        )
        self.scale_activation = SCALE_ACTIVATIONS[scale_activation]()

    def forward(self, feature_map: Tensor, ehr_sequence: Tensor, ehr_summary: Tensor) -> Tensor:
        pooled = feature_map.mean(dim=(2, 3))
        attention = self.aux(torch.cat([pooled, ehr_summary.to(pooled.dtype)], dim=1))
        scale, shift = torch.split(attention, self.ehr_dim, dim=1)
        scale = self.scale_activation(scale).to(ehr_sequence.dtype)
        return scale[:, None, :] * ehr_sequence + shift[:, None, :].to(ehr_sequence.dtype)


class DAFTFusion(MedfuseModel):
    """EHR LSTM whose first-layer sequence is affinely transformed by ResNet-34 features (DAFT)."""

    family = "daft"
    scheduler_switch = True

    def __init__(
        self,
        num_classes: int,
        *,
        layer_after: int | None = None,
        scale_activation: str = "linear",
        padded_time_mean: bool = False,
        ehr_input_dim: int = EHR_FEATURES,
        ehr_hidden_dim: int = 256,
        ehr_layers: int = 2,
        dropout: float = 0.3,
        cxr_weights: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        if layer_after is None:
            layer_after = 4 if num_classes == 1 else 3
        self.layer_after = layer_after
        self.include_padding = bool(padded_time_mean)
        self.positions = stages_after(layer_after, self.family)
        require_two_lstm_layers(ehr_layers, self.family)
        self.ehr_encoder = EHREncoder(ehr_input_dim, ehr_hidden_dim, ehr_layers, dropout)
        self.cxr_encoder = CXREncoder(cxr_weights)
        self.daft = nn.ModuleDict(
            {f"stage{i}": DAFTBlock(STAGE_CHANNELS[i], ehr_hidden_dim, scale_activation) for i in self.positions}
        )
        self.ehr_head = init_linear(nn.Linear(ehr_hidden_dim, num_classes))

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        ehr, lengths = ehr_inputs(batch, self.family)
        images, has_cxr = cxr_inputs(batch, ehr.shape[0], self.family)
        require_all_images(has_cxr, self.family)
        sequence = self.ehr_encoder.first_layer_sequence(ehr, lengths)
        feature_map = images
        for stage in range(max(self.positions) + 1):
            feature_map = self.cxr_encoder.stage(stage, feature_map)
            if stage in self.positions:
                summary = time_mean(sequence, lengths, include_padding=self.include_padding)
                sequence = self.daft[f"stage{stage}"](feature_map, sequence, summary)
        v_ehr = self.ehr_encoder.finish_from_sequence(sequence, lengths)
        return {"logits": self.ehr_head(v_ehr), "features": v_ehr}
