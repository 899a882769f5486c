"""Every model of the MedFuse benchmark behind one batch-in, dict-out interface.

Batch (a dict of tensors):

- ``ehr``: float32 [B, T, 76], zero-padded time series;
- ``ehr_lengths``: int64 [B], true lengths (>= 1; may live on the CPU);
- ``cxr``: float32 [N, 3, H, W], ONLY the images that exist, in batch order (N = number of True in
  ``has_cxr``; N may be 0, and the key may then be left out); grayscale replicated to 3 channels,
  ImageNet-normalised;
- ``has_cxr``: bool [B].

``ehr_lstm`` reads only ``ehr``/``ehr_lengths``; ``cxr_resnet`` reads only ``cxr`` (``has_cxr``, if
present, must be all True), so CheXpert pretraining batches need no EHR.

Output: ``model(batch)`` returns a dict with at least ``"logits"`` [B, C] (raw logits: train with
``BCEWithLogitsLoss``) and, where meaningful, ``"features"`` and auxiliary logits:

=============  ===========================================================================
family         outputs besides ``logits``
=============  ===========================================================================
ehr_lstm       features = v_ehr [B, 256]
cxr_resnet     features = v_cxr [N, 512]
early, joint   features = [v_ehr; phi(v_cxr) or missing vector] [B, 512]
mmtm           ehr_logits, cxr_logits [B, C]; features [B, 1024]; logits = joint head
daft           features = v_ehr [B, 256]
unified        ehr_logits, cxr_logits (0 rows where no image), dynamic_logits; features [B, 512]
medfuse        features = h_fusion [B, 512]
=============  ===========================================================================

A missing X-ray never costs a CNN pass: the ResNet runs on ``cxr`` only and its features are scattered
back to batch rows with ``has_cxr``. ``mmtm``, ``daft`` and early/joint with ``missing="none"`` accept
paired samples only and raise :class:`~medfuse_bench.errors.MedfuseError` otherwise.

Factory: ``build_model(family, num_classes, **options)``; :data:`MODEL_FAMILIES` maps family names to
classes and :func:`model_options` lists each family's options with their defaults. Every model has an
``ehr_encoder`` (:class:`EHREncoder`) and/or a ``cxr_encoder`` (:class:`CXREncoder`), the same classes in
every family, so pre-trained encoder weights move between families with :func:`encoder_state` and
:func:`load_encoder`, and :func:`freeze_encoder` stops an encoder training (it then stays in eval mode
through ``model.train()``).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from medfuse_bench.errors import MedfuseError
from medfuse_bench.models.base import ENCODER_ATTRIBUTES, EncoderName, MedfuseModel, encoder_of
from medfuse_bench.models.concat import EarlyFusion, JointFusion
from medfuse_bench.models.cxr import CXREncoder, CXRResNet
from medfuse_bench.models.daft import DAFTFusion
from medfuse_bench.models.ehr import EHREncoder, EHRLSTM
from medfuse_bench.models.ensemble import ensemble_probabilities
from medfuse_bench.models.medfuse import MedFuse
from medfuse_bench.models.mmtm import MMTMFusion
from medfuse_bench.models.unified import UnifiedFusion, unified_loss

MODEL_FAMILIES: dict[str, type[MedfuseModel]] = {
    "ehr_lstm": EHRLSTM,
    "cxr_resnet": CXRResNet,
    "early": EarlyFusion,
    "joint": JointFusion,
    "mmtm": MMTMFusion,
    "daft": DAFTFusion,
    "unified": UnifiedFusion,
    "medfuse": MedFuse,
}

__all__ = [
    "MODEL_FAMILIES",
    "CXREncoder",
    "EHREncoder",
    "MedfuseModel",
    "build_model",
    "encoder_state",
    "ensemble_probabilities",
    "freeze_encoder",
    "load_encoder",
    "model_options",
    "parameter_count",
    "unified_loss",
]


def _family_class(family: str) -> type[MedfuseModel]:
    if family not in MODEL_FAMILIES:
        raise MedfuseError(f"unknown model family '{family}'; use one of {sorted(MODEL_FAMILIES)}")
    return MODEL_FAMILIES[family]


def model_options(family: str) -> dict[str, Any]:
    """The options ``build_model`` accepts for ``family``, with their defaults.

    >>> model_options("ehr_lstm")
    {'ehr_input_dim': 76, 'ehr_hidden_dim': 256, 'ehr_layers': 2, 'dropout': 0.3}
    """
    parameters = inspect.signature(_family_class(family).__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY}


def build_model(family: str, num_classes: int, **options: Any) -> MedfuseModel:
    """Build a model of ``family`` with ``num_classes`` outputs; unknown options are an error."""
    cls = _family_class(family)
    if not isinstance(num_classes, int) or num_classes < 1:
        raise MedfuseError(f"model '{family}': num_classes must be a positive integer, got {num_classes!r}")
    accepted = model_options(family)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise MedfuseError(f"model '{family}' has no option(s) {unknown}; its options are {sorted(accepted)}")
    return cls(num_classes, **options)


def freeze_encoder(model: nn.Module, which: EncoderName) -> None:
    """Freeze ``model``'s ``which`` ("ehr" or "cxr") encoder: no gradients, eval mode kept through train()."""
    if not isinstance(model, MedfuseModel):
        raise MedfuseError(f"freeze_encoder needs a model built by build_model, got {type(model).__name__}")
    model.freeze_encoder(which)


def encoder_state(model: nn.Module, which: EncoderName) -> dict[str, Tensor]:
    """The state dict of ``model``'s ``which`` encoder (keys relative to the encoder)."""
    return encoder_of(model, which).state_dict()


def load_encoder(model: nn.Module, which: EncoderName, state: Mapping[str, Tensor]) -> None:
    """Load ``which`` encoder weights into ``model``.

    ``state`` is an encoder's own state dict (from :func:`encoder_state`) or a whole model's state dict
    holding ``ehr_encoder.*`` / ``cxr_encoder.*`` entries, e.g. a pre-trained ``ehr_lstm`` or ``cxr_resnet``
    checkpoint. Every tensor must match in name and shape.
    """
    encoder = encoder_of(model, which)
    prefix = ENCODER_ATTRIBUTES[which] + "."
    if any(key.startswith(prefix) for key in state):
        state = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    expected = encoder.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape))
    if missing or unexpected or mismatched:
        raise MedfuseError(
            f"cannot load {which} encoder weights into {type(model).__name__}: "
            f"missing {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}, "
            f"shape mismatch {mismatched[:3]}{'...' if len(mismatched) > 3 else ''}; "
            "the checkpoint must come from a model with the same encoder settings (e.g. ehr_hidden_dim)"
        )
    encoder.load_state_dict(dict(state), strict=True)


def parameter_count(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters of ``model`` (only those with ``requires_grad`` if ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
