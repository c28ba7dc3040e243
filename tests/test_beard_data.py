"""Beard-labelled sources on real shared renders: FaceSynthetics and Synthesis AI, mapped to our classes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facesegtool.cli import main
from facesegtool.data.dataset import read_pair
from facesegtool.data.facesynthetics import FaceSynthetics
from facesegtool.data.source import BadSampleError
from facesegtool.data.synthesisai import SynthesisAI
from facesegtool.labels import CLASS_INDEX, IGNORE_INDEX

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
FS = SHARED / "beard-labelled" / "facesynthetics-100"
SAI = SHARED / "beard-labelled" / "synthesisai-16"
MINI = SHARED / "celebamask-mini"
FS_NAMES = ("000005", "000008", "000012")  # beard + mouth interior; glasses; beard + headwear
SAI_NAMES = ("0", "1")  # no beard; beard + mustache + glasses
SIZE = 64

pytestmark = pytest.mark.skipif(not FS.is_dir() or not SAI.is_dir(), reason=f"beard-labelled data not found: {SHARED}")


@pytest.fixture(scope="module")
def fs_subset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fs") / "facesynthetics"
    root.mkdir()
    for name in FS_NAMES:
        for suffix in (".png", "_seg.png"):
            shutil.copy(FS / f"{name}{suffix}", root)
    return root


@pytest.fixture(scope="module")
def sai_subset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sai") / "synthesisai"
    root.mkdir()
    for name in SAI_NAMES:
        for suffix in (".rgb.png", ".segments.png", ".info.json"):
            shutil.copy(SAI / f"{name}{suffix}", root)
    return root


def test_facesynthetics_labels_map_onto_our_classes(fs_subset):
    source = FaceSynthetics(fs_subset)
    samples = {s.name: s for s in source.samples()}
    assert sorted(samples) == list(FS_NAMES)
    for name, sample in samples.items():
        ids = np.asarray(Image.open(FS / f"{name}_seg.png"))
        rgb, mask, counters = source.load(sample)
        assert rgb.shape[:2] == mask.shape == ids.shape
        assert (mask[ids == 14] == CLASS_INDEX["beard"]).all() and counters["beard_pixels"] == int((ids == 14).sum())
        assert (mask[ids == 9] == IGNORE_INDEX).all()  # mouth interior: teeth not separated
        assert (mask[ids == 12] == CLASS_INDEX["face"]).all()  # neck, as CelebAMask's
        assert (mask[np.isin(ids, (15, 17, 18))] == CLASS_INDEX["background"]).all()  # clothing, headwear, facewear
        assert (mask[ids == 16] == IGNORE_INDEX).all()  # frames-only glasses (next test)
    assert (np.asarray(Image.open(FS / "000005_seg.png")) == 14).any()
    assert (np.asarray(Image.open(FS / "000008_seg.png")) == 16).any()


def enclosed(region: np.ndarray) -> np.ndarray:
    """Pixels outside `region` that `region` encloses (not reachable from the picture's edge)."""
    outside = np.pad(~region, 1, constant_values=True).astype(np.uint8)
    cv2.floodFill(outside, None, (0, 0), 2)
    return (outside == 1)[1:-1, 1:-1]


def test_facesynthetics_lens_interior_is_ignore_not_face(fs_subset):
    # 000008 wears aviators whose frames FaceSynthetics labels (id 16) around lenses labelled as the
    # skin and eyes behind them; our glasses class (CelebAMask's) is frames and lenses together.
    source = FaceSynthetics(fs_subset)
    sample = next(s for s in source.samples() if s.name == "000008")
    ids = np.asarray(Image.open(FS / "000008_seg.png"))
    lenses = enclosed(ids == 16)
    assert lenses.sum() > 1000 and (ids[lenses] == 1).sum() > 1000  # the source calls the lens skin
    _, mask, _ = source.load(sample)
    assert (mask[lenses] == IGNORE_INDEX).all() and (mask[ids == 16] == IGNORE_INDEX).all()
    assert not (mask == CLASS_INDEX["glasses"]).any()
    # away from the glasses the face is still taught
    assert (mask == CLASS_INDEX["face"]).sum() > 0.5 * ((ids == 1) | (ids == 12)).sum()


def test_facesynthetics_unknown_id_is_refused(fs_subset, tmp_path):
    root = tmp_path / "fs"
    shutil.copytree(fs_subset, root)
    ids = np.asarray(Image.open(root / "000005_seg.png")).copy()
    ids[:4, :4] = 40
    Image.fromarray(ids).save(root / "000005_seg.png")
    sample = next(s for s in FaceSynthetics(root).samples() if s.name == "000005")
    with pytest.raises(BadSampleError, match="40 are not FaceSynthetics label ids"):
        FaceSynthetics(root).load(sample)


def test_synthesisai_names_decide_beard_and_mustache(sai_subset):
    source = SynthesisAI(sai_subset, crop_to_head=False)
    samples = {s.name: s for s in source.samples()}
    assert sorted(samples) == list(SAI_NAMES)
    for name, sample in samples.items():
        mapping = json.loads((SAI / f"{name}.info.json").read_text())["segments_mapping"]
        ids = np.asarray(Image.open(SAI / f"{name}.segments.png")).astype(np.int32)
        _, mask, _ = source.load(sample)
        facial_hair = np.isin(ids, [mapping[n] for n in ("beard", "mustache") if n in mapping])
        assert ((mask == CLASS_INDEX["beard"]) == facial_hair).all()
        for part in ("cheek_left", "forehead", "chin"):
            if part in mapping:
                assert (mask[ids == mapping[part]] == CLASS_INDEX["face"]).all()
        assert (mask[ids == mapping["brow"]] == IGNORE_INDEX).all()  # brow ridge band: hairs and skin
    assert facial_hair.any()  # image 1 has both


def test_synthesisai_unknown_segment_name_is_refused(sai_subset, tmp_path):
    root = tmp_path / "sai"
    shutil.copytree(sai_subset, root)
    info = json.loads((root / "1.info.json").read_text())
    info["segments_mapping"]["goatee"] = info["segments_mapping"].pop("beard")
    (root / "1.info.json").write_text(json.dumps(info))
    sample = next(s for s in SynthesisAI(root).samples() if s.name == "1")
    with pytest.raises(BadSampleError, match="goatee"):
        SynthesisAI(root).load(sample)


def test_prepare_cli_keeps_beard_and_records_what_each_source_leaves_unlabelled(fs_subset, sai_subset, tmp_path):
    celeba = tmp_path / "celeba"
    (celeba / "images").mkdir(parents=True)
    (celeba / "masks").mkdir()
    name = sorted((MINI / "masks").glob("*.png"))[0].stem
    shutil.copy(MINI / "images" / f"{name}.jpg", celeba / "images")
    shutil.copy(MINI / "masks" / f"{name}.png", celeba / "masks")
    out = tmp_path / "prepared"
    result = CliRunner().invoke(main, ["data", "prepare", "--facesynthetics", str(fs_subset), "--synthesisai",
                                       str(sai_subset), "--celebamask", str(celeba), "--size", str(SIZE),
                                       "--val-fraction", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    items = {it["name"]: it for it in manifest["items"]}
    assert items[name]["unlabelled_classes"] == {"beard": "face"}
    assert items["000005"]["unlabelled_classes"] == {} and items["1"]["unlabelled_classes"] == {}
    for bearded in ("000005", "000012", "1"):  # beard survives the resize (and Synthesis AI's head crop)
        _, mask = read_pair(out, bearded)
        assert mask.shape == (SIZE, SIZE) and (mask == CLASS_INDEX["beard"]).any()
    for clean in ("000008", "0"):
        assert not (read_pair(out, clean)[1] == CLASS_INDEX["beard"]).any()
    assert manifest["class_pixels"]["train"][CLASS_INDEX["beard"]] > 0
