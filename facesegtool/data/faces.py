"""The labelled faces a model is scored on (verify, export's contract check, tools): a prepared dir, a CelebAMask-style images/ + masks/ folder, or plain images.

Each face is read lazily and resized once to the model size, so PyTorch and TFLite see the same pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..checkpoint import CALIBRATION_DIR, REPO_ROOT
from .celebamask import CelebAMaskIndex
from .dataset import FaceParsingDataset, PreparedDataError
from .source import DataError
from ..errors import FacesegError
from ..imaging import image_files, read_rgb, square_crop

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "celebamask-mini"


class FaceSetError(FacesegError, ValueError):
    """A face folder that cannot be scored on (the message names the file and what to do); verify's VerifyError."""



@dataclass
class Face:
    name: str
    image: np.ndarray  # size x size x 3 uint8 RGB
    mask: np.ndarray | None  # size x size uint8 class index, 255 = ignore; None without labels


@dataclass
class FaceSet:
    """Faces of one data folder, read lazily and resized to the model size."""

    root: Path
    kind: str  # "prepared" | "celebamask" | "images"
    split: str | None  # None: every image of the folder
    names: list[str]
    size: int
    _read: Callable[[int], tuple[np.ndarray, np.ndarray | None]]  # i -> (RGB, class mask or None), any size
    note: str | None = None  # what the user should know about this choice of faces

    @property
    def has_masks(self) -> bool:
        return self.kind != "images"

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[Face]:
        for i, name in enumerate(self.names):
            try:
                image, mask = self._read(i)
            except (DataError, PreparedDataError) as exc:
                raise FaceSetError(str(exc)) from exc
            image, mask = square_crop(image, self.size, mask)  # centre square, resized as training does
            yield Face(name, image, mask)


def open_faces(data_dir: str | Path | None, split: str = "val", size: int = 256, limit: int | None = None) -> FaceSet:
    """The faces to verify on: a prepared dir, a CelebAMask-style images/ + masks/ folder, or plain images.

    data_dir None: the shared CelebAMask val split (../shared/data/celebamask-mini); where that is
    absent (a fresh clone), the shipped calibration/ crops, for agreement only.
    A folder's own SPLIT.txt selects its images; without one, every image is used.
    """
    note = None
    if data_dir is None:
        if DEFAULT_DATA.is_dir():
            data_dir = DEFAULT_DATA
        else:
            data_dir = CALIBRATION_DIR
            note = (f"{DEFAULT_DATA} not found, so verified on the shipped calibration/ face crops: agreement with "
                    "PyTorch only, no IoU gate, and int8 was calibrated on these very faces; pass --data DIR "
                    "(faces with masks) for IoU")
    root = Path(data_dir)
    if not root.is_dir():
        raise FaceSetError(f"{root}: no such data folder")
    try:
        if (root / "manifest.json").is_file():
            for sub in ("images", "masks"):
                if not (root / sub).is_dir():
                    raise FaceSetError(f"{root / sub}: missing from this prepared set; re-run `facesegtool data "
                                      f"prepare ... --out {root}`, or pass a folder of plain images for agreement only")
            dataset = FaceParsingDataset(root, split, size=size)
            kind, names, used_split = "prepared", dataset.names, split
            read = dataset.read
        elif (root / "images").is_dir() and (root / "masks").is_dir():
            source = CelebAMaskIndex(root)
            samples = source.samples()
            used_split = split if any(s.split for s in samples) else None
            samples = [s for s in samples if used_split is None or s.split == used_split]
            unlabelled = [s for s in samples if s.problem]
            if unlabelled:
                raise FaceSetError(
                    f"{root / 'masks'}: no mask for {len(unlabelled)} of {len(samples)} images, "
                    f"e.g. {unlabelled[0].problem[1]}"
                )
            kind, names = "celebamask", [s.name for s in samples]
            read = lambda i: source.load(samples[i])[:2]  # noqa: E731
        else:
            paths = image_files(root / "images" if (root / "images").is_dir() else root)
            listed = root / f"{split}.txt"
            used_split = split if listed.is_file() else None
            if used_split:
                wanted = {Path(n).stem for n in listed.read_text().split()}
                paths = [p for p in paths if p.stem in wanted]
            kind, names = "images", [p.stem for p in paths]
            read = lambda i: (read_rgb(paths[i]), None)  # noqa: E731
    except FaceSetError:
        raise
    except ValueError as exc:  # PreparedDataError, DataError: the message already names file and problem
        raise FaceSetError(str(exc)) from exc
    if limit is not None:
        names = names[:limit]
    if not names:
        raise FaceSetError(f"{root}: no images to verify on" + (f" in split '{used_split}'" if used_split else ""))
    return FaceSet(root, kind, used_split, names, size, read, note)
