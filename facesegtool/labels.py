"""The 11 face-parsing classes, their palette, and how source datasets map onto them.

This table is the single source of truth: training, export metadata (sidecar JSON),
overlays, the verifier and the Android app all read it from here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import FacesegError

CLASSES: tuple[str, ...] = (
    "background",
    "lips",
    "eyes",
    "nose",
    "hair",
    "eyebrows",
    "teeth",
    "face",
    "ears",
    "glasses",
    "beard",
)
NUM_CLASSES = len(CLASSES)
IGNORE_INDEX = 255  # pixels with no trustworthy label (e.g. off-palette Mut1ny edges)
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}

# Overlay palette (RGB). Chosen to be distinguishable on skin tones; background black.
PALETTE: np.ndarray = np.array(
    [
        (0, 0, 0),  # background
        (220, 20, 60),  # lips
        (0, 200, 0),  # eyes
        (30, 90, 255),  # nose
        (250, 200, 0),  # hair
        (170, 0, 220),  # eyebrows
        (255, 255, 255),  # teeth
        (255, 150, 110),  # face
        (0, 210, 210),  # ears
        (0, 110, 110),  # glasses
        (140, 80, 30),  # beard
    ],
    dtype=np.uint8,
)

# CelebAMask-HQ part ids as stored in 19-id index masks (0 = background).
CELEBAMASK_PARTS: tuple[str, ...] = (
    "background",
    "skin",
    "nose",
    "eye_g",
    "l_eye",
    "r_eye",
    "l_brow",
    "r_brow",
    "l_ear",
    "r_ear",
    "mouth",
    "u_lip",
    "l_lip",
    "hair",
    "hat",
    "ear_r",
    "neck_l",
    "neck",
    "cloth",
)

# The design's mapping. Necklace (neck_l), earring (ear_r), hat and cloth are background:
# the original code matched "neck" inside "neck_l" and labelled necklaces as face.
CELEBAMASK_TO_CLASS: dict[str, str] = {
    "background": "background",
    "skin": "face",
    "neck": "face",
    "nose": "nose",
    "eye_g": "glasses",
    "l_eye": "eyes",
    "r_eye": "eyes",
    "l_brow": "eyebrows",
    "r_brow": "eyebrows",
    "l_ear": "ears",
    "r_ear": "ears",
    "mouth": "teeth",
    "u_lip": "lips",
    "l_lip": "lips",
    "hair": "hair",
    "hat": "background",
    "ear_r": "background",
    "neck_l": "background",
    "cloth": "background",
}

# Mut1ny Face/Head Segmentation Community Edition colour code (RGB).
MUT1NY_COLORS: dict[tuple[int, int, int], str] = {
    (0, 0, 0): "background",
    (255, 0, 0): "lips",
    (0, 255, 0): "eyes",
    (0, 0, 255): "nose",
    (255, 255, 0): "hair",
    (0, 255, 255): "ears",
    (255, 0, 255): "eyebrows",
    (255, 255, 255): "teeth",
    (128, 128, 128): "face",
    (255, 192, 192): "beard",
    (0, 128, 128): "glasses",
}

# Classes a source never labels, and the class its masks give their pixels instead. CelebAMask-HQ
# has no beard label: its annotators drew beards as skin, so its "face" may be beard. Training reads
# this as a set-valued label ("face or beard") once some other source labels beard (training/partial.py).
CELEBAMASK_UNLABELLED: dict[str, str] = {"beard": "face"}

# "ignore" (IGNORE_INDEX): a label with no one class of ours, left out of training and scoring.
IGNORE = "ignore"

# Microsoft FaceSynthetics index labels (Wood et al., ICCV 2021), id order.
FACESYNTHETICS_LABELS: tuple[str, ...] = (
    "background", "skin", "nose", "right_eye", "left_eye", "right_brow", "left_brow", "right_ear", "left_ear",
    "mouth_interior", "top_lip", "bottom_lip", "neck", "hair", "beard", "clothing", "glasses", "headwear",
    "facewear",
)

# Worn things and the neck follow CELEBAMASK_TO_CLASS (neck is face; cloth and hat are background), so
# both sources teach one thing. mouth_interior holds teeth, tongue and the dark mouth alike, so it is
# neither teeth nor background: ignore. facewear (masks, bandanas over the face) is background as
# CelebAMask's worn things are: it hides the face, so no face effect should paint it.
# glasses is ignore, and so is the area the frames enclose (data/facesynthetics.py glasses_area, the
# convex hull of the glasses pixels): our "glasses" is the whole glasses area, frames and lenses, as
# CelebAMask draws it, but these renders label only the frames (clear lenses are the skin, eyes and
# brows beneath; only tinted lenses are sometimes glasses), so taught as labelled they contradict
# CelebAMask's glasses inside every lens.
FACESYNTHETICS_TO_CLASS: dict[str, str] = {
    "background": "background", "skin": "face", "nose": "nose", "right_eye": "eyes", "left_eye": "eyes",
    "right_brow": "eyebrows", "left_brow": "eyebrows", "right_ear": "ears", "left_ear": "ears",
    "mouth_interior": IGNORE, "top_lip": "lips", "bottom_lip": "lips", "neck": "face", "hair": "hair",
    "beard": "beard", "clothing": "background", "glasses": IGNORE, "headwear": "background",
    "facewear": "background",
}

# Synthesis AI face API segment names (each image's N.info.json maps them to its own ids). Most are
# patches of the face mesh (cheek, chin, forehead, ...): face. Where a name straddles two of our
# classes it is ignore: "brow" is the brow-ridge band (eyebrow hairs and the skin around them),
# "mouth" the lip area with whatever the open mouth shows, eyelid/eyelashes the eye's rim; body and
# shoulders are bare skin below the neck, which CelebAMask draws as neck (face) or background.
# nose_outer is the crease between nostril wing and cheek (CelebAMask's nose outline runs through it).
# "eyes" is the skin ring around each eye; the eyeballs are eye_left / eye_right.
SYNTHESISAI_TO_CLASS: dict[str, str] = {
    "background": "background", "beard": "beard", "mustache": "beard", "body": IGNORE, "shoulders": IGNORE,
    "brow": IGNORE, "cheek_left": "face", "cheek_right": "face", "chin": "face", "forehead": "face",
    "head": "face", "jaw": "face", "jowl": "face", "smile_line": "face", "temples": "face", "undereye": "face",
    "eyes": "face", "nose_outer": IGNORE, "neck": "face", "clothing": "background", "ear_left": "ears",
    "ear_right": "ears", "eye_left": "eyes", "eye_right": "eyes", "eyelid": IGNORE, "eyelashes": IGNORE,
    "glasses": "glasses", "hair": "hair", "lip_lower": "lips", "lip_upper": "lips", "mouth": IGNORE,
    "mouthbag": IGNORE, "teeth": "teeth", "tongue": IGNORE, "nose": "nose", "nostrils": "nose",
}


def class_or_ignore(name: str) -> int:
    """Class index of one of our class names, or IGNORE_INDEX for "ignore"."""
    return IGNORE_INDEX if name == IGNORE else CLASS_INDEX[name]


# Left/right parts are merged into one class each, so a horizontal flip needs no label swap.
FLIP_SAFE = True

# The design's hand-tuned "empirical" class weights, in CLASSES order.
EMPIRICAL_WEIGHTS: tuple[float, ...] = (0.5, 3, 3, 1, 0.5, 3, 2, 0.5, 1.5, 1.5, 1.5)


class MappingError(FacesegError, ValueError):
    """A --mapping file that cannot be read or names an unknown part or class."""


def load_mapping(path: str | Path | None) -> dict[str, str]:
    """CelebAMask part -> class mapping, the design's unless a JSON file overrides entries."""
    mapping = dict(CELEBAMASK_TO_CLASS)
    if path is None:
        return mapping
    example = '{"hat": "hair", "neck": "background"}'
    try:
        override = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"--mapping {path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:  # not JSON, or not UTF-8 text
        raise MappingError(f"--mapping {path}: not a JSON file ({exc}); write one object of part: class, "
                           f"e.g. {example}") from None
    if not isinstance(override, dict):
        raise MappingError(f"--mapping {path}: expected one JSON object of part: class, e.g. {example}")
    for part, cls in override.items():
        if part not in CELEBAMASK_PARTS:
            raise MappingError(f"{path}: unknown CelebAMask part {part!r}; known: {', '.join(CELEBAMASK_PARTS)}")
        if cls not in CLASS_INDEX:
            raise MappingError(f"{path}: unknown class {cls!r} for part {part!r}; known: {', '.join(CLASSES)}")
        mapping[part] = cls
    return mapping


def celebamask_lut(mapping: dict[str, str] | None = None) -> np.ndarray:
    """256-entry lookup table: CelebAMask 19-id value -> 11-class index (unknown ids -> IGNORE)."""
    mapping = mapping or CELEBAMASK_TO_CLASS
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for part_id, part in enumerate(CELEBAMASK_PARTS):
        lut[part_id] = CLASS_INDEX[mapping[part]]
    return lut


def colorize(mask: np.ndarray) -> np.ndarray:
    """HxW class-index mask -> HxWx3 RGB picture (ignored pixels grey)."""
    lut = np.full((256, 3), 128, dtype=np.uint8)
    lut[:NUM_CLASSES] = PALETTE
    return lut[mask]
