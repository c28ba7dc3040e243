"""What a predict run returns and records: per input its outputs and figures, and OUT/measures.json."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..atomic import write_bytes_atomic
from ..segmenter import Segmenter
from .measures import seam_pixels
from .parse import Parsed


@dataclass
class Prediction:
    input: Path
    kind: str  # "image" | "video"
    outputs: dict[str, Path]  # "mask" / "overlay" / "effect" -> file
    faces: int  # faces found (image), or frames with a face (video)
    frames: int = 1
    class_pixels: dict[str, int] = field(default_factory=dict)  # image: pixels per class in the mask
    thumbnail: np.ndarray | None = None  # image: overlay | effect, RGB, SHEET_TILE px high, for the contact sheet
    measures: dict = field(default_factory=dict)  # seam (image, face crops) or frame-to-frame IoU (video); see measures.py


@dataclass
class PredictReport:
    model: str
    out_dir: Path
    predictions: list[Prediction]
    sheet: Path | None = None  # contact sheet of the image results
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (input, why): unreadable inputs, the rest still ran
    measures: Path | None = None  # measures.json: the seam / flicker figures per input


def seam_measures(parsed: Parsed, segmenter: Segmenter) -> dict:
    """The crop-seam figure of one parsed image (measures.seam_pixels); empty without face crops."""
    if not parsed.regions or "hair" not in segmenter.classes:
        return {}
    on_edge, boundary = seam_pixels(parsed.mask, segmenter.classes.index("hair"), parsed.regions)
    return {"seam_share": on_edge / boundary if boundary else 0.0, "seam_px": on_edge, "hair_boundary_px": boundary}


def summarize_seams(predictions: Sequence[Prediction]) -> dict | None:
    """All images' crop seams together: seam pixels over hair boundary pixels, and the mean per-image share."""
    rows = [p.measures for p in predictions if "seam_share" in p.measures]
    if not rows:
        return None
    boundary = sum(r["hair_boundary_px"] for r in rows)
    return {
        "images": len(rows),
        "seam_share": sum(r["seam_px"] for r in rows) / boundary if boundary else 0.0,
        "mean_image_seam_share": float(np.mean([r["seam_share"] for r in rows])),
    }


def write_measures(predictions: Sequence[Prediction], path: Path, model: str, settings: dict) -> Path:
    """OUT/measures.json: the settings, per input its figures, and the seam summary."""
    doc = {
        "model": model,
        "settings": settings,
        "seam": summarize_seams(predictions),
        "inputs": {p.outputs["mask"].stem.removesuffix("_mask"): {"input": str(p.input), "kind": p.kind, **p.measures}
                   for p in predictions},
    }
    return write_bytes_atomic(path, (json.dumps(doc, indent=1) + "\n").encode())
