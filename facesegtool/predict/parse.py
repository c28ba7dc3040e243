"""One image -> its class mask at the image's resolution: faces found, each parsed whole-head,
scores brought to the photo's pixels, pasted, beards derived; with them the effect classes' soft
alphas from the same scores (effects.soft_alphas), so effects fade across a class's edge.

    parsed = parse_image(rgb, segmenter, detector)      # Parsed(mask, faces, scale, regions, alphas)

Per face the detector's box gives the square crop (framed like the training faces); head.py
merges its scores with a wider pass into a score grid over the wide box; imaging.upsample_scores
brings the grid to the box's pixels (bilinear on the scores, then argmax; "nearest" keeps the old
argmax-then-nearest, "refined" adds the guided filter); boxes of several faces are pasted by
priority (a face's detail beats a neighbour's wide pass). Without a detector, or when no face is
found, the whole image is parsed at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..imaging import crop_padded, upsample_scores
from ..segmenter import Segmenter, background_index
from .beard import clear_beard_alpha, derive_beard
from .detect import FaceDetector
from .effects import EFFECT_CLASSES, soft_alphas
from .errors import PredictError
from .head import HeadGrid, detail_weights, head_grid, merge_head
from .refine import refine_probs, softmax

UPSAMPLE_MODES = ("nearest", "bilinear", "refined")
BAND_ROWS = 256  # output rows upsampled at a time: a 4k photo's scores never sit in memory whole
FADE = 2  # score-grid pixels a soft alpha takes to fall to ~0 (the rim cleared around a beard)


@dataclass
class Parsed:
    mask: np.ndarray  # H x W class indices, image resolution
    faces: list[tuple[int, int, int, int]] = field(default_factory=list)  # detected boxes
    scale: float = 1.0  # image pixels per model input pixel (for the smoothing radius)
    regions: list[tuple[int, int, int]] = field(default_factory=list)  # squares parsed (x0, y0, side): seams lie there
    alphas: dict[str, np.ndarray] | None = None  # effect class -> H x W soft alpha 0..256 (None: effects use the mask)


def head_scores(rgb: np.ndarray, grid: HeadGrid, segmenter: Segmenter) -> np.ndarray:
    """Merged score grid (2s x 2s x C, s the model's score side) over grid.wide."""
    if segmenter.size[0] != segmenter.size[1]:
        raise PredictError(f"whole-head parsing needs a square model input, {segmenter.description} is not")
    detail = segmenter.scores(segmenter.fit(crop_padded(rgb, *grid.crop)))
    wide = segmenter.scores(segmenter.fit(crop_padded(rgb, *grid.wide)))
    return merge_head(detail, wide)


def _nearest_index(n_src: int, n_out: int, start: int, stop: int) -> np.ndarray:
    """Source index per output index start..stop-1, sampling pixel centres (as the app's nearest)."""
    return ((2 * np.arange(start, stop) + 1) * n_src) // (2 * n_out)


def scores_to_mask(scores: np.ndarray, out_h: int, out_w: int, rows: tuple[int, int], cols: tuple[int, int],
                   segmenter: Segmenter, mode: str = "bilinear", rgb: np.ndarray | None = None) -> np.ndarray:
    """The mask of output rows x cols of an out_h x out_w grid over which scores (h x w x C) lie.

    mode: nearest (argmax, then nearest: the old path), bilinear (scores upsampled, then argmax),
    refined (probabilities upsampled and guided-filtered by rgb, the image under rows x cols)."""
    return scores_to_layers(scores, out_h, out_w, rows, cols, segmenter, mode, rgb, alphas=False)[0]


def scores_to_layers(scores: np.ndarray, out_h: int, out_w: int, rows: tuple[int, int], cols: tuple[int, int],
                     segmenter: Segmenter, mode: str = "bilinear", rgb: np.ndarray | None = None,
                     alphas: bool = True) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    """As scores_to_mask, and the effect classes' soft alphas from the same upsampled scores, band by
    band (None when not asked for, and in nearest mode: the old path has no scores at the pixels)."""
    if mode not in UPSAMPLE_MODES:
        raise PredictError(f"unknown upsampling {mode!r}; known: {', '.join(UPSAMPLE_MODES)}")
    (r0, r1), (c0, c1) = rows, cols
    if mode == "nearest":
        grid = segmenter.to_mask(scores)
        ri = _nearest_index(grid.shape[0], out_h, r0, r1)
        ci = _nearest_index(grid.shape[1], out_w, c0, c1)
        return grid[ri[:, None], ci[None, :]], None
    out = np.empty((r1 - r0, c1 - c0), np.uint8)
    logits = segmenter.output_kind == "logits"
    field_ = softmax(scores) if mode == "refined" and logits else scores
    kind = "probabilities" if mode == "refined" else segmenter.output_kind
    soft = empty_alphas(segmenter, r1 - r0, c1 - c0) if alphas else None
    margin = 0
    if mode == "refined":
        assert rgb is not None, "refined upsampling needs the image"
        margin = 2 * max(1, int(round(0.01 * max(rgb.shape[:2]))))
    for b0 in range(r0, r1, BAND_ROWS):
        b1 = min(r1, b0 + BAND_ROWS)
        m0, m1 = max(r0, b0 - margin), min(r1, b1 + margin)
        band = upsample_scores(field_, (out_h, out_w), rows=(m0, m1), cols=(c0, c1))
        if mode == "refined":
            radius = max(1, int(round(0.01 * max(out_h, out_w))))
            band = refine_probs(band, rgb[m0 - r0 : m1 - r0], radius)
        part = band[b0 - m0 : b0 - m0 + (b1 - b0)]
        out[b0 - r0 : b1 - r0] = segmenter.to_mask(part)
        if soft is not None:
            alphas = soft_alphas(part, kind, segmenter.lut, segmenter.classes)
            for name, a in alphas.items():
                soft[name][b0 - r0 : b1 - r0] = a
    return out, soft


def empty_alphas(segmenter: Segmenter, h: int, w: int) -> dict[str, np.ndarray]:
    """Zero soft alphas (h x w uint16) for each effect class the segmenter's mask has."""
    return {name: np.zeros((h, w), np.uint16) for name in EFFECT_CLASSES if name in segmenter.classes}


def fade_radius(pixels_per_score: float) -> int:
    """Image pixels a soft alpha's fade spans, for score-grid pixels pixels_per_score image pixels wide."""
    return max(1, math.ceil(FADE * pixels_per_score))


def paste_scores(full: np.ndarray, priority: np.ndarray, scores: np.ndarray, weight: np.ndarray,
                 box: tuple[int, int, int], segmenter: Segmenter, mode: str, rgb: np.ndarray,
                 alphas: dict[str, np.ndarray] | None = None) -> None:
    """Paste the mask of a square score grid over box (x0, y0, side) of the image, in place; and
    its soft alphas into `alphas` (image-sized, empty_alphas) when given, on the same pixels.

    Where faces' boxes overlap, a pixel goes to the face whose crop weighs more there (weight: the
    grid's detail weights, sampled nearest; its detail beats a neighbour's wide pass); on a tie (both
    wide passes) a non-background class wins."""
    h, w = full.shape
    x0, y0, side = box
    ya, yb, xa, xb = max(0, y0), min(h, y0 + side), max(0, x0), min(w, x0 + side)
    if ya >= yb or xa >= xb:
        return
    part, soft = scores_to_layers(scores, side, side, (ya - y0, yb - y0), (xa - x0, xb - x0), segmenter, mode,
                                  rgb[ya:yb, xa:xb], alphas=alphas is not None)
    g = weight.shape[0]
    ri, ci = _nearest_index(g, side, ya - y0, yb - y0), _nearest_index(g, side, xa - x0, xb - x0)
    wpart = weight[ri[:, None], ci[None, :]]
    old = priority[ya:yb, xa:xb]
    background = background_index(segmenter)
    take = (wpart > old) | ((wpart == old) & (part != background))
    full[ya:yb, xa:xb][take] = part[take]
    old[take] = wpart[take]
    for name, a in (soft or {}).items():
        alphas[name][ya:yb, xa:xb][take] = a[take]


def whole_image_layers(rgb: np.ndarray, scores: np.ndarray, segmenter: Segmenter,
                       mode: str) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
    h, w = rgb.shape[:2]
    return scores_to_layers(scores, h, w, (0, h), (0, w), segmenter, mode, rgb)


def parse_image(rgb: np.ndarray, segmenter: Segmenter, detector: FaceDetector | None = None, whole_head: bool = True,
                upsample: str = "bilinear", beard: bool = True) -> Parsed:
    """Class mask for a whole image; with a detector, per face (whole image if no face).

    whole_head: each face's crop merged with the wide pass around it (head.py), so hair past the
    crop is parsed and no crop edge shows; off: the crop alone, pasted back (outside: background).
    upsample: nearest | bilinear | refined (see scores_to_mask). beard: facial hair to the beard
    class (beard.py), and the hair's soft alpha cleared on and around it. Parsed.alphas: the effect
    classes' soft alphas (None with nearest upsampling)."""
    faces = detector(rgb) if detector is not None else []
    h, w = rgb.shape[:2]
    if not faces:
        scores = segmenter.scores(segmenter.fit(rgb))
        mask, alphas = whole_image_layers(rgb, scores, segmenter, upsample)
        if beard:
            derive_beard(mask, segmenter.classes)
            fade = fade_radius(max(h / scores.shape[0], w / scores.shape[1]))
            clear_beard_alpha(alphas, mask, segmenter.classes, fade)
        return Parsed(mask, [], max(h / segmenter.size[0], w / segmenter.size[1]), alphas=alphas)
    full = np.full((h, w), background_index(segmenter), np.uint8)
    priority = np.full((h, w), -1.0, np.float32)
    alphas = empty_alphas(segmenter, h, w) if upsample != "nearest" else None
    sides, regions, boxes, fade = [], [], [], 1
    # Smallest first, so that the largest face wins where crops overlap.
    for box in reversed(faces):
        crop = detector.crop_box(box)
        sides.append(crop[2])
        regions.append(crop)
        if whole_head:
            grid = head_grid(crop)
            regions.append(grid.wide)
            scores = head_scores(rgb, grid, segmenter)
            paste_scores(full, priority, scores, detail_weights(scores.shape[0] // 2), grid.wide, segmenter, upsample, rgb,
                         alphas)
            boxes.append(grid.wide)
        else:
            scores = segmenter.scores(segmenter.fit(crop_padded(rgb, *crop)))
            paste_scores(full, priority, scores, np.zeros(scores.shape[:2], np.float32), crop, segmenter, upsample, rgb,
                         alphas)
            boxes.append(crop)
        fade = max(fade, fade_radius(boxes[-1][2] / scores.shape[0]))
    if beard:
        for x0, y0, side in boxes:
            derive_beard(full, segmenter.classes, (x0, y0, x0 + side, y0 + side))
        clear_beard_alpha(alphas, full, segmenter.classes, fade)
    return Parsed(full, faces, max(sides) / segmenter.size[0], regions, alphas)
