"""Bad input and faults, round two (issue 25): what a hostile new user tried, on real faces, through the CLI.

Each must end as one `error:` line naming the file and what to do (exit 2), or a warning where the
run can go on; nothing a user owns is deleted. Disk-full cases run on a small tmpfs (root only).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from conftest import CELEBAMASK_MINI, TINY, assert_clean_error, invoke, write_tiny_prepared

from facesegtool.imaging import read_rgb
from facesegtool.export.calibration import load_calibration_images
from facesegtool.sweep import SpecError, load_spec
from facesegtool.training.loop import TrainConfig, TrainingError, train
from facesegtool.training.run_lock import LOCK_NAME

pytestmark = pytest.mark.skipif(not CELEBAMASK_MINI.is_dir(), reason="shared celebamask-mini data not present")

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    return write_tiny_prepared(tmp_path_factory.mktemp("faults") / "prep", n_train=8, n_val=4, size=TINY)


def copy_of(prepared: Path, where: Path) -> Path:
    return Path(shutil.copytree(prepared, where))


def listing(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def source_dir(root: Path, names: list[str], split: str = "train") -> Path:
    """A CelebAMask index-layout source of real faces (links), with its own split file."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for name in names:
        os.symlink(CELEBAMASK_MINI / "images" / f"{name}.jpg", root / "images" / f"{name}.jpg")
        os.symlink(CELEBAMASK_MINI / "masks" / f"{name}.png", root / "masks" / f"{name}.png")
    (root / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


def mini_names(n: int, split: str = "train") -> list[str]:
    return (CELEBAMASK_MINI / f"{split}.txt").read_text().split()[:n]


def train_config(data: Path, out: Path, **kw) -> TrainConfig:
    base = dict(data=str(data), out=str(out), model="unet-mobilenetv3-small", epochs=1, batch_size=4, workers=0,
                threads=1, progress=False, lr=3e-3, pretrained="none", augment="none")
    return TrainConfig(**{**base, **kw})


# --- high: data carve never deletes what it did not write ------------------------------------------


def test_carve_refuses_to_delete_a_users_folder(prepared, tmp_path):
    users = tmp_path / "v"
    users.mkdir()
    (users / "thesis.txt").write_text("three years of work\n")
    result = invoke("data", "carve", prepared, "--holdout", "2", "--out", users)
    assert_clean_error(result, f"--out {users}", "not a set written by `data carve`", "delete")
    assert (users / "thesis.txt").read_text() == "three years of work\n"
    assert sorted(p.name for p in users.iterdir()) == ["thesis.txt"]


def test_carve_into_the_prepared_set_itself_keeps_it(prepared, tmp_path):
    own = copy_of(prepared, tmp_path / "P")
    before = listing(own)
    result = invoke("data", "carve", own, "--holdout", "2", "--out", own)
    assert_clean_error(result, f"--out {own}", "is the prepared set", "would delete its images and masks")
    assert listing(own) == before
    assert not (own / "images").is_symlink() and len(list((own / "images").iterdir())) == 12
    # a folder inside it is refused too; a carved set may be carved again over itself
    assert_clean_error(invoke("data", "carve", own, "--holdout", "2", "--out", own / "dev"), "inside or around")
    dev = tmp_path / "dev"
    assert invoke("data", "carve", own, "--holdout", "2", "--out", dev).exit_code == 0
    again = invoke("data", "carve", own, "--holdout", "3", "--out", dev)
    assert again.exit_code == 0, again.output
    assert json.loads((dev / "manifest.json").read_text())["carved_from"]["holdout"] == 3


def test_carve_with_a_missing_mask_names_it(prepared, tmp_path):
    broken = copy_of(prepared, tmp_path / "P")
    name = mini_names(1)[0]
    (broken / "masks" / f"{name}.png").unlink()
    result = invoke("data", "carve", broken, "--holdout", "2", "--out", tmp_path / "dev")
    assert_clean_error(result, f"{broken / 'masks' / name}.png: missing or unreadable mask", "data prepare")
    assert not (tmp_path / "dev").exists()


# --- medium ------------------------------------------------------------------------------------


def test_two_images_of_one_name_are_refused_not_paired_by_sort_order(tmp_path):
    names = mini_names(3)
    src = source_dir(tmp_path / "src", names)
    other_face = CELEBAMASK_MINI / "images" / f"{mini_names(4)[3]}.jpg"
    Image.open(other_face).save(src / "images" / f"{names[0]}.png")  # NAME.png beside NAME.jpg: another face
    result = invoke("data", "prepare", "--celebamask", src, "--size", TINY, "--out", tmp_path / "p")
    assert_clean_error(result, f"{names[0]}.jpg", f"{names[0]}.png", "rename or remove all but one")
    skipped = invoke("data", "prepare", "--celebamask", src, "--size", TINY, "--out", tmp_path / "p", "--skip-bad")
    assert skipped.exit_code == 0, skipped.output
    manifest = json.loads((tmp_path / "p" / "manifest.json").read_text())
    assert names[0] not in {it["name"] for it in manifest["items"]}
    assert [s["reason"] for s in manifest["skipped"] if "images are named" in s["reason"]]


def test_a_second_train_into_the_same_out_stops_naming_the_first(prepared, tmp_path):
    out = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "facesegtool.cli", "train", "--data", str(prepared), "--out", str(out), "--epochs", "2",
         "--batch-size", "4", "--workers", "0", "--threads", "1", "--pretrained", "none", "--augment", "none"],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lock = out / LOCK_NAME
        deadline = time.time() + 120
        while time.time() < deadline and not (lock.is_file() and lock.read_text().strip()):
            time.sleep(0.2)
        assert lock.is_file(), "the first run never locked its folder"
        second = invoke("train", "--data", prepared, "--out", out, "--epochs", "1", "--threads", "1")
        assert_clean_error(second, f"--out {out}", f"pid {first.pid}", "choose another --out")
        output, _ = first.communicate(timeout=300)
    finally:
        first.kill()
    assert first.returncode == 0, output
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["train_config"]["epochs"] == 2  # best.pt is the first run's, untouched by the second


def cli(*args: str | Path) -> subprocess.CompletedProcess:
    """The CLI in its own process: where a bad option once segfaulted (rc 139), this test process survives."""
    return subprocess.run([sys.executable, "-m", "facesegtool.cli", *map(str, args)], capture_output=True, text=True,
                          env=ENV, timeout=300)


def assert_clean_exit(run: subprocess.CompletedProcess, *fragments: str) -> None:
    assert run.returncode == 2 and "Traceback" not in run.stderr, (run.returncode, run.stderr[-2000:])
    errors = [ln for ln in run.stderr.splitlines() if ln.startswith("error: ")]
    assert [ln for ln in errors if all(f in ln for f in fragments)], run.stderr


@pytest.mark.parametrize("threads", ["100000", "-3"])
def test_train_threads_out_of_range_is_refused_before_anything(prepared, tmp_path, threads):
    out = tmp_path / "run"
    assert_clean_exit(cli("train", "--data", prepared, "--out", out, "--threads", threads),
                      f"--threads {threads}", "give a thread count from 1 to")
    assert not out.exists()  # no empty run folder left


def test_eval_and_bench_threads_out_of_range(tiny_checkpoint, prepared, tmp_path):
    assert_clean_exit(cli("eval", "--checkpoint", tiny_checkpoint, "--data", prepared, "--threads", "-1",
                          "--out", tmp_path / "e"), "--threads -1", "give a thread count")
    assert not (tmp_path / "e").exists()
    assert_clean_exit(cli("bench", "--checkpoint", tiny_checkpoint, "--threads", "100000", "--out", tmp_path / "b"),
                      "--threads 100000", "give a thread count")


def test_undecodable_sidecar_onnx_as_tflite_and_binary_spec(tiny_checkpoint, tmp_path):
    binary = bytes(range(256)) * 8
    model = tmp_path / "m_fp32.tflite"
    model.write_bytes(binary)
    (tmp_path / "m_fp32.json").write_bytes(binary)
    result = invoke("verify", "--checkpoint", tiny_checkpoint, "--tflite", model, "--limit", "2")
    assert_clean_error(result, str(tmp_path / "m_fp32.json"), "not a sidecar", "facesegtool export")
    onnx = tmp_path / "m.onnx"
    onnx.write_bytes(binary)
    result = invoke("verify", "--checkpoint", tiny_checkpoint, "--tflite", onnx, "--limit", "2")
    assert_clean_error(result, str(onnx), "not a .tflite")
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(binary)
    assert_clean_error(invoke("sweep", spec, "--out", tmp_path / "s"), str(spec), "not a text file")


def test_train_on_a_full_disk_stops_before_the_first_epoch(prepared, tmp_path, disks):
    disk = disks(tmp_path / "disk", 3)
    out = disk / "run"
    started = time.time()
    result = invoke("train", "--data", prepared, "--out", out, "--epochs", "1", "--threads", "1",
                    "--pretrained", "none")
    line = assert_clean_error(result, f"--out {out}", "MB free", "free some space or choose another --out")
    assert "epoch 1/" not in result.output, line  # refused up front, not after a whole epoch
    assert not out.exists() and time.time() - started < 60


def test_export_with_room_for_the_onnx_only(tiny_checkpoint, tmp_path, disks):
    weights = tiny_checkpoint.stat().st_size
    disk = disks(tmp_path / "disk", weights * 1.4 / 1e6 + 0.3)
    out = disk / "exp"
    result = invoke("export", "--checkpoint", tiny_checkpoint, "--quant", "fp32", "--out", out)
    assert_clean_error(result, str(out), "MB free", "free some space")
    left = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    assert not [p for p in left if p.stat().st_size == 0], left  # no empty *.onnx2tf-failed.log
    assert not [p for p in left if p.suffix in (".tflite", ".onnx")]


def gray16_face(path: Path) -> tuple[Path, float]:
    """A real face saved as a 16-bit grayscale PNG (values x 257), and its true 8-bit mean."""
    gray = np.asarray(Image.open(CELEBAMASK_MINI / "images" / f"{mini_names(1)[0]}.jpg").convert("L"))
    Image.fromarray(gray.astype(np.uint16) * 257).save(path)
    assert Image.open(path).mode.startswith("I")
    return path, float(gray.mean())


def test_16_bit_png_is_scaled_not_clipped_everywhere(tmp_path):
    face, true_mean = gray16_face(tmp_path / "face16.png")
    assert abs(read_rgb(face).mean() - true_mean) < 0.6  # predict and verify read through read_rgb too
    calib = tmp_path / "calib"
    calib.mkdir()
    shutil.copy(face, calib / "face16.png")
    assert abs(load_calibration_images(calib, 256).mean() - true_mean) < 1.0
    name = mini_names(1)[0]
    src = source_dir(tmp_path / "src", [name])
    (src / "images" / f"{name}.jpg").unlink()
    shutil.copy(face, src / "images" / f"{name}.png")
    assert invoke("data", "prepare", "--celebamask", src, "--size", TINY, "--out", tmp_path / "p").exit_code == 0
    prepared_mean = np.asarray(Image.open(tmp_path / "p" / "images" / f"{name}.png")).mean()
    assert abs(prepared_mean - true_mean) < 2.0


# --- low ---------------------------------------------------------------------------------------------


def test_spec_option_types_are_checked(tmp_path, prepared):
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump({"data": {"prepared": str(prepared)}, "train": {"epochs": "abc"}}))
    with pytest.raises(SpecError, match=r"trial 1: epochs must be int \(or null\), not 'abc'"):
        load_spec(spec)
    spec.write_text(yaml.safe_dump({"data": {"prepared": str(prepared)}, "grid": {"lr": [0.01, True]}}))
    with pytest.raises(SpecError, match="trial 2: lr must be float, not True"):
        load_spec(spec)


def test_sweep_whose_every_trial_failed_exits_non_zero(prepared, tmp_path):
    spec = tmp_path / "all-fail.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "all-fail", "data": {"prepared": str(prepared)}, "steps": ["train"],
        "train": {"model": "unet-mobilenetv3-small", "epochs": 1, "batch_size": 64, "pretrained": "none"},
    }))  # 8 train faces: fewer than one batch, so the trial fails at train
    out = tmp_path / "sweep"
    run = subprocess.run([sys.executable, "-m", "facesegtool.cli", "sweep", str(spec), "--out", str(out),
                          "--threads", "1"], capture_output=True, text=True, env=ENV, timeout=600)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "error: every trial of" in run.stderr and "--retry-failed" in run.stderr
    assert (out / "results.json").is_file()  # the failed rows are still written
    combined = invoke("sweep-combine", out, "--out", tmp_path / "combined")
    assert_clean_error(combined, str(out), "nothing to compare")


def test_resume_is_bit_identical_to_the_uninterrupted_run(prepared, tmp_path):
    common = dict(workers=1, augment="light", scheduler="plateau", patience=0)
    whole = train(train_config(prepared, tmp_path / "whole", epochs=2, **common))
    train(train_config(prepared, tmp_path / "cut", epochs=1, **common))
    resumed = train(train_config(prepared, tmp_path / "cut", epochs=2, resume=True, **common))
    assert resumed.history[1]["val_loss"] == whole.history[1]["val_loss"]
    assert resumed.history[1]["train_loss"] == whole.history[1]["train_loss"]


def test_resume_with_other_data_is_refused(prepared, tmp_path):
    other = write_tiny_prepared(tmp_path / "other", n_train=4, n_val=2, size=TINY)
    train(train_config(prepared, tmp_path / "run"))
    with pytest.raises(TrainingError, match=r"--data .*other is not the set this run was trained on"):
        train(train_config(other, tmp_path / "run", epochs=2, resume=True))
    moved = copy_of(prepared, tmp_path / "moved")  # the same faces in another folder resume fine
    assert train(train_config(moved, tmp_path / "run", epochs=2, resume=True)).epochs_run == 2


def test_prepare_refuses_listed_names_without_files_and_tiny_images(tmp_path):
    names = mini_names(3)
    src = source_dir(tmp_path / "src", names)
    (src / "train.txt").write_text("\n".join(names + ["ghost-face"]) + "\n")
    result = invoke("data", "prepare", "--celebamask", src, "--size", TINY, "--out", tmp_path / "p")
    assert_clean_error(result, str(src / "train.txt"), "'ghost-face'", "add the file or remove the line")
    (src / "train.txt").write_text("\n".join(names) + "\n")
    Image.new("RGB", (1, 1), (90, 60, 50)).save(src / "images" / "dot.png")
    Image.new("L", (1, 1), 1).save(src / "masks" / "dot.png")
    result = invoke("data", "prepare", "--celebamask", src, "--size", TINY, "--out", tmp_path / "p")
    assert_clean_error(result, str(src / "images" / "dot.png"), "only 1x1 px", "smaller --size")


def test_sizes_that_export_refuses_are_refused_by_train_and_flagged_by_prepare(tiny_checkpoint, tmp_path):
    src = source_dir(tmp_path / "src", mini_names(4))
    (src / "val.txt").write_text(mini_names(1)[0] + "\n")
    (src / "train.txt").write_text("\n".join(mini_names(4)[1:]) + "\n")
    made = invoke("data", "prepare", "--celebamask", src, "--size", "50", "--out", tmp_path / "p50")
    assert made.exit_code == 0, made.output  # a set at 50 px can still be trained at --size 64: warned, not refused
    assert [ln for ln in made.stderr.splitlines() if ln.startswith("warning: --size 50") and "multiple of 32" in ln]
    assert_clean_error(invoke("train", "--data", tmp_path / "p50", "--out", tmp_path / "r", "--size", "50"),
                       "--size 50", "multiple of 32", "--size 64")
    assert_clean_error(invoke("train", "--data", tmp_path / "p50", "--out", tmp_path / "r"),
                       "prepared size", "50", "multiple of 32")
    assert not (tmp_path / "r").exists()


def test_errors_name_the_file_and_the_fix(prepared, tiny_checkpoint, tmp_path, disks):
    src = source_dir(tmp_path / "src", mini_names(2))
    mapping = tmp_path / "map.json"
    mapping.write_text("{hat: hair}")
    assert_clean_error(invoke("data", "prepare", "--celebamask", src, "--mapping", mapping, "--out", tmp_path / "p"),
                       f"--mapping {mapping}", "not a JSON file", '"hat": "hair"')
    (src / "train.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    assert_clean_error(invoke("data", "prepare", "--celebamask", src, "--size", TINY, "--out", tmp_path / "p"),
                       str(src / "train.txt"), "not UTF-8", "save it as UTF-8")
    (src / "train.txt").unlink()
    text = tmp_path / "notes.txt"
    text.write_text("hello text\n")  # torch.load: KeyError(101), once shown as the whole reason
    assert_clean_error(invoke("train", "--data", prepared, "--out", tmp_path / "r", "--init", text),
                       f"--init: cannot read checkpoint {text}", "not a PyTorch checkpoint file")
    assert_clean_error(invoke("eval", "--checkpoint", tiny_checkpoint, "--data", prepared, "--latency-runs", "0",
                              "--out", tmp_path / "e"), "--latency-runs 0", "at least 1")
    assert not (tmp_path / "e").exists()  # refused before the evaluation
    disk = disks(tmp_path / "disk", 0.2)
    result = invoke("data", "prepare", "--celebamask", src, "--size", "256", "--out", disk / "p")
    assert_clean_error(result, f"cannot write the prepared set {disk / 'p'}", "free some space")
    assert not list(disk.iterdir())


def test_pseudo_label_keeping_no_pixel_warns(tiny_checkpoint, tmp_path):
    faces = tmp_path / "faces"
    faces.mkdir()
    for name in mini_names(2, "val"):
        os.symlink(CELEBAMASK_MINI / "images" / f"{name}.jpg", faces / f"{name}.jpg")
    result = invoke("pseudo-label", "--checkpoint", tiny_checkpoint, "--images", faces, "--threshold", "0.9999",
                    "--out", tmp_path / "pl")
    assert result.exit_code == 0, result.output
    assert "0.0% of pixels kept" in result.stdout
    assert "warning: " in result.stderr and "lower --threshold" in result.stderr


def test_eval_of_the_shipped_model_writes_into_the_working_folder(tiny_checkpoint, prepared, tmp_path, monkeypatch):
    package = tmp_path / "clone" / "models" / "default"
    package.mkdir(parents=True)
    shutil.copy(tiny_checkpoint, package / "model.pt")
    monkeypatch.setenv("FACESEGTOOL_MODEL", str(package / "model.pt"))  # the shipped model, wherever it lives
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = invoke("eval", "--data", prepared, "--latency-runs", "1", "--overlays", "2")
    assert result.exit_code == 0, result.output
    assert (work / "eval" / "default-val" / "scores.json").is_file()
    assert sorted(p.name for p in package.iterdir()) == ["model.pt"]  # nothing written beside the shipped model


# --- issue 31: no output lands on an input; only the tool's own files are replaced ---------------------


def test_pseudo_label_never_replaces_a_labelled_set(tiny_checkpoint, prepared, tmp_path):
    labelled = copy_of(prepared, tmp_path / "labelled")
    before = listing(labelled)
    faces = tmp_path / "faces"
    faces.mkdir()
    for name in mini_names(2, "val"):
        os.symlink(CELEBAMASK_MINI / "images" / f"{name}.jpg", faces / f"{name}.jpg")
    result = invoke("pseudo-label", "--checkpoint", tiny_checkpoint, "--images", faces, "--out", labelled)
    assert_clean_error(result, str(labelled), "is a labelled set")
    assert listing(labelled) == before
    # a pseudo-labelled set may be replaced, keeping what the user added beside it
    first = invoke("pseudo-label", "--checkpoint", tiny_checkpoint, "--images", faces, "--out", tmp_path / "pl")
    assert first.exit_code == 0, first.output
    (tmp_path / "pl" / "notes.txt").write_text("keep me")
    again = invoke("pseudo-label", "--checkpoint", tiny_checkpoint, "--images", faces, "--out", tmp_path / "pl",
                   "--threshold", "0.5")
    assert again.exit_code == 0, again.output
    assert (tmp_path / "pl" / "notes.txt").read_text() == "keep me"
    assert json.loads((tmp_path / "pl" / "manifest.json").read_text())["pseudo_label"]["threshold"] == 0.5


def test_train_out_into_a_prepared_set_is_refused(prepared, tmp_path):
    data = copy_of(prepared, tmp_path / "data")
    other = copy_of(prepared, tmp_path / "other")
    before = listing(data)
    for out, message in ((data, "is the input --data"), (tmp_path, "holds the input --data"),
                         (other, "is a prepared data set")):
        assert_clean_error(invoke("train", "--data", data, "--out", out, "--epochs", "1"), f"--out {out}", message)
    assert listing(data) == before
    with pytest.raises(OSError, match="holds the input --init"):  # fine-tuning into the teacher's folder
        train(train_config(data, tmp_path / "run", init=str(tmp_path / "run" / "best.pt")))


def test_resume_removes_a_killed_saves_temp_file(prepared, tmp_path):
    """A SIGKILL during torch.save leaves .last.pt.XXXX.tmp; the next run in that folder removes it."""
    out = tmp_path / "run"
    out.mkdir()
    stale = out / ".last.pt.k1ll3d.tmp"
    stale.write_bytes(b"\0" * 1000)
    (out / "notes.tmp").write_text("not ours")
    train(train_config(prepared, out))
    assert not stale.exists() and (out / "notes.tmp").is_file() and (out / "last.pt").is_file()


def test_export_json_never_overwrites_the_model_or_an_export(tiny_checkpoint, tmp_path):
    model = Path(shutil.copy(tiny_checkpoint, tmp_path / "tiny.pt"))
    before = model.read_bytes()
    for target, message in ((model, "is the input --model"), (tmp_path / "out" / "tiny_64_int8.tflite", "SUMMARY.json"),
                            (tmp_path / "out" / "unet_64_fp32.json", "SUMMARY.json")):
        result = invoke("export", "--model", model, "--quant", "fp32", "--out", tmp_path / "out", "--json", target)
        assert_clean_error(result, f"--json {target}", message)
    assert model.read_bytes() == before and not (tmp_path / "out").exists()  # refused before the export


@pytest.mark.parametrize("verb", ["predict-folder", "predict-file", "eval", "verify", "calibration", "sweep-combine"])
def test_no_verb_writes_onto_its_input(verb, tiny_checkpoint, prepared, tmp_path):
    """Each verb's output options are checked against its inputs before any work. (bench and verify --report
    write only new report files, bench_*.json / report.md, so their folder may hold the models.)"""
    photos = tmp_path / "photos"
    photos.mkdir()
    face = photos / "face.jpg"
    os.symlink(CELEBAMASK_MINI / "images" / f"{mini_names(1)[0]}.jpg", face)
    data = copy_of(prepared, tmp_path / "data")
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "results.json").write_text('{"sweep": {"name": "a"}, "trials": []}')
    args, option, inp = {
        "predict-folder": (["predict", photos, "--checkpoint", tiny_checkpoint, "--out", photos], "--out", photos),
        "predict-file": (["predict", face, "--checkpoint", tiny_checkpoint, "--out", photos], "--out", face),
        "eval": (["eval", "--model", tiny_checkpoint, "--data", data, "--out", data], "--out", data),
        "verify": (["verify", "--model", tiny_checkpoint, "--data", data, "--report", tmp_path], "--report", data),
        "calibration": (["calibration", "build", "--from", photos, "--out", photos], "--out", photos),
        "sweep-combine": (["sweep-combine", sweep, "--out", sweep], "--out", sweep),
    }[verb]
    before = {p: listing(p) for p in (photos, data, sweep)}
    assert_clean_error(invoke(*args), option, str(inp))
    assert {p: listing(p) for p in (photos, data, sweep)} == before


BENCH_RECORDING = Path(__file__).parent / "fixtures" / "benchmark_model" / "all_same_stats.txt"


@pytest.mark.parametrize("edit, why", [
    (lambda t: t.replace("Inference (avg): 16000", "Inference (avg): 0"), "implausible timings"),
    (lambda t: t.replace("Inference (avg): 16000", "Inference (avg): -5"), "implausible timings"),
    (lambda t: t.replace("count=63 curr=16000(all same)", "count=0 curr=16000(all same)"), "implausible timings"),
    (lambda t: t + "ERROR: Node number 3 (TfLiteXNNPackDelegate) failed to invoke.\n", "failed to invoke"),
])
def test_adb_rows_without_a_real_measurement_are_failed(edit, why):
    """A phone run counts as ok only with positive timings over some runs and no invoke error, exit 0 or not."""
    from facesegtool.bench.adb import row_status
    from facesegtool.bench.benchmark_output import parse_benchmark_output

    text = BENCH_RECORDING.read_text().split("# ---\n", 1)[1]
    assert row_status(parse_benchmark_output(text), "xnnpack", 0, "tflite")[0] == "ok"
    status, error, _ = row_status(parse_benchmark_output(edit(text)), "xnnpack", 0, "tflite")
    assert status == "failed" and why in error


def test_adb_run_timeout_is_an_option():
    assert "--run-timeout" in invoke("bench", "--help").output


def test_predict_names_a_broken_link_and_an_animated_gif(tiny_checkpoint, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    face = Image.open(CELEBAMASK_MINI / "images" / f"{mini_names(1)[0]}.jpg").resize((96, 96))
    face.save(photos / "anim.gif", save_all=True, append_images=[face.rotate(10), face.rotate(20)], duration=100)
    (photos / "gone.jpg").symlink_to(tmp_path / "nowhere.jpg")
    result = invoke("predict", photos, "--checkpoint", tiny_checkpoint, "--out", tmp_path / "out", "--effect", "none")
    assert_clean_error(result, str(photos / "gone.jpg"), "file not found")  # exit 2, not skipped silently
    assert "anim.gif is an animated GIF of 3 frames: parsed its first frame only" in result.stderr
    assert (tmp_path / "out" / "anim_mask.png").is_file()


def test_calibration_build_refuses_a_folder_of_user_files(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    result = invoke("calibration", "build", "--from", CELEBAMASK_MINI / "images", "--out", mine)
    assert_clean_error(result, f"--out {mine}", "not calibration crops", "notes.txt")
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
