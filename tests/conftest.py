"""Shared fixtures: a small trained checkpoint and its TFLite exports, built once per session.

    small_checkpoint  Path of a small registry model briefly trained (CPU, well under a minute)
                      on real celebamask-mini faces at SMALL_SIZE px, so its masks are not trivial.
    small_export      ExportReport of that checkpoint exported to fp32, fp16, dynamic and int8
                      (calibrated on the shipped calibration/ crops) in a session tmp dir.

Tests that need them skip cleanly when ../shared/data is absent (CI has it).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CELEBAMASK_MINI = SHARED / "celebamask-mini"
FACES_UNLABELLED = SHARED / "faces-unlabelled" / "celebahq"
FACES_IN_THE_WILD = SHARED / "faces-in-the-wild"

SMALL_MODEL = "unet-mobilenetv3-small"
SMALL_SIZE = 96  # px: small enough for CPU CI, large enough for eyes/lips to show up
TRAIN_IMAGES = 48
TRAIN_STEPS = 80

# onnx2tf runs `onnxsim` as a subprocess: the venv's bin must be on PATH, however pytest was started.
os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")


def require_shared(*paths: Path) -> None:
    for p in paths or (SHARED,):
        if not p.exists():
            pytest.skip(f"shared data not found: {p}")


def read_celebamask_pairs(names: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Real celebamask-mini faces (RGB uint8 N x size x size x 3) and 11-class masks, resized like training."""
    from facesegtool.labels import celebamask_lut

    lut = celebamask_lut()
    images, masks = [], []
    for stem in names:
        bgr = cv2.imread(str(CELEBAMASK_MINI / "images" / f"{stem}.jpg"), cv2.IMREAD_COLOR)
        ids = np.array(Image.open(CELEBAMASK_MINI / "masks" / f"{stem}.png"))  # palette PNG: PIL keeps indices
        images.append(cv2.cvtColor(cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
        masks.append(cv2.resize(lut[ids], (size, size), interpolation=cv2.INTER_NEAREST))
    return np.stack(images), np.stack(masks)


def val_faces(n: int = 8, size: int = SMALL_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The first n faces of the fixed val split (never used to train small_checkpoint)."""
    names = (CELEBAMASK_MINI / "val.txt").read_text().split()[:n]
    return read_celebamask_pairs(names, size)


class _TinyStandIn(nn.Module):
    """TEMPORARY stand-in used only while models/unet.py is not in the repo yet."""

    def __init__(self, num_classes: int = 11, width: int = 16):
        super().__init__()

        def block(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

        self.enc1, self.enc2, self.enc3 = block(3, width, 2), block(width, 2 * width, 2), block(2 * width, 4 * width, 2)
        self.dec2, self.dec1 = block(6 * width, 2 * width, 1), block(3 * width, width, 1)
        self.head = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2.0, mode="bilinear"), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2.0, mode="bilinear"), e1], 1))
        return F.interpolate(self.head(d1), scale_factor=2.0, mode="bilinear")


def _small_model_name() -> str:
    from facesegtool import models

    try:
        models.create_model(SMALL_MODEL)
        return SMALL_MODEL
    except (ImportError, ValueError):
        # TEMPORARY: the registry cannot import its model files yet; register a tiny stand-in.
        models._MODEL_MODULES = tuple(
            m for m in models._MODEL_MODULES if (Path(models.__file__).parent / f"{m}.py").exists()
        )
        if "tiny-standin" not in models.list_models():
            models.register_model("tiny-standin")(_TinyStandIn)
        return "tiny-standin"


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_shared(CELEBAMASK_MINI)
    from facesegtool.checkpoint import DEFAULT_INPUT, make_checkpoint, save_checkpoint
    from facesegtool.models import create_model

    torch.manual_seed(0)
    name = _small_model_name()
    names = (CELEBAMASK_MINI / "train.txt").read_text().split()[:TRAIN_IMAGES]
    images, masks = read_celebamask_pairs(names, SMALL_SIZE)
    contract = dict(DEFAULT_INPUT, size=SMALL_SIZE)
    mean = torch.tensor(contract["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(contract["std"]).view(1, 3, 1, 1)
    x_all = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / contract["scale"] - mean) / std
    y_all = torch.from_numpy(masks).long()

    model = create_model(name)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(TRAIN_STEPS):
        idx = torch.randint(0, len(x_all), (8,), generator=gen)
        x, y = x_all[idx], y_all[idx]
        flip = torch.rand(1, generator=gen).item() < 0.5  # left/right classes are merged: flips are label-safe
        if flip:
            x, y = x.flip(-1), y.flip(-1)
        loss = F.cross_entropy(model(x), y, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    print(f"\nsmall_checkpoint: {name} trained {TRAIN_STEPS} steps in {time.perf_counter() - start:.1f}s, loss {loss.item():.3f}")
    ckpt = make_checkpoint(
        model, name, input_contract=contract, train_config={"steps": TRAIN_STEPS, "images": TRAIN_IMAGES, "purpose": "tests"}
    )
    return save_checkpoint(ckpt, tmp_path_factory.mktemp("small_checkpoint") / "model.pt")


@pytest.fixture(scope="session")
def small_export(small_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    """All four variants of small_checkpoint; an ExportReport (report.variants[v].tflite / .sidecar, report.onnx)."""
    from facesegtool.export import export

    out = tmp_path_factory.mktemp("small_export")
    return export(checkpoint=small_checkpoint, quant="all", out_dir=out, num_calib=32)
