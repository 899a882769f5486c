"""MedFuse (paper section 3.2, Figure 2): an LSTM over the sequence of uni-modal feature tokens.

v*_cxr = phi(v_cxr) with phi = Linear(512 -> 256). A sample with an X-ray is the two-token sequence
[v_ehr, v*_cxr] (EHR first); a sample without one is the one-token sequence [v_ehr]. The sequences are
packed by these lengths and run through f_fusion = one LSTM(256 -> 512, batch_first, zero initial
state); g_fusion = Linear(512 -> C) classifies its final hidden state h_fusion ("features").

As in the original, nothing is frozen by default and the encoder heads g_ehr, g_cxr are not part of
the model (``freeze_encoders=True`` freezes both encoders). Unlike the original, the ResNet runs only
on the images that exist: a missing X-ray costs no CNN pass and no BatchNorm update. Dropping images
on purpose (paper Figure A2) is done by the caller by clearing ``has_cxr`` and removing the images.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from medfuse_bench.models.base import MedfuseModel
from medfuse_bench.models.batch import cxr_inputs, ehr_inputs, scatter_rows
from medfuse_bench.models.cxr import CXR_FEATURES, CXREncoder
from medfuse_bench.models.ehr import EHR_FEATURES, EHREncoder


class MedFuse(MedfuseModel):
    """f_ehr, f_cxr, phi, the fusion LSTM f_fusion and the classifier g_fusion."""

    family = "medfuse"

    def __init__(
        self,
        num_classes: int,
        *,
        fusion_hidden_dim: int = 512,
        freeze_encoders: bool = False,
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
        self.fusion_lstm = nn.LSTM(ehr_hidden_dim, fusion_hidden_dim, batch_first=True)
        self.classifier = nn.Linear(fusion_hidden_dim, num_classes)
        # Fills the second token slot of one-token sequences; packing never reads it.
        self.register_buffer("missing_vector", torch.zeros(ehr_hidden_dim), persistent=False)
        if freeze_encoders:
            self.freeze_encoder("ehr")
            self.freeze_encoder("cxr")

    def forward(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        ehr, lengths = ehr_inputs(batch, self.family)
        images, has_cxr = cxr_inputs(batch, ehr.shape[0], self.family)
        v_ehr = self.ehr_encoder(ehr, lengths)
        projected = self.projection(self.cxr_encoder(images)) if images.shape[0] else None
        v_cxr = scatter_rows(projected, has_cxr, self.missing_vector).to(v_ehr.dtype)
        tokens = torch.stack([v_ehr, v_cxr], dim=1)
        token_counts = 1 + has_cxr.to("cpu", torch.int64)
        packed = pack_padded_sequence(tokens, token_counts, batch_first=True, enforce_sorted=False)
        _, (hidden, _) = self.fusion_lstm(packed)
        h_fusion = hidden[-1]
        return {"logits": self.classifier(h_fusion), "features": h_fusion}
