"""Whole-head parsing: a face crop for detail, a wider pass for what lies outside it, merged
without a seam.

    grid = head_grid(box)                       # where the face crop and the wide box lie
    logits = merge_head(detail, wide)           # 2S x 2S x C class scores over the wide box
    mask = logits.argmax(-1)

The face crop (framed like the training faces) is parsed at the model's size S for detail. Long
hair runs past it, below and beside, so a second pass parses a box twice the crop's side (the
crop sits in its upper middle: hair mostly falls down), also at S. The wide scores are upsampled
2x onto a 2S grid where the crop's scores fit pixel for pixel, and the two are blended with a
weight that ramps from 0 at the crop's edge to 1 at FEATHER pixels inside it: the detail rules
the face, the wide pass the hair outside, and nothing changes abruptly at the crop's edge.

Blending is done on logits (a weighted geometric mean of the two distributions), in float32
with fixed weights, step by step as the Java core (com.facesegtool.core.HeadMerge) does it, so
both give the same mask to the bit; golden files prove it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WIDE = 2  # the wide box's side in face-crop sides (upsample2 is written for 2)
TOP = 4  # the face crop's top lies side // TOP below the wide box's top (hair falls down, not up)
FEATHER = 8  # the blend ramp is S // FEATHER model pixels wide


@dataclass(frozen=True)
class HeadGrid:
    """Where a face's two passes lie, in image pixels: both square, (x0, y0, side)."""

    crop: tuple[int, int, int]
    wide: tuple[int, int, int]


def head_grid(crop: tuple[int, int, int]) -> HeadGrid:
    """The wide box around a face crop (x0, y0, side): WIDE x its side, the crop in its upper middle."""
    x0, y0, side = crop
    wx0 = x0 - side * (WIDE - 1) // 2
    wy0 = y0 - side // TOP
    return HeadGrid(crop, (wx0, wy0, side * WIDE))


def window(size: int) -> tuple[int, int]:
    """(x, y) offset of the face crop's S x S window in the 2S merge grid (model pixels)."""
    return (size * (WIDE - 1)) // 2, size // TOP


def upsample2(scores: np.ndarray) -> np.ndarray:
    """H x W x C float32 -> 2H x 2W x C, bilinear at pixel centres (edges clamped), exact weights:
    out[2i] = 0.25 in[i-1] + 0.75 in[i], out[2i+1] = 0.75 in[i] + 0.25 in[i+1]; rows first."""
    q, t = np.float32(0.25), np.float32(0.75)

    def axis0(a: np.ndarray) -> np.ndarray:
        prev = np.concatenate([a[:1], a[:-1]], 0)
        nxt = np.concatenate([a[1:], a[-1:]], 0)
        out = np.empty((2 * a.shape[0],) + a.shape[1:], np.float32)
        out[0::2] = q * prev + t * a
        out[1::2] = t * a + q * nxt
        return out

    rows = axis0(scores.astype(np.float32, copy=False))
    return axis0(rows.transpose(1, 0, 2)).transpose(1, 0, 2)


def feather_weights(size: int, feather: int | None = None) -> np.ndarray:
    """S x S float32 detail weights: min(k, F) / F, k = 1 on the crop's edge pixels, +1 per pixel inwards."""
    f = feather or max(1, size // FEATHER)
    k = np.minimum(np.arange(size) + 1, size - np.arange(size))
    kk = np.minimum(np.minimum(k[:, None], k[None, :]), f)
    return kk.astype(np.float32) / np.float32(f)


def detail_weights(size: int, feather: int | None = None) -> np.ndarray:
    """2S x 2S float32: the face crop's weight over the whole merge grid (0 outside the crop)."""
    grid = np.zeros((WIDE * size, WIDE * size), np.float32)
    ox, oy = window(size)
    grid[oy : oy + size, ox : ox + size] = feather_weights(size, feather)
    return grid


def merge_head(detail: np.ndarray, wide: np.ndarray, feather: int | None = None) -> np.ndarray:
    """S x S x C logits of the face crop and of the wide box -> 2S x 2S x C merged logits.

    Inside the crop: w * detail + (1 - w) * wide (w from feather_weights); outside: the wide pass.
    """
    size = detail.shape[0]
    if detail.shape != wide.shape or detail.shape[1] != size:
        raise ValueError(f"merge_head takes two square score maps of one shape, got {detail.shape} and {wide.shape}")
    merged = upsample2(wide)
    ox, oy = window(size)
    w = feather_weights(size, feather)[..., None]
    inner = merged[oy : oy + size, ox : ox + size]
    merged[oy : oy + size, ox : ox + size] = w * detail.astype(np.float32, copy=False) + (np.float32(1) - w) * inner
    return merged
