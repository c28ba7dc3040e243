"""Beauty effects and the translucent overlay, from a class mask on an RGB uint8 image, and the
soft alphas that let an effect fade at its class's edge instead of stepping.

Pure numpy integer arithmetic, so that the Java port in android_demo/core
(com.facesegtool.core.Effects) gives the same pixels; golden files prove it. Rules both sides
follow exactly:

* strength: alpha in [0, 1] becomes an integer a = floor(alpha * 256 + 0.5) in 0..256;
  blend(src, dst) = (src * (256 - a) + dst * a + 128) >> 8 (the overlay).
* effects blend per pixel with weight w = a * p in 0..65536, p the pixel's alpha for the effect's
  class in 0..256: blend(src, dst) = (src * (65536 - w) + dst * w + 32768) >> 16. With a hard mask
  p = 256 on the class's pixels and 0 elsewhere (w = 256 a: exactly the 8-bit blend above).
* soft alpha p from the class scores at the output's pixels (soft_alphas), in integers so that
  Java's exp or summation order never matters. Each class j gets a weight e_j in 0..65536:
  logits: k_j = min(rint(32 * (max_i s_i - s_j)), 378) (float32 difference, ties to even), e_j =
  EXP_TABLE[k_j] with EXP_TABLE[k] = floor(65536 * exp(-k / 32) + 0.5) (a softmax on a 1/32 logit
  grid; the table ends at its first 0, k = 378; every entry is >= 1e-3 from a rounding boundary, so
  a last-bit difference between two exp implementations cannot change it); probabilities: e_j =
  clamp(rint(65536 * s_j), 0, 65536). With d = the sum of all e_j and n = the sum over the model
  classes shown as the effect's class, p = clamp((512 * n + d // 2) // d - 128, 0, 256) (0 when
  d = 0): the class's probability n / d ramped from 0 at 1/4 to 256 at 3/4. Faint doubt (< 1/4)
  must not tint pixels far from the class (raw probabilities tinted 174k pixels up to 394 px from
  any effect class on a wild photo with the shipped model), and near-certainty is full strength,
  so a class's inside gets the hard mask's pixels and only its edge fades.
* effects apply in order smooth, hair, lips, brows, each to the result of the one before (with a
  hard mask they touch disjoint classes, so the order does not matter; soft alphas overlap at edges).
* luma Y = (77 R + 150 G + 29 B + 128) >> 8 (BT.601 weights in 8-bit fixed point).
* hair / lips: recolour keeping the shading: dst = clamp(colour + (Y - Y(colour)), 0, 255).
* brows: darken by a multiply blend: dst = (src * colour + 127) // 255.
* smooth: face pixels get the mean of the face pixels in their (2r+1)^2 box (only face pixels
  count, so the filter never mixes in eyes, brows, lips or hair: it is edge-preserving at the
  parts' borders); the mean is rounded as (sum + n // 2) // n. It changes face pixels only (a
  soft face alpha only fades it towards the face's edge).
* overlay: every non-background pixel is blended with its class's palette colour.

Class indices are found by name ("hair", "lips", "eyebrows", "face", "background"), so a model
with other classes works as long as it names them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Mapping, Sequence

import numpy as np

from ..labels import CLASSES, PALETTE
from .errors import PredictError

# Defaults when an effect is asked for without a value (e.g. --effect smooth,brows).
DEFAULT_HAIR = (128, 64, 192)
DEFAULT_LIPS = (192, 32, 64)
DEFAULT_BROWS = (80, 56, 48)
DEFAULT_SMOOTH = 3  # box radius in pixels at the model's input resolution (256 px face)

EFFECT_CLASSES = ("face", "hair", "lips", "eyebrows")  # the classes soft_alphas gives an alpha for
SOFT_ONE = 1 << 16  # the most likely class's weight
SOFT_STEP = 32  # logit differences are rounded to 1/SOFT_STEP


def _exp_table() -> np.ndarray:
    """EXP_TABLE[k] = floor(65536 * exp(-k / 32) + 0.5) up to its first 0 (see the module doc)."""
    table = []
    while not table or table[-1] > 0:
        table.append(math.floor(SOFT_ONE * math.exp(-len(table) / SOFT_STEP) + 0.5))
    return np.array(table, np.int32)


EXP_TABLE = _exp_table()


@dataclass(frozen=True)
class Effects:
    """Which effects to apply. Colours are RGB; smooth is a box radius in pixels (0 = off)."""

    hair: tuple[int, int, int] | None = None
    lips: tuple[int, int, int] | None = None
    brows: tuple[int, int, int] | None = None
    smooth: int = 0

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.hair, self.lips, self.brows)) or self.smooth > 0

    def scaled(self, factor: float) -> "Effects":
        """The same effects for an image `factor` times the model's resolution (smoothing radius scales)."""
        if self.smooth <= 0:
            return self
        return replace(self, smooth=max(1, int(math.floor(self.smooth * factor + 0.5))))


DEFAULT_EFFECTS = Effects(hair=DEFAULT_HAIR, lips=DEFAULT_LIPS, brows=DEFAULT_BROWS, smooth=DEFAULT_SMOOTH)
NO_EFFECTS = Effects()

_COLOUR = re.compile(r"^#?([0-9a-fA-F]{6})$")


def parse_colour(text: str) -> tuple[int, int, int]:
    """'#RRGGBB' (or 'RRGGBB') -> (r, g, b)."""
    m = _COLOUR.match(text.strip())
    if not m:
        raise PredictError(f"bad colour {text!r}: use #RRGGBB, e.g. #8040C0")
    v = int(m.group(1), 16)
    return (v >> 16) & 255, (v >> 8) & 255, v & 255


def parse_effects(spec: str | None) -> Effects:
    """'hair=#8040C0,lips=#C02040,brows,smooth=4' -> Effects. A key without a value takes its
    default; 'none' turns every effect off; None or '' means the defaults for all four."""
    if spec is None or not spec.strip():
        return DEFAULT_EFFECTS
    if spec.strip().lower() == "none":
        return NO_EFFECTS
    values: dict = {}
    for item in spec.split(","):
        key, _, value = item.strip().partition("=")
        key, value = key.strip().lower(), value.strip()
        if key in ("hair", "lips", "brows"):
            default = {"hair": DEFAULT_HAIR, "lips": DEFAULT_LIPS, "brows": DEFAULT_BROWS}[key]
            values[key] = parse_colour(value) if value else default
        elif key == "smooth":
            try:
                radius = int(value) if value else DEFAULT_SMOOTH
            except ValueError:
                raise PredictError(f"bad smooth radius {value!r}: an integer number of pixels, e.g. smooth=3") from None
            if not 0 <= radius <= 64:
                raise PredictError(f"smooth radius {radius} out of range 0..64")
            values["smooth"] = radius
        else:
            raise PredictError(f"unknown effect {key!r} in {spec!r}; known: hair, lips, brows, smooth (or none)")
    return Effects(**values)


def strength(alpha: float) -> int:
    """alpha in [0, 1] -> the integer blend weight 0..256 both implementations use."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha {alpha} out of range [0, 1]")
    return int(math.floor(alpha * 256 + 0.5))


def blend(src: np.ndarray, dst: np.ndarray, a: int) -> np.ndarray:
    """Integer alpha blend of uint8-valued arrays with weight a/256 on dst."""
    src = src.astype(np.int32)
    return ((src * (256 - a) + dst.astype(np.int32) * a + 128) >> 8).astype(np.uint8)


def blend_weighted(src: np.ndarray, dst: np.ndarray, w: np.ndarray) -> np.ndarray:
    """N x 3 uint8 src, dst and N weights 0..65536 on dst -> (src * (65536 - w) + dst * w + 32768) >> 16."""
    w = np.asarray(w, np.int32)[:, None]
    return ((src.astype(np.int32) * (SOFT_ONE - w) + dst.astype(np.int32) * w + SOFT_ONE // 2) >> 16).astype(np.uint8)


def pixel_weights(scores: np.ndarray, kind: str = "logits") -> np.ndarray:
    """... x C float32 scores -> ... x C int32 weights 0..65536 (see the module doc)."""
    s = np.asarray(scores, np.float32)
    if kind == "probabilities":
        return np.clip(np.rint(s * np.float32(SOFT_ONE)), 0, SOFT_ONE).astype(np.int32)
    if kind != "logits":
        raise ValueError(f"score kind must be logits or probabilities, not {kind!r}")
    k = np.minimum(np.rint((s.max(-1, keepdims=True) - s) * np.float32(SOFT_STEP)), len(EXP_TABLE) - 1)
    return EXP_TABLE[k.astype(np.int32)]


def soft_alphas(
    scores: np.ndarray,
    kind: str = "logits",
    lut: np.ndarray | None = None,
    classes: Sequence[str] = CLASSES,
    names: Sequence[str] = EFFECT_CLASSES,
) -> dict[str, np.ndarray]:
    """H x W x C class scores at the output's pixels -> {class name: H x W uint16 alpha 0..256} for
    each of `names` that `classes` has: the class's probability ramped from 0 at 1/4 to 256 at 3/4
    (see the module doc). kind: the model's output (logits or probabilities);
    lut: model channel -> index in `classes` (None: channel j is class j), so that a class several
    model labels are shown as gets the sum of their probabilities."""
    w = pixel_weights(scores, kind)
    den = w.sum(-1, dtype=np.int64)
    shown_as = np.arange(w.shape[-1]) if lut is None else np.asarray(lut)
    out = {}
    for name in names:
        if name not in classes:
            continue
        num = w[..., shown_as == list(classes).index(name)].sum(-1, dtype=np.int64)
        ramp = np.where(den > 0, (512 * num + den // 2) // np.maximum(den, 1) - 128, 0)
        out[name] = np.clip(ramp, 0, 256).astype(np.uint16)
    return out


def luma(rgb: np.ndarray) -> np.ndarray:
    """... x 3 -> ... int32 luma, 8-bit fixed point BT.601."""
    rgb = np.asarray(rgb, dtype=np.int32)
    return (77 * rgb[..., 0] + 150 * rgb[..., 1] + 29 * rgb[..., 2] + 128) >> 8


def recolour(pixels: np.ndarray, colour: Sequence[int]) -> np.ndarray:
    """N x 3 pixels -> the colour, shifted by each pixel's luma offset from the colour's luma (keeps shading)."""
    c = np.asarray(colour, dtype=np.int32)
    shift = luma(pixels) - int(luma(c))
    return np.clip(c[None, :] + shift[:, None], 0, 255).astype(np.uint8)


def darken(pixels: np.ndarray, colour: Sequence[int]) -> np.ndarray:
    """N x 3 pixels -> multiply blend with a dark colour."""
    c = np.asarray(colour, dtype=np.int32)
    return ((pixels.astype(np.int32) * c[None, :] + 127) // 255).astype(np.uint8)


def smooth_region(image: np.ndarray, region: np.ndarray, radius: int) -> np.ndarray:
    """HxWx3 uint8 -> a copy where every region pixel is the rounded mean of the region pixels in its
    (2r+1)^2 box (clipped at the image border). Pixels outside the region are unchanged."""
    out = image.copy()
    if radius <= 0 or not region.any():
        return out
    ys, xs = np.nonzero(region)
    # Work on the region's bounding box (plus the radius): pixels outside it never contribute.
    y0, y1 = max(0, ys.min() - radius), min(image.shape[0], ys.max() + radius + 1)
    x0, x1 = max(0, xs.min() - radius), min(image.shape[1], xs.max() + radius + 1)
    sub = image[y0:y1, x0:x1].astype(np.int64)
    m = region[y0:y1, x0:x1].astype(np.int64)
    h, w = m.shape
    # Summed-area tables with a zero row/column in front: box sums in four lookups.
    vals = np.concatenate([sub * m[..., None], m[..., None]], axis=2)
    sat = np.zeros((h + 1, w + 1, 4), dtype=np.int64)
    sat[1:, 1:] = vals.cumsum(0).cumsum(1)
    yy, xx = np.nonzero(m)
    top, bottom = np.maximum(yy - radius, 0), np.minimum(yy + radius + 1, h)
    left, right = np.maximum(xx - radius, 0), np.minimum(xx + radius + 1, w)
    box = sat[bottom, right] - sat[top, right] - sat[bottom, left] + sat[top, left]
    n = box[:, 3:4]  # >= 1: the pixel itself is in the region
    mean = (box[:, :3] + n // 2) // n
    out[y0 + yy, x0 + xx] = mean.astype(np.uint8)
    return out


def _index(classes: Sequence[str], name: str) -> int | None:
    return list(classes).index(name) if name in classes else None


def apply_effects(
    image: np.ndarray,
    mask: np.ndarray,
    effects: Effects,
    alpha: float = 0.5,
    classes: Sequence[str] = CLASSES,
    soft: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """HxWx3 uint8 RGB + HxW class mask -> the image with the effects blended in at strength alpha.

    soft: {class name: HxW alpha 0..256} (soft_alphas) to blend with instead of the mask's hard
    0 / 256, so an effect fades across its class's edge; a class not in it uses the mask."""
    if image.shape[:2] != mask.shape:
        raise ValueError(f"image {image.shape[:2]} and mask {mask.shape} differ in size")
    a = strength(alpha)
    out = image.copy()

    def weights(name: str, idx: int) -> np.ndarray:
        if soft is not None and name in soft:
            if soft[name].shape != mask.shape:
                raise ValueError(f"soft alpha of {name} {soft[name].shape} and mask {mask.shape} differ in size")
            return a * soft[name].astype(np.int32)
        return np.where(mask == idx, np.int32(256 * a), np.int32(0))

    face = _index(classes, "face")
    if effects.smooth > 0 and face is not None:
        region = mask == face
        smoothed = smooth_region(image, region, effects.smooth)
        w = weights("face", face)
        sel = region & (w > 0)  # smoothing changes face pixels only
        out[sel] = blend_weighted(out[sel], smoothed[sel], w[sel])
    for name, colour, fn in (
        ("hair", effects.hair, recolour),
        ("lips", effects.lips, recolour),
        ("eyebrows", effects.brows, darken),
    ):
        idx = _index(classes, name)
        if colour is None or idx is None:
            continue
        w = weights(name, idx)
        sel = w > 0
        px = out[sel]
        out[sel] = blend_weighted(px, fn(px, colour), w[sel])
    return out


def overlay(
    image: np.ndarray,
    mask: np.ndarray,
    alpha: float = 0.5,
    palette: np.ndarray = PALETTE,
    classes: Sequence[str] = CLASSES,
) -> np.ndarray:
    """Translucent palette overlay: non-background pixels blended with their class colour."""
    if image.shape[:2] != mask.shape:
        raise ValueError(f"image {image.shape[:2]} and mask {mask.shape} differ in size")
    palette = np.asarray(palette, dtype=np.uint8)
    valid = mask < len(palette)
    bg = _index(classes, "background")
    if bg is not None:
        valid &= mask != bg
    out = image.copy()
    out[valid] = blend(image[valid], palette[mask[valid]], strength(alpha))
    return out


def colour_mask(mask: np.ndarray, palette: np.ndarray = PALETTE) -> np.ndarray:
    """HxW class mask -> HxWx3 palette picture (classes beyond the palette grey)."""
    palette = np.asarray(palette, dtype=np.uint8)
    lut = np.full((256, 3), 128, dtype=np.uint8)
    lut[: len(palette)] = palette
    return lut[mask]


def resize_mask_nearest(mask: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize sampling pixel centres: source index ((2 i + 1) * n_src) // (2 n_dst)."""
    sh, sw = mask.shape
    rows = ((2 * np.arange(height) + 1) * sh) // (2 * height)
    cols = ((2 * np.arange(width) + 1) * sw) // (2 * width)
    return mask[rows[:, None], cols[None, :]]
