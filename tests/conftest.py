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
import torch.nn.functional as F
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
# Scripts under tools/ (android_goldens.py) are not in the package; tests import them as modules.
sys.path.insert(0, str(REPO / "tools"))
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CELEBAMASK_MINI = SHARED / "celebamask-mini"
FACES_UNLABELLED = SHARED / "faces-unlabelled" / "celebahq"
FACES_IN_THE_WILD = SHARED / "faces-in-the-wild"

SMALL_MODEL = "unet-mobilenetv3-small"
SMALL_SIZE = 96  # px: small enough for CPU CI, large enough for eyes/lips to show up
TRAIN_IMAGES = 48
TRAIN_STEPS = 160  # ~15-20 s on one core; masks then have face, hair, eyes, brows, nose, lips

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


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_shared(CELEBAMASK_MINI)
    from facesegtool.checkpoint import DEFAULT_INPUT, make_checkpoint, save_checkpoint
    from facesegtool.models import create_model

    torch.manual_seed(0)
    name = SMALL_MODEL
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
    threads = torch.get_num_threads()
    # One thread: reproducible, and on a busy 2-core CI box faster than two threads spin-waiting.
    torch.set_num_threads(1)
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
    torch.set_num_threads(threads)
    model.eval()
    seconds = time.perf_counter() - start
    print(f"\nsmall_checkpoint: {name} trained {TRAIN_STEPS} steps in {seconds:.1f}s, loss {loss.item():.3f}")
    train_config = {"steps": TRAIN_STEPS, "images": TRAIN_IMAGES, "purpose": "tests"}
    ckpt = make_checkpoint(model, name, input_contract=contract, train_config=train_config)
    return save_checkpoint(ckpt, tmp_path_factory.mktemp("small_checkpoint") / "model.pt")


# Imported first by every Python started with this folder on PYTHONPATH (site.py): internet
# sockets then refuse to connect and each attempt is logged, so a test can show none was made.
SITECUSTOMIZE = """
import os, socket

_connect, _connect_ex = socket.socket.connect, socket.socket.connect_ex

def _log(address):
    with open(os.environ["FACESEGTOOL_NET_LOG"], "a") as f:
        f.write(f"{os.getpid()} {address!r}\\n")

def _blocked_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _log(address)
        raise OSError("network blocked by the facesegtool tests")
    return _connect(self, address)

def _blocked_connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _log(address)
        return 111  # ECONNREFUSED
    return _connect_ex(self, address)

socket.socket.connect, socket.socket.connect_ex = _blocked_connect, _blocked_connect_ex
"""


@pytest.fixture(scope="session")
def offline(tmp_path_factory: pytest.TempPathFactory):
    """Yield a context manager: inside it, this process and every child Python have no internet.

    Use: `with offline() as net_log: ...`; net_log lists the connections that were attempted.
    """
    import contextlib

    root = tmp_path_factory.mktemp("offline")
    (root / "site").mkdir()
    (root / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)

    @contextlib.contextmanager
    def block():
        net_log = root / f"attempts-{time.monotonic_ns()}.log"
        net_log.touch()
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FACESEGTOOL_NET_LOG", str(net_log))
            mp.setenv("PYTHONPATH", str(root / "site") + os.pathsep + os.environ.get("PYTHONPATH", ""))
            scope: dict = {}
            exec(SITECUSTOMIZE, scope)  # the same block in this process (patches socket.socket)
            try:
                yield net_log
            finally:
                import socket

                socket.socket.connect, socket.socket.connect_ex = scope["_connect"], scope["_connect_ex"]

    return block


@pytest.fixture(scope="session")
def small_export(small_checkpoint: Path, offline, tmp_path_factory: pytest.TempPathFactory):
    """All four variants of small_checkpoint; an ExportReport (report.variants[v].tflite / .sidecar, report.onnx).

    Exported with the network blocked (see `offline`); report.net_log lists attempted connections.
    """
    from facesegtool.export import export

    out = tmp_path_factory.mktemp("small_export")
    with offline() as net_log:
        report = export(checkpoint=small_checkpoint, quant="all", out_dir=out, num_calib=32, progress=False)
    report.net_log = net_log
    print(f"\nsmall_export:\n{report.table()}")
    return report
