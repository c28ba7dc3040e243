"""What every dataset source provides and the errors for bad input.

A source (CelebAMask-HQ index masks, CelebAMask-HQ per-part masks, Mut1ny RGB labels) lists
its samples and loads one as (RGB uint8 H x W x 3 image, uint8 H x W 11-class mask, counters).
Images and index masks are read by facesegtool.imaging (the one reader, RGB, EXIF upright).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import FacesegError

SPLIT_FILES = {"train": "train.txt", "val": "val.txt"}
SUBJECTS_FILE = "subjects.txt"  # optional, any source: "<name> <subject>" per line
PREPARED_FORMAT = "facesegtool-prepared"  # manifest.json's "format" in a set `data prepare` wrote


class DataError(FacesegError, ValueError):
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
    # Classes this source never labels -> the class its masks give those pixels instead (e.g.
    # CelebAMask-HQ: {"beard": "face"}). Recorded per item by `data prepare`; see training/partial.py.
    unlabelled_classes: dict[str, str] = {}

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataSourceError(f"{self.root}: no such folder ({self.kind} source)")
        refuse_prepared(self.root, self.kind)

    @abstractmethod
    def samples(self) -> list[Sample]:
        """Every image (and every orphan label) in the source, sorted by name."""

    @abstractmethod
    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        """(RGB image, 11-class mask of the same size, counters); raises BadSampleError."""

    def describe(self) -> dict:
        return {"kind": self.kind, "root": str(self.root), "unlabelled_classes": dict(self.unlabelled_classes)}

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
            for line in read_text_list(path).splitlines():
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

    def checked(self, samples: list[Sample], listed: dict[str, str]) -> list[Sample]:
        """samples, plus one bad sample per name that train.txt / val.txt list but no file has,
        so that `prepare` stops on it (or lists it with --skip-bad) instead of dropping it silently."""
        present = {s.name for s in samples}
        extra = []
        for name, split in sorted(listed.items()):
            if name not in present:
                split_file = self.root / SPLIT_FILES[split]
                extra.append(Sample(name, split_file, (), split, problem=(
                    split_file, f"lists {name!r}, but no image of that name is in {self.root}; "
                    "add the file or remove the line")))
        return sorted(samples + extra, key=lambda s: s.name)

    def subjects(self) -> dict[str, str]:
        """name -> subject from an optional subjects.txt ("<name> <subject>" per line)."""
        path = self.root / SUBJECTS_FILE
        if not path.is_file():
            return {}
        out = {}
        for number, line in enumerate(read_text_list(path).splitlines(), 1):
            fields = line.split()
            if not fields or fields[0].startswith("#"):
                continue
            if len(fields) != 2:
                raise DataSourceError(f"{path}:{number}: expected '<name> <subject>', got {line!r}")
            out[Path(fields[0]).stem] = fields[1]
        return out


def read_text_list(path: Path) -> str:
    """A name list (train.txt, val.txt, subjects.txt) as text; a file that is not UTF-8 is a DataSourceError."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataSourceError(
            f"{path}: not UTF-8 text (byte {exc.start}); save it as UTF-8, one name per line") from None


def is_prepared_set(root: str | Path) -> bool:
    """Whether root holds a set `data prepare` (or pseudo-label, carve) wrote: its manifest says so."""
    try:
        manifest = json.loads((Path(root) / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == PREPARED_FORMAT


def refuse_prepared(root: Path, kind: str) -> None:
    """A set `data prepare` wrote is not raw input: its masks hold our 11 classes, which read as a
    source's own label ids would be silently wrong (hair would become eyes)."""
    if is_prepared_set(root):
        raise DataSourceError(
            f"{root}: is a prepared set (its manifest.json was written by `facesegtool data prepare`), not a raw "
            f"{kind} source; train on it as it is (`train --data {root}`, or --extra-train), or give the raw folder")


def duplicate_names(paths: Iterable[Path], key: Callable[[Path], str] = lambda p: p.stem) -> dict[str, list[Path]]:
    """Case-folded name -> the files sharing it, for names that more than one file has (NAME.jpg beside
    NAME.png; Face.jpg beside face.jpg, one file on a case-insensitive disk and two on either side of the split)."""
    by_name: dict[str, list[Path]] = {}
    for path in paths:
        by_name.setdefault(key(path).casefold(), []).append(path)
    return {name: files for name, files in by_name.items() if len(files) > 1}


def refuse_duplicates(samples: list[Sample], duplicates: dict[str, list[Path]]) -> list[Sample]:
    """Mark samples whose name several images share as bad: which image the label belongs to is unknown."""
    out = []
    for sample in samples:
        files = duplicates.get(sample.name.casefold())
        if files and sample.problem is None:
            shown = ", ".join(p.name for p in files)
            reason = (f"{len(files)} images are named {sample.name!r} (case aside: {shown}), so which one its label "
                      "belongs to is unknown; rename or remove all but one")
            sample = replace(sample, problem=(files[0], reason))
        out.append(sample)
    return out


def stable_fraction(key: str) -> float:
    """A number in [0, 1) from the SHA-1 of key: the same on every machine and Python run."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2**64
