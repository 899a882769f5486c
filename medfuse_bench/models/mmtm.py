"""MMTM fusion baseline (Vaezi Joze et al. 2020), as MedFuse's original code applies it (paper section 4.3).

The EHR encoder's first LSTM layer yields a per-step sequence; the ResNet runs stem -> layer1..4 and,
after stage ``layer_after`` (0 = stem, 1..4 = layerN; -1 = after every stage; default 4, as in every
script of the original), an MMTM block exchanges information between the two:

- squeeze: the CNN map's spatial mean concatenated with the EHR sequence's time mean;
- Linear(C_img + 256 -> int(2 (C_img + 256) / ratio)) + ReLU (ratio 4: 768 -> 384 after layer4);
- two Linear heads to C_img and 256, each followed by a sigmoid gate (a plain sigmoid as in MedFuse's
  code; the MMTM paper uses 2 * sigmoid);
- the CNN map is scaled channel-wise by its gate, the EHR sequence feature-wise at every step.

Then the EHR's remaining LSTM layer(s) -> final hidden state -> dropout -> EHR head ("ehr_logits"),
the CNN map -> average pooling -> CXR head ("cxr_logits"), and the joint head
Linear(1024 -> C) over [Linear(256 -> 512)(v_ehr); v_cxr] gives "logits".

By default the EHR sequence is averaged over each stay's valid steps only; ``padded_time_mean=True``
averages over the padded length as the original does, so a sample's prediction then depends on the
longest stay in its batch. Paired samples only: a missing image is an error. The original trains this
model with three forward passes and optimizer steps per batch (EHR head, CXR head, joint); the model
returns all three logits and leaves that schedule to the trainer (``medfuse_bench.train.loop``).
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from medfuse_bench.errors import MedfuseError
from medfuse_bench.models.base import MedfuseModel, bce
from medfuse_bench.models.batch import cxr_inputs, ehr_inputs, require_all_images
from medfuse_bench.models.cxr import CXR_FEATURES, STAGE_CHANNELS, CXREncoder
from medfuse_bench.models.ehr import EHR_FEATURES, EHREncoder, init_linear, time_mean

def stages_after(layer_after: int, family: str) -> tuple[int, ...]:
    """The ResNet stages (0 = stem, 1..4) after which a fusion block sits; -1 means all of them."""
    if layer_after == -1:
        return tuple(range(len(STAGE_CHANNELS)))
    if layer_after not in range(len(STAGE_CHANNELS)):
        raise MedfuseError(f"model '{family}': layer_after must be 0..4 or -1 (every stage), got {layer_after}")
    return (layer_after,)


def require_two_lstm_layers(ehr_layers: int, family: str) -> None:
    """MMTM and DAFT act between the first and second LSTM layer, so the EHR encoder needs at least two."""
    if ehr_layers < 2:
        raise MedfuseError(f"model '{family}' sits between two LSTM layers; ehr_layers must be >= 2, got {ehr_layers}")


class MMTMBlock(nn.Module):
    """Multi-modal transfer module between a CNN map [N, C, h, w] and an EHR sequence [N, T, D]."""

    def __init__(self, image_channels: int, ehr_dim: int, ratio: float = 4) -> None:
        super().__init__()
        joint = image_channels + ehr_dim
        squeezed = int(2 * joint / ratio)
        self.fc_squeeze = nn.Linear(joint, squeezed)
        self.fc_image = nn.Linear(squeezed, image_channels)
        self.fc_ehr = nn.Linear(squeezed, ehr_dim)

    def forward(self, feature_map: Tensor, ehr_sequence: Tensor, ehr_summary: Tensor) -> tuple[Tensor, Tensor]:
        squeeze = torch.cat([feature_map.flatten(2).mean(dim=-1), ehr_summary.to(feature_map.dtype)], dim=1)
        excitation = torch.relu(self.fc_squeeze(squeeze))
        image_gate = torch.sigmoid(self.fc_image(excitation))
        ehr_gate = torch.sigmoid(self.fc_ehr(excitation))
        return feature_map * image_gate[:, :, None, None], ehr_sequence * ehr_gate[:, None, :].to(ehr_sequence.dtype)


class MMTMFusion(MedfuseModel):
    """EHR LSTM and ResNet-34 exchanging channel gates through MMTM; joint, EHR and CXR heads."""

    family = "mmtm"
    scheduler_switch = True
    three_pass_step = True

    def __init__(
        self,
        num_classes: int,
        *,
        layer_after: int = 4,
        ratio: float = 4,
        padded_time_mean: bool = False,
        ehr_input_dim: int = EHR_FEATURES,
        ehr_hidden_dim: int = 256,
        ehr_layers: int = 2,
        dropout: float = 0.3,
        cxr_weights: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        self.include_padding = bool(padded_time_mean)
        self.positions = stages_after(layer_after, self.family)
        require_two_lstm_layers(ehr_layers, self.family)
        self.ehr_encoder = EHREncoder(ehr_input_dim, ehr_hidden_dim, ehr_layers, dropout)
        self.cxr_encoder = CXREncoder(cxr_weights)
        self.mmtm = nn.ModuleDict(
            {f"stage{i}": MMTMBlock(STAGE_CHANNELS[i], ehr_hidden_dim, ratio) for i in self.positions}
        )
        self.ehr_head = init_linear(nn.Linear(ehr_hidden_dim, num_classes))
        self.cxr_head = nn.Linear(CXR_FEATURES, num_classes)
        self.projection = nn.Linear(ehr_hidden_dim, CXR_FEATURES)
        self.joint_head = nn.Linear(2 * CXR_FEATURES, num_classes)

    def training_loss(self, outputs: dict[str, Tensor], targets: Tensor, has_cxr: Tensor) -> Tensor:
        """The original's three heads, summed: joint, EHR and CXR logits."""
        return bce(outputs["logits"], targets) + bce(outputs["ehr_logits"], targets) + bce(outputs["cxr_logits"], targets)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        ehr, lengths = ehr_inputs(batch, self.family)
        images, has_cxr = cxr_inputs(batch, ehr.shape[0], self.family)
        require_all_images(has_cxr, self.family)
        sequence = self.ehr_encoder.first_layer_sequence(ehr, lengths)
        feature_map = images
        for stage in range(len(STAGE_CHANNELS)):
            feature_map = self.cxr_encoder.stage(stage, feature_map)
            if stage in self.positions:
                summary = time_mean(sequence, lengths, include_padding=self.include_padding)
                feature_map, sequence = self.mmtm[f"stage{stage}"](feature_map, sequence, summary)
        v_cxr = self.cxr_encoder.pool(feature_map)
        v_ehr = self.ehr_encoder.finish_from_sequence(sequence, lengths)
        features = torch.cat([self.projection(v_ehr), v_cxr.to(v_ehr.dtype)], dim=1)
        return {
            "logits": self.joint_head(features),
            "ehr_logits": self.ehr_head(v_ehr),
            "cxr_logits": self.cxr_head(v_cxr),
            "features": features,
        }
