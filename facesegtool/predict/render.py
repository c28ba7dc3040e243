"""Pictures of a parsed image: the palette mask, the translucent overlay, the effects; the
contact sheet of a run's images.

    rendered = render(rgb, parsed, segmenter, effects, alpha)
    contact_sheet(predictions, out / "sheet.jpg")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from ..atomic import write_bytes_atomic
from ..imaging import resize_image
from ..segmenter import Segmenter
from .effects import Effects, apply_effects, colour_mask, overlay
from .errors import PredictError
from .parse import Parsed

SHEET_TILE = 240  # contact sheet row height, px
SHEET_MAX_WIDTH = 4 * SHEET_TILE  # one picture of a tile at most this wide (a 4000 x 3 strip is shrunk to fit)


@dataclass
class Rendered:
    mask: np.ndarray
    overlay: np.ndarray
    effect: np.ndarray | None


def render(rgb: np.ndarray, parsed: Parsed, segmenter: Segmenter, effects: Effects, alpha: float) -> Rendered:
    colours = colour_mask(parsed.mask, segmenter.palette)
    over = overlay(rgb, parsed.mask, alpha, segmenter.palette, segmenter.classes)
    effect = (
        apply_effects(rgb, parsed.mask, effects.scaled(parsed.scale), alpha, segmenter.classes, parsed.alphas)
        if effects.any
        else None
    )
    return Rendered(colours, over, effect)


def write_image(path: Path, rgb: np.ndarray) -> None:
    ok, data = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise PredictError(f"cannot encode {path}")
    write_bytes_atomic(path, data.tobytes())


def _fit_tile(img: np.ndarray) -> np.ndarray:
    """A picture scaled to SHEET_TILE px high (or SHEET_MAX_WIDTH wide if that is smaller), padded
    white to SHEET_TILE px high."""
    h, w = img.shape[:2]
    s = min(SHEET_TILE / h, SHEET_MAX_WIDTH / w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    small = resize_image(img, size[::-1])  # (w, h) -> (h, w)
    return np.pad(small, ((0, SHEET_TILE - small.shape[0]), (0, 0), (0, 0)), constant_values=255)


def thumbnail(rendered: Rendered, label: str | None = None) -> np.ndarray:
    """Overlay and effect side by side at SHEET_TILE px high (kept in memory: the sheet re-reads nothing),
    with an optional label (the seam figure) in the top-left corner."""
    pair = [img for img in (rendered.overlay, rendered.effect) if img is not None]
    tile = np.hstack([_fit_tile(img) for img in pair])
    return label_tile(tile, label) if label else tile


def label_tile(tile: np.ndarray, label: str) -> np.ndarray:
    """Black text on a white box in the top-left corner of an RGB picture (in place; returned)."""
    (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    tile[: th + 10, : tw + 8] = 255
    cv2.putText(tile, label, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return tile


def contact_sheet(thumbnails: Sequence[np.ndarray | None], path: Path, columns: int = 2) -> Path | None:
    """One JPEG to look at: the thumbnails (RGB, SHEET_TILE px high) in a grid of `columns`."""
    rows = [cv2.cvtColor(t, cv2.COLOR_RGB2BGR) for t in thumbnails if t is not None]
    if not rows:
        return None
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1] + 4), (0, 0)), constant_values=255) for r in rows]
    rows += [np.full_like(rows[0], 255)] * (-len(rows) % columns)
    grid = np.vstack([np.hstack(rows[i:i + columns]) for i in range(0, len(rows), columns)])
    ok, data = cv2.imencode(".jpg", grid, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise PredictError(f"cannot encode {path}")
    return write_bytes_atomic(path, data.tobytes())
