"""Read a prepared dataset (written by `facesegtool data prepare`) for training and evaluation.

A prepared dir holds manifest.json, images/<name>.png (RGB) and masks/<name>.png (11-class
index, 255 = ignore). Samples come out as the model's input contract expects them:
a float 3 x H x W tensor x = (rgb / 255 - mean) / std, and a long H x W mask.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ..checkpoint import DEFAULT_INPUT
from ..contract import Normalization
from ..errors import FacesegError
from ..imaging import read_index_mask, read_rgb, resize_image, resize_mask
from ..labels import CLASSES
from .source import PREPARED_FORMAT, BadSampleError

SPLITS = ("train", "val")


class PreparedDataError(FacesegError, ValueError):
    """The folder is not a usable prepared dataset (the message names the file and the problem)."""


def load_prepared(path: str | Path) -> dict:
    """Read and check PREPARED_DIR/manifest.json; returns the manifest dict."""
    path = Path(path)
    manifest_path = path / "manifest.json"
    if not path.is_dir():
        raise PreparedDataError(f"{path}: not a folder (expected a dir written by `facesegtool data prepare`)")
    if not manifest_path.is_file():
        raise PreparedDataError(
            f"{path}: no manifest.json, so not a prepared dataset; run `facesegtool data prepare ... --out {path}`"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PreparedDataError(f"{manifest_path}: unreadable manifest: {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != PREPARED_FORMAT:
        raise PreparedDataError(f"{manifest_path}: not a facesegtool manifest (no 'format': '{PREPARED_FORMAT}')")
    for key in ("size", "classes", "items"):
        if key not in manifest:
            raise PreparedDataError(f"{manifest_path}: missing '{key}'")
    if list(manifest["classes"]) != list(CLASSES):
        raise PreparedDataError(
            f"{manifest_path}: classes {manifest['classes']} differ from this tool's {list(CLASSES)}"
        )
    return manifest


def split_names(manifest: dict, split: str) -> list[str]:
    if split not in SPLITS:
        raise PreparedDataError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return [item["name"] for item in manifest["items"] if item.get("split") == split]


def read_pair(root: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """One prepared pair: RGB uint8 H x W x 3 image and uint8 H x W class mask."""
    image_path, mask_path = root / "images" / f"{name}.png", root / "masks" / f"{name}.png"
    try:  # the tool's one reader: RGB (the model contract's order), a truncated file refused
        rgb = read_rgb(image_path)
    except BadSampleError as exc:
        raise PreparedDataError(f"{image_path}: missing or unreadable image ({exc.reason})") from None
    try:
        mask = read_index_mask(mask_path)
    except BadSampleError as exc:
        raise PreparedDataError(f"{mask_path}: missing, unreadable, or not a single-channel index mask "
                                f"({exc.reason})") from None
    if mask.shape != rgb.shape[:2]:
        raise PreparedDataError(f"{mask_path}: mask is {mask.shape[::-1]}, image is {rgb.shape[1::-1]}")
    return rgb, mask


def to_input_tensor(rgb: np.ndarray, contract: dict = DEFAULT_INPUT) -> torch.Tensor:
    """RGB uint8 H x W x 3 -> normalised float 3 x H x W, per the input contract (contract.Normalization)."""
    return Normalization.of(contract).tensor(rgb)


class FaceParsingDataset(Dataset):
    """(image tensor 3 x H x W, mask tensor H x W long) pairs of one split of a prepared dir.

    transform: called as transform(image=rgb_uint8, mask=mask_uint8) -> {"image", "mask"}
    (an albumentations pipeline, see data/augment.py), before normalisation.
    size: resize to size x size if it differs from the prepared size (masks nearest).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        transform: Callable | None = None,
        size: int | None = None,
        contract: dict = DEFAULT_INPUT,
    ):
        self.root = Path(root)
        self.manifest = load_prepared(self.root)
        self.split = split
        self.names = split_names(self.manifest, split)
        if not self.names:
            raise PreparedDataError(f"{self.root}: no '{split}' items in manifest.json")
        self.transform = transform
        self.size = int(size or self.manifest["size"])
        self.contract = contract

    def __len__(self) -> int:
        return len(self.names)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw RGB image and mask (resized to self.size, no augmentation)."""
        rgb, mask = read_pair(self.root, self.names[index])
        return resize_image(rgb, self.size), resize_mask(mask, self.size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rgb, mask = self.read(index)
        if self.transform is not None:
            out = self.transform(image=rgb, mask=mask)
            rgb, mask = out["image"], out["mask"]
        return to_input_tensor(rgb, self.contract), torch.from_numpy(np.ascontiguousarray(mask)).long()


def seed_worker(worker_id: int) -> None:
    """DataLoader worker_init_fn: give each worker its own augmentation stream.

    albumentations pipelines carry their own RNG, which forked workers would otherwise share
    (every worker producing the same augmentations). torch seeds each worker differently from
    the main process's generator, so the run stays reproducible from the training seed.
    """
    info = torch.utils.data.get_worker_info()
    seed = int(torch.initial_seed() % 2**32)
    np.random.seed(seed)
    datasets = getattr(info.dataset, "datasets", [info.dataset]) if info else []  # ConcatDataset: each part
    for ds in datasets:
        transform = getattr(ds, "transform", None)
        if transform is not None and hasattr(transform, "set_random_seed"):
            transform.set_random_seed(seed)


