"""The "Unified" baseline (Hayat et al. 2021a, "Towards Dynamic Multi-modal Phenotyping using Chest
Radiographs and Physiological Data"), trained on paired and EHR-only samples alike.

What is implemented here, after the idea of that paper (modality-specific encoders, a classifier per
available combination of modalities, losses chosen per sample by what it holds):

- f_ehr (the shared EHR LSTM encoder) and f_cxr (the shared ResNet-34 encoder); the CNN runs on present
  images only;
- auxiliary heads on each modality's own features: ``ehr_logits`` = Linear(256 -> C)(v_ehr) for every
  sample, ``cxr_logits`` = Linear(512 -> C)(v_cxr) for samples with an image (rows without an image hold
  0 and must be masked with ``has_cxr``);
- a fusion head ``logits`` = Linear(512 -> C)([v_ehr; phi(v_cxr)]), phi = Linear(512 -> 256), where a
  missing image's phi(v_cxr) is replaced by zeros, so the fusion head sees both paired and EHR-only samples;
- ``dynamic_logits``: the prediction of the classifier that matches the sample's modalities, the fusion
  head for paired samples and the EHR head for EHR-only ones;
- :func:`unified_loss`: BCE of the fusion head on every sample + BCE of the EHR head on every sample +
  BCE of the CXR head on samples with an image (equal weights).

How this differs from MedFuse's original code: there, ``fusion_type unified`` runs the joint-fusion
network unchanged (concatenation, one classifier, no auxiliary heads, nothing frozen) and returns the
joint prediction, and a missing image is a zero image pushed through the ResNet. The heads, the
zero-substitution of phi(v_cxr), ``dynamic_logits`` and :func:`unified_loss` follow Hayat et al. 2021a's
idea as described in MedFuse's related work; the details of that paper's own code are not reproduced.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from medfuse_bench.models.base import MedfuseModel
from medfuse_bench.models.batch import cxr_inputs, ehr_inputs, scatter_rows
from medfuse_bench.models.cxr import CXR_FEATURES, CXREncoder
from medfuse_bench.models.ehr import EHR_FEATURES, EHREncoder, init_linear


class UnifiedFusion(MedfuseModel):
    """Modality-specific encoders and heads plus a fusion head over [v_ehr; phi(v_cxr) or 0]."""

    family = "unified"
    # The head matching each sample's modalities: the fusion head with an X-ray, the EHR head without.
    prediction_key = "dynamic_logits"

    def __init__(
        self,
        num_classes: int,
        *,
        ehr_input_dim: int = EHR_FEATURES,
        ehr_hidden_dim: int = 256,
        ehr_layers: int = 2,
        dropout: float = 0.3,
        cxr_weights: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        self.ehr_encoder = EHREncoder(ehr_input_dim, ehr_hidden_dim, ehr_layers, dropout)
        self.cxr_encoder = CXREncoder(cxr_weights)
        self.projection = nn.Linear(CXR_FEATURES, ehr_hidden_dim)
        self.ehr_head = init_linear(nn.Linear(ehr_hidden_dim, num_classes))
        self.cxr_head = nn.Linear(CXR_FEATURES, num_classes)
        self.fusion_head = nn.Linear(2 * ehr_hidden_dim, num_classes)
        self.register_buffer("missing_vector", torch.zeros(ehr_hidden_dim), persistent=False)
        self.register_buffer("missing_logits", torch.zeros(num_classes), persistent=False)

    def training_loss(self, outputs: dict[str, Tensor], targets: Tensor, has_cxr: Tensor) -> Tensor:
        """Its per-modality loss (:func:`unified_loss`), in float32."""
        return unified_loss({k: v.float() for k, v in outputs.items()}, targets, has_cxr)

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        ehr, lengths = ehr_inputs(batch, self.family)
        images, has_cxr = cxr_inputs(batch, ehr.shape[0], self.family)
        v_ehr = self.ehr_encoder(ehr, lengths)
        v_cxr = self.cxr_encoder(images) if images.shape[0] else None
        projected = self.projection(v_cxr) if v_cxr is not None else None
        features = torch.cat([v_ehr, scatter_rows(projected, has_cxr, self.missing_vector).to(v_ehr.dtype)], dim=1)
        logits = self.fusion_head(features)
        ehr_logits = self.ehr_head(v_ehr)
        cxr_logits = scatter_rows(self.cxr_head(v_cxr) if v_cxr is not None else None, has_cxr, self.missing_logits)
        dynamic = torch.where(has_cxr.to(logits.device)[:, None], logits, ehr_logits.to(logits.dtype))
        return {
            "logits": logits,
            "ehr_logits": ehr_logits,
            "cxr_logits": cxr_logits.to(logits.dtype),
            "dynamic_logits": dynamic,
            "features": features,
        }


def unified_loss(outputs: dict[str, Tensor], targets: Tensor, has_cxr: Tensor) -> Tensor:
    """Fusion + EHR head BCE on every sample, + CXR head BCE on samples with an image (mean reductions)."""
    targets = targets.to(outputs["logits"].dtype).reshape(outputs["logits"].shape)
    loss = F.binary_cross_entropy_with_logits(outputs["logits"], targets)
    loss = loss + F.binary_cross_entropy_with_logits(outputs["ehr_logits"], targets)
    present = has_cxr.to(targets.device)
    if bool(present.any()):
        loss = loss + F.binary_cross_entropy_with_logits(outputs["cxr_logits"][present], targets[present])
    return loss
