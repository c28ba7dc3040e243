"""Microsoft FaceSynthetics renders (index labels with beard), mapped onto the 11 classes.

Layout (`../shared/data/beard-labelled/facesynthetics-100`, as the release ships it):
    NNNNNN.png (RGB render), NNNNNN_seg.png (8-bit ids 0..18 of labels.FACESYNTHETICS_LABELS,
    255 = ignore), NNNNNN_ldmks.txt (landmarks, unused). Optional train.txt / val.txt / subjects.txt.

The renders label beard (id 14), so unlike CelebAMask-HQ this source labels every class but glasses
(and teeth, inside mouth_interior); the mapping (labels.FACESYNTHETICS_TO_CLASS) says why
mouth_interior is ignore, facewear background, and glasses ignore together with the area its frames
enclose (glasses_area).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..imaging import image_files, read_index_mask, read_rgb
from ..labels import FACESYNTHETICS_LABELS, FACESYNTHETICS_TO_CLASS, IGNORE_INDEX, class_or_ignore
from .source import BadSampleError, Sample, Source, duplicate_names, refuse_duplicates

LABEL_SUFFIX = "_seg"
UNKNOWN = 254  # lut value of an id FaceSynthetics does not define (never a class: we have 11)
GLASSES = FACESYNTHETICS_LABELS.index("glasses")


def glasses_area(ids: np.ndarray) -> np.ndarray:
    """Where the glasses are, lenses included: the convex hull of the labelled glasses pixels.

    FaceSynthetics labels the frames (and some tinted lenses); a clear lens is labelled as the skin and
    eyes behind it, while our "glasses" (CelebAMask's) is the whole area, frames and lenses. The lenses
    cannot be told from that label alone: filling the frames' holes misses every frame the render
    leaves open (a rim running behind the head, a half-rim, a rim broken by hair or at the picture's
    edge), so the hull of all glasses pixels (rims, bridge, temples) is ignored instead. It also takes
    some skin between a temple and the lens and the top of the nose: those pixels are only not
    trained on. A half-rim's lower lens edge, drawn nowhere, can still fall outside the hull.
    """
    glasses = (ids == GLASSES).astype(np.uint8)
    area = np.zeros_like(glasses)
    points = cv2.findNonZero(glasses)
    if points is not None:
        cv2.fillPoly(area, [cv2.convexHull(points)], 1)
    return area.astype(bool) | glasses.astype(bool)


def facesynthetics_lut() -> np.ndarray:
    """256-entry lookup table: FaceSynthetics id -> class index; 255 stays ignore, unknown ids are marked 254."""
    lut = np.full(256, UNKNOWN, dtype=np.uint8)
    for label_id, name in enumerate(FACESYNTHETICS_LABELS):
        lut[label_id] = class_or_ignore(FACESYNTHETICS_TO_CLASS[name])
    lut[IGNORE_INDEX] = IGNORE_INDEX
    return lut


class FaceSynthetics(Source):
    """NNNNNN.png + NNNNNN_seg.png pairs in one folder."""

    kind = "facesynthetics"

    def __init__(self, root: str | Path):
        super().__init__(root)
        self.lut = facesynthetics_lut()

    def samples(self) -> list[Sample]:
        files = image_files(self.root)
        labels = {p.stem[: -len(LABEL_SUFFIX)]: p for p in files if p.stem.endswith(LABEL_SUFFIX)}
        pictures = [p for p in files if not p.stem.endswith(LABEL_SUFFIX)]
        images = {p.stem: p for p in pictures}
        listed, subjects = self.own_split(), self.subjects()
        out = []
        for name in sorted(images.keys() | labels.keys()):
            image = images.get(name, self.root / f"{name}.png")
            label = labels.get(name, self.root / f"{name}{LABEL_SUFFIX}.png")
            problem = None
            if name not in labels:
                problem = (image, f"no label {label.name} for this image")
            elif name not in images:
                problem = (label, f"no image {name}.png for this label")
            out.append(Sample(name, image, (label,), self.split_for(name, listed), subjects.get(name), problem))
        return self.checked(refuse_duplicates(out, duplicate_names(pictures)), listed)

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        sample.check()
        rgb = read_rgb(sample.image, orientation="refuse")
        (label_path,) = sample.labels
        ids = read_index_mask(label_path)
        if ids.shape != rgb.shape[:2]:
            raise BadSampleError(label_path, f"label is {ids.shape[1]}x{ids.shape[0]} but its image "
                                             f"{sample.image.name} is {rgb.shape[1]}x{rgb.shape[0]}")
        mask = self.lut[ids]
        if (mask == UNKNOWN).any():
            shown = ", ".join(map(str, np.unique(ids[mask == UNKNOWN])[:8].tolist()))
            raise BadSampleError(label_path, f"values {shown} are not FaceSynthetics label ids "
                                             f"(0..{len(FACESYNTHETICS_LABELS) - 1}, 255 ignore)")
        mask[glasses_area(ids)] = IGNORE_INDEX  # frames-only glasses: see glasses_area
        return rgb, mask, {"beard_pixels": int((ids == FACESYNTHETICS_LABELS.index("beard")).sum())}
