"""Set-valued labels: a CelebAMask 'face' pixel means 'face or beard' once another set labels beard."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from facesegtool.data.celebamask import CelebAMaskIndex
from facesegtool.data.dataset import FaceParsingDataset
from facesegtool.data.facesynthetics import FaceSynthetics
from facesegtool.data.prepare import prepare
from facesegtool.labels import CLASS_INDEX, NUM_CLASSES
from facesegtool.training.losses import build_loss
from facesegtool.training.loop import TrainConfig, TrainingError, _partial_labels, _Dist, train
from facesegtool.training.partial import CODE_BASE, PartialCodes, PartialLabelLoss, item_unlabelled

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MINI = SHARED / "celebamask-mini"
FS = SHARED / "beard-labelled" / "facesynthetics-100"
FACE, BEARD, BG = CLASS_INDEX["face"], CLASS_INDEX["beard"], CLASS_INDEX["background"]
FACE_OR_BEARD = {CODE_BASE: (FACE, (FACE, BEARD))}


def logits_at(pixel: dict[int, float]) -> torch.Tensor:
    """1 x C x 1 x 1 logits: 0 everywhere except the given classes."""
    out = torch.zeros(1, NUM_CLASSES, 1, 1)
    for cls, value in pixel.items():
        out[0, cls] = value
    return out


@pytest.mark.parametrize("loss_name", ["ce", "dice", "ce+dice", "focal"])
def test_partial_label_does_not_penalise_beard_on_a_celebamask_face_pixel(loss_name):
    loss = PartialLabelLoss(build_loss(loss_name, [1.0] * NUM_CLASSES), FACE_OR_BEARD)
    coded = torch.full((1, 1, 1), CODE_BASE)
    as_face, as_beard = loss(logits_at({FACE: 6.0}), coded), loss(logits_at({BEARD: 6.0}), coded)
    assert torch.isclose(as_face, as_beard, atol=1e-6)  # only p(face) + p(beard) counts
    split = logits_at({FACE: 6.0, BEARD: 6.0})  # the sum even higher: not worse
    assert loss(split, coded) <= as_face + 1e-6
    # the plain label (a set that labels beard) does penalise beard on a face pixel
    plain = build_loss(loss_name, [1.0] * NUM_CLASSES)
    face = torch.full((1, 1, 1), FACE)
    assert plain(logits_at({BEARD: 6.0}), face) > plain(logits_at({FACE: 6.0}), face) + 0.1


@pytest.mark.parametrize("loss_name", ["ce", "ce+dice"])
def test_partial_label_penalises_beard_on_a_background_pixel(loss_name):
    loss = PartialLabelLoss(build_loss(loss_name, [1.0] * NUM_CLASSES), FACE_OR_BEARD)
    # one face pixel (coded) and one background pixel of the same CelebAMask face
    target = torch.tensor([[[CODE_BASE, BG]]])
    good = torch.cat([logits_at({FACE: 6.0}), logits_at({BG: 6.0})], dim=3)
    beard_on_bg = torch.cat([logits_at({FACE: 6.0}), logits_at({BEARD: 6.0})], dim=3)
    assert loss(beard_on_bg, target) > loss(good, target) + 0.1
    logits = beard_on_bg.clone().requires_grad_()
    loss(logits, target).backward()
    assert logits.grad[0, BEARD, 0, 1] > 0  # gradient descent lowers beard there


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory) -> tuple[Path, Path]:
    """A few real CelebAMask faces (no beard label) and FaceSynthetics renders (beard labelled), prepared at 64 px."""
    if not MINI.is_dir() or not FS.is_dir():
        pytest.skip(f"shared data not found: {SHARED}")
    base = tmp_path_factory.mktemp("partial")
    celeba, fs = base / "celeba", base / "fs"
    (celeba / "images").mkdir(parents=True)
    (celeba / "masks").mkdir()
    fs.mkdir()
    for mask in sorted((MINI / "masks").glob("*.png"))[:4]:
        shutil.copy(mask, celeba / "masks")
        shutil.copy(MINI / "images" / f"{mask.stem}.jpg", celeba / "images")
    for name in ("000005", "000006", "000012", "000015"):  # all bearded
        shutil.copy(FS / f"{name}.png", fs)
        shutil.copy(FS / f"{name}_seg.png", fs)
    prepare([CelebAMaskIndex(celeba)], base / "p-celeba", size=64, val_fraction=0.0, progress=False)
    prepare([FaceSynthetics(fs)], base / "p-fs", size=64, val_fraction=0.0, progress=False)
    for prepared in (base / "p-celeba", base / "p-fs"):  # one val face each, so a run can validate
        manifest = json.loads((prepared / "manifest.json").read_text())
        manifest["items"][0]["split"] = "val"
        (prepared / "manifest.json").write_text(json.dumps(manifest))
    return base / "p-celeba", base / "p-fs"


def test_celebamask_face_pixels_are_coded_only_when_another_set_labels_beard(two_sets):
    celeba, fs = two_sets
    config = TrainConfig(data=str(celeba), out="unused", loss="ce+dice")
    alone, sets = _partial_labels([FaceParsingDataset(celeba, "train")], config, _Dist())
    assert sets == {} and isinstance(alone[0], FaceParsingDataset)  # CelebAMask alone: beard stays "never"
    parts, sets = _partial_labels([FaceParsingDataset(celeba, "train"), FaceParsingDataset(fs, "train")], config, _Dist())
    assert sets == FACE_OR_BEARD
    _, plain = parts[0].dataset[0]
    _, coded = parts[0][0]
    assert (coded[plain == FACE] == CODE_BASE).all() and (coded[plain != FACE] == plain[plain != FACE]).all()
    _, fs_mask = parts[1][0]
    assert (fs_mask < CODE_BASE).logical_or(fs_mask == 255).all() and (fs_mask == BEARD).any()
    # a manifest from before items recorded it: CelebAMask's source kind says beard is unlabelled
    assert item_unlabelled({"name": "x", "source": "celebamask-index"}) == {"beard": "face"}


def test_training_on_both_sets_runs_and_bce_is_refused(two_sets, tmp_path):
    celeba, fs = two_sets
    common = dict(data=str(celeba), extra_train=[str(fs)], model="unet-mobilenetv3-small", pretrained="none",
                  epochs=1, batch_size=2, workers=0, threads=1, progress=False, patience=0)
    with pytest.raises(TrainingError, match="bce cannot take partial labels"):
        train(TrainConfig(out=str(tmp_path / "bce"), loss="ce+bce", **common))
    result = train(TrainConfig(out=str(tmp_path / "run"), loss="ce+dice", **common))
    assert result.epochs_run == 1 and np.isfinite(result.history[0]["train_loss"])


def test_class_weight_overrides_one_class_and_refuses_unknown_names(two_sets, tmp_path, monkeypatch):
    celeba, fs = two_sets
    common = dict(data=str(celeba), extra_train=[str(fs)], model="unet-mobilenetv3-small", pretrained="none",
                  epochs=1, batch_size=2, workers=0, threads=1, progress=False, patience=0)
    with pytest.raises(TrainingError, match="no class 'moustache'"):
        train(TrainConfig(out=str(tmp_path / "bad"), class_weight={"moustache": 5}, **common))
    seen = {}
    import facesegtool.training.loop as loop

    def spy(name, weights, **options):
        if weights is not None:  # None: the option check before training
            seen["weights"] = list(weights)
        return build_loss(name, weights, **options)

    monkeypatch.setattr(loop, "build_loss", spy)
    train(TrainConfig(out=str(tmp_path / "w"), loss="ce", class_weight={"beard": 10}, **common))
    assert seen["weights"][BEARD] == 10.0 and seen["weights"][FACE] == 1.0
