"""X-ray batches on the training device: uint8 [N, R, R] -> ImageNet-normalised float [N, 3, c, c].

Training images get the augmentations of the paper's appendix A.1 / the original code, drawn per sample
but applied to the whole batch at once: a random horizontal flip, a random affine map (rotation within
+-45 degrees, translation within +-15 % of the side, scale in [0.85, 1.15], no shear; outside the image is
black), then a crop of ``crop`` px. All of it is one affine sampling grid per sample and one
``grid_sample`` call (bilinear) for the batch. Evaluation images get a centre crop.

Crop after augmentation: ``corrected`` takes a random crop, as appendix A.1 states; ``original`` takes
the centre crop, as the original code (torchvision ``CenterCrop`` after ``RandomAffine``). The original's
affine uses nearest-neighbour sampling (torchvision's default); bilinear is used here in both modes.
The single channel is replicated to three and normalised with the ImageNet mean and std, as the
original's ``convert('RGB')`` + ``Normalize`` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class AffineRanges:
    """Ranges of the random augmentation (torchvision RandomAffine semantics)."""

    degrees: float = 45.0
    translate: float = 0.15
    scale: tuple[float, float] = (0.85, 1.15)
    flip: bool = True


def center_offset(size: int, crop: int) -> int:
    """Top/left offset of a centre crop, as torchvision computes it.

    >>> center_offset(256, 224), center_offset(32, 28), center_offset(5, 2)
    (16, 2, 2)
    """
    return int(round((size - crop) / 2.0))


def sampling_matrices(
    count: int,
    size: int,
    crop: int,
    generator: torch.Generator | None,
    *,
    augment: bool,
    random_crop: bool,
    ranges: AffineRanges = AffineRanges(),
) -> Tensor:
    """Per-sample [count, 2, 3] matrices for ``F.affine_grid`` (align_corners=False) that map a crop x crop
    output to normalised source coordinates of a size x size image: flip, then affine, then crop.

    In pixel coordinates centred on the image, the augmented image is aug(q) = src(Fl M^-1 (q - t)) with
    M = s R(angle) and Fl the flip, and output pixel q_out of the crop sits at q = q_out + d (d = crop centre
    offset). With q_out = x_out * crop / 2 and x_src = q_src * 2 / size this is x_src = A x_out + b,
    A = (crop / size) Fl M^-1, b = (2 / size) Fl M^-1 (d - t).
    """
    if crop > size:
        raise ValueError(f"crop {crop} exceeds image size {size}")
    cpu = {"generator": generator} if generator is not None else {}
    if augment:
        angle = (torch.rand(count, **cpu, dtype=torch.float64) * 2 - 1) * math.radians(ranges.degrees)
        max_shift = ranges.translate * size
        shift = (torch.rand(count, 2, **cpu, dtype=torch.float64) * 2 - 1) * max_shift
        low, high = ranges.scale
        scale = low + torch.rand(count, **cpu, dtype=torch.float64) * (high - low)
        flip = torch.where(torch.rand(count, **cpu, dtype=torch.float64) < 0.5, -1.0, 1.0) if ranges.flip else torch.ones(count, dtype=torch.float64)
    else:
        angle = torch.zeros(count, dtype=torch.float64)
        shift = torch.zeros(count, 2, dtype=torch.float64)
        scale = torch.ones(count, dtype=torch.float64)
        flip = torch.ones(count, dtype=torch.float64)
    if random_crop:
        offset = torch.randint(0, size - crop + 1, (count, 2), **cpu).to(torch.float64)
    else:
        offset = torch.full((count, 2), float(center_offset(size, crop)), dtype=torch.float64)
    d = offset + crop / 2.0 - size / 2.0
    cos, sin = torch.cos(angle), torch.sin(angle)
    # M^-1 = R(-angle) / s; rows of Fl M^-1: the flip negates the x row.
    inverse = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2) / scale[:, None, None]
    inverse[:, 0, :] *= flip[:, None]
    linear = inverse * (crop / size)
    translation = torch.einsum("nij,nj->ni", inverse, d - shift) * (2.0 / size)
    return torch.cat([linear, translation[:, :, None]], dim=2).to(torch.float32)


class ImageTransform:
    """uint8 [N, R, R] images -> float [N, 3, crop, crop], augmented (train) or centre-cropped (eval)."""

    def __init__(self, crop: int, *, train: bool, augment: bool = True, random_crop: bool = True,
                 ranges: AffineRanges = AffineRanges()) -> None:
        self.crop = crop
        self.train = train
        self.augment = augment and train
        self.random_crop = random_crop and train
        self.ranges = ranges

    def __call__(self, images: Tensor, generator: torch.Generator | None = None, device: torch.device | str | None = None) -> Tensor:
        device = torch.device(device) if device is not None else images.device
        images = images.to(device, non_blocking=True)
        count, size = images.shape[0], images.shape[-1]
        crop = min(self.crop, size)
        mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
        if count == 0:
            return torch.zeros(0, 3, crop, crop, device=device)
        x = images.unsqueeze(1).to(torch.float32).div_(255.0)
        if self.augment or self.random_crop:
            theta = sampling_matrices(
                count, size, crop, generator, augment=self.augment, random_crop=self.random_crop, ranges=self.ranges
            ).to(device)
            grid = F.affine_grid(theta, [count, 1, crop, crop], align_corners=False)
            x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        else:
            top = center_offset(size, crop)
            x = x[:, :, top : top + crop, top : top + crop]
        return (x - mean) / std
