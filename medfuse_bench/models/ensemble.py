"""The prediction-level ensemble of paper appendix A.7: MedFuse where an X-ray exists, the EHR-only LSTM elsewhere."""

from __future__ import annotations

import numpy as np
import torch

from medfuse_bench.errors import MedfuseError

ArrayLike = np.ndarray | torch.Tensor


def ensemble_probabilities(p_fusion: ArrayLike, p_ehr: ArrayLike, has_cxr: ArrayLike) -> ArrayLike:
    """Per sample, take ``p_fusion`` if it has an X-ray and ``p_ehr`` otherwise.

    ``p_fusion`` and ``p_ehr`` are probabilities of the same shape, [B] or [B, C]; ``has_cxr`` is bool [B].
    NumPy in, NumPy out; torch tensors in, a tensor out.

    >>> ensemble_probabilities(np.array([0.9, 0.8]), np.array([0.1, 0.2]), np.array([True, False])).tolist()
    [0.9, 0.2]
    """
    if p_fusion.shape != p_ehr.shape:
        raise MedfuseError(
            f"ensemble: MedFuse probabilities {tuple(p_fusion.shape)} and EHR-only probabilities "
            f"{tuple(p_ehr.shape)} must have the same shape (same samples, same labels)"
        )
    if p_fusion.ndim not in (1, 2) or tuple(has_cxr.shape) != (p_fusion.shape[0],):
        raise MedfuseError(
            f"ensemble: has_cxr {tuple(has_cxr.shape)} must hold one flag per sample of the probabilities "
            f"{tuple(p_fusion.shape)} ([B] or [B, C])"
        )
    if isinstance(p_fusion, torch.Tensor):
        mask = torch.as_tensor(has_cxr, dtype=torch.bool, device=p_fusion.device)
        mask = mask[:, None] if p_fusion.ndim == 2 else mask
        return torch.where(mask, p_fusion, torch.as_tensor(p_ehr, device=p_fusion.device, dtype=p_fusion.dtype))
    mask = np.asarray(has_cxr, dtype=bool)
    mask = mask[:, None] if p_fusion.ndim == 2 else mask
    return np.where(mask, np.asarray(p_fusion), np.asarray(p_ehr))
