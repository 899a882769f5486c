"""Reading a model batch: checked access to its tensors and scattering per-image rows back to batch rows.

A batch holds ``ehr`` [B, T, 76], ``ehr_lengths`` [B], ``cxr`` [N, 3, H, W] (only the images that exist,
in batch order) and ``has_cxr`` bool [B]; see :mod:`medfuse_bench.models` for the full contract.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from medfuse_bench.errors import MedfuseError


def _tensor(batch: Mapping[str, object], key: str, family: str) -> Tensor:
    if key not in batch:
        raise MedfuseError(f"model '{family}': the batch has no key '{key}'; the batch must provide it as a tensor")
    value = batch[key]
    if not isinstance(value, Tensor):
        raise MedfuseError(f"model '{family}': batch['{key}'] must be a torch.Tensor, got {type(value).__name__}")
    return value


def ehr_inputs(batch: Mapping[str, object], family: str) -> tuple[Tensor, Tensor]:
    """Return ``(ehr [B, T, F], lengths)`` with lengths as CPU int64, as packing needs, after checking them."""
    ehr = _tensor(batch, "ehr", family)
    if "ehr_lengths" in batch and not isinstance(batch["ehr_lengths"], Tensor):
        lengths = torch.as_tensor(batch["ehr_lengths"])
    else:
        lengths = _tensor(batch, "ehr_lengths", family)
    if ehr.dim() != 3:
        raise MedfuseError(
            f"model '{family}': batch['ehr'] must be [batch, time, features], got shape {tuple(ehr.shape)}"
        )
    lengths = lengths.to("cpu", torch.int64)
    if lengths.shape != (ehr.shape[0],):
        raise MedfuseError(
            f"model '{family}': batch['ehr_lengths'] must hold one length per sample ({ehr.shape[0]}), "
            f"got shape {tuple(lengths.shape)}"
        )
    if ehr.shape[0] == 0:
        raise MedfuseError(f"model '{family}': the batch is empty; drop empty batches before the forward pass")
    if int(lengths.min()) < 1 or int(lengths.max()) > ehr.shape[1]:
        raise MedfuseError(
            f"model '{family}': batch['ehr_lengths'] must lie in [1, {ehr.shape[1]}] (the padded length), "
            f"got {int(lengths.min())}..{int(lengths.max())}; every stay needs at least one time step"
        )
    return ehr, lengths


def cxr_inputs(batch: Mapping[str, object], batch_size: int | None, family: str) -> tuple[Tensor, Tensor]:
    """Return ``(images [N, 3, H, W], has_cxr bool [B])``, checking that N equals the number of True flags.

    ``cxr`` may be left out of the batch when no sample has an image.
    """
    has_cxr = _tensor(batch, "has_cxr", family)
    if has_cxr.dtype != torch.bool or has_cxr.dim() != 1:
        raise MedfuseError(
            f"model '{family}': batch['has_cxr'] must be a 1-d bool tensor, got {has_cxr.dtype} {tuple(has_cxr.shape)}"
        )
    if batch_size is not None and has_cxr.shape[0] != batch_size:
        raise MedfuseError(
            f"model '{family}': batch['has_cxr'] has {has_cxr.shape[0]} flags for a batch of {batch_size} samples"
        )
    present = int(has_cxr.sum())
    if "cxr" not in batch and present == 0:
        return torch.empty(0, 3, 1, 1), has_cxr
    images = _tensor(batch, "cxr", family)
    if images.dim() != 4 or images.shape[1] != 3:
        raise MedfuseError(f"model '{family}': batch['cxr'] must be [N, 3, H, W], got shape {tuple(images.shape)}")
    if images.shape[0] != present:
        raise MedfuseError(
            f"model '{family}': batch['cxr'] holds {images.shape[0]} images but has_cxr marks {present}; "
            "cxr must hold exactly the present images, in batch order"
        )
    return images, has_cxr


def require_all_images(has_cxr: Tensor, family: str) -> None:
    """Reject a batch with a missing image, for the families that need paired samples."""
    if not bool(has_cxr.all()):
        missing = int((~has_cxr).sum())
        raise MedfuseError(
            f"model '{family}' needs an X-ray for every sample, but {missing} of {has_cxr.shape[0]} samples in the "
            "batch have none; train and evaluate it on paired samples only "
            "(early/joint accept missing images with missing='learnable' or 'zeros')"
        )


def scatter_rows(values: Tensor | None, has_cxr: Tensor, fill: Tensor) -> Tensor:
    """Place per-image rows ``values`` [N, D] at the batch rows flagged in ``has_cxr``; other rows get ``fill`` [D].

    Out of place, so gradients reach both ``values`` and a learnable ``fill``.

    >>> scatter_rows(torch.ones(1, 2), torch.tensor([False, True]), torch.zeros(2)).tolist()
    [[0.0, 0.0], [1.0, 1.0]]
    """
    batch_size = has_cxr.shape[0]
    dtype = values.dtype if values is not None else fill.dtype
    device = values.device if values is not None else fill.device
    base = fill.to(device=device, dtype=dtype).expand(batch_size, fill.shape[-1])
    if values is None or values.shape[0] == 0:
        return base
    index = has_cxr.to(device).nonzero(as_tuple=True)[0]
    return base.index_copy(0, index, values)
