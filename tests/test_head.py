"""Whole-head parsing (facesegtool/predict/head.py): the merge's arithmetic, and on real photos the crop
seam measured before (face crop alone) and after (crop merged with the wide pass)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from conftest import FACES_IN_THE_WILD, require_shared

from android_goldens import GOLDEN_DIR, read_tensor
from facesegtool.predict.head import WIDE, detail_weights, feather_weights, head_grid, merge_head, upsample2, window
from facesegtool.labels import CLASS_INDEX, CLASSES
from facesegtool.predict.measures import crop_edges, hair_boundary, seam_pixels
from facesegtool.predict import BlazeFaceDetector as FaceDetector
from facesegtool.predict import TorchSegmenter, parse_image

# Long hair running past the face crop (img3, img11), two faces side by side (couple: where two
# faces' wide boxes overlap, one face's box edge can still cut the other's hair; measured, not hidden).
PORTRAITS = ("img3.jpg", "img11.jpg")
SEAM_PHOTOS = PORTRAITS + ("couple.jpg",)


def golden_logits(name: str) -> np.ndarray:
    return read_tensor(GOLDEN_DIR / name, "float32", (1, 128, 128, len(CLASSES)))[0]


def test_upsample2_is_opencvs_bilinear():
    wide = golden_logits("logits_wide_float32.f32.gz")
    ours = upsample2(wide)
    theirs = np.stack([cv2.resize(wide[..., c], (256, 256), interpolation=cv2.INTER_LINEAR)
                       for c in range(wide.shape[2])], -1)
    assert ours.shape == (256, 256, len(CLASSES))
    assert np.abs(ours - theirs).max() < 1e-3  # OpenCV rounds its weights to fixed point


def test_merge_keeps_the_crop_inside_the_wide_pass_outside_and_ramps_between():
    detail, wide = golden_logits("logits_float32.f32.gz"), golden_logits("logits_wide_float32.f32.gz")
    merged = merge_head(detail, wide)
    up = upsample2(wide)
    ox, oy = window(128)
    assert (ox, oy) == (64, 32)
    inner = slice(oy + 16, oy + 128 - 16), slice(ox + 16, ox + 128 - 16)  # past the 16 px ramp
    assert np.array_equal(merged[inner], detail[16:-16, 16:-16])
    outside = detail_weights(128) == 0
    assert outside.sum() == 4 * 128 * 128 - 128 * 128
    assert np.array_equal(merged[outside], up[outside])
    # On the ramp the merge lies between the two passes.
    w = feather_weights(128)
    assert w[0, 0] == np.float32(1 / 16) and w[64, 64] == 1 and w[5, 64] == np.float32(6 / 16)
    edge = merged[oy + 5, ox + 64]
    lo, hi = np.minimum(detail[5, 64], up[oy + 5, ox + 64]), np.maximum(detail[5, 64], up[oy + 5, ox + 64])
    assert ((edge >= lo - 1e-6) & (edge <= hi + 1e-6)).all()


def test_head_grid_puts_the_crop_in_the_wide_boxs_upper_middle():
    grid = head_grid((100, 50, 80))
    assert grid.wide == (60, 30, 160)
    # The crop's window in model pixels is where the crop lies in the wide box, scaled.
    x, y, side = grid.wide
    ox, oy = window(128)
    assert (100 - x) * 2 * 128 // (WIDE * 80) == ox and (50 - y) * 2 * 128 // side == oy


def test_seam_measure_counts_a_straight_cut_not_a_natural_outline():
    mask = np.zeros((100, 100), np.uint8)
    hair = CLASS_INDEX["hair"]
    mask[20:60, 30:70] = hair  # hair cut off by a crop whose bottom edge is row 59
    on_edge, boundary = seam_pixels(mask, hair, [(20, 0, 60)])
    # The 40 px cut, plus the two side outline pixels within 1 px of it.
    assert boundary == 4 * 40 - 4 and on_edge == 40 + 2
    assert seam_pixels(mask, hair, [(0, 0, 90)])[0] == 0  # a crop edge away from the hair: no seam
    assert not crop_edges((100, 100), [(-10, -10, 200)]).any()  # edges off the image are no seam
    assert hair_boundary(mask, hair).sum() == boundary


@pytest.fixture(scope="module")
def seams(small_checkpoint):
    """Per photo: (seam px, hair boundary px, hair px outside the face crops) before and after."""
    require_shared(FACES_IN_THE_WILD)
    seg, det = TorchSegmenter(small_checkpoint), FaceDetector()
    hair = seg.classes.index("hair")
    out = {}
    for name in SEAM_PHOTOS:
        rgb = cv2.cvtColor(cv2.imread(str(FACES_IN_THE_WILD / name)), cv2.COLOR_BGR2RGB)
        s = 640 / max(rgb.shape[:2])  # small photos keep the test fast; the figure does not depend on it
        rgb = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA) if s < 1 else rgb
        row = {}
        for whole_head in (False, True):
            parsed = parse_image(rgb, seg, det, whole_head)
            crops = parsed.regions[:: 2 if whole_head else 1]
            inside = np.zeros(parsed.mask.shape, bool)
            for x0, y0, side in crops:
                inside[max(0, y0) : y0 + side, max(0, x0) : x0 + side] = True
            row[whole_head] = (*seam_pixels(parsed.mask, hair, parsed.regions), int((parsed.mask[~inside] == hair).sum()))
        out[name] = row
    return out


def test_whole_head_parsing_removes_the_crop_seams_on_real_photos(seams):
    before = [sum(r[False][i] for r in seams.values()) for i in range(3)]
    after = [sum(r[True][i] for r in seams.values()) for i in range(3)]
    share_before, share_after = before[0] / before[1], after[0] / after[1]
    print(f"\nseam share of the hair outline, crop only -> whole head: {share_before:.3f} -> {share_after:.3f}")
    for name, r in seams.items():
        print(f"  {name}: {r[False][0]}/{r[False][1]} -> {r[True][0]}/{r[True][1]}")
    assert share_before > 0.03, "the crop-only baseline should show seams on these long-haired photos"
    assert share_after < share_before
    for name in PORTRAITS:  # one face: the hair's straight cut is gone
        (e0, b0, _), (e1, b1, _) = seams[name][False], seams[name][True]
        assert e1 / b1 < min(0.03, e0 / b0 / 4), name
    assert after[2] > before[2], "hair outside the face crops should now be parsed"
