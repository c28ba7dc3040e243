"""Training augmentation (albumentations), reproducible from a seed.

Geometry moves image and mask together (mask with nearest-neighbour, so no invented class
ids); areas uncovered by a shrink/rotate are filled black in the image and background in the
mask, which is what a face on a plain backdrop looks like. Colour changes touch only the image.
"""

from __future__ import annotations

import albumentations as A
import cv2

from ..labels import CLASS_INDEX, FLIP_SAFE

STRENGTHS = ("none", "light", "strong")

# A horizontal flip needs no label swap only because left/right parts are merged classes
# (eyes, eyebrows, ears). If that ever changes, the flip must swap them.
assert FLIP_SAFE, "labels have left/right classes: horizontal flip must swap them"
BACKGROUND = CLASS_INDEX["background"]


def build_augmentation(strength: str = "light", seed: int | None = 0) -> A.Compose | None:
    """An albumentations pipeline for strength "none" | "light" | "strong" (None for "none").

    Called as pipeline(image=rgb_uint8, mask=mask_uint8).
    """
    if strength not in STRENGTHS:
        raise ValueError(f"unknown augmentation strength {strength!r}; use one of {', '.join(STRENGTHS)}")
    if strength == "none":
        return None
    strong = strength == "strong"
    geometry = A.Affine(
        scale=(0.75, 1.25) if strong else (0.9, 1.1),
        translate_percent=(-0.08, 0.08) if strong else (-0.04, 0.04),
        rotate=(-25, 25) if strong else (-12, 12),
        interpolation=cv2.INTER_LINEAR,
        mask_interpolation=cv2.INTER_NEAREST,
        border_mode=cv2.BORDER_CONSTANT,
        fill=0,
        fill_mask=BACKGROUND,
        p=0.8 if strong else 0.5,
    )
    colour = A.ColorJitter(
        brightness=0.3 if strong else 0.2,
        contrast=0.3 if strong else 0.2,
        saturation=0.3 if strong else 0.2,
        hue=0.05 if strong else 0.02,
        p=0.8 if strong else 0.5,
    )
    steps: list = [A.HorizontalFlip(p=0.5), geometry, colour]
    if strong:
        # Phone cameras: soft focus, sensor noise, the odd grey frame.
        steps += [
            A.OneOf([A.GaussianBlur(blur_limit=(3, 5)), A.MotionBlur(blur_limit=(3, 7))], p=0.2),
            A.GaussNoise(std_range=(0.02, 0.06), p=0.2),
            A.ToGray(p=0.05),
        ]
    return A.Compose(steps, seed=seed)
