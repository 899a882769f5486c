"""Optimizer steps of one training batch (the loss is the model's ``training_loss``) as the fidelity policy chooses.

Switches read here: ``adam_betas`` (the original's β2 is its ``--beta_1`` argument, 0.9) and ``mmtm_step``
(:class:`MMTMThreePassStep`, the original MMTM trainer's three passes, or :class:`SingleStep` on the summed loss).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from medfuse_bench.fidelity import FidelityPolicy
from medfuse_bench.models.base import bce

#: Adam betas per value of the switch adam_betas.
ADAM_BETAS: dict[str, tuple[float, float]] = {"beta2_0.9": (0.9, 0.9), "beta2_0.999": (0.9, 0.999)}


class SingleStep:
    """One Adam over every parameter; one backward and one step per batch."""

    def __init__(self, model: nn.Module, lr: float, betas: tuple[float, float]) -> None:
        self.model = model
        self.loss = model.training_loss
        self.optimizers = [torch.optim.Adam(model.parameters(), lr=lr, betas=betas)]

    def __call__(self, inputs: dict[str, Tensor], targets: Tensor, autocast: Any) -> float:
        optimizer = self.optimizers[0]
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            outputs = self.model(inputs)
        loss = self.loss(outputs, targets, inputs["has_cxr"])
        loss.backward()
        optimizer.step()
        return float(loss.detach())


class MMTMThreePassStep:
    """The original MMTM trainer's step (its trainers/mmtm_trainer.py): three forward passes per batch, each
    followed by the backward pass and step of its own optimizer, in this order:

    1. the EHR-head loss, ``optimizer_ehr``;
    2. the CXR-head loss, ``optimizer_visual``;
    3. the joint-head loss, ``optimizer_joint``.

    ``optimizer_ehr`` and ``optimizer_visual`` both hold the CXR model (ResNet and its head) and the MMTM block
    after the stem (the original's ``mmtm0``, absent here unless ``layer_after`` puts a block there), not the
    EHR encoder: the original's parameter-group bug. So the EHR-head loss moves only CXR weights, and the EHR
    head, which the joint loss does not reach, never trains. ``optimizer_joint`` holds every parameter. Each
    pass runs on the weights the previous step left, with new dropout masks, and moves the BatchNorm running
    statistics again. Gradients are cleared over the whole model before each pass, so each optimizer sees
    only its own loss's gradient, as in the original (where the joint step clears every gradient first and
    the other two clear their own parameters'). The returned loss is the sum of the three.
    """

    HEADS: tuple[str, ...] = ("ehr_logits", "cxr_logits", "logits")

    def __init__(self, model: nn.Module, lr: float, betas: tuple[float, float]) -> None:
        self.model = model
        group = [*model.cxr_encoder.parameters(), *model.cxr_head.parameters()]
        blocks = getattr(model, "mmtm", {})
        if "stage0" in blocks:
            group += list(blocks["stage0"].parameters())
        self.group = group
        self.optimizers = [
            torch.optim.Adam(group, lr=lr, betas=betas),
            torch.optim.Adam(group, lr=lr, betas=betas),
            torch.optim.Adam(model.parameters(), lr=lr, betas=betas),
        ]

    def __call__(self, inputs: dict[str, Tensor], targets: Tensor, autocast: Any) -> float:
        total = 0.0
        for key, optimizer in zip(self.HEADS, self.optimizers):
            self.model.zero_grad(set_to_none=True)
            with autocast:
                outputs = self.model(inputs)
            loss = bce(outputs[key], targets)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
        return total


def make_step(model: nn.Module, lr: float, policy: FidelityPolicy) -> SingleStep | MMTMThreePassStep:
    """The optimizer step of a model under the policy's switches adam_betas and mmtm_step."""
    betas = ADAM_BETAS[policy.adam_betas]
    if getattr(model, "three_pass_step", False) and policy.mmtm_step == "three_passes":
        return MMTMThreePassStep(model, lr, betas)
    return SingleStep(model, lr, betas)
