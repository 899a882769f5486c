"""Early and joint fusion (paper section 4.3, Figure 3): concatenated features, one linear classifier.

Both compute ``[v_ehr (256); phi(v_cxr) (256)]`` with phi = Linear(512 -> 256) and classify it with
Linear(512 -> C). They differ only in what trains:

- ``early``: both encoders are frozen (no gradients, kept in eval mode), only phi and the classifier
  train; it presumes pre-trained encoders are loaded into it before training.
- ``joint``: everything trains end to end.

``missing`` says what stands in for phi(v_cxr) when a sample has no X-ray:

- ``"none"`` (default): paired samples only; a batch with a missing image is an error.
- ``"learnable"``: a learnable 256-d vector, initialised U(0, 1) as in the original code (its
  ``missing_token``), following the paper's "learnable vector" after Kyono et al. (2021).
- ``"zeros"``: a zero vector (paper Table A2).

Unlike the original, which pushes a zero image through the ResNet for a missing X-ray and then
overwrites its projection, the CNN runs only on the images that exist.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn

from medfuse_bench.errors import MedfuseError
from medfuse_bench.models.base import MedfuseModel
from medfuse_bench.models.batch import cxr_inputs, ehr_inputs, require_all_images, scatter_rows
from medfuse_bench.models.cxr import CXR_FEATURES, CXREncoder
from medfuse_bench.models.ehr import EHR_FEATURES, EHREncoder

MISSING_MODES: tuple[str, ...] = ("none", "learnable", "zeros")


class ConcatFusion(MedfuseModel):
    """[v_ehr; phi(v_cxr)] -> Linear; the base of the early and joint families."""

    frozen_by_default: bool = False

    def __init__(
        self,
        num_classes: int,
        *,
        missing: str = "none",
        ehr_input_dim: int = EHR_FEATURES,
        ehr_hidden_dim: int = 256,
        ehr_layers: int = 2,
        dropout: float = 0.3,
        cxr_weights: str | os.PathLike[str] | None = None,
    ) -> None:
        super().__init__()
        if missing not in MISSING_MODES:
            raise MedfuseError(f"model '{self.family}': missing must be one of {list(MISSING_MODES)}, got {missing!r}")
        self.missing = missing
        self.ehr_encoder = EHREncoder(ehr_input_dim, ehr_hidden_dim, ehr_layers, dropout)
        self.cxr_encoder = CXREncoder(cxr_weights)
        self.projection = nn.Linear(CXR_FEATURES, ehr_hidden_dim)
        self.classifier = nn.Linear(2 * ehr_hidden_dim, num_classes)
        if missing == "learnable":
            self.missing_vector = nn.Parameter(torch.rand(ehr_hidden_dim))
        else:
            # Not persistent: checkpoints of "none" and "zeros" models hold the same tensors.
            self.register_buffer("missing_vector", torch.zeros(ehr_hidden_dim), persistent=False)
        if self.frozen_by_default:
            self.freeze_encoder("ehr")
            self.freeze_encoder("cxr")

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        ehr, lengths = ehr_inputs(batch, self.family)
        images, has_cxr = cxr_inputs(batch, ehr.shape[0], self.family)
        if self.missing == "none":
            require_all_images(has_cxr, self.family)
        v_ehr = self.ehr_encoder(ehr, lengths)
        projected = self.projection(self.cxr_encoder(images)) if images.shape[0] else None
        v_cxr = scatter_rows(projected, has_cxr, self.missing_vector)
        features = torch.cat([v_ehr, v_cxr.to(v_ehr.dtype)], dim=1)
        return {"logits": self.classifier(features), "features": features}


class EarlyFusion(ConcatFusion):
    """Early fusion: frozen encoders, trainable projection and classifier."""

    family = "early"
    frozen_by_default = True


class JointFusion(ConcatFusion):
    """Joint fusion: encoders, projection and classifier trained end to end."""

    family = "joint"
