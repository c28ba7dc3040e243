"""The one imaging layer (facesegtool/imaging.py): every verb that reads face images accepts every suffix
in IMAGE_SUFFIXES, from real shared faces converted to each format; the resize / square / upsample rules.

Cheap on purpose: a few faces at 160 px, the session's small_checkpoint for the model, no TFLite
conversion (verify is exercised through open_faces, the reader `verify --data` uses).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from conftest import CELEBAMASK_MINI, SMALL_SIZE, require_shared
from facesegtool.imaging import (IMAGE_SUFFIXES, crop_padded, fit_square, image_files, read_rgb, resize_image,
                                 square_crop, upsample_score_batch, upsample_scores)

FACE_PX = 160  # big enough for the Haar detector of `calibration build`, small enough to stay cheap


def val_names(n: int) -> list[str]:
    return (CELEBAMASK_MINI / "val.txt").read_text().split()[:n]


def save_as(rgb: np.ndarray, path: Path) -> None:
    """A face in the format its suffix names (Pillow picks the encoder by suffix; GIF is palette)."""
    Image.fromarray(rgb).save(path)


@pytest.fixture(scope="module")
def faces_every_suffix(tmp_path_factory) -> Path:
    """One real val face per suffix in IMAGE_SUFFIXES (face0.jpg, face1.jpeg, ..., .webp, .gif), in one folder."""
    require_shared(CELEBAMASK_MINI)
    folder = tmp_path_factory.mktemp("every_suffix")
    for k, (name, suffix) in enumerate(zip(val_names(len(IMAGE_SUFFIXES)), IMAGE_SUFFIXES)):
        rgb = resize_image(read_rgb(CELEBAMASK_MINI / "images" / f"{name}.jpg"), FACE_PX)
        save_as(rgb, folder / f"face{k}{suffix}")
    return folder


@pytest.fixture(scope="module")
def labelled_every_suffix(tmp_path_factory) -> Path:
    """A CelebAMask-style images/ + masks/ folder whose images are one per suffix (masks stay PNG)."""
    require_shared(CELEBAMASK_MINI)
    root = tmp_path_factory.mktemp("labelled_every_suffix")
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for name, suffix in zip(val_names(len(IMAGE_SUFFIXES)), IMAGE_SUFFIXES):
        save_as(read_rgb(CELEBAMASK_MINI / "images" / f"{name}.jpg"), root / "images" / f"{name}{suffix}")
        (root / "masks" / f"{name}.png").write_bytes((CELEBAMASK_MINI / "masks" / f"{name}.png").read_bytes())
    return root


def test_every_suffix_is_listed_and_decodes_to_the_face(faces_every_suffix):
    files = image_files(faces_every_suffix)
    assert sorted(p.suffix for p in files) == sorted(IMAGE_SUFFIXES)
    assert ".webp" in IMAGE_SUFFIXES
    reference = read_rgb(faces_every_suffix / "face0.jpg").astype(np.int16)
    for path in files:
        rgb = read_rgb(path)
        assert rgb.shape == (FACE_PX, FACE_PX, 3) and rgb.dtype == np.uint8, path.name
        if path.stem == "face0":
            assert np.abs(rgb.astype(np.int16) - reference).mean() < 12, f"{path.name} is not the face it was saved as"


def test_verify_data_reads_every_suffix_from_a_plain_and_a_labelled_folder(faces_every_suffix, labelled_every_suffix):
    from facesegtool.data.faces import open_faces

    plain = open_faces(faces_every_suffix, size=SMALL_SIZE)
    assert plain.kind == "images" and len(plain) == len(IMAGE_SUFFIXES)
    assert all(face.image.shape == (SMALL_SIZE, SMALL_SIZE, 3) for face in plain)
    labelled = open_faces(labelled_every_suffix, size=SMALL_SIZE)
    assert labelled.kind == "celebamask" and len(labelled) == len(IMAGE_SUFFIXES)
    assert all(face.mask.shape == (SMALL_SIZE, SMALL_SIZE) for face in labelled)


def test_data_prepare_takes_every_suffix_and_training_reads_the_set(labelled_every_suffix, tmp_path):
    from facesegtool.cli import main
    from facesegtool.data.dataset import FaceParsingDataset

    out = tmp_path / "prepared"
    result = CliRunner().invoke(main, ["data", "prepare", "--celebamask", str(labelled_every_suffix), "--size", "64",
                                       "--val-fraction", "0.5", "--out", str(out)])
    assert result.exit_code == 0, result.output
    items = json.loads((out / "manifest.json").read_text())["items"]
    assert len(items) == len(IMAGE_SUFFIXES)
    for split in ("train", "val"):
        if any(it["split"] == split for it in items):
            x, y = FaceParsingDataset(out, split)[0]
            assert tuple(x.shape) == (3, 64, 64) and tuple(y.shape) == (64, 64)


def test_pseudo_label_images_takes_every_suffix(faces_every_suffix, small_checkpoint, tmp_path):
    from facesegtool.cli import main

    out = tmp_path / "pseudo"
    result = CliRunner().invoke(main, ["pseudo-label", "--model", str(small_checkpoint), "--images",
                                       str(faces_every_suffix), "--out", str(out), "--no-flip"])
    assert result.exit_code == 0, result.output
    assert "skipped" not in result.output
    assert len(list((out / "images").glob("*.png"))) == len(IMAGE_SUFFIXES)


def test_calibration_reads_and_builds_from_every_suffix(faces_every_suffix, tmp_path):
    from facesegtool.cli import main
    from facesegtool.export.calibration import load_calibration_images

    crops = load_calibration_images(faces_every_suffix, SMALL_SIZE)  # what `export --calibration DIR` reads
    assert crops.shape == (len(IMAGE_SUFFIXES), SMALL_SIZE, SMALL_SIZE, 3)
    out = tmp_path / "crops"
    result = CliRunner().invoke(main, ["calibration", "build", "--from", str(faces_every_suffix), "--out", str(out),
                                       "--size", "64"])
    assert result.exit_code == 0, result.output
    assert f"of {len(IMAGE_SUFFIXES)} photos" in result.output and "unreadable" not in result.output


def test_predict_takes_every_suffix_in_a_folder(faces_every_suffix, small_checkpoint, tmp_path):
    from facesegtool.predict import predict

    report = predict([faces_every_suffix], checkpoint=small_checkpoint, out_dir=tmp_path / "out", progress=False)
    assert not report.skipped
    assert sorted(p.input.suffix for p in report.predictions) == sorted(IMAGE_SUFFIXES)
    assert all(p.outputs["mask"].is_file() for p in report.predictions)


# --- the rules ---------------------------------------------------------------------------------


def test_square_rules_on_a_real_face():
    require_shared(CELEBAMASK_MINI)
    rgb = read_rgb(CELEBAMASK_MINI / "images" / f"{val_names(1)[0]}.jpg")[:, 40:]  # made non-square: 512 x 472
    cropped, _ = square_crop(rgb, 96)  # centre square (verify, pseudo-label): the middle 472 rows
    np.testing.assert_array_equal(cropped, resize_image(rgb[20:492], 96))
    mask = np.zeros(rgb.shape[:2], np.uint8)
    padded, padded_mask = fit_square(rgb, mask, 96, 255)  # pad (data prepare): 20 px of 512 each side are pad
    assert padded.shape == (96, 96, 3) and (padded_mask[:, :3] == 255).all() and (padded_mask[:, 5:-5] == 0).all()
    window = crop_padded(rgb, -10, 500, 40)  # a face box past the left and bottom edges: black outside
    assert window.shape == (40, 40, 3) and not window[:, :10].any() and not window[12:].any()
    np.testing.assert_array_equal(window[:12, 10:], rgb[500:, :30])


def test_batch_upsampling_is_the_exact_upsampler_per_face():
    import torch

    scores = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 11, 24, 20)).astype(np.float32))
    batch = upsample_score_batch(scores, (96, 80))
    for i in range(2):
        one = upsample_scores(scores[i].permute(1, 2, 0).numpy(), (96, 80))
        assert np.array_equal(batch[i].permute(1, 2, 0).numpy(), one)
    assert upsample_score_batch(scores, (24, 20)) is scores
