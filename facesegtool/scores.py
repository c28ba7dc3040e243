"""Class scores at another resolution than the input, made full size the one way every consumer uses.

Face parsers often output at 1/4 or 1/8 of their input (BiSeNet, SegFormer heads). The scores
(logits or probabilities) are upsampled bilinearly with half-pixel centres, as
F.interpolate(..., mode="bilinear", align_corners=False) and TFLite's RESIZE_BILINEAR with
half_pixel_centers do, and only then turned into a mask: upsampling a mask instead steps its edges.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def upsample_scores(scores: np.ndarray, size: tuple[int, int] | int) -> np.ndarray:
    """H x W x C float scores -> size[0] x size[1] x C (the same array when already that size)."""
    h, w = (size, size) if isinstance(size, int) else size
    if scores.shape[:2] == (h, w):
        return scores
    t = torch.from_numpy(np.ascontiguousarray(scores, dtype=np.float32)).permute(2, 0, 1)[None]
    return F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)[0].permute(1, 2, 0).numpy()
