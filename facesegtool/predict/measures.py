"""Numbers that show what a user sees: crop seams in photos, flicker in video.

    seam = seam_pixels(mask, hair, parsed.regions)   # (hair boundary px on a crop edge, all hair boundary px)
    iou = consecutive_iou(masks, motions)           # mean IoU of consecutive masks, known motion undone
    frames, motions = shaky_clip(photo, 24)         # a video with small camera shake and zoom

seam: a hair boundary pixel is a hair pixel with a 4-neighbour (inside the image) of another
class. Where parsing stops at a crop's edge, long hair ends in a straight line along it; the
share of hair boundary pixels within 1 px of any parsed square's edge measures that (a natural
hair outline crossing an edge adds only a few pixels).

flicker: masks of consecutive frames, each warped back to the scene by its frame's known
motion, compared as the mean IoU over the foreground classes present (1.0: nothing moved but
the camera).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np


def hair_boundary(mask: np.ndarray, hair: int) -> np.ndarray:
    """H x W bool: hair pixels with a 4-neighbour of another class (the image's own edge does not count)."""
    m = mask == hair
    edge = np.zeros_like(m)
    edge[1:] |= m[1:] & ~m[:-1]
    edge[:-1] |= m[:-1] & ~m[1:]
    edge[:, 1:] |= m[:, 1:] & ~m[:, :-1]
    edge[:, :-1] |= m[:, :-1] & ~m[:, 1:]
    return edge


def crop_edges(shape: tuple[int, int], regions: Sequence[tuple[int, int, int]], band: int = 1) -> np.ndarray:
    """H x W bool: pixels within `band` px of the edge of any square (x0, y0, side), inside the image
    and off the image's own border (where a crop edge meets the photo's edge there is no seam)."""
    h, w = shape
    out = np.zeros((h, w), bool)
    for x0, y0, side in regions:
        xs = (max(0, x0 - band), min(w, x0 + side + band))
        ys = (max(0, y0 - band), min(h, y0 + side + band))
        for x in (x0, x0 + side - 1):
            out[ys[0] : ys[1], max(0, x - band) : max(0, min(w, x + band + 1))] = True
        for y in (y0, y0 + side - 1):
            out[max(0, y - band) : max(0, min(h, y + band + 1)), xs[0] : xs[1]] = True
    out[:band + 1], out[-band - 1 :], out[:, : band + 1], out[:, -band - 1 :] = False, False, False, False
    return out


def seam_pixels(mask: np.ndarray, hair: int, regions: Sequence[tuple[int, int, int]]) -> tuple[int, int]:
    """(hair boundary pixels on a parsed square's edge, all hair boundary pixels)."""
    boundary = hair_boundary(mask, hair)
    return int((boundary & crop_edges(mask.shape, regions)).sum()), int(boundary.sum())


def seam_share(mask: np.ndarray, hair: int, regions: Sequence[tuple[int, int, int]]) -> float:
    """Share of the hair boundary lying on crop edges (0 when there is no hair)."""
    on_edge, total = seam_pixels(mask, hair, regions)
    return on_edge / total if total else 0.0


# --- video -------------------------------------------------------------------------------------


def mean_iou(a: np.ndarray, b: np.ndarray, valid: np.ndarray, classes: Sequence[int], min_pixels: int = 16) -> float:
    """Mean IoU of two masks over the given classes present (union >= min_pixels) inside valid."""
    ious = []
    for c in classes:
        ia, ib = (a == c) & valid, (b == c) & valid
        union = int((ia | ib).sum())
        if union >= min_pixels:
            ious.append((ia & ib).sum() / union)
    return float(np.mean(ious)) if ious else 1.0


def consecutive_iou(
    masks: Sequence[np.ndarray], motions: Sequence[np.ndarray], scene: tuple[int, int], classes: Sequence[int]
) -> float:
    """Mean over consecutive frame pairs of the foreground mean IoU after undoing the motion.

    motions[t]: the 2 x 3 affine that took the scene (scene = (h, w)) to frame t; each mask is
    warped back to the scene (nearest) and pairs are compared where both frames saw the scene.
    """
    h, w = scene
    back, seen = [], []
    for m, a in zip(masks, motions):
        inv = cv2.invertAffineTransform(np.asarray(a, np.float64))
        fh, fw = m.shape
        back.append(cv2.warpAffine(m, inv, (w, h), flags=cv2.INTER_NEAREST, borderValue=255))
        ones = np.ones((fh, fw), np.uint8)
        seen.append(cv2.warpAffine(ones, inv, (w, h), flags=cv2.INTER_NEAREST, borderValue=0) > 0)
    pairs = [mean_iou(back[t - 1], back[t], seen[t - 1] & seen[t], classes) for t in range(1, len(back))]
    return float(np.mean(pairs)) if pairs else 1.0


def shaky_clip(
    scene: np.ndarray, frames: int, size: tuple[int, int] | None = None, shake: float = 0.015, zoom: float = 0.04,
    seed: int = 0,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """A hand-held video of a still scene: per frame a small random shift (shake x the frame's side,
    standard deviation) and a slow zoom in and out (+-zoom) plus jitter. Returns the RGB frames
    (size = (h, w), the scene's size by default) and each frame's 2 x 3 scene -> frame affine."""
    rng = np.random.default_rng(seed)
    h, w = scene.shape[:2]
    fh, fw = size or (h, w)
    base = max(fh / h, fw / w) * (1 + zoom)  # covers the frame even when zoomed out
    out, motions = [], []
    for t in range(frames):
        s = base * (1 + zoom * np.sin(2 * np.pi * t / max(frames, 2)) * 0.5 + rng.normal(0, zoom * 0.1))
        dx, dy = rng.normal(0, shake * max(fw, fh), 2)
        # Scale about the scene's centre onto the frame's centre, then shift.
        a = np.array([[s, 0, fw / 2 - s * w / 2 + dx], [0, s, fh / 2 - s * h / 2 + dy]])
        out.append(cv2.warpAffine(scene, a, (fw, fh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
        motions.append(a)
    return out, motions
