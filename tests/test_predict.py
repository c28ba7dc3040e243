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
from facesegtool.effects import DEFAULT_EFFECTS, resize_mask_nearest
from facesegtool.labels import CLASS_INDEX, PALETTE
from facesegtool.predict import FaceDetector, TorchSegmenter, face_crop_box, parse_image, predict

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
    assert doc["settings"] == {"face_crop": True, "whole_head": True, "temporal": 0.6}
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


@pytest.mark.parametrize("photo, faces", [("couple.jpg", 2), ("img3.jpg", 1), ("selfie-many-people.jpg", 3)])
def test_face_detector_counts_real_faces(photo, faces):
    """img3: a necklace the default cascade takes for a face; the second cascade does not agree."""
    require_shared(FACES_IN_THE_WILD)
    assert len(FaceDetector()(read_rgb(FACES_IN_THE_WILD / photo))) == faces


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
    assert {face_crop_box(b) for b in parsed.faces} <= set(parsed.regions)
    for box in parsed.faces:
        x, y, w, h = box
        core = parsed.mask[y : y + h, x : x + w]
        # The Haar box covers brows to chin: a trained parser labels it mostly as face parts.
        assert np.isin(core, PARTS).mean() > 0.5, "face box not parsed as face"
    assert (parsed.mask[~inside] == 0).all()


def test_effect_image_differs_only_on_effect_classes(wild_predictions):
    for p in wild_predictions.predictions:
        rgb = read_rgb(p.input)
        mask = mask_from_colours(read_rgb(p.outputs["mask"]))
        effect = read_rgb(p.outputs["effect"])
        diff = (effect != rgb).any(-1)
        allowed = np.isin(mask, [CLASS_INDEX[n] for n in ("hair", "lips", "eyebrows", "face")])
        assert diff.any(), f"{p.input.name}: effects changed nothing"
        assert not diff[~allowed].any(), f"{p.input.name}: effects changed pixels of other classes"
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
        (["predict", str(FACES_IN_THE_WILD / "img5.jpg"), "--model", str(small_checkpoint)], "takes a .tflite"),
    ):
        res = runner.invoke(main, args)
        assert res.exit_code == 2 and message in res.output, res.output


def test_mask_resize_round_trip_is_exact():
    # predict brings masks back to the image with the nearest rule; an integer upscale then a
    # downscale by the same factor returns the original exactly.
    mask = np.random.default_rng(0).integers(0, 11, (32, 32), dtype=np.uint8)
    assert np.array_equal(resize_mask_nearest(resize_mask_nearest(mask, 96, 96), 32, 32), mask)
