"""Mut1ny RGB-coded labels -> 11 classes, snapping near-palette colours and ignoring the rest.

Layouts:
  - DIR/images/... + DIR/labels/... (or DIR/masks/...), paired by relative path and stem; images
    in sub-folders (images/<subject>/x.jpg) give each sample that subject;
  - a flat folder of pairs whose label stem is the image stem with "seg" in it
    (fig1.png + figseg1.png, face.jpg + face_seg.png), as in ../shared/data/mut1ny-samples.

Snapping: every pixel goes to the nearest palette colour (labels.MUT1NY_COLORS, RGB) when
within `tolerance` (Euclidean RGB); farther pixels become IGNORE_INDEX and are counted, never
turned into a class. The default tolerance (40) is below half the smallest distance between two
palette colours (teeth white to beard pink: 89), so a snap is never a toss-up, and a blend of
two classes (e.g. lips red + teeth white = (255,128,128), 90 from beard) is ignored rather than
called a third class. A label with more than `max_ignored_fraction` of such pixels uses some
other colour code: it is rejected as an unknown palette.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..imaging import image_files, is_image_file, read_rgb
from ..labels import CLASS_INDEX, IGNORE_INDEX, MUT1NY_COLORS
from .source import BadSampleError, Sample, Source, duplicate_names, refuse_duplicates

PALETTE_RGB = np.array(list(MUT1NY_COLORS), dtype=np.float64)  # K x 3, RGB
PALETTE_CLASS = np.array([CLASS_INDEX[c] for c in MUT1NY_COLORS.values()], dtype=np.uint8)
DEFAULT_TOLERANCE = 40.0
MAX_IGNORED_FRACTION = 0.05
LABEL_DIRS = ("labels", "masks")


def snap_labels(label_rgb: np.ndarray, tolerance: float = DEFAULT_TOLERANCE) -> tuple[np.ndarray, dict[str, int]]:
    """RGB label H x W x 3 -> (11-class mask with IGNORE beyond tolerance, pixel counts).

    Counts: exact (on the palette), snapped (moved to a palette colour within tolerance),
    ignored (beyond tolerance, set to IGNORE_INDEX).
    """
    if label_rgb.ndim != 3 or label_rgb.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 RGB label, got shape {label_rgb.shape}")
    packed = (label_rgb[..., 0].astype(np.int32) << 16) | (label_rgb[..., 1].astype(np.int32) << 8) | label_rgb[..., 2]
    colours, inverse, per_colour = np.unique(packed.ravel(), return_inverse=True, return_counts=True)
    rgb = np.stack([(colours >> 16) & 255, (colours >> 8) & 255, colours & 255], axis=1).astype(np.float64)
    distance = np.linalg.norm(rgb[:, None, :] - PALETTE_RGB[None, :, :], axis=2)  # colours x palette
    nearest, gap = distance.argmin(axis=1), distance.min(axis=1)
    cls = np.where(gap <= tolerance, PALETTE_CLASS[nearest], IGNORE_INDEX).astype(np.uint8)
    counts = {
        "exact": int(per_colour[gap == 0].sum()),
        "snapped": int(per_colour[(gap > 0) & (gap <= tolerance)].sum()),
        "ignored": int(per_colour[gap > tolerance].sum()),
    }
    return cls[inverse].reshape(packed.shape), counts


def off_palette_colours(label_rgb: np.ndarray, tolerance: float = DEFAULT_TOLERANCE, top: int = 5) -> list:
    """The most common colours beyond tolerance, as [(r, g, b), pixels], for error messages."""
    flat = label_rgb.reshape(-1, 3)
    colours, counts = np.unique(flat, axis=0, return_counts=True)
    far = np.linalg.norm(colours[:, None, :].astype(np.float64) - PALETTE_RGB[None], axis=2).min(axis=1) > tolerance
    order = np.argsort(-counts[far])[:top]
    return [(tuple(int(v) for v in colours[far][i]), int(counts[far][i])) for i in order]


def read_label_rgb(path: Path) -> np.ndarray:
    """An RGB-coded label as RGB uint8; a single-channel file is an index mask, not this code."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("RGB", "RGBA", "P"):
                raise BadSampleError(path, f"PNG mode {im.mode} is not an RGB-coded Mut1ny label")
            return np.asarray(im.convert("RGB"))
    except FileNotFoundError:
        raise BadSampleError(path, "file not found") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadSampleError(path, f"unreadable label ({exc})") from None


class Mut1ny(Source):
    kind = "mut1ny"

    def __init__(
        self,
        root: str | Path,
        tolerance: float = DEFAULT_TOLERANCE,
        max_ignored_fraction: float = MAX_IGNORED_FRACTION,
    ):
        super().__init__(root)
        self.tolerance = tolerance
        self.max_ignored_fraction = max_ignored_fraction

    def describe(self) -> dict:
        return {**super().describe(), "tolerance": self.tolerance}

    def samples(self) -> list[Sample]:
        label_dir = next((self.root / d for d in LABEL_DIRS if (self.root / d).is_dir()), None)
        if (self.root / "images").is_dir() and label_dir is not None:
            pairs, orphans = self._paired_dirs(self.root / "images", label_dir)
        else:
            pairs, orphans = self._flat_pairs()
        listed, subjects = self.own_split(), self.subjects()
        out = []
        for name, (image, label, subject) in sorted(pairs.items()):
            problem = None
            if image is None:
                image, problem = label, (label, "no image for this label")
            elif label is None:
                problem = (image, "no label for this image")
            out.append(
                Sample(name, image, (label,) if label else (), self.split_for(name, listed),
                       subjects.get(name, subject), problem)
            )
        for path in orphans:
            out.append(Sample(path.stem, path, (path,), problem=(path, "label name has no matching image")))
        return self.checked(refuse_duplicates(out, self._duplicates(label_dir)), listed)

    def _duplicates(self, label_dir: Path | None) -> dict[str, list[Path]]:
        """Images (or labels) that share a sample name: NAME.jpg beside NAME.png."""
        if (self.root / "images").is_dir() and label_dir is not None:
            found = {}
            for folder in (self.root / "images", label_dir):
                files = [p for p in sorted(folder.rglob("*")) if p.is_file() and is_image_file(p)]
                found.update(duplicate_names(files, lambda p, f=folder: _sample_name(p.relative_to(f))))
            return found
        files = image_files(self.root)
        labels = duplicate_names(p for p in files if "seg" in p.stem.lower())
        return {**duplicate_names(p for p in files if "seg" not in p.stem.lower()),
                **{_without_seg(stem): paths for stem, paths in labels.items()}}

    def _paired_dirs(self, image_dir: Path, label_dir: Path):
        def index(folder: Path) -> dict[str, Path]:
            return {
                str(p.relative_to(folder).with_suffix("")): p
                for p in sorted(folder.rglob("*"))
                if p.is_file() and is_image_file(p)
            }

        images, labels = index(image_dir), index(label_dir)
        pairs = {}
        for rel in sorted(images.keys() | labels.keys()):
            parent = Path(rel).parent
            subject = str(parent) if str(parent) != "." else None
            pairs[rel.replace("/", "_")] = (images.get(rel), labels.get(rel), subject)
        return pairs, []

    def _flat_pairs(self):
        files = image_files(self.root)
        by_stem = {p.stem: p for p in files}
        label_stems = {p.stem for p in files if "seg" in p.stem.lower()}
        pairs, orphans = {}, []
        for stem in sorted(label_stems):
            image_stem = _without_seg(stem)
            if image_stem in by_stem and image_stem not in label_stems:
                pairs[image_stem] = (by_stem[image_stem], by_stem[stem], None)
            else:
                orphans.append(by_stem[stem])
        for stem, path in by_stem.items():
            if stem not in label_stems and stem not in pairs:
                pairs[stem] = (path, None, None)
        return pairs, orphans

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        sample.check()
        rgb = read_rgb(sample.image, orientation="refuse")
        (label_path,) = sample.labels
        label = read_label_rgb(label_path)
        if label.shape != rgb.shape:
            raise BadSampleError(label_path, f"label is {label.shape[1]}x{label.shape[0]} "
                                             f"but its image {sample.image.name} is {rgb.shape[1]}x{rgb.shape[0]}")
        mask, counts = snap_labels(label, self.tolerance)
        if counts["ignored"] > self.max_ignored_fraction * mask.size:
            shown = ", ".join(f"{c} x{n}" for c, n in off_palette_colours(label, self.tolerance))
            raise BadSampleError(
                label_path,
                f"unknown palette: {counts['ignored']} of {mask.size} pixels are farther than {self.tolerance:g} "
                f"from every Mut1ny colour (most common: {shown})",
            )
        return rgb, mask, {f"{k}_pixels": v for k, v in counts.items()}


def _sample_name(relative: Path) -> str:
    """subject/NAME.png under images/ or labels/ -> subject_NAME, as _paired_dirs names the pair."""
    return str(relative.with_suffix("")).replace("/", "_")


def _without_seg(stem: str) -> str:
    """figseg1 -> fig1, face_seg -> face, seg-face -> face: drop the first 'seg' and one separator next to it."""
    i = stem.lower().find("seg")
    before, after = stem[:i], stem[i + 3 :]
    if before.endswith(("_", "-")):
        before = before[:-1]
    elif after.startswith(("_", "-")):
        after = after[1:]
    return before + after

