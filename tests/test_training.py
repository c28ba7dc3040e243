"""Dataset, augmentation, the training loop (checkpoints, resume, DDP) and eval, on real faces.

Small on purpose (the machine is shared): unet-mobilenetv3-small at 64 px, 12 train / 4 val
faces, one torch thread.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from facesegtool.checkpoint import DEFAULT_INPUT, load_model, read_checkpoint
from facesegtool.cli import main
from facesegtool.data.augment import build_augmentation
from facesegtool.data.dataset import FaceParsingDataset, PreparedDataError, load_prepared
from facesegtool.labels import CLASSES, PALETTE, colorize
from facesegtool.metrics import scores_from_confusion
from facesegtool.training.evaluate import evaluate
from facesegtool.training.loop import TrainConfig, TrainingError, train
from conftest import CELEBAMASK_MINI, write_tiny_prepared

pytestmark = [pytest.mark.skipif(not CELEBAMASK_MINI.is_dir(), reason="shared celebamask-mini data not present"), pytest.mark.usefixtures("one_thread")]

MODEL = "unet-mobilenetv3-small"
REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return write_tiny_prepared(tmp_path_factory.mktemp("training") / "prep", n_train=12, n_val=4, size=64)


def config(prepared: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(prepared), out=str(out), model=MODEL, epochs=1, batch_size=4, workers=0, threads=1,
                progress=False, lr=3e-3)
    base.update(kw)
    return TrainConfig(**base)


# --- dataset and augmentation ------------------------------------------------------------------


def test_dataset_gives_rgb_normalised_tensors(prepared):
    ds = FaceParsingDataset(prepared, "val")
    x, y = ds[0]
    assert x.shape == (3, 64, 64) and x.dtype == torch.float32
    assert y.shape == (64, 64) and y.dtype == torch.int64
    # channel 0 is red: compare with PIL, which reads PNGs as RGB (OpenCV reads BGR)
    rgb = np.asarray(Image.open(prepared / "images" / f"{ds.names[0]}.png").convert("RGB"))
    mean, std = DEFAULT_INPUT["mean"][0], DEFAULT_INPUT["std"][0]
    red = (rgb[..., 0] / 255.0 - mean) / std
    assert np.allclose(x[0].numpy(), red, atol=1e-5)
    assert not np.allclose(x[2].numpy(), red, atol=1e-2)  # a face is not grey: blue differs
    assert -1.0 <= x.min() and x.max() <= 1.0
    assert set(y.unique().tolist()) <= set(range(len(CLASSES)))
    # another size is resized on the fly, masks nearest (no invented class ids)
    x32, y32 = FaceParsingDataset(prepared, "val", size=32)[0]
    assert x32.shape == (3, 32, 32) and set(y32.unique().tolist()) <= set(y.unique().tolist())


def test_not_a_prepared_dir_is_a_clear_error(tmp_path, prepared):
    with pytest.raises(PreparedDataError, match="no manifest.json"):
        load_prepared(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(PreparedDataError, match="not a facesegtool manifest"):
        load_prepared(tmp_path)
    assert len(load_prepared(prepared)["items"]) == 16


def test_augmentation_is_seeded_and_keeps_image_and_mask_aligned(prepared):
    rgb, mask = FaceParsingDataset(prepared, "train").read(0)
    a = build_augmentation("strong", seed=7)(image=rgb, mask=mask)
    b = build_augmentation("strong", seed=7)(image=rgb, mask=mask)
    c = build_augmentation("strong", seed=8)(image=rgb, mask=mask)
    assert np.array_equal(a["image"], b["image"]) and np.array_equal(a["mask"], b["mask"])
    assert not np.array_equal(a["image"], c["image"])
    # geometry: draw the mask as colours, transform it as an image, read it back by nearest palette colour
    strong = build_augmentation("strong", seed=3)
    geometry = A.Compose([t for t in strong.transforms if isinstance(t, (A.HorizontalFlip, A.Affine))], seed=3)
    moved_any = False
    for _ in range(6):
        out = geometry(image=colorize(mask), mask=mask)
        dist = ((out["image"][:, :, None, :].astype(int) - PALETTE[None, None].astype(int)) ** 2).sum(-1)
        agree = (dist.argmin(-1) == out["mask"]).mean()
        assert agree > 0.95, agree  # only interpolated borders may differ
        # new pixels (padding) are background, no class id is invented
        assert set(np.unique(out["mask"])) <= set(np.unique(mask)) | {0}
        moved_any |= not np.array_equal(out["mask"], mask)
    assert moved_any
    with pytest.raises(ValueError, match="unknown augmentation strength"):
        build_augmentation("wild")


# --- training ------------------------------------------------------------------------------------


def test_train_writes_loadable_checkpoints_metrics_and_curves(prepared, tmp_path):
    out = tmp_path / "run"
    result = train(config(prepared, out, epochs=2, loss="focal", weights="proportional", scheduler="onecycle"))
    assert result.epochs_run == 2 and result.best_path.is_file() and result.last_path.is_file()
    for path in (result.best_path, result.last_path):
        raw = torch.load(path, weights_only=True)  # plain data, no pickle
        assert raw["model"]["name"] == MODEL and raw["classes"] == list(CLASSES)
        assert raw["input"]["size"] == 64 and raw["train_config"]["loss"] == "focal"
    model, ckpt = load_model(result.best_path)
    assert model(torch.zeros(1, 3, 64, 64)).shape == (1, len(CLASSES), 64, 64)
    assert ckpt["epoch"] == result.best_epoch
    assert ckpt["metrics"]["macro_f1_no_bg"] == pytest.approx(result.best_metric, abs=1e-5)
    last = read_checkpoint(result.last_path)
    assert last["epoch"] == 2 and {"optimizer", "scheduler", "rng"} <= last.keys()
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert {"train_loss", "lr", "val_macro_iou", "val_macro_f1_no_bg", "iou_hair", "iou_beard"} <= rows[0].keys()
    assert 0.0 <= float(rows[1]["val_macro_iou_no_bg"]) <= 1.0
    assert float(rows[0]["train_loss"]) > float(rows[1]["train_loss"])  # the net learns
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def adam_steps(ckpt: dict) -> int:
    return int(next(iter(ckpt["optimizer"]["state"].values()))["step"])


def test_resume_after_a_kill_continues_from_the_saved_epoch(prepared, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "facesegtool.cli", "train", "--data", str(prepared), "--out", str(out),
           "--model", MODEL, "--epochs", "100", "--batch-size", "4", "--workers", "0", "--threads", "1",
           "--patience", "0", "--resume"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 600
        while not (out / "last.pt").exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "no epoch finished in 10 minutes"
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)  # a hard kill, mid-epoch
        proc.wait()
        proc.stderr.close()
    saved = read_checkpoint(out / "last.pt")  # atomic writes: never a torn file
    done = saved["epoch"]
    assert 1 <= done < 100
    steps_per_epoch = 12 // 4
    assert adam_steps(saved) == done * steps_per_epoch

    result = train(config(prepared, out, epochs=done + 1, resume=True))
    resumed = read_checkpoint(out / "last.pt")
    assert resumed["epoch"] == done + 1 and result.epochs_run == done + 1
    assert [h["epoch"] for h in result.history] == list(range(1, done + 2))
    assert result.history[:done] == saved["history"]  # earlier epochs kept, not redone
    assert adam_steps(resumed) == (done + 1) * steps_per_epoch  # optimizer state carried over
    assert resumed["train_config"]["model"] == MODEL


def test_an_existing_run_is_not_overwritten_without_resume(prepared, tmp_path):
    out = tmp_path / "run"
    train(config(prepared, out))
    with pytest.raises(TrainingError, match="--resume"):
        train(config(prepared, out))
    result = CliRunner().invoke(main, ["train", "--data", str(prepared), "--out", str(out), "--model", MODEL])
    assert result.exit_code == 2 and "already holds a run" in result.output
    result = CliRunner().invoke(main, ["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r2")])
    assert result.exit_code == 2 and "not a folder" in result.output


def test_ddp_two_gloo_processes_train_one_epoch(prepared, tmp_path):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "facesegtool.cli", "train", "--data", str(prepared), "--out", str(out), "--model", MODEL,
           "--epochs", "1", "--batch-size", "2", "--workers", "0", "--threads", "1", "--device", "cpu"]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout
    last = read_checkpoint(out / "last.pt")
    # each of the 2 ranks saw half of the 12 images: 3 steps of 2, not the 6 of one process
    assert adam_steps(last) == 3
    assert last["epoch"] == 1 and len(last["history"]) == 1
    # the confusion matrix was summed over both ranks: every val pixel counted once
    assert np.array(last["metrics"]["confusion"]).sum() == 4 * 64 * 64


# --- eval ----------------------------------------------------------------------------------------


def test_eval_writes_table_confusion_overlays_and_latency(prepared, tmp_path):
    result = train(config(prepared, tmp_path / "run", epochs=1))
    report_dir = tmp_path / "report"
    cli = CliRunner().invoke(main, ["eval", "--checkpoint", str(result.best_path), "--data", str(prepared),
                                    "--out", str(report_dir), "--latency-runs", "5", "--overlays", "3"])
    assert cli.exit_code == 0, cli.output
    assert "macro-no-bg" in cli.output and "latency" in cli.output
    report = json.loads((report_dir / "scores.json").read_text())
    confusion = np.array(report["scores"]["confusion"])
    assert confusion.sum() == 4 * 64 * 64
    again = scores_from_confusion(confusion)
    assert report["scores"]["macro_iou_no_bg"] == pytest.approx(again.macro_iou_no_bg, abs=1e-5)
    assert report["latency_ms"]["median"] > 0 and report["latency_ms"]["threads"] == 1
    for name in ("confusion.png", "overlays.png"):
        picture = Image.open(report_dir / name)
        assert picture.size[0] > 300 and picture.size[1] > 300
    assert (report_dir / "table.txt").read_text().count("\n") >= len(CLASSES) + 3
    # same numbers straight from the library call
    direct = evaluate(result.best_path, prepared, out=tmp_path / "direct", latency_runs=3, overlays=1, progress=False)
    assert direct.scores.macro_iou == pytest.approx(report["scores"]["macro_iou"], abs=1e-5)
