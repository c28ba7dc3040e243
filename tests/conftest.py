"""Shared fixtures and helpers; the small trained checkpoint and its TFLite exports are built once per session.

    small_checkpoint  Path of a small registry model briefly trained (CPU, well under a minute)
                      on real celebamask-mini faces at SMALL_SIZE px, so its masks are not trivial.
    small_export      ExportReport of that checkpoint exported to fp32, fp16, dynamic and int8
                      (calibrated on the shipped calibration/ crops) in a session tmp dir.
    offline           a context manager: no internet for this process and its child Pythons.
    tiny_checkpoint   an untrained small U-Net at TINY px (per module), for runs stopped by bad input.
    fake_adb          the fake `adb` of fixtures/fake_adb.py first on PATH, with its scenarios.
    disks             mounts small tmpfs disks (real ENOSPC) for one test.

Helpers test modules import from here (never from each other): require_shared, val_faces,
read_celebamask_pairs, write_tiny_prepared, face_jpeg, invoke and assert_clean_error (the CLI's
one-`error:`-line rule), ParallelExports (exports two at a time, for the conversion matrices).
The own-model architectures' training and saving live in own_model_training.py.

Tests that need them skip cleanly when ../shared/data is absent (CI has it).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner, Result
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


@pytest.fixture(scope="module")
def one_thread():
    """One torch intra-op thread for a module (`pytest.mark.usefixtures("one_thread")`): the 2 cores are shared with
    the test's own subprocesses, and more threads only spin against them."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


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


# --- shared by the bad-input, faults, security, video and bench tests ---------------------------------

TINY = 64  # px: an untrained net is enough where the input is refused before any real work
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained small U-Net at 64 px: for runs that must stop at bad input, or only need a model that runs."""
    from facesegtool.checkpoint import DEFAULT_INPUT, make_checkpoint, save_checkpoint
    from facesegtool.models import create_model

    torch.manual_seed(0)
    model = create_model("unet-mobilenetv3-small").eval()
    ckpt = make_checkpoint(model, "unet-mobilenetv3-small", input_contract=dict(DEFAULT_INPUT, size=TINY))
    return save_checkpoint(ckpt, tmp_path_factory.mktemp("tiny") / "tiny.pt")


def face_jpeg() -> Path:
    from facesegtool.export.calibration import CALIBRATION_DIR

    return sorted(CALIBRATION_DIR.glob("*.jpg"))[0]  # a real 256 px face crop, shipped with the repo


def assert_clean_error(result: Result, *fragments: str) -> str:
    """Exit 2, no traceback, and one `error:` line holding every fragment (file names, advice); returns it."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]
    matching = [ln for ln in lines if all(f in ln for f in fragments)]
    assert matching, f"no error line with {fragments} in:\n{result.output}"
    return matching[0]


def invoke(*args: str | Path) -> Result:
    from facesegtool.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def fake_adb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Put the fake `adb` first on PATH; returns a function setting the scenario and reading its state."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(f"#!{sys.executable}\n" + (FIXTURES / "fake_adb.py").read_text())
    adb.chmod(adb.stat().st_mode | stat.S_IXUSR)
    state = tmp_path / "adb_state.json"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_STATE", str(state))
    monkeypatch.setenv("FAKE_ADB_FIXTURES", str(FIXTURES / "benchmark_model"))
    monkeypatch.delenv("FACESEGTOOL_BENCHMARK_MODEL", raising=False)

    class Fake:
        def scenario(self, name: str, **env: str) -> None:
            monkeypatch.setenv("FAKE_ADB_SCENARIO", name)
            for k, v in env.items():
                monkeypatch.setenv(k, v)

        def state(self) -> dict:
            return json.loads(state.read_text())

    return Fake()


def small_disk(path: Path, megabytes: float) -> Path:
    """A tmpfs of that size at path: a real full disk (ENOSPC), not a mock."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("needs root to mount a small tmpfs")
    path.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={int(megabytes * 1024)}k", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    return path


@pytest.fixture()
def disks():
    """make(path, megabytes) mounts a small tmpfs there; all are unmounted after the test."""
    mounted = []

    def make(path: Path, megabytes: float) -> Path:
        mounted.append(small_disk(path, megabytes))
        return path

    yield make
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def write_tiny_prepared(out: Path, n_train: int = 12, n_val: int = 4, size: int = 64) -> Path:
    """n_train + n_val real pairs at size x size, prepared as training reads them.

    `facesegtool data prepare` (the library call) over the first n_train names of celebamask-mini's
    train.txt and n_val of its val.txt, linked into a temporary source dir.
    """
    from facesegtool.data.celebamask import CelebAMaskIndex
    from facesegtool.data.prepare import prepare

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


# --- exports run two at a time ----------------------------------------------------------------------------

EXPORT_CHILD = """
import json, sys
from facesegtool.export import export
report = export(**json.loads(sys.argv[1]))
print(json.dumps({v: {"tflite": str(r.tflite), "sidecar": str(r.sidecar), "graph": r.graph}
                  for v, r in report.variants.items()}))
"""


class ParallelExports:
    """export() calls, each in its own Python, at most `at_once` running: onnx2tf's conversion is mostly one
    core's work, so on a 2-core machine two conversions take about the time of one."""

    def __init__(self, root: Path, at_once: int = 2):
        self.root, self.at_once = root, at_once
        self.runs: dict[str, tuple[subprocess.Popen, Path, Path]] = {}

    def start(self, key: str, **kwargs) -> None:
        """Start export(**kwargs) (progress off) once fewer than at_once are running; key names its result."""
        while sum(proc.poll() is None for proc, _, _ in self.runs.values()) >= self.at_once:
            time.sleep(0.5)
        stdout, stderr = self.root / f"{key}.out", self.root / f"{key}.err"
        args = json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in dict(kwargs, progress=False).items()})
        env = dict(os.environ, OMP_NUM_THREADS="1")  # the exports and this process share the cores
        with open(stdout, "w") as out, open(stderr, "w") as err:
            proc = subprocess.Popen([sys.executable, "-c", EXPORT_CHILD, args], stdout=out, stderr=err, env=env)
        self.runs[key] = (proc, stdout, stderr)

    def result(self, key: str) -> dict[str, dict]:
        """Wait for that export: variant -> {"tflite": Path, "sidecar": Path, "graph": dict}; fails with its stderr."""
        proc, stdout, stderr = self.runs[key]
        assert proc.wait() == 0, stderr.read_text()[-3000:]
        variants = json.loads(stdout.read_text().splitlines()[-1])
        return {v: dict(r, tflite=Path(r["tflite"]), sidecar=Path(r["sidecar"])) for v, r in variants.items()}

    def stop(self) -> None:
        for proc, _, _ in self.runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
