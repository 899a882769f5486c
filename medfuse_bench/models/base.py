"""The base class of every model family: named encoders that can be frozen for good.

A frozen encoder has ``requires_grad`` off and stays in eval mode even after ``model.train()``,
so neither its BatchNorm running statistics nor its dropout change while the rest trains
(the early-fusion baselines train only the projection and the classifier).
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from medfuse_bench.errors import MedfuseError

EncoderName = Literal["ehr", "cxr"]
ENCODER_ATTRIBUTES: dict[str, str] = {"ehr": "ehr_encoder", "cxr": "cxr_encoder"}


def encoder_of(model: nn.Module, which: str) -> nn.Module:
    """The ``ehr_encoder`` or ``cxr_encoder`` of ``model``, or a MedfuseError naming what it has."""
    if which not in ENCODER_ATTRIBUTES:
        raise MedfuseError(f"unknown encoder '{which}'; use one of {sorted(ENCODER_ATTRIBUTES)}")
    encoder = getattr(model, ENCODER_ATTRIBUTES[which], None)
    if not isinstance(encoder, nn.Module):
        has = [name for name, attr in ENCODER_ATTRIBUTES.items() if isinstance(getattr(model, attr, None), nn.Module)]
        raise MedfuseError(f"model {type(model).__name__} has no {which} encoder (it has: {has or 'none'})")
    return encoder


def bce(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean binary cross-entropy of raw logits, in float32, with the targets shaped like the logits."""
    return F.binary_cross_entropy_with_logits(logits.float(), targets.reshape(logits.shape).float())


class MedfuseModel(nn.Module):
    """An ``nn.Module`` whose ``forward(batch)`` returns a dict with ``logits``; encoders can be frozen."""

    family: str = "model"
    #: The output that is the model's prediction (and validation score).
    prediction_key: str = "logits"
    #: Whether the original's trainer of this family never stepped its learning-rate scheduler, so that the fidelity
    #: switch mmtm_daft_scheduler applies to it.
    scheduler_switch: bool = False
    #: Whether the fidelity switch mmtm_step may train it with the original MMTM trainer's three passes.
    three_pass_step: bool = False

    def __init__(self) -> None:
        super().__init__()
        self._frozen_encoders: set[str] = set()

    @property
    def frozen_encoders(self) -> frozenset[str]:
        return frozenset(self._frozen_encoders)

    def freeze_encoder(self, which: EncoderName) -> None:
        """Stop training the named encoder: no gradients, and eval mode from now on."""
        encoder = encoder_of(self, which)
        for parameter in encoder.parameters():
            parameter.requires_grad_(False)
        encoder.eval()
        self._frozen_encoders.add(which)

    def training_loss(self, outputs: dict[str, Tensor], targets: Tensor, has_cxr: Tensor) -> Tensor:
        """The training objective of one batch: BCE of the main logits."""
        return bce(outputs["logits"], targets)

    def train(self, mode: bool = True) -> MedfuseModel:
        super().train(mode)
        for which in self._frozen_encoders:
            encoder_of(self, which).eval()
        return self
