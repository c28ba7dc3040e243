"""`facesegtool predict` on real photos: face crops found and parsed, mask/overlay/effect images
written, effects only where the mask says, folders, a video, the TFLite path and the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from conftest import CELEBAMASK_MINI, FACES_IN_THE_WILD, require_shared

from facesegtool.cli import main
from facesegtool.predict.effects import DEFAULT_EFFECTS, resize_mask_nearest
from facesegtool.labels import CLASS_INDEX, PALETTE
from facesegtool.predict import BlazeFaceDetector, HaarDetector, TorchSegmenter, parse_image, predict

FaceDetector = BlazeFaceDetector

PHOTOS = ("couple.jpg", "img5.jpg")  # two people side by side; one small portrait
PARTS = [CLASS_INDEX[n] for n in ("face", "nose", "eyes", "lips", "eyebrows", "hair")]


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert bgr is not None, path
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def mask_from_colours(colours: np.ndarray) -> np.ndarray:
    """Invert the palette picture predict writes (PNG, lossless)."""
    mask = np.full(colours.shape[:2], 255, np.uint8)
    for i, c in enumerate(PALETTE):
        mask[(colours == c).all(-1)] = i
    assert (mask != 255).all(), "colour mask has off-palette pixels"
    return mask


@pytest.fixture(scope="module")
def wild_predictions(small_checkpoint, tmp_path_factory):
    require_shared(FACES_IN_THE_WILD)
    out = tmp_path_factory.mktemp("predict_wild")
    photos = [FACES_IN_THE_WILD / p for p in PHOTOS]
    return predict(photos, checkpoint=small_checkpoint, out_dir=out, effects=DEFAULT_EFFECTS, alpha=0.6,
                   face_crop=True, progress=False)


def test_face_crop_finds_the_faces_and_writes_three_pictures(wild_predictions):
    by_name = {p.input.name: p for p in wild_predictions.predictions}
    assert by_name["couple.jpg"].faces == 2
    assert by_name["img5.jpg"].faces == 1
    for p in wild_predictions.predictions:
        assert set(p.outputs) == {"mask", "overlay", "effect"}
        rgb = read_rgb(p.input)
        for kind, path in p.outputs.items():
            assert read_rgb(path).shape == rgb.shape, f"{kind} picture has the photo's size"


def test_measures_json_has_each_photos_seam_figure(wild_predictions):
    import json

    doc = json.loads(wild_predictions.measures.read_text())
    assert {k: doc["settings"][k] for k in ("face_crop", "whole_head", "temporal", "upsample", "beard")} == {
        "face_crop": True, "whole_head": True, "temporal": 0.6, "upsample": "bilinear", "beard": True}
    for p in wild_predictions.predictions:
        m = doc["inputs"][p.input.stem]
        assert m["seam_share"] == pytest.approx(m["seam_px"] / max(m["hair_boundary_px"], 1))
        assert m["hair_boundary_px"] > 0, f"{p.input.name}: no hair found"
    assert doc["seam"]["images"] == len(wild_predictions.predictions)


def test_contact_sheet_shows_each_overlay_and_effect(wild_predictions):
    sheet = read_rgb(wild_predictions.sheet)
    assert wild_predictions.sheet.name == "sheet.jpg"
    n = len(wild_predictions.predictions)
    assert sheet.shape[0] == -(-n // 2) * (240 + 4)  # two tiles a row, 240 px high, 4 px gutters
    first = wild_predictions.predictions[0]
    overlay = read_rgb(first.outputs["overlay"])
    overlay = cv2.resize(overlay, (round(overlay.shape[1] * 240 / overlay.shape[0]), 240), interpolation=cv2.INTER_AREA)
    tile = sheet[30:240, : overlay.shape[1]].astype(int)  # below the seam label
    assert np.abs(tile - overlay[30:]).mean() < 6  # JPEG, not exact
    assert (sheet[2:8, 2:8] > 240).all(), "the seam label's white box"


@pytest.mark.parametrize("photo, faces", [("couple.jpg", 2), ("img3.jpg", 1), ("img27.jpg", 1), ("selfie-many-people.jpg", 4)])
def test_blazeface_finds_the_faces_of_several_people(photo, faces):
    """The group selfie: four of its faces are unoccluded and frontal enough (Haar finds three); img27: a
    flower pattern BlazeFace scores 0.51 is below the 0.6 threshold; img3: a necklace is no face."""
    require_shared(FACES_IN_THE_WILD)
    boxes = FaceDetector()(read_rgb(FACES_IN_THE_WILD / photo))
    assert len(boxes) == faces
    assert all(b[2] > 60 and b[3] > 60 for b in boxes)


@pytest.mark.parametrize("photo, faces", [("couple.jpg", 2), ("img3.jpg", 1), ("selfie-many-people.jpg", 3)])
def test_haar_detector_still_counts_real_faces(photo, faces):
    """img3: a necklace the default cascade takes for a face; the second cascade does not agree."""
    require_shared(FACES_IN_THE_WILD)
    assert len(HaarDetector()(read_rgb(FACES_IN_THE_WILD / photo))) == faces


def test_parts_are_found_inside_the_face_crops(small_checkpoint):
    """Parsed parts lie inside the squares parsed per face (its crop and the wide box around it); the rest
    of the photo stays background."""
    require_shared(FACES_IN_THE_WILD)
    seg = TorchSegmenter(small_checkpoint)
    rgb = read_rgb(FACES_IN_THE_WILD / "couple.jpg")
    parsed = parse_image(rgb, seg, FaceDetector())
    inside = np.zeros(parsed.mask.shape, bool)
    for x0, y0, side in parsed.regions:  # each face's crop and the wide box around it
        inside[max(0, y0) : y0 + side, max(0, x0) : x0 + side] = True
    assert {FaceDetector().crop_box(b) for b in parsed.faces} <= set(parsed.regions)
    for box in parsed.faces:
        x, y, w, h = box
        core = parsed.mask[y : y + h, x : x + w]
        # The Haar box covers brows to chin: a trained parser labels it mostly as face parts.
        assert np.isin(core, PARTS).mean() > 0.5, "face box not parsed as face"
    assert (parsed.mask[~inside] == 0).all()


def test_effect_image_differs_only_on_effect_classes_and_their_fades(wild_predictions, small_checkpoint):
    """Effects change the effect classes' pixels and, outside them, only where an effect class's soft
    alpha fades in (the model gives it over 1/4 there)."""
    seg, det = TorchSegmenter(small_checkpoint), FaceDetector()
    for p in wild_predictions.predictions:
        rgb = read_rgb(p.input)
        mask = mask_from_colours(read_rgb(p.outputs["mask"]))
        parsed = parse_image(rgb, seg, det)
        assert np.array_equal(parsed.mask, mask), "the parse predict made"
        fading = np.any([a > 0 for a in parsed.alphas.values()], axis=0)
        effect = read_rgb(p.outputs["effect"])
        diff = (effect != rgb).any(-1)
        allowed = np.isin(mask, [CLASS_INDEX[n] for n in ("hair", "lips", "eyebrows", "face")])
        assert diff.any(), f"{p.input.name}: effects changed nothing"
        assert diff[~allowed].any(), f"{p.input.name}: no fade past the classes' edges"
        assert not diff[~allowed & ~fading].any(), f"{p.input.name}: effects changed pixels no effect class reaches"
        overlay = read_rgb(p.outputs["overlay"])
        assert np.array_equal(overlay[mask == 0], rgb[mask == 0])
        assert (overlay != rgb).any(-1)[mask != 0].mean() > 0.9


def test_folder_input_and_unique_names(small_checkpoint, tmp_path):
    require_shared(CELEBAMASK_MINI)
    folder = tmp_path / "in"
    folder.mkdir()
    names = (CELEBAMASK_MINI / "val.txt").read_text().split()[:2]
    for n in names:
        shutil.copy(CELEBAMASK_MINI / "images" / f"{n}.jpg", folder / f"{n}.jpg")
    (folder / "notes.txt").write_text("not an image")
    shutil.copy(CELEBAMASK_MINI / "images" / f"{names[0]}.jpg", tmp_path / f"{names[0]}.jpg")  # same stem again
    report = predict([folder, tmp_path / f"{names[0]}.jpg"], checkpoint=small_checkpoint, out_dir=tmp_path / "out",
                     effects="none", progress=False)
    assert [p.input.name for p in report.predictions] == [f"{n}.jpg" for n in names] + [f"{names[0]}.jpg"]
    written = sorted(f.name for f in (tmp_path / "out").iterdir())
    assert f"{names[0]}_2_mask.png" in written and f"{names[0]}_mask.png" in written
    assert not any("effect" in f for f in written)  # effects="none": no effect image
    # A celebamask face is parsed without cropping: most of its ground-truth face area is face parts.
    p = report.predictions[0]
    mask = mask_from_colours(read_rgb(p.outputs["mask"]))
    assert np.isin(mask, PARTS).mean() > 0.3
    assert p.class_pixels["face"] > 0


def test_video_in_video_out(small_checkpoint, tmp_path):
    require_shared(CELEBAMASK_MINI)
    names = (CELEBAMASK_MINI / "val.txt").read_text().split()[:3]
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 128))
    for n in names * 2:
        face = cv2.resize(cv2.imread(str(CELEBAMASK_MINI / "images" / f"{n}.jpg")), (128, 128))
        writer.write(cv2.copyMakeBorder(face, 0, 0, 16, 16, cv2.BORDER_CONSTANT))
    writer.release()
    report = predict([clip], checkpoint=small_checkpoint, out_dir=tmp_path / "out", effects="hair,smooth",
                     progress=False)
    p = report.predictions[0]
    assert p.kind == "video" and p.frames == 6
    for kind in ("mask", "overlay", "effect"):
        cap = cv2.VideoCapture(str(p.outputs[kind]))
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        ok, frame = cap.read()
        cap.release()
        assert ok and n == 6 and frame.shape == (128, 160, 3), kind
    assert not list((tmp_path / "out").glob(".*partial*")), "temporary video files left behind"


def test_tflite_model_gives_the_checkpoints_masks(small_checkpoint, small_export):
    """The TFLite path (sidecar pre/post-processing) parses like the checkpoint it was exported from."""
    require_shared(CELEBAMASK_MINI)
    from facesegtool.predict import TFLiteSegmenter

    torch_seg = TorchSegmenter(small_checkpoint)
    names = (CELEBAMASK_MINI / "val.txt").read_text().split()[:3]
    for variant in ("fp32", "int8"):
        seg = TFLiteSegmenter(small_export.variants[variant].tflite)
        assert seg.size == torch_seg.size
        for n in names:
            rgb = read_rgb(CELEBAMASK_MINI / "images" / f"{n}.jpg")
            agree = (seg.segment(rgb) == torch_seg.segment(rgb)).mean()
            assert agree > (0.99 if variant == "fp32" else 0.85), f"{variant} {n}: {agree:.3f}"


def test_cli_predict_and_errors(small_checkpoint, tmp_path):
    require_shared(FACES_IN_THE_WILD)
    runner = CliRunner()
    res = runner.invoke(main, ["predict", str(FACES_IN_THE_WILD / "img5.jpg"), "--checkpoint", str(small_checkpoint),
                               "--out", str(tmp_path), "--face-crop", "--effect", "lips=#C02040,brows", "--alpha", "0.7"])
    assert res.exit_code == 0, res.output
    assert "1 face(s)" in res.output
    assert sorted(f.name for f in tmp_path.iterdir()) == ["img5_effect.png", "img5_mask.png", "img5_overlay.png",
                                                          "measures.json", "sheet.jpg"]
    assert "seam_share" in res.output and f"figures in {tmp_path / 'measures.json'}" in res.output
    assert f"contact sheet (overlay | effect per image): {tmp_path / 'sheet.jpg'}" in res.output
    for args, message in (
        (["predict", str(tmp_path / "missing.jpg"), "--checkpoint", str(small_checkpoint)], "no such file"),
        (["predict", str(FACES_IN_THE_WILD / "img5.jpg"), "--checkpoint", str(small_checkpoint), "--effect", "hat=#000000"],
         "unknown effect"),
    ):
        res = runner.invoke(main, args)
        assert res.exit_code == 2 and message in res.output, res.output


def test_mask_resize_round_trip_is_exact():
    # predict brings masks back to the image with the nearest rule; an integer upscale then a
    # downscale by the same factor returns the original exactly.
    mask = np.random.default_rng(0).integers(0, 11, (32, 32), dtype=np.uint8)
    assert np.array_equal(resize_mask_nearest(resize_mask_nearest(mask, 96, 96), 32, 32), mask)


# --- scores upsampled before the argmax, beards, lut, bad folders --------------------------------


def test_upsampled_scores_are_pytorchs_bilinear_and_a_window_is_the_same_floats():
    import torch
    import torch.nn.functional as F

    from android_goldens import GOLDEN_DIR, read_tensor
    from facesegtool.imaging import upsample_scores

    scores = read_tensor(GOLDEN_DIR / "logits_float32.f32.gz", "float32", (1, 128, 128, len(CLASS_INDEX)))[0]
    for h, w in ((512, 512), (300, 217)):
        ours = upsample_scores(scores, (h, w))
        ref = F.interpolate(torch.from_numpy(scores.transpose(2, 0, 1))[None], size=(h, w), mode="bilinear",
                            align_corners=False)[0].numpy().transpose(1, 2, 0)
        assert np.abs(ours - ref).max() < 1e-4
        assert (ours.argmax(-1) == ref.argmax(-1)).mean() > 0.9999
        assert np.array_equal(upsample_scores(scores, (h, w), rows=(37, 200), cols=(5, 190)), ours[37:200, 5:190])


def test_bilinear_mask_has_no_staircase_where_nearest_steps(small_checkpoint):
    """At 6x the score grid, the nearest mask's edges run in 6-px steps; the bilinear one's do not:
    more distinct boundary directions, and its mask differs from nearest only near edges."""
    from facesegtool.predict.parse import scores_to_mask

    require_shared(CELEBAMASK_MINI)
    seg = TorchSegmenter(small_checkpoint)
    rgb = read_rgb(CELEBAMASK_MINI / "images" / f"{(CELEBAMASK_MINI / 'val.txt').read_text().split()[0]}.jpg")
    scores = seg.scores(seg.fit(rgb))
    n = 6 * scores.shape[0]
    near = scores_to_mask(scores, n, n, (0, n), (0, n), seg, "nearest")
    bil = scores_to_mask(scores, n, n, (0, n), (0, n), seg, "bilinear")
    # Nearest: the mask is constant on every 6 x 6 block; bilinear: many blocks hold an edge.
    blocks = lambda m: m.reshape(n // 6, 6, n // 6, 6).transpose(0, 2, 1, 3).reshape(-1, 36)  # noqa: E731
    assert (blocks(near) == blocks(near)[:, :1]).all()
    assert (blocks(bil) != blocks(bil)[:, :1]).any(1).sum() > 100
    assert (near != bil).mean() < 0.05


def test_a_lut_maps_a_models_own_labels_onto_our_classes(small_checkpoint):
    """A 19-label model (here: our 11 scores spread over 19 channels) mapped by a lookup table gives
    the same mask as the 11-class model; a bad table is refused with what it must hold."""
    from facesegtool.predict import PredictError
    from facesegtool.predict.parse import scores_to_mask

    seg = TorchSegmenter(small_checkpoint)
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(16, 16, 11)).astype(np.float32)
    order = rng.permutation(19)
    wide = np.full((16, 16, 19), -100.0, np.float32)
    lut = np.zeros(19, np.int64)
    for ours, channel in enumerate(order[:11]):
        wide[..., channel] = scores[..., ours]
        lut[channel] = ours
    plain = scores_to_mask(scores, 40, 40, (0, 40), (0, 40), seg, "bilinear")
    seg.model_classes = [f"label{i}" for i in range(19)]
    seg.set_lut(lut)
    assert seg.classes == list(CLASS_INDEX)
    assert np.array_equal(scores_to_mask(wide, 40, 40, (0, 40), (0, 40), seg, "bilinear"), plain)
    with pytest.raises(PredictError, match="each of the model's 19 classes"):
        seg.set_lut([0] * 11)


@pytest.fixture(scope="module")
def shipped():
    return TorchSegmenter()  # the shipped model: beards need a parser that finds them


def test_a_beards_hair_pixels_below_the_mouth_are_not_recoloured(shipped):
    """FaceSynthetics 000071: a full beard the shipped model parses partly as hair. With the rule,
    the labelled beard below the mouth keeps its pixels under the hair effect, hard or soft."""
    from facesegtool.imaging import read_index_mask
    from facesegtool.predict.effects import Effects, apply_effects

    data = CELEBAMASK_MINI.parent / "beard-labelled" / "facesynthetics-100"
    require_shared(data)
    name = data / "000071.png"
    rgb = read_rgb(name)
    labels = read_index_mask(name.with_name(name.stem + "_seg.png"))
    lips_rows = np.nonzero(np.isin(labels, (10, 11)).any(1))[0]
    below_mouth = np.zeros(labels.shape, bool)
    below_mouth[lips_rows.max() + 1 :] = True
    beard = (labels == 14) & below_mouth
    det = FaceDetector()
    hair = Effects(hair=(128, 64, 192))
    before = parse_image(rgb, shipped, det, beard=False).mask
    as_hair = beard & (before == CLASS_INDEX["hair"])
    assert as_hair.sum() > 500, "the model no longer parses this beard as hair: pick another test face"
    recoloured_before = (apply_effects(rgb, before, hair, 1.0) != rgb).any(-1)
    assert recoloured_before[as_hair].mean() > 0.9
    parsed = parse_image(rgb, shipped, det)
    after = parsed.mask
    recoloured = (apply_effects(rgb, after, hair, 1.0) != rgb).any(-1)
    assert recoloured[as_hair].mean() < 0.1
    assert (after[as_hair] == CLASS_INDEX["beard"]).mean() > 0.9
    # The soft hair alpha (the model's hair probability) is cleared on the beard, so the fade spares it too.
    assert not parsed.alphas["hair"][after == CLASS_INDEX["beard"]].any()
    recoloured = (apply_effects(rgb, after, hair, 1.0, soft=parsed.alphas) != rgb).any(-1)
    assert recoloured[as_hair].mean() < 0.1


def test_out_equal_to_the_input_folder_is_refused(tmp_path):
    require_shared(FACES_IN_THE_WILD)
    shutil.copy(FACES_IN_THE_WILD / "img5.jpg", tmp_path / "img5.jpg")
    res = CliRunner().invoke(main, ["predict", str(tmp_path), "--out", str(tmp_path)])
    assert res.exit_code == 2
    assert res.output.strip().splitlines()[-1].startswith("error:") and "input folder" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img5.jpg"]


def test_a_gif_is_read_a_long_strip_fits_the_sheet_and_stale_partials_go(small_checkpoint, tmp_path):
    """A .gif in a folder is parsed (its first frame), a 4000 x 3 image still gets a contact sheet,
    and a half-written video a killed run left is removed (with a warning)."""
    from PIL import Image

    require_shared(FACES_IN_THE_WILD)
    inputs, out = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    out.mkdir()
    Image.open(FACES_IN_THE_WILD / "img5.jpg").save(inputs / "face.gif")
    Image.fromarray(np.full((3, 4000, 3), 128, np.uint8)).save(inputs / "strip.png")
    stale = out / ".clip_overlay.partial.mp4"
    stale.write_bytes(b"half a video")
    report = predict([inputs], checkpoint=small_checkpoint, out_dir=out, effects=DEFAULT_EFFECTS, progress=False)
    assert sorted(p.input.name for p in report.predictions) == ["face.gif", "strip.png"]
    assert not report.skipped
    assert read_rgb(report.sheet).shape[0] == 240 + 4
    assert not stale.exists()
