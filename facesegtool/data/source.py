"""What every dataset source provides, the errors for bad input, and the image readers.

A source (CelebAMask-HQ index masks, CelebAMask-HQ per-part masks, Mut1ny RGB labels) lists
its samples and loads one as (RGB uint8 H x W x 3 image, uint8 H x W 11-class mask, counters).

Colour order: every decoder here is Pillow, which yields RGB. Nothing in the data loaders calls
cv2.imread (which yields BGR), so there is no channel swap to forget; cv2 only resizes arrays.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SPLIT_FILES = {"train": "train.txt", "val": "val.txt"}
SUBJECTS_FILE = "subjects.txt"  # optional, any source: "<name> <subject>" per line


class DataError(ValueError):
    """Bad input for `data prepare`; the message names the file and the problem."""


class DataSourceError(DataError):
    """A whole source is unusable (missing or empty folder, contradictory split files)."""


class BadSampleError(DataError):
    """One sample is unusable (unreadable image, mask of another size, missing pair, unknown palette).

    `data prepare --skip-bad` records these in the manifest instead of stopping.
    """

    def __init__(self, file: str | Path, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file = str(file)
        self.reason = reason


@dataclass(frozen=True)
class Sample:
    name: str  # file stem, unique within its source
    image: Path
    labels: tuple[Path, ...]  # one index mask / RGB label, or the part masks of one image
    split: str | None = None  # from the source's own split file
    subject: str | None = None  # who is in the picture, when the source says
    problem: tuple[Path, str] | None = None  # (file, reason) found while listing, e.g. no mask

    def check(self) -> None:
        if self.problem is not None:
            raise BadSampleError(*self.problem)


class Source(ABC):
    kind: str = ""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataSourceError(f"{self.root}: no such folder ({self.kind} source)")

    @abstractmethod
    def samples(self) -> list[Sample]:
        """Every image (and every orphan label) in the source, sorted by name."""

    @abstractmethod
    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """(RGB image, 11-class mask of the same size, counters); raises BadSampleError."""

    def describe(self) -> dict:
        return {"kind": self.kind, "root": str(self.root)}

    def own_split(self) -> dict[str, str]:
        """name -> split from the source's train.txt / val.txt, if it has them.

        With only one of the two files, every name it does not list goes to the other split.
        With both, unlisted names fall back to the stable hash (see prepare.assign_split).
        """
        listed: dict[str, str] = {}
        for split, file_name in SPLIT_FILES.items():
            path = self.root / file_name
            if not path.is_file():
                continue
            for line in path.read_text().splitlines():
                name = Path(line.strip()).stem
                if not name:
                    continue
                if listed.get(name, split) != split:
                    raise DataSourceError(f"{path}: {name!r} is listed in both train.txt and val.txt")
                listed[name] = split
        return listed

    def split_for(self, name: str, listed: dict[str, str]) -> str | None:
        if name in listed:
            return listed[name]
        present = [s for s, f in SPLIT_FILES.items() if (self.root / f).is_file()]
        if len(present) == 1:  # one file: the rest is the other split
            return "val" if present[0] == "train" else "train"
        return None

    def subjects(self) -> dict[str, str]:
        """name -> subject from an optional subjects.txt ("<name> <subject>" per line)."""
        path = self.root / SUBJECTS_FILE
        if not path.is_file():
            return {}
        out = {}
        for number, line in enumerate(path.read_text().splitlines(), 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) != 2:
                raise DataSourceError(f"{path}:{number}: expected '<name> <subject>', got {line!r}")
            out[Path(fields[0]).stem] = fields[1]
        return out


# EXIF orientation tag (0x0112) values other than 1: how a viewer turns the stored pixels.
EXIF_ORIENTATION = 0x0112
_ORIENTATIONS = {2: "mirrored", 3: "rotated 180 degrees", 4: "flipped upside down", 5: "mirrored and rotated",
                 6: "rotated 90 degrees clockwise", 7: "mirrored and rotated", 8: "rotated 90 degrees anticlockwise"}


def read_rgb(path: Path, orientation: str = "apply") -> np.ndarray:
    """Decode an image file to RGB uint8 H x W x 3, failing on unreadable or truncated files.

    orientation: a photo whose EXIF tag says to rotate or flip it is turned upright ("apply", as
    viewers, OpenCV and `predict` show it), or refused ("refuse": for `data prepare`, where a
    mask drawn on the stored pixels and one drawn on the upright picture look alike, and a
    wrong guess pairs a face with a turned mask).
    """
    try:
        with Image.open(path) as im:
            im.load()  # decodes fully: a truncated JPEG raises here instead of coming back half grey
            turn = im.getexif().get(EXIF_ORIENTATION, 1)
            if turn in _ORIENTATIONS:
                if orientation == "refuse":
                    raise BadSampleError(
                        path, f"its EXIF orientation tag ({turn}) says it is shown {_ORIENTATIONS[turn]}, so its "
                        "mask may match the stored or the turned picture; save it upright with the tag cleared "
                        "(e.g. `mogrify -auto-orient`) and check its mask")
                im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB"))
    except BadSampleError:
        raise
    except FileNotFoundError:
        raise BadSampleError(path, "file not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BadSampleError(path, f"unreadable or truncated image ({exc}); replace or remove it") from None


def read_index_mask(path: Path) -> np.ndarray:
    """A single-channel index mask (PNG mode L or P: the stored indices, not the palette colours)."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("L", "P"):
                return np.asarray(im)
            if im.mode in ("RGB", "RGBA"):
                arr = np.asarray(im)[..., :3]
                if (arr == arr[..., :1]).all():  # grey saved as RGB: the value is the index
                    return np.ascontiguousarray(arr[..., 0])
            raise BadSampleError(path, f"not a single-channel index mask (PNG mode {im.mode})")
    except FileNotFoundError:
        raise BadSampleError(path, "file not found") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadSampleError(path, f"unreadable mask ({exc})") from None


def stable_fraction(key: str) -> float:
    """A number in [0, 1) from the SHA-1 of key: the same on every machine and Python run."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2**64


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
