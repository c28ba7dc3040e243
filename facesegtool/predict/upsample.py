"""Class scores to a photo's resolution: bilinear upsampling before the argmax, and an optional
edge-aware refinement guided by the photo.

    full = upsample_scores(scores, 1500, 1125)       # h x w x C -> 1500 x 1125 x C, then argmax
    mask = refine_mask(full_probs, photo)            # guided filter on the probabilities

Upsampling the argmax (nearest) steps every edge in blocks of the upsampling factor; upsampling
the scores and taking the argmax after gives edges at sub-pixel positions of the score field
(smooth curves). The rule is the half-pixel bilinear of F.interpolate(align_corners=False) and
OpenCV: source coordinate (i + 0.5) * in / out - 0.5, clamped to the first and last source
centres. It is written out exactly, columns first then rows, weights computed in double and used in
float32, so that the Java core (com.facesegtool.core.ImageOps.upsampleScores) gives the same
floats and the same argmax to the bit; golden files prove it.
"""

from __future__ import annotations

import cv2
import numpy as np


def axis_weights(n_in: int, n_out: int, start: int = 0, stop: int | None = None):
    """For output indices start..stop-1: (lower index, upper index, lower weight, upper weight).
    Source (i + 0.5) * n_in / n_out - 0.5 in double; before the first or past the last source
    centre the edge value is taken whole (weight 1, 0); weights float32, as in Java."""
    i = np.arange(start, n_out if stop is None else stop, dtype=np.float64)
    src = (i + 0.5) * (n_in / n_out) - 0.5
    lo = np.floor(src).astype(np.int64)
    frac = src - lo
    edge = (lo < 0) | (lo >= n_in - 1)
    lo = np.clip(lo, 0, n_in - 1)
    frac[edge] = 0.0
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (1.0 - frac).astype(np.float32), frac.astype(np.float32)


def upsample_scores(scores: np.ndarray, height: int, width: int, rows: tuple[int, int] | None = None,
                    cols: tuple[int, int] | None = None) -> np.ndarray:
    """h x w x C float32 scores -> height x width x C, half-pixel bilinear (see the module doc).

    rows / cols: compute only output rows [r0, r1) / columns [c0, c1) of that grid (the part of a
    face's box inside the photo); the values are those of the full grid."""
    s = np.asarray(scores, np.float32)
    r0, r1 = rows or (0, height)
    c0, c1 = cols or (0, width)
    x0, x1, wx0, wx1 = axis_weights(s.shape[1], width, c0, c1)
    y0, y1, wy0, wy1 = axis_weights(s.shape[0], height, r0, r1)
    need = np.unique(np.concatenate([y0, y1]))  # only the source rows these output rows read
    remap = np.zeros(s.shape[0], np.int64)
    remap[need] = np.arange(len(need))
    sub = s[need]
    across = wx0[None, :, None] * sub[:, x0] + wx1[None, :, None] * sub[:, x1]  # columns first
    return wy0[:, None, None] * across[remap[y0]] + wy1[:, None, None] * across[remap[y1]]


def softmax(scores: np.ndarray) -> np.ndarray:
    """h x w x C logits -> probabilities (float32)."""
    e = np.exp(scores - scores.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def guided_filter(guide: np.ndarray, src: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """He et al.'s guided filter (grey guide in [0, 1], H x W; src H x W x C): src made locally
    linear in the guide, so its edges snap to the photo's edges within `radius`."""
    box = lambda a: cv2.boxFilter(a, -1, (2 * radius + 1, 2 * radius + 1), borderType=cv2.BORDER_REFLECT)  # noqa: E731
    g = guide.astype(np.float32)
    mean_g = box(g)
    var_g = box(g * g) - mean_g * mean_g
    out = np.empty_like(src, dtype=np.float32)
    for c in range(src.shape[-1]):
        p = np.ascontiguousarray(src[..., c], np.float32)
        mean_p = box(p)
        a = (box(g * p) - mean_g * mean_p) / (var_g + eps)
        b = mean_p - a * mean_g
        out[..., c] = box(a) * g + box(b)
    return out


REFINE_RADIUS = 0.01  # of the mask's larger side (~15 px on a 1500-px photo)
REFINE_EPS = 1e-3


def refine_probs(probs: np.ndarray, rgb: np.ndarray, radius: int | None = None, eps: float = REFINE_EPS) -> np.ndarray:
    """H x W x C probabilities at the photo's resolution -> guided-filtered by the photo's grey."""
    r = radius or max(1, int(round(REFINE_RADIUS * max(rgb.shape[:2]))))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    return guided_filter(grey, probs, r, eps)
