"""Optional edge-aware refinement of class probabilities at a photo's resolution (upsample "refined").

    full = upsample_scores(softmax(scores), (1500, 1125))   # imaging: the exact bilinear, then
    probs = refine_probs(full, photo)                        # a guided filter on the probabilities

Bilinear upsampling (imaging.upsample_scores) gives edges at sub-pixel positions of the score field;
the guided filter then snaps them to the photo's own edges within a small radius.
"""

from __future__ import annotations

import cv2
import numpy as np


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
