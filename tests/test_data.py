"""The face-data pipeline on real shared data: CelebAMask-HQ (both layouts), Mut1ny, prepare, stats."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from facesegtool.cli import main
from facesegtool.data.celebamask import ANNO_DIR, IMAGES_DIR, CelebAMaskIndex, CelebAMaskParts
from facesegtool.data.dataset import FaceParsingDataset, load_prepared
from facesegtool.data.mut1ny import DEFAULT_TOLERANCE, PALETTE_RGB, Mut1ny, read_label_rgb, snap_labels
from facesegtool.data.prepare import prepare
from facesegtool.data.source import BadSampleError, DataSourceError, stable_fraction
from facesegtool.data.stats import frequency_table, plot_frequencies
from facesegtool.labels import (
    CELEBAMASK_PARTS,
    CLASS_INDEX,
    CLASSES,
    IGNORE_INDEX,
    MUT1NY_COLORS,
    NUM_CLASSES,
    celebamask_lut,
    load_mapping,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
MINI = SHARED / "celebamask-mini"
MUT1NY = SHARED / "mut1ny-samples"
NECKLACE = "11e6f4702cc74065a5a785b81f65ab8f"  # a celebamask-mini mask with a necklace (part id 16)
SIZE = 64  # prepared side in tests: small and fast
# CelebA-HQ ids for the per-part fixture: spread over folders 0, 1, 2, 7 and 14 (k = id // 2000)
PART_IDS = (7, 1999, 2000, 4321, 15000, 29999, 12, 2001)
IDENTITY = {7: "101", 1999: "101", 2000: "202", 4321: "202", 15000: "303", 29999: "303", 12: "404", 2001: "404"}

pytestmark = pytest.mark.skipif(not MINI.is_dir() or not MUT1NY.is_dir(), reason=f"shared data not found: {SHARED}")


def pick_names() -> tuple[list[str], list[str]]:
    train = (MINI / "train.txt").read_text().split()
    val = (MINI / "val.txt").read_text().split()
    train_pick = train[:5] + ([NECKLACE] if NECKLACE in train else [])
    val_pick = val[:2] + ([NECKLACE] if NECKLACE in val else [])
    return train_pick, val_pick


@pytest.fixture(scope="module")
def mini_subset(tmp_path_factory) -> Path:
    """A handful of celebamask-mini pairs in the index layout, with its own train.txt / val.txt."""
    root = tmp_path_factory.mktemp("mini") / "celebamask-mini"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    train, val = pick_names()
    for name in train + val:
        shutil.copy(MINI / "images" / f"{name}.jpg", root / "images")
        shutil.copy(MINI / "masks" / f"{name}.png", root / "masks")
    (root / "train.txt").write_text("\n".join(train) + "\n")
    (root / "val.txt").write_text("\n".join(val) + "\n")
    return root


def write_parts_layout(index_root: Path, out: Path, big_image_id: int | None = None) -> dict[int, str]:
    """The original release layout written from index masks: CelebA-HQ-img/<id>.jpg and one binary
    0/255 PNG per part present, CelebAMask-HQ-mask-anno/<id // 2000>/<id:05d>_<part>.png.
    The image of big_image_id is written at 1024 px, as in the release. Returns id -> source name."""
    names = sorted(p.stem for p in (index_root / "masks").glob("*.png"))
    (out / IMAGES_DIR).mkdir(parents=True)
    written = {}
    for image_id, name in zip(PART_IDS, names):
        ids = np.asarray(Image.open(index_root / "masks" / f"{name}.png"))
        folder = out / ANNO_DIR / str(image_id // 2000)
        folder.mkdir(parents=True, exist_ok=True)
        for part_id in np.unique(ids):
            if part_id == 0:
                continue
            part = CELEBAMASK_PARTS[part_id]
            Image.fromarray(np.where(ids == part_id, 255, 0).astype(np.uint8)).save(folder / f"{image_id:05d}_{part}.png")
        src = index_root / "images" / f"{name}.jpg"
        if image_id == big_image_id:
            Image.open(src).resize((1024, 1024), Image.BICUBIC).save(out / IMAGES_DIR / f"{image_id}.jpg", quality=95)
        else:
            shutil.copy(src, out / IMAGES_DIR / f"{image_id}.jpg")
        written[image_id] = name
    return written


@pytest.fixture(scope="module")
def parts_layout(mini_subset, tmp_path_factory) -> tuple[Path, dict[int, str]]:
    root = tmp_path_factory.mktemp("parts") / "CelebAMask-HQ"
    return root, write_parts_layout(mini_subset, root, big_image_id=2000)


# --- CelebAMask-HQ ---------------------------------------------------------------------------


@pytest.mark.parametrize("mapping_override", [None, {"neck_l": "face", "hat": "hair"}])
def test_both_celebamask_layouts_give_the_same_masks(mini_subset, parts_layout, tmp_path, mapping_override):
    root, id_to_name = parts_layout
    mapping_file = None
    if mapping_override:
        mapping_file = tmp_path / "mapping.json"
        mapping_file.write_text(json.dumps(mapping_override))
    mapping = load_mapping(mapping_file)
    index, parts = CelebAMaskIndex(mini_subset, mapping), CelebAMaskParts(root, mapping)
    by_name = {s.name: s for s in index.samples()}
    part_samples = parts.samples()
    assert sorted(int(s.name) for s in part_samples) == sorted(id_to_name)
    lut = celebamask_lut(mapping)
    for sample in part_samples:
        name = id_to_name[int(sample.name)]
        rgb_i, mask_i, _ = index.load(by_name[name])
        rgb_p, mask_p, counters = parts.load(sample)
        np.testing.assert_array_equal(mask_p, mask_i, err_msg=f"{sample.name} vs {name}")
        # and both are the 19-id mask through the mapping, pixel for pixel
        ids = np.asarray(Image.open(mini_subset / "masks" / f"{name}.png"))
        np.testing.assert_array_equal(mask_i, lut[ids])
        assert rgb_p.shape == rgb_i.shape == (512, 512, 3)
        if int(sample.name) == 2000:  # written at 1024 px: resized to the 512 px masks
            assert counters == {"images_resized_to_mask": 1}
            assert np.abs(rgb_p.astype(int) - rgb_i).mean() < 6  # the same picture, in the same colour order
        else:
            np.testing.assert_array_equal(rgb_p, rgb_i)


def test_necklace_and_earring_are_background_neck_is_face(mini_subset, parts_layout):
    ids = np.asarray(Image.open(MINI / "masks" / f"{NECKLACE}.png"))
    assert (ids == CELEBAMASK_PARTS.index("neck_l")).sum() > 100, "fixture premise: this face wears a necklace"
    index = CelebAMaskIndex(mini_subset)
    _, mask, _ = index.load(next(s for s in index.samples() if s.name == NECKLACE))
    assert (mask[ids == CELEBAMASK_PARTS.index("neck_l")] == CLASS_INDEX["background"]).all()
    assert (mask[ids == CELEBAMASK_PARTS.index("neck")] == CLASS_INDEX["face"]).all()
    assert (mask[ids == CELEBAMASK_PARTS.index("cloth")] == CLASS_INDEX["background"]).all()
    # per-part layout: the file is <id>_neck_l.png and must not be read as "neck"
    root, id_to_name = parts_layout
    image_id = next(i for i, n in id_to_name.items() if n == NECKLACE)
    sample = next(s for s in CelebAMaskParts(root).samples() if s.name == str(image_id))
    assert any(p.name.endswith("_neck_l.png") for p in sample.labels)
    _, mask_p, _ = CelebAMaskParts(root).load(sample)
    assert (mask_p[ids == CELEBAMASK_PARTS.index("neck_l")] == CLASS_INDEX["background"]).all()


def test_overlapping_parts_later_part_wins(parts_layout, tmp_path):
    """skin (id 1) is first in the release's order: drawn under everything, every other part stays on top."""
    root, id_to_name = parts_layout
    sample = CelebAMaskParts(root).samples()[0]
    ids = np.asarray(Image.open(MINI / "masks" / f"{id_to_name[int(sample.name)]}.png"))
    grown = tmp_path / "grown"
    shutil.copytree(root, grown)
    skin = grown / ANNO_DIR / str(int(sample.name) // 2000) / f"{int(sample.name):05d}_skin.png"
    Image.fromarray(np.full(ids.shape, 255, np.uint8)).save(skin)
    grown_sample = next(s for s in CelebAMaskParts(grown).samples() if s.name == sample.name)
    _, mask, _ = CelebAMaskParts(grown).load(grown_sample)
    lut = celebamask_lut()
    drawn = ids > 1
    np.testing.assert_array_equal(mask[drawn], lut[ids[drawn]])  # hair, eyes, ...: unchanged
    assert (mask[ids <= 1] == CLASS_INDEX["face"]).all()  # only the former background became skin


# --- Mut1ny ----------------------------------------------------------------------------------


def test_mut1ny_samples_load_with_snapping_counts():
    source = Mut1ny(MUT1NY)
    samples = source.samples()
    assert [s.name for s in samples] == ["fig1", "fig2"]
    total_ignored = 0
    for sample in samples:
        rgb, mask, counts = source.load(sample)
        label = read_label_rgb(sample.labels[0])
        assert rgb.shape == label.shape and mask.shape == label.shape[:2]
        assert counts["exact_pixels"] + counts["snapped_pixels"] + counts["ignored_pixels"] == mask.size
        assert counts["ignored_pixels"] == int((mask == IGNORE_INDEX).sum())
        total_ignored += counts["ignored_pixels"]
        # no silent class: every labelled pixel is within tolerance of its class's colour
        class_rgb = {CLASS_INDEX[c]: np.array(rgb_c) for rgb_c, c in MUT1NY_COLORS.items()}
        for cls in np.unique(mask[mask != IGNORE_INDEX]):
            gap = np.linalg.norm(label[mask == cls].astype(float) - class_rgb[cls], axis=1)
            assert gap.max() <= DEFAULT_TOLERANCE
        # and every ignored pixel really is beyond tolerance of every palette colour
        far = np.linalg.norm(label[mask == IGNORE_INDEX][:, None].astype(float) - PALETTE_RGB[None], axis=2)
        assert (far.min(axis=1) > DEFAULT_TOLERANCE).all()
    assert total_ignored > 0, "the shared samples have interpolated, off-palette edge pixels"


def test_mut1ny_blend_of_two_classes_is_not_called_a_third():
    """fig2's hair/eyebrow edge blends to (255,128,128), nearest to beard pink: ignored, not beard."""
    label = read_label_rgb(MUT1NY / "figseg2.png")
    blend = (label == (255, 128, 128)).all(axis=-1)
    assert blend.any()
    mask, counts = snap_labels(label)
    assert (mask[blend] == IGNORE_INDEX).all() and CLASS_INDEX["beard"] not in mask
    # a careless tolerance would snap them: they are then counted as snapped, still never silent
    loose, loose_counts = snap_labels(label, tolerance=100)
    assert (loose[blend] == CLASS_INDEX["beard"]).all()
    assert loose_counts["snapped"] == counts["ignored"] == int(blend.sum())


def test_mut1ny_jpeg_saved_label_snaps_back():
    label = read_label_rgb(MUT1NY / "figseg1.png")
    clean, clean_counts = snap_labels(label)
    assert clean_counts["snapped"] == clean_counts["ignored"] == 0
    buffer = io.BytesIO()
    Image.fromarray(label).save(buffer, "JPEG", quality=90)
    noisy = np.asarray(Image.open(buffer).convert("RGB"))
    mask, counts = snap_labels(noisy)
    assert counts["snapped"] > 0.05 * mask.size  # JPEG moved many colours: snapped back, counted
    assert counts["ignored"] < 0.05 * mask.size
    kept = mask != IGNORE_INDEX
    assert (mask[kept] == clean[kept]).mean() > 0.999


# --- prepare ---------------------------------------------------------------------------------


def test_prepare_writes_the_format_with_the_fixed_split(mini_subset, tmp_path):
    out = tmp_path / "prepared"
    manifest = prepare([CelebAMaskIndex(mini_subset)], out, size=SIZE, progress=False)
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert load_prepared(out)["format"] == "facesegtool-prepared"
    train, val = pick_names()
    assert sorted(i["name"] for i in manifest["items"] if i["split"] == "train") == sorted(train)
    assert sorted(i["name"] for i in manifest["items"] if i["split"] == "val") == sorted(val)
    assert {i["split_by"] for i in manifest["items"]} == {"source-file"}
    assert manifest["sources"] == [{"kind": "celebamask-index", "root": str(mini_subset), "samples": len(train + val),
                                    "unlabelled_classes": {"beard": "face"}, "counters": {}}]
    assert {json.dumps(i["unlabelled_classes"]) for i in manifest["items"]} == {'{"beard": "face"}'}
    assert manifest["skipped"] == [] and manifest["classes"] == list(CLASSES)
    lut = celebamask_lut()
    for split, names in (("train", train), ("val", val)):
        assert sum(manifest["class_pixels"][split]) == len(names) * SIZE * SIZE  # nothing ignored here
    expected = np.zeros(NUM_CLASSES, np.int64)
    for name in train:
        image = np.asarray(Image.open(out / "images" / f"{name}.png"))
        mask = np.asarray(Image.open(out / "masks" / f"{name}.png"))
        assert image.shape == (SIZE, SIZE, 3) and mask.shape == (SIZE, SIZE) and mask.dtype == np.uint8
        ids = np.asarray(Image.open(mini_subset / "masks" / f"{name}.png"))
        assert set(np.unique(mask)) <= set(np.unique(lut[ids]))
        expected += np.bincount(mask.ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES]
        # RGB kept in order: compare with the source resized independently, and with its channel swap
        source = np.asarray(Image.open(mini_subset / "images" / f"{name}.jpg").resize((SIZE, SIZE), Image.BOX), int)
        assert np.abs(image - source).mean() < 3 < np.abs(image - source[..., ::-1]).mean()
    assert manifest["class_pixels"]["train"] == expected.tolist()
    weights = manifest["weights"]
    assert weights["equal"] == [1.0] * NUM_CLASSES and weights["empirical"][0] == 0.5
    prop, seen = np.array(weights["proportional"]), expected > 0
    assert abs(np.exp(np.log(prop[seen]).mean()) - 1) < 1e-4  # normalised by the geometric mean
    assert prop[seen].argmax() == expected[seen].argmin()  # rarest class weighs most
    assert manifest["absent_train_classes"] == ["beard"] and prop[CLASS_INDEX["beard"]] == prop[seen].max()
    x, y = FaceParsingDataset(out, "val")[0]  # the training reader accepts it
    assert tuple(x.shape) == (3, SIZE, SIZE) and tuple(y.shape) == (SIZE, SIZE)


def test_prepare_keeps_one_subject_on_one_side(parts_layout, tmp_path):
    root, id_to_name = parts_layout
    celeba = tmp_path / "CelebAMask-HQ"
    shutil.copytree(root, celeba)
    (celeba / "CelebA-HQ-to-CelebA-mapping.txt").write_text(
        "idx orig_idx orig_file\n" + "".join(f"{i} {i + 50} {i + 50:06d}.jpg\n" for i in id_to_name)
    )
    (celeba / "identity_CelebA.txt").write_text("".join(f"{i + 50:06d}.jpg {IDENTITY[i]}\n" for i in id_to_name))
    manifest = prepare([CelebAMaskParts(celeba)], tmp_path / "out", size=SIZE, val_fraction=0.5, progress=False)
    sides: dict[str, set] = {}
    for item in manifest["items"]:
        assert item["split_by"] == "subject" and item["subject"] == IDENTITY[int(item["name"])]
        sides.setdefault(item["subject"], set()).add(item["split"])
    assert all(len(s) == 1 for s in sides.values())
    assert {s for v in sides.values() for s in v} == {"train", "val"}  # 4 people, half to val: both sides used
    assert manifest["sources"][0]["counters"] == {"images_resized_to_mask": 1}


def test_prepare_without_split_or_subjects_hashes_the_name(parts_layout, tmp_path):
    root, _ = parts_layout
    first = prepare([CelebAMaskParts(root)], tmp_path / "a", size=SIZE, val_fraction=0.3, progress=False)
    again = prepare([CelebAMaskParts(root)], tmp_path / "b", size=SIZE, val_fraction=0.3, progress=False)
    assert [(i["name"], i["split"]) for i in first["items"]] == [(i["name"], i["split"]) for i in again["items"]]
    for item in first["items"]:
        assert item["split_by"] == "name-hash"
        assert item["split"] == ("val" if stable_fraction(item["name"]) < 0.3 else "train")


def test_prepare_mut1ny_pads_to_square_with_ignore(tmp_path):
    manifest = prepare([Mut1ny(MUT1NY)], tmp_path / "m", size=SIZE, val_fraction=0.5, progress=False)
    counters = manifest["sources"][0]["counters"]
    assert counters["ignored_pixels"] > 0 and counters["exact_pixels"] > 0
    mask = np.asarray(Image.open(tmp_path / "m" / "masks" / "fig1.png"))
    assert mask.shape == (SIZE, SIZE)
    assert (mask[0] == IGNORE_INDEX).all() and (mask[SIZE // 2] != IGNORE_INDEX).all()  # 300x280: pad rows
    assert sum(manifest["ignored_pixels"].values()) > 0


def test_mut1ny_subject_folders(tmp_path):
    """images/<subject>/x + labels/<subject>/x: the folder says who is who; an orphan label is reported."""
    root = tmp_path / "mut1ny"
    for subject, n in (("anna", 1), ("ben", 2)):
        for sub, stem in (("images", f"fig{n}"), ("labels", f"figseg{n}")):
            (root / sub / subject).mkdir(parents=True)
            shutil.copy(MUT1NY / f"{stem}.png", root / sub / subject / "shot.png")
    shutil.copy(MUT1NY / "figseg1.png", root / "labels" / "anna" / "lost.png")
    manifest = prepare([Mut1ny(root)], tmp_path / "out", size=SIZE, skip_bad=True, progress=False)
    assert {(i["name"], i["subject"], i["split_by"]) for i in manifest["items"]} == {
        ("anna_shot", "anna", "subject"), ("ben_shot", "ben", "subject")}
    assert manifest["skipped"] == [{"file": str(root / "labels" / "anna" / "lost.png"),
                                    "reason": "no image for this label", "source": "mut1ny"}]


def test_two_sources_with_the_same_names_stay_apart(mini_subset, tmp_path):
    manifest = prepare([CelebAMaskIndex(mini_subset), CelebAMaskIndex(mini_subset)], tmp_path / "two", size=SIZE,
                       progress=False)
    names = [i["name"] for i in manifest["items"]]
    assert len(names) == len(set(names)) == 2 * len(list((mini_subset / "masks").glob("*.png")))


# --- bad input -------------------------------------------------------------------------------


@pytest.fixture()
def broken(mini_subset, tmp_path) -> tuple[Path, dict[str, Path]]:
    """The subset with one truncated jpg, one half-size mask and one image without mask."""
    root = tmp_path / "broken"
    shutil.copytree(mini_subset, root)
    names = sorted(p.stem for p in (root / "images").glob("*.jpg"))
    bad = {"corrupt": root / "images" / f"{names[0]}.jpg", "wrong_size": root / "masks" / f"{names[1]}.png",
           "missing_mask": root / "images" / f"{names[2]}.jpg"}
    data = bad["corrupt"].read_bytes()
    bad["corrupt"].write_bytes(data[: len(data) // 2])
    Image.open(bad["wrong_size"]).resize((256, 256), Image.NEAREST).save(bad["wrong_size"])
    (root / "masks" / f"{names[2]}.png").unlink()
    return root, bad


@pytest.mark.parametrize("which", ["corrupt", "wrong_size", "missing_mask"])
def test_bad_celebamask_input_names_the_file(broken, tmp_path, which):
    root, bad = broken
    for other, path in bad.items():  # leave only the one under test broken
        if other != which:
            _remove_sample(root, path)
    with pytest.raises(BadSampleError) as info:
        prepare([CelebAMaskIndex(root)], tmp_path / "out", size=SIZE, progress=False)
    assert info.value.file == str(bad[which]) and str(bad[which]) in str(info.value)
    assert {"corrupt": "unreadable", "wrong_size": "256x256", "missing_mask": "no mask"}[which] in info.value.reason
    assert not (tmp_path / "out").exists()


def _remove_sample(root: Path, path: Path) -> None:
    for sub, ext in (("images", ".jpg"), ("masks", ".png")):
        (root / sub / f"{path.stem}{ext}").unlink(missing_ok=True)
    for listed in root.glob("*.txt"):  # a name listed without its files is itself refused
        listed.write_text("".join(ln for ln in listed.read_text().splitlines(True) if ln.strip() != path.stem))


def test_unknown_palette_is_refused(tmp_path):
    """A CelebAMask mask colourised with its own palette, passed off as a Mut1ny label."""
    root = tmp_path / "mut"
    shutil.copytree(MUT1NY, root)
    name = sorted(p.stem for p in (MINI / "masks").glob("*.png"))[0]
    coloured = Image.open(MINI / "masks" / f"{name}.png").convert("RGB").resize((300, 280), Image.NEAREST)
    coloured.save(root / "figseg2.png")
    with pytest.raises(BadSampleError, match="unknown palette") as info:
        prepare([Mut1ny(root)], tmp_path / "out", size=SIZE, progress=False)
    assert info.value.file == str(root / "figseg2.png")


def test_empty_folder_is_refused(tmp_path):
    for sub in ("images", "masks"):
        (tmp_path / "empty" / sub).mkdir(parents=True)
    with pytest.raises(DataSourceError, match="no images"):
        prepare([CelebAMaskIndex(tmp_path / "empty")], tmp_path / "out", progress=False)
    (tmp_path / "bare").mkdir()
    with pytest.raises(DataSourceError, match="bare/images: missing"):
        CelebAMaskIndex(tmp_path / "bare")
    with pytest.raises(DataSourceError, match="bare: no images"):
        prepare([Mut1ny(tmp_path / "bare")], tmp_path / "out", progress=False)
    with pytest.raises(DataSourceError, match="use --celebamask-parts"):
        CelebAMaskIndex(_parts_dir(tmp_path))
    with pytest.raises(DataSourceError, match="nowhere: no such folder"):
        CelebAMaskParts(tmp_path / "nowhere")
    assert not (tmp_path / "out").exists()


def _parts_dir(tmp_path: Path) -> Path:
    (tmp_path / "release" / IMAGES_DIR).mkdir(parents=True)
    return tmp_path / "release"


def test_cli_reports_bad_input_and_skip_bad_lists_it(broken, tmp_path):
    root, bad = broken
    runner = CliRunner()
    out = tmp_path / "cli"
    result = runner.invoke(main, ["data", "prepare", "--celebamask", str(root), "--size", str(SIZE), "--out", str(out)])
    assert result.exit_code == 2 and "error:" in result.output and str(bad["corrupt"]) in result.output
    assert "Traceback" not in result.output and not out.exists()
    result = runner.invoke(
        main, ["data", "prepare", "--celebamask", str(root), "--size", str(SIZE), "--out", str(out), "--skip-bad"]
    )
    assert result.exit_code == 0, result.output
    manifest = load_prepared(out)
    assert sorted(s["file"] for s in manifest["skipped"]) == sorted(map(str, bad.values()))
    n_images = len(list((root / "images").glob("*.jpg")))
    assert len(manifest["items"]) == n_images - 3 == len(list((out / "masks").glob("*.png")))
    assert "3 skipped" in result.output


def test_interrupted_prepare_leaves_nothing(mini_subset, tmp_path, monkeypatch):
    out = tmp_path / "prepared"
    real_load, calls = CelebAMaskIndex.load, []

    def load_then_interrupt(self, sample):
        calls.append(sample.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_load(self, sample)

    monkeypatch.setattr(CelebAMaskIndex, "load", load_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        prepare([CelebAMaskIndex(mini_subset)], out, size=SIZE, progress=False)
    assert list(tmp_path.iterdir()) == []  # neither the output nor the temp dir
    # over an existing prepared set, an interrupted run leaves the old set as it was
    monkeypatch.setattr(CelebAMaskIndex, "load", real_load)
    prepare([CelebAMaskIndex(mini_subset)], out, size=SIZE, progress=False)
    before = (out / "manifest.json").read_text()
    calls.clear()
    monkeypatch.setattr(CelebAMaskIndex, "load", load_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        prepare([CelebAMaskIndex(mini_subset)], out, size=SIZE * 2, progress=False)
    assert (out / "manifest.json").read_text() == before and [p.name for p in tmp_path.iterdir()] == ["prepared"]


def test_prepare_refuses_to_overwrite_other_folders(mini_subset, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DataSourceError, match="not a prepared set"):
        prepare([CelebAMaskIndex(mini_subset)], tmp_path / "mine", size=SIZE, progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# --- stats -----------------------------------------------------------------------------------


def test_stats_table_and_chart(mini_subset, tmp_path):
    out = tmp_path / "prepared"
    manifest = prepare([CelebAMaskIndex(mini_subset)], out, size=SIZE, progress=False)
    table = frequency_table(manifest)
    for name, count in zip(CLASSES, manifest["class_pixels"]["train"]):
        row = next(line for line in table.splitlines() if line.startswith(f"{name} "))
        assert f"{count:,}" in row
    result = CliRunner().invoke(main, ["data", "stats", str(out), "--png", str(tmp_path / "freq.png")])
    assert result.exit_code == 0, result.output
    assert table in result.output
    assert Image.open(tmp_path / "freq.png").size[0] > 400
    assert plot_frequencies(manifest, tmp_path / "again.png").is_file()
    bad = CliRunner().invoke(main, ["data", "stats", str(tmp_path)])
    assert bad.exit_code == 2 and "no manifest.json" in bad.output


# --- issue 31: a prepared set is never read as raw input, and a rerun keeps what it did not write ------


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_prepared_set_is_refused_as_raw_celebamask(mini_subset, tmp_path):
    """`data prepare --celebamask P --out P` once re-read P's 11-class masks as part ids (hair became eyes)."""
    prepared = tmp_path / "prepared"
    prepare([CelebAMaskIndex(mini_subset)], prepared, size=SIZE, progress=False)
    before = _files(prepared)
    for out in (prepared, tmp_path / "other"):
        result = CliRunner().invoke(main, ["data", "prepare", "--celebamask", str(prepared), "--size", str(SIZE),
                                           "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert "is a prepared set" in result.output and "Traceback" not in result.output
    assert _files(prepared) == before  # masks, manifest and split untouched
    assert not (tmp_path / "other").exists()
    with pytest.raises(DataSourceError, match="is a prepared set"):
        CelebAMaskIndex(prepared)


def test_prepare_out_may_not_hold_or_be_a_source(mini_subset, tmp_path):
    result = CliRunner().invoke(main, ["data", "prepare", "--celebamask", str(mini_subset), "--size", str(SIZE),
                                       "--out", str(mini_subset.parent)])
    assert result.exit_code == 2 and "holds the input source" in result.output, result.output
    assert sorted(p.name for p in mini_subset.iterdir()) == ["images", "masks", "train.txt", "val.txt"]


def test_rerun_of_prepare_replaces_only_its_own_files(mini_subset, tmp_path):
    """A user's notes and a run trained into P/runs/ survive a rerun of `data prepare --out P`."""
    out = tmp_path / "prepared"
    prepare([CelebAMaskIndex(mini_subset)], out, size=SIZE, progress=False)
    (out / "notes.txt").write_text("keep me")
    (out / "runs" / "exp").mkdir(parents=True)
    (out / "runs" / "exp" / "best.pt").write_bytes(b"a checkpoint")
    old_names = {p.stem for p in (out / "masks").iterdir()}
    fewer = tmp_path / "fewer"
    shutil.copytree(mini_subset, fewer)
    gone = sorted(old_names)[0]
    for sub, suffix in (("images", "jpg"), ("masks", "png")):
        (fewer / sub / f"{gone}.{suffix}").unlink()
    for split in ("train.txt", "val.txt"):
        (fewer / split).write_text("\n".join(n for n in (fewer / split).read_text().split() if n != gone) + "\n")
    manifest = prepare([CelebAMaskIndex(fewer)], out, size=SIZE, progress=False)
    assert (out / "notes.txt").read_text() == "keep me"
    assert (out / "runs" / "exp" / "best.pt").read_bytes() == b"a checkpoint"
    assert {p.stem for p in (out / "masks").iterdir()} == {it["name"] for it in manifest["items"]} == old_names - {gone}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp or trash folder left


def test_prepare_through_a_link_replaces_the_set_not_the_link(mini_subset, tmp_path):
    real = tmp_path / "real"
    prepare([CelebAMaskIndex(mini_subset)], real, size=SIZE, progress=False)
    link = tmp_path / "link"
    link.symlink_to(real)
    prepare([CelebAMaskIndex(mini_subset)], link, size=SIZE * 2, progress=False)
    assert link.is_symlink() and load_prepared(real)["size"] == SIZE * 2


def test_names_that_differ_only_in_case_are_refused(mini_subset, tmp_path):
    """Face.jpg beside face.jpg: one file on a case-insensitive disk, and two names hashed to either split."""
    root = tmp_path / "cased"
    shutil.copytree(mini_subset, root)
    (root / "train.txt").unlink()
    (root / "val.txt").unlink()
    name = sorted(p.stem for p in (root / "images").iterdir())[0]
    shutil.copy(root / "images" / f"{name}.jpg", root / "images" / f"{name.upper()}X.jpg")
    shutil.copy(root / "masks" / f"{name}.png", root / "masks" / f"{name.upper()}X.png")
    (root / "images" / f"{name.upper()}X.jpg").rename(root / "images" / f"{name.upper()}.jpg")
    (root / "masks" / f"{name.upper()}X.png").rename(root / "masks" / f"{name.upper()}.png")
    manifest = prepare([CelebAMaskIndex(root)], tmp_path / "out", size=SIZE, skip_bad=True, progress=False)
    skipped = [s for s in manifest["skipped"] if "case aside" in s["reason"]]
    assert len(skipped) == 2 and name not in {it["name"].casefold() for it in manifest["items"]}


def test_stats_png_never_overwrites_the_set(mini_subset, tmp_path):
    out = tmp_path / "prepared"
    prepare([CelebAMaskIndex(mini_subset)], out, size=SIZE, progress=False)
    (tmp_path / "notes.txt").write_text("keep me")
    mask = sorted((out / "masks").iterdir())[0]
    before = _files(out)
    for target, message in ((out / "manifest.json", "is the input"), (mask, "is the input"),
                            (tmp_path / "notes.txt", "not a PNG")):
        result = CliRunner().invoke(main, ["data", "stats", str(out), "--png", str(target)])
        assert result.exit_code == 2 and message in result.output, result.output
    assert _files(out) == before and (tmp_path / "notes.txt").read_text() == "keep me"
    assert CliRunner().invoke(main, ["data", "stats", str(out)]).exit_code == 0  # the default chart beside the set
