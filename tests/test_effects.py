"""Beauty effects and overlay on a real face with its ground-truth mask: each effect changes the
pixels of its own class, and only those; with soft alphas from the shipped model's scores, an
effect fades across its class's edge where the hard mask steps."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import CELEBAMASK_MINI, require_shared, val_faces

from facesegtool.predict.effects import (
    DEFAULT_EFFECTS,
    EXP_TABLE,
    NO_EFFECTS,
    SOFT_ONE,
    SOFT_STEP,
    Effects,
    apply_effects,
    luma,
    overlay,
    parse_effects,
    recolour,
    resize_mask_nearest,
    smooth_region,
    soft_alphas,
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


# --- soft alphas ---------------------------------------------------------------------------------


def test_exp_table_cannot_differ_between_exp_implementations():
    """Every entry of floor(65536 exp(-k/32) + 0.5) lies >= 1e-3 from a rounding boundary, so an exp
    that is off in its last bit (Java's StrictMath, another libm) gives the same table."""
    import math

    exact = [SOFT_ONE * math.exp(-k / SOFT_STEP) for k in range(len(EXP_TABLE))]
    assert min(abs(v % 1 - 0.5) for v in exact) > 1e-3
    assert EXP_TABLE[0] == SOFT_ONE and EXP_TABLE[-1] == 0 and (EXP_TABLE[:-1] > 0).all()
    assert (np.diff(EXP_TABLE) <= 0).all()


def test_soft_alpha_rule_by_hand():
    names = ["background", "face", "hair"]
    logits = np.array([[[0, 0, 0], [0, 0, 1], [0, -40, 40], [1, 1, 1e30]]], np.float32)
    a = soft_alphas(logits, "logits", classes=names, names=("face", "hair"))
    # A three-way tie: 1/3 -> 512 / 3 - 128 = 42.7 -> 43. exp(-1) -> table[32] = 24109: hair
    # 65536 / (65536 + 2 * 24109) = 0.5761 -> 295 - 128 = 167; face 0.212 is under 1/4 -> 0.
    assert a["hair"].tolist() == [[43, 167, 256, 256]] and a["face"].tolist() == [[43, 0, 0, 0]]
    probs = np.array([[[0.2, 0.3, 0.5], [0.0, 0.0, 0.0], [0.2, -0.1, 1.3]]], np.float32)
    a = soft_alphas(probs, "probabilities", classes=names, names=("face", "hair"))
    # 0.3 -> 19661 / 65536 -> 154 - 128 = 26; nothing -> 0; 1.3 is clamped to 65536 of 78643 -> 256.
    assert a["hair"].tolist() == [[128, 0, 256]] and a["face"].tolist() == [[26, 0, 0]]
    # A lut: two model labels shown as hair get the sum of their weights: 0.2 + 0.5 -> 358 - 128.
    a = soft_alphas(probs[:, :1], "probabilities", lut=np.array([2, 0, 2]), classes=names, names=("hair",))
    assert a["hair"].tolist() == [[230]]


def test_a_full_alpha_gives_the_hard_mask_effects(faces):
    """soft = 256 on the class and 0 elsewhere is the hard mask: the same pixels, to the bit."""
    images, masks = faces
    for image, mask in zip(images, masks):
        soft = {n: np.where(mask == CLASS_INDEX[n], 256, 0).astype(np.uint16)
                for n in ("face", "hair", "lips", "eyebrows")}
        for a in (0.3, 1.0):
            assert np.array_equal(apply_effects(image, mask, DEFAULT_EFFECTS, a, soft=soft),
                                  apply_effects(image, mask, DEFAULT_EFFECTS, a))


@pytest.fixture(scope="module")
def shipped_face():
    """The first val face at its full 512 px, the shipped model's scores upsampled to it, its mask and alphas."""
    import cv2

    from facesegtool.predict import TorchSegmenter
    from facesegtool.imaging import upsample_scores

    require_shared(CELEBAMASK_MINI)
    seg = TorchSegmenter()  # models/default/model.pt, 256 px
    stem = (CELEBAMASK_MINI / "val.txt").read_text().split()[0]
    rgb = cv2.cvtColor(cv2.imread(str(CELEBAMASK_MINI / "images" / f"{stem}.jpg")), cv2.COLOR_BGR2RGB)
    scores = upsample_scores(seg.scores(seg.fit(rgb)), rgb.shape[:2])
    return rgb, seg.to_mask(scores), soft_alphas(scores, seg.output_kind, seg.lut, seg.classes)


def test_soft_hair_fades_across_the_edge_where_the_hard_mask_steps(shipped_face):
    """Along the hair's edge, how far each pixel went towards its recoloured self is 0 or 1 with the
    hard mask and in between with soft alphas; inside the hair both agree (nearly)."""
    import cv2

    rgb, mask, soft = shipped_face
    effect = Effects(hair=(128, 64, 192))
    hard = apply_effects(rgb, mask, effect, 1.0)
    faded = apply_effects(rgb, mask, effect, 1.0, soft=soft)
    full = recolour(rgb.reshape(-1, 3), effect.hair).reshape(rgb.shape).astype(float) - rgb
    hair = (mask == HAIR).astype(np.uint8)
    edge = cv2.dilate(hair, np.ones((3, 3), np.uint8)) != cv2.erode(hair, np.ones((3, 3), np.uint8))
    edge &= (full**2).sum(-1) > 40**2  # where the recolour moves the pixel far enough to measure
    assert edge.sum() > 1000

    def share(out: np.ndarray) -> np.ndarray:
        return ((out.astype(float) - rgb) * full).sum(-1)[edge] / (full**2).sum(-1)[edge]

    step, fade = share(hard), share(faded)
    assert np.abs(step - np.round(step)).max() < 0.05, "the hard mask recolours a pixel fully or not at all"
    assert ((fade > 0.1) & (fade < 0.9)).mean() > 0.5, "soft alphas: the edge pixels are partly recoloured"
    assert len(np.unique(np.round(fade * 20))) > 15  # a ramp of many levels, not two
    inner = cv2.erode(hair, np.ones((9, 9), np.uint8)) > 0
    diff = np.abs(faded[inner].astype(int) - hard[inner]).max(-1)
    assert (diff == 0).mean() > 0.99, "inside the hair the model is sure: the hard mask's pixels"
