"""CelebAMask-HQ in its two layouts, mapped onto the 11 classes.

Index layout (`../shared/data/celebamask-mini`):
    images/NAME.jpg, masks/NAME.png (8-bit, one CelebAMask part id 0..18 per pixel),
    optional train.txt / val.txt (the source's own split) and subjects.txt.

Original per-part layout (the CelebAMask-HQ release):
    CelebA-HQ-img/<id>.jpg (1024 px), CelebAMask-HQ-mask-anno/<k>/<id:05d>_<part>.png
    (512 px binary masks, k = id // 2000, one file per part present in the picture).
    The image is resized to the mask size. Part names are matched whole ("neck" never matches
    "neck_l"). Where parts overlap, a later part in PART_ORDER overwrites an earlier one: the
    order of the release's own g_mask.py, which is also the order of the part ids, so both
    layouts give the same mask. Who is who: if the root holds the release's
    CelebA-HQ-to-CelebA-mapping.txt and CelebA's identity_CelebA.txt, each image's subject is
    its CelebA identity (else an optional subjects.txt).

Both layouts go through the same 19-id -> 11-class lookup table (labels.celebamask_lut), whose
mapping can be overridden from a JSON file (labels.load_mapping).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from ..imaging import image_files, read_index_mask, read_rgb, resize_image
from ..labels import CELEBAMASK_PARTS, CELEBAMASK_UNLABELLED, celebamask_lut
from .source import BadSampleError, DataSourceError, Sample, Source, duplicate_names, read_text_list, refuse_duplicates

# Overlaps: later overwrites earlier (g_mask.py order, = part id order 1..18).
PART_ORDER: tuple[str, ...] = CELEBAMASK_PARTS[1:]
PART_ID: dict[str, int] = {part: i for i, part in enumerate(CELEBAMASK_PARTS)}
IMAGES_DIR, ANNO_DIR = "CelebA-HQ-img", "CelebAMask-HQ-mask-anno"
PART_FILE = re.compile(r"^(\d+)_([a-z_]+)\.png$")
FOLDER_SPAN = 2000  # the release puts ids k*2000 .. k*2000+1999 in folder k


def parts_to_classes(index_mask: np.ndarray, lut: np.ndarray, path: Path) -> np.ndarray:
    """19-id index mask -> 11-class mask; an id outside 0..18 means a mask of another kind."""
    unknown = np.unique(index_mask[index_mask >= len(CELEBAMASK_PARTS)])
    if unknown.size:
        shown = ", ".join(map(str, unknown[:8].tolist()))
        raise BadSampleError(path, f"values {shown} are not CelebAMask part ids (0..{len(CELEBAMASK_PARTS) - 1})")
    return lut[index_mask]


class CelebAMaskIndex(Source):
    """images/NAME.jpg + masks/NAME.png with CelebAMask part ids."""

    kind = "celebamask-index"
    unlabelled_classes = CELEBAMASK_UNLABELLED

    def __init__(self, root: str | Path, mapping: dict[str, str] | None = None):
        super().__init__(root)
        self.lut = celebamask_lut(mapping)
        if (self.root / IMAGES_DIR).is_dir():
            raise DataSourceError(f"{self.root}: this is the per-part release layout; use --celebamask-parts")
        for sub in ("images", "masks"):
            if not (self.root / sub).is_dir():
                raise DataSourceError(f"{self.root / sub}: missing (expected images/NAME.jpg + masks/NAME.png)")

    def samples(self) -> list[Sample]:
        pictures = image_files(self.root / "images")
        images = {p.stem: p for p in pictures}
        masks = {p.stem: p for p in (self.root / "masks").glob("*.png") if p.is_file()}
        listed, subjects = self.own_split(), self.subjects()
        out = []
        for name in sorted(images.keys() | masks.keys()):
            image = images.get(name, self.root / "images" / f"{name}.jpg")
            mask = masks.get(name, self.root / "masks" / f"{name}.png")
            problem = None
            if name not in masks:
                problem = (image, f"no mask {mask} for this image")
            elif name not in images:
                problem = (mask, f"no image images/{name}.jpg for this mask")
            out.append(Sample(name, image, (mask,), self.split_for(name, listed), subjects.get(name), problem))
        return self.checked(refuse_duplicates(out, duplicate_names(pictures)), listed)

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        sample.check()
        rgb = read_rgb(sample.image, orientation="refuse")
        (mask_path,) = sample.labels
        index_mask = read_index_mask(mask_path)
        if index_mask.shape != rgb.shape[:2]:
            raise BadSampleError(
                mask_path, f"mask is {_wh(index_mask)} but its image {sample.image.name} is {_wh(rgb)}"
            )
        return rgb, parts_to_classes(index_mask, self.lut, mask_path), {}


class CelebAMaskParts(Source):
    """The original release: CelebA-HQ-img/<id>.jpg + CelebAMask-HQ-mask-anno/<k>/<id:05d>_<part>.png."""

    kind = "celebamask-parts"
    unlabelled_classes = CELEBAMASK_UNLABELLED

    def __init__(self, root: str | Path, mapping: dict[str, str] | None = None):
        super().__init__(root)
        self.lut = celebamask_lut(mapping)
        for sub in (IMAGES_DIR, ANNO_DIR):
            if not (self.root / sub).is_dir():
                raise DataSourceError(f"{self.root / sub}: missing (expected the CelebAMask-HQ release layout)")

    def _part_files(self) -> tuple[dict[int, list[Path]], dict[int, tuple[Path, str]]]:
        """id -> its part files; id -> a problem (a file whose part name is not a CelebAMask part)."""
        parts: dict[int, list[Path]] = {}
        problems: dict[int, tuple[Path, str]] = {}
        for folder in sorted(p for p in (self.root / ANNO_DIR).iterdir() if p.is_dir()):
            for path in sorted(folder.glob("*.png")):
                match = PART_FILE.match(path.name)
                if not match:
                    continue
                image_id, part = int(match[1]), match[2]
                if part not in PART_ID or part == "background":  # whole-name match: "neck_l" is not "neck"
                    problems[image_id] = (path, f"unknown part name {part!r}; known: {', '.join(PART_ORDER)}")
                elif path.name != f"{image_id:05d}_{part}.png" or folder.name != str(image_id // FOLDER_SPAN):
                    problems[image_id] = (path, f"expected {image_id // FOLDER_SPAN}/{image_id:05d}_{part}.png")
                else:
                    parts.setdefault(image_id, []).append(path)
        return parts, problems

    def subjects(self) -> dict[str, str]:
        """CelebA identity of each CelebA-HQ image, when the root has both look-up files."""
        hq_to_celeba, identity = self.root / "CelebA-HQ-to-CelebA-mapping.txt", self.root / "identity_CelebA.txt"
        if not (hq_to_celeba.is_file() and identity.is_file()):
            return super().subjects()
        who = dict(line.split()[:2] for line in read_text_list(identity).splitlines() if line.strip())
        out = {}
        for line in read_text_list(hq_to_celeba).splitlines()[1:]:  # header: idx orig_idx orig_file
            fields = line.split()
            if len(fields) >= 3 and fields[2] in who:
                out[fields[0]] = who[fields[2]]
        return out

    def samples(self) -> list[Sample]:
        parts, problems = self._part_files()
        pictures = image_files(self.root / IMAGES_DIR)
        images = {p.stem: p for p in pictures}
        listed, subjects = self.own_split(), self.subjects()
        out = []
        ids: dict[int, str] = {}
        for stem, image in images.items():
            if not stem.isdigit():
                out.append(Sample(stem, image, (), problem=(image, "name is not a CelebA-HQ id (expected <id>.jpg)")))
            else:
                ids[int(stem)] = stem
        for image_id in sorted(ids.keys() | parts.keys() | problems.keys()):
            name = ids.get(image_id, str(image_id))
            image = images.get(name, self.root / IMAGES_DIR / f"{image_id}.jpg")
            files = tuple(parts.get(image_id, ()))
            problem = problems.get(image_id)
            if problem is None and image_id not in ids:
                problem = (files[0], f"no image {IMAGES_DIR}/{image_id}.jpg for this part mask")
            elif problem is None and not files:
                folder = f"{ANNO_DIR}/{image_id // FOLDER_SPAN}"
                problem = (image, f"no part masks {folder}/{image_id:05d}_<part>.png for this image")
            key = str(image_id)
            out.append(Sample(name, image, files, self.split_for(name, listed), subjects.get(key), problem))
        return self.checked(refuse_duplicates(out, duplicate_names(pictures)), listed)

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        sample.check()
        index_mask = self.compose(sample.labels)
        rgb = read_rgb(sample.image, orientation="refuse")
        counters = {}
        if rgb.shape[:2] != index_mask.shape:
            (h, w), (mh, mw) = rgb.shape[:2], index_mask.shape
            if h * mw != w * mh:  # a plain resize would distort: not the same picture
                raise BadSampleError(sample.image, f"image is {_wh(rgb)} but its part masks are {mw}x{mh}")
            rgb = resize_image(rgb, (mh, mw))
            counters["images_resized_to_mask"] = 1
        return rgb, parts_to_classes(index_mask, self.lut, sample.labels[0]), counters

    @staticmethod
    def compose(files: tuple[Path, ...]) -> np.ndarray:
        """Binary part masks -> one 19-id index mask, later parts of PART_ORDER on top."""
        by_part = {PART_FILE.match(p.name)[2]: p for p in files}
        index_mask, shape_from = None, None
        for part in PART_ORDER:
            path = by_part.get(part)
            if path is None:
                continue
            binary = _read_part(path)
            if index_mask is None:
                index_mask, shape_from = np.zeros(binary.shape, np.uint8), path
            elif binary.shape != index_mask.shape:
                raise BadSampleError(path, f"part mask is {_wh(binary)} but {shape_from.name} is {_wh(index_mask)}")
            index_mask[binary] = PART_ID[part]
        return index_mask


def _read_part(path: Path) -> np.ndarray:
    """A part mask as booleans; the release's files are 0/255 (grey or RGB), so threshold at half."""
    try:
        with Image.open(path) as im:
            im.load()
            return np.asarray(im.convert("L")) >= 128
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadSampleError(path, f"unreadable part mask ({exc})") from None


def _wh(array: np.ndarray) -> str:
    return f"{array.shape[1]}x{array.shape[0]}"
