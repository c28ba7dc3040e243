"""Beauty effects and overlay on a real face with its ground-truth mask: each effect changes the
pixels of its own class, and only those."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CELEBAMASK_MINI, require_shared, val_faces

from facesegtool.predict.effects import (
    DEFAULT_EFFECTS,
    NO_EFFECTS,
    Effects,
    apply_effects,
    luma,
    overlay,
    parse_effects,
    resize_mask_nearest,
    smooth_region,
    strength,
)
from facesegtool.labels import CLASS_INDEX, PALETTE

HAIR, LIPS, BROWS, FACE = (CLASS_INDEX[n] for n in ("hair", "lips", "eyebrows", "face"))


@pytest.fixture(scope="module")
def faces() -> tuple[np.ndarray, np.ndarray]:
    require_shared(CELEBAMASK_MINI)
    return val_faces(4, size=128)


def changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a != b).any(-1)


@pytest.mark.parametrize(
    "effects, cls",
    [
        (Effects(hair=(128, 64, 192)), HAIR),
        (Effects(lips=(192, 32, 64)), LIPS),
        (Effects(brows=(80, 56, 48)), BROWS),
        (Effects(smooth=3), FACE),
    ],
    ids=["hair", "lips", "brows", "smooth"],
)
def test_each_effect_touches_only_its_class(faces, effects, cls):
    images, masks = faces
    for image, mask in zip(images, masks):
        out = apply_effects(image, mask, effects, alpha=1.0)
        diff = changed(image, out)
        region = mask == cls
        assert region.sum() > 50, "the test face must show this class"
        assert not diff[~region].any(), f"{int(diff[~region].sum())} pixels outside the class changed"
        # The effect is visible: most of the class's pixels change.
        assert diff[region].mean() > 0.6, f"only {diff[region].mean():.0%} of the class's pixels changed"


def test_hair_recolour_takes_the_hue_and_keeps_the_shading(faces):
    images, masks = faces
    target = (128, 64, 192)
    for image, mask in zip(images, masks):
        hair = mask == HAIR
        out = apply_effects(image, mask, Effects(hair=target), alpha=1.0)
        before, after = image[hair].astype(int), out[hair].astype(int)
        # Purple: blue above green in the recoloured hair, far more than in the natural hair.
        assert (after[:, 2] - after[:, 1]).mean() > 40 + (before[:, 2] - before[:, 1]).mean()
        # Shading kept: the recoloured hair's luma follows the original's (strands and highlights).
        assert np.corrcoef(luma(before), luma(after))[0, 1] > 0.95


def test_brows_darken_and_strength_is_monotonic(faces):
    images, masks = faces
    image, mask = images[0], masks[0]
    brows = mask == BROWS
    out = apply_effects(image, mask, Effects(brows=(80, 56, 48)), alpha=1.0)
    assert luma(out[brows]).mean() < 0.5 * luma(image[brows]).mean()
    steps = [np.abs(apply_effects(image, mask, DEFAULT_EFFECTS, a).astype(int) - image).sum() for a in (0.25, 0.5, 1.0)]
    assert steps[0] < steps[1] < steps[2]
    assert np.array_equal(apply_effects(image, mask, DEFAULT_EFFECTS, 0.0), image)


def test_smoothing_reads_only_face_pixels(faces):
    images, masks = faces
    image, mask = images[1], masks[1]
    face = mask == FACE
    # Paint everything that is not face skin bright green: the smoothed skin must not change at all.
    painted = image.copy()
    painted[~face] = (0, 255, 0)
    a, b = smooth_region(image, face, 4), smooth_region(painted, face, 4)
    assert np.array_equal(a[face], b[face])
    # And it smooths: the skin's high-frequency detail (4-neighbour Laplacian) drops.
    inner = face & np.roll(face, 1, 0) & np.roll(face, -1, 0) & np.roll(face, 1, 1) & np.roll(face, -1, 1)

    def detail(img: np.ndarray) -> float:
        y = luma(img).astype(float)
        lap = 4 * y - np.roll(y, 1, 0) - np.roll(y, -1, 0) - np.roll(y, 1, 1) - np.roll(y, -1, 1)
        return float(np.abs(lap[inner]).mean())

    assert detail(a) < 0.6 * detail(image)


def test_smoothing_mean_is_rounded_integer_mean():
    image = np.array([[[10] * 3, [20] * 3, [255] * 3, [30] * 3, [41] * 3]], np.uint8)
    region = np.array([[True, True, False, True, True]])
    out = smooth_region(image, region, 1)
    assert out[0, :, 0].tolist() == [15, 15, 255, 36, 36]  # (30 + 41 + 1) // 2 = 36, white never mixed in


def test_overlay_leaves_background_and_tints_parts(faces):
    images, masks = faces
    image, mask = images[0], masks[0]
    out = overlay(image, mask, alpha=0.5)
    bg = mask == 0
    assert np.array_equal(out[bg], image[bg])
    hair = mask == HAIR
    # Halfway to the palette colour (within rounding) on every hair pixel.
    expect = (image[hair].astype(int) + PALETTE[HAIR].astype(int) + 1) // 2
    assert np.abs(out[hair].astype(int) - expect).max() <= 1


def test_parse_effects():
    assert parse_effects("hair=#8040C0,smooth=5") == Effects(hair=(128, 64, 192), smooth=5)
    assert parse_effects("lips, brows") == Effects(lips=DEFAULT_EFFECTS.lips, brows=DEFAULT_EFFECTS.brows)
    assert parse_effects(None) == DEFAULT_EFFECTS
    assert parse_effects("none") == NO_EFFECTS and not NO_EFFECTS.any
    for bad in ("hat=#000000", "hair=#12345", "smooth=abc", "smooth=500"):
        with pytest.raises(ValueError):
            parse_effects(bad)


def test_strength_and_scaled_radius():
    assert [strength(a) for a in (0.0, 0.5, 0.6, 1.0)] == [0, 128, 154, 256]
    with pytest.raises(ValueError):
        strength(1.2)
    assert Effects(smooth=3).scaled(4.0).smooth == 12
    assert Effects(smooth=3).scaled(0.1).smooth == 1


def test_nearest_mask_resize_samples_pixel_centres():
    mask = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert np.array_equal(resize_mask_nearest(mask, 6, 8), mask.repeat(2, 0).repeat(2, 1))
    assert resize_mask_nearest(mask, 1, 2).tolist() == [[5, 7]]  # centres of the two halves
