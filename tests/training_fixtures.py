"""Shared by test_losses.py and test_training.py: a tiny prepared dataset of real faces.

`facesegtool data prepare` (the library call) over a celebamask-mini subset: the first
n_train names of its train.txt and n_val of its val.txt, linked into a temporary source dir.
"""

from __future__ import annotations

import os
from pathlib import Path

from facesegtool.data.celebamask import CelebAMaskIndex
from facesegtool.data.prepare import prepare

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CELEBAMASK_MINI = SHARED / "celebamask-mini"


def write_tiny_prepared(out: Path, n_train: int = 12, n_val: int = 4, size: int = 64) -> Path:
    """n_train + n_val real pairs at size x size, prepared as training reads them."""
    source = out.parent / f"{out.name}-source"
    (source / "images").mkdir(parents=True)
    (source / "masks").mkdir()
    splits = {
        "train": (CELEBAMASK_MINI / "train.txt").read_text().split()[:n_train],
        "val": (CELEBAMASK_MINI / "val.txt").read_text().split()[:n_val],
    }
    for split, names in splits.items():
        (source / f"{split}.txt").write_text("\n".join(names) + "\n")
        for name in names:
            os.symlink(CELEBAMASK_MINI / "images" / f"{name}.jpg", source / "images" / f"{name}.jpg")
            os.symlink(CELEBAMASK_MINI / "masks" / f"{name}.png", source / "masks" / f"{name}.png")
    prepare([CelebAMaskIndex(source)], out, size=size, progress=False)
    return out
