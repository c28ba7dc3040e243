"""Beards from what the parse knows: the shipped model learned from CelebAMask-HQ, which has no
beard label, so facial hair comes out as hair (and the hair effect would recolour it).

    mask = derive_beard(mask, classes)

Rule (applied to each face's part of the mask): hair-class pixels that lie below the eyes (below
the lowest eye row), inside the face region (the convex hull of the face-skin, nose, lips, teeth,
eye and eyebrow pixels), in a connected piece of such pixels that touches face skin or lips and
reaches the chin zone (below the nose, within the mouth's columns: where a moustache or a chin
beard grows and hair hanging beside the cheeks does not), become the beard class. Everything else
stays hair. Measured on FaceSynthetics' 100 labelled renders (python tools/beard_measure.py):
beard precision 0.43, recall 0.03, 0.07 % of the labelled hair moved; without the chin zone
precision was 0.10 with 1.8 % of the hair moved. Recall is low because the shipped model parses
81 % of those beards as face skin and only 5 % as hair: the rule can only take back what the
parse calls hair. A model trained on beard labels is the real fix.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

FACE_PARTS = ("face", "nose", "lips", "teeth", "eyes", "eyebrows")


def _chin_zone(sub: np.ndarray, names: list[str]) -> np.ndarray | None:
    """H x W bool: below the nose's lowest row, within the mouth's columns (the nose's when no lips
    are seen): where a moustache and a chin beard lie and hair hanging beside the face does not."""
    nose = np.nonzero(sub == names.index("nose"))[0] if "nose" in names else np.array([], int)
    lips = np.nonzero(sub == names.index("lips"))[1] if "lips" in names else np.array([], int)
    if not len(nose):
        return None
    if len(lips):
        x0, x1 = lips.min(), lips.max() + 1
    else:
        cols = np.nonzero(sub == names.index("nose"))[1]
        mid, half = (cols.min() + cols.max()) / 2, (cols.max() - cols.min() + 1) * 0.75
        x0, x1 = int(mid - half), int(mid + half) + 1
    zone = np.zeros(sub.shape, bool)
    zone[nose.max() + 1 :, max(0, x0) : x1] = True
    return zone


def derive_beard(mask: np.ndarray, classes: Sequence[str], region: tuple[int, int, int, int] | None = None,
                 chin_zone: bool = True) -> np.ndarray:
    """The mask with facial hair (see the module doc) set to the beard class, in place; returned.

    region: (x0, y0, x1, y1) to apply the rule in (one face's box); the whole mask when None.
    Models without hair, beard, eyes or face classes are returned unchanged."""
    names = list(classes)
    if not all(n in names for n in ("hair", "beard", "eyes", "face")):
        return mask
    x0, y0, x1, y1 = region or (0, 0, mask.shape[1], mask.shape[0])
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(mask.shape[1], x1), min(mask.shape[0], y1)
    sub = mask[y0:y1, x0:x1]
    hair, beard, eyes = names.index("hair"), names.index("beard"), names.index("eyes")
    is_hair = sub == hair
    eye_rows = np.nonzero((sub == eyes).any(1))[0]
    if not is_hair.any() or not len(eye_rows):
        return mask
    parts = np.isin(sub, [names.index(n) for n in FACE_PARTS if n in names])
    ys, xs = np.nonzero(parts)
    step = max(1, len(ys) // 20000)  # the hull of a subsample: the same shape, fast on big photos
    hull = cv2.convexHull(np.stack([xs[::step], ys[::step]], 1).astype(np.int32))
    inside = np.zeros(sub.shape, np.uint8)
    cv2.fillConvexPoly(inside, hull, 1)
    candidate = is_hair & (inside > 0)
    candidate[: eye_rows.max() + 1] = False
    if not candidate.any():
        return mask
    n, labels = cv2.connectedComponents(candidate.astype(np.uint8), connectivity=8)
    skin = np.isin(sub, [names.index(n) for n in ("face", "lips") if n in names]).astype(np.uint8)
    touching = np.unique(labels[cv2.dilate(skin, np.ones((3, 3), np.uint8)) > 0])
    keep_ids = touching[touching > 0]
    if chin_zone:
        zone = _chin_zone(sub, names)
        if zone is None:
            return mask
        in_zone = np.unique(labels[zone & candidate])
        keep_ids = np.intersect1d(keep_ids, in_zone[in_zone > 0])
    keep = np.isin(labels, keep_ids)
    sub[keep] = beard
    return mask


def clear_beard_alpha(alphas: dict[str, np.ndarray] | None, mask: np.ndarray, classes: Sequence[str],
                      radius: int) -> None:
    """The hair's soft alpha (effects.soft_alphas) set to 0, in place, on beard pixels and on the other
    non-hair pixels within `radius` px of one: the beard's pixels carry the model's hair probability,
    so the hair effect's fade would recolour the beard and tint a rim of skin around it."""
    names = list(classes)
    if not alphas or "hair" not in alphas or "beard" not in names:
        return
    beard = (mask == names.index("beard")).astype(np.uint8)
    if not beard.any():
        return
    near = cv2.dilate(beard, np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)) > 0
    alphas["hair"][near & (mask != names.index("hair"))] = 0
