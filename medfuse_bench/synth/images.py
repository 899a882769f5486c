"""Synthetic chest X-rays: a lung-like frontal or lateral template with the study's findings drawn in.

Everything is defined in coordinates relative to the image (x, y in [-0.5, 0.5]) and thin structures have a
minimum width of about one pixel, so the same findings stay visible from 28 px up to 512 px wide images:

* opacity: one or two bright blobs in the lower lung fields;
* effusion: bright, meniscus-shaped lung bases;
* cardiomegaly: a wider and taller heart shadow;
* edema: bilateral perihilar haze;
* pneumothorax: a dark apex without lung markings on one side;
* atelectasis: a thin bright horizontal band in a lower lung field;
* devices: bright lines (endotracheal tube, central line) and round ECG leads;
* lesion: a small bright nodule; fracture: a short bright step on a rib (label-only in practice).

Each image also gets a random shift and scale, brightness/contrast jitter, a gradient and pixel noise. Images wider
than :data:`MAX_DRAW_WIDTH` are drawn at that width and scaled up, which keeps 512 px datasets fast to make.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from medfuse_bench.synth.cxr import AP, LATERAL, LL
from medfuse_bench.synth.signal import FINDINGS

JPEG_QUALITY = 90
_F = {name: i for i, name in enumerate(FINDINGS)}


def _ellipse(x: np.ndarray, y: np.ndarray, cx, cy, rx, ry, edge: float) -> np.ndarray:  # noqa: ANN001
    """Soft 0..1 mask of an ellipse (parameters broadcast per image)."""
    r2 = ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2
    # linear ramp in r^2 (about 2 * edge wide in r): much cheaper than a sigmoid of the radius
    return np.clip((1.0 - r2) / (4.0 * edge) + 0.5, 0.0, 1.0)


def _gauss(x: np.ndarray, y: np.ndarray, cx, cy, sx, sy) -> np.ndarray:  # noqa: ANN001
    return np.exp(-0.5 * (((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2))


def _segment(x: np.ndarray, y: np.ndarray, x0, y0, x1, y1, width) -> np.ndarray:  # noqa: ANN001
    """Gaussian profile around the segment (x0, y0)-(x1, y1)."""
    dx, dy = x1 - x0, y1 - y0
    u = np.clip(((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy), 0.0, 1.0)
    d2 = (x - (x0 + u * dx)) ** 2 + (y - (y0 + u * dy)) ** 2
    return np.exp(-0.5 * d2 / width**2)


#: Images wider than this are drawn at this width and scaled up (the findings are large, smooth shapes).
MAX_DRAW_WIDTH = 96


def image_height(width: int) -> int:
    return int(round(1.2 * width))


def render(rng: np.random.Generator, findings: np.ndarray, views: np.ndarray, width: int) -> list[np.ndarray]:
    """Grayscale uint8 images [round(1.2 * width), width] for a findings matrix [n, len(FINDINGS)] and view codes."""
    n = len(views)
    draw_w = min(width, MAX_DRAW_WIDTH)
    draw_h = image_height(draw_w)
    batch = max(1, 300_000 // (draw_h * draw_w))  # keep the temporaries small enough for the cache
    out: list[np.ndarray] = []
    for lo in range(0, n, batch):
        hi = min(n, lo + batch)
        pixels = _render_batch(rng, findings[lo:hi], views[lo:hi], draw_w, draw_h)
        if draw_w == width:
            out.extend(pixels)
        else:
            size = (width, image_height(width))
            out.extend(np.asarray(Image.fromarray(p).resize(size, Image.Resampling.BICUBIC)) for p in pixels)
    return out


def _render_batch(rng: np.random.Generator, f: np.ndarray, views: np.ndarray, width: int, height: int
                  ) -> np.ndarray:
    n = len(views)
    col = lambda values: np.asarray(values, dtype=np.float32)[:, None, None]  # noqa: E731
    shift_x, shift_y = rng.normal(0, 0.02, n), rng.normal(0, 0.02, n)
    scale = 1.0 + rng.normal(0, 0.03, n)
    gx = (np.arange(width, dtype=np.float32) + 0.5) / width - 0.5
    gy = (np.arange(height, dtype=np.float32) + 0.5) / height - 0.5
    x = (gx[None, None, :] - col(shift_x)) / col(scale)
    y = (gy[None, :, None] - col(shift_y)) / col(scale)
    px = 1.0 / width  # one pixel in relative units
    line = max(0.012, 0.7 * px)

    has = {name: col(f[:, i]) for name, i in _F.items()}
    lateral = col((views == LATERAL) | (views == LL))
    frontal = 1.0 - lateral
    ap = col(views == AP)
    side = col(np.where(rng.random(n) < 0.5, -1.0, 1.0))  # side of one-sided findings

    img = np.full((n, height, width), 0.06, np.float32)
    body = _ellipse(x, y, 0.0, 0.02, 0.47, 0.52, 0.04)
    img += 0.5 * body
    # frontal template: two lungs, mediastinum, heart, diaphragm; lateral: one lung field, spine, anterior heart
    lungs_f = _ellipse(x, y, -0.2, -0.06, 0.15, 0.3, 0.08) + _ellipse(x, y, 0.2, -0.06, 0.15, 0.3, 0.08)
    lungs_l = _ellipse(x, y, 0.0, -0.06, 0.3, 0.32, 0.08)
    lungs = frontal * lungs_f + lateral * lungs_l
    ribs = 0.035 * np.sin(2 * np.pi * (7.0 * y + 1.5 * np.abs(x)) + col(rng.uniform(0, 2 * np.pi, n)))
    # pneumothorax: an apical region without lung markings, darker than the lung
    ptx_region = _ellipse(x, y, side * 0.22, -0.22, 0.12, 0.15, 0.1) * frontal + \
        _ellipse(x, y, 0.0, -0.3, 0.22, 0.1, 0.1) * lateral
    ptx = has["pneumothorax"] * ptx_region
    img -= lungs * (0.34 - ribs * (1.0 - ptx))
    img -= 0.22 * ptx
    heart_scale = 1.0 + 0.5 * has["cardiomegaly"] + 0.08 * ap
    heart_f = _ellipse(x, y, 0.05, 0.14, 0.13 * heart_scale, 0.11 * (1.0 + 0.25 * has["cardiomegaly"]), 0.06)
    heart_l = _ellipse(x, y, -0.15, 0.15, 0.12 * heart_scale, 0.14, 0.06)
    img += 0.32 * (frontal * heart_f + lateral * heart_l)
    img += 0.2 * frontal * _ellipse(x, y, 0.0, -0.25, 0.05, 0.3, 0.05)  # mediastinum / spine
    img += 0.28 * lateral * _ellipse(x, y, 0.33, 0.0, 0.06, 0.45, 0.05)
    img += 0.25 * _ellipse(x, y, 0.0, 0.52, 0.5, 0.22, 0.05)  # diaphragm and abdomen

    # findings
    cy = 0.12 + col(rng.normal(0, 0.03, n))
    blob1 = _gauss(x, y, side * 0.2 + col(rng.normal(0, 0.02, n)), cy, 0.08, 0.075)
    blob2 = _gauss(x, y, -side * 0.2, 0.1, 0.07, 0.06) * col(rng.random(n) < 0.4)
    img += 0.45 * has["opacity"] * (blob1 + blob2) * (0.5 + 0.5 * lungs)
    base_line = 0.09 - 1.2 * (np.abs(x) - 0.2) ** 2
    effusion = 0.5 + 0.5 * np.tanh((y - base_line) / (2.0 * max(0.02, px)))
    img += 0.42 * has["effusion"] * effusion * np.clip(lungs * 1.3, 0, 1)
    edema = _gauss(x, y, -0.12, -0.01, 0.09, 0.12) + _gauss(x, y, 0.12, -0.01, 0.09, 0.12)
    img += 0.3 * has["edema"] * edema * frontal + 0.2 * has["edema"] * lateral * _gauss(x, y, 0.0, 0.0, 0.15, 0.15)
    band = _gauss(x, y, side * 0.2, 0.16, 0.09, max(0.014, 0.8 / height))
    img += 0.4 * has["atelectasis"] * band
    tube = _segment(x, y, 0.0, -0.55, 0.0, -0.14, line)
    cvc = _segment(x, y, side * 0.3, -0.38, 0.03, -0.08, line)
    leads = _ellipse(x, y, -0.3, -0.4, 0.025 + px, 0.02 + px, 0.1) + _ellipse(x, y, 0.32, 0.3, 0.025 + px,
                                                                              0.02 + px, 0.1)
    img += 0.5 * has["devices"] * (tube + cvc + 0.8 * leads)
    img += 0.35 * has["lesion"] * _gauss(x, y, col(rng.uniform(-0.3, 0.3, n)), col(rng.uniform(-0.3, 0.1, n)),
                                          max(0.025, px), max(0.025, px))
    img += 0.3 * has["fracture"] * _segment(x, y, side * 0.38, -0.2, side * 0.3, -0.18, line)

    # acquisition: gradient, contrast and brightness jitter, noise
    img += col(rng.normal(0, 0.03, n)) * x + col(rng.normal(0, 0.03, n)) * y
    img = (img - 0.4) * col(1.0 + rng.normal(0, 0.08, n)) + 0.4 + col(rng.normal(0, 0.03, n))
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)
    return np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)


def write_jpeg(pixels: np.ndarray, path: Path) -> None:
    """Write one grayscale image as JPEG (fixed quality, no timestamps: same pixels give the same bytes)."""
    Image.fromarray(pixels).save(path, format="JPEG", quality=JPEG_QUALITY)

