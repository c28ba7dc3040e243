"""Bad input and faults (issue 11): each probe a careful user made, on real files, through the CLI.

Every failure must be one line that names the file and says what to do, exit status 2, no
traceback, and nothing half-written left behind. The bad files are real: a cut-off JPEG of a
real face, a text file named .jpg, an EXIF-rotated JPEG, a folder path under a regular file,
a checkpoint whose unpickling would run code.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import CELEBAMASK_MINI, TINY, assert_clean_error, face_jpeg, invoke, require_shared, write_tiny_prepared

from facesegtool.atomic import OutputError, check_writable_dir, write_bytes_atomic
from facesegtool.bench.adb import AdbError, parse_devices, run_adb_bench
from facesegtool.checkpoint import DEFAULT_INPUT
from facesegtool.data.source import BadSampleError
from facesegtool.errors import FacesegError
from facesegtool.imaging import read_rgb
from facesegtool.export import WORK_OWNER, ExportReport, remove_stale_work_dirs
from facesegtool.export.calibration import CALIBRATION_DIR, CalibrationError, calibration_array
from facesegtool.verify import VerifyError, open_faces

def truncated_jpeg(path: Path) -> Path:
    """The first third of a real face JPEG: OpenCV decodes it as a face over two thirds of grey."""
    data = face_jpeg().read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def text_as_jpeg(path: Path) -> Path:
    path.write_text("not a picture, only named like one\n")
    return path


def exif_rotated_jpeg(source: Path, path: Path, orientation: int = 6) -> Path:
    """The same pixels as source, re-saved with an EXIF tag telling viewers to turn them."""
    with Image.open(source) as im:
        exif = im.getexif()
        exif[0x0112] = orientation
        im.save(path, exif=exif.tobytes(), quality=95)
    return path


def under_a_file(tmp_path: Path) -> Path:
    """A folder path that cannot exist: its parent is a regular file."""
    blocker = tmp_path / "a-file"
    blocker.write_text("a regular file")
    return blocker / "out"


def files_in(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# --- 1. int8 calibration on broken images ------------------------------------------------------------


@pytest.mark.parametrize("make_bad", [truncated_jpeg, text_as_jpeg])
def test_int8_export_refuses_unreadable_calibration_images(tiny_checkpoint, tmp_path, make_bad):
    calib = tmp_path / "calib"
    calib.mkdir()
    for src in sorted(CALIBRATION_DIR.glob("*.jpg"))[:3]:
        shutil.copy(src, calib)
    bad = make_bad(calib / "zz-bad.jpg")
    with pytest.raises(CalibrationError, match="zz-bad.jpg"):
        calibration_array(calib, dict(DEFAULT_INPUT, size=TINY))
    out = tmp_path / "out"
    result = invoke("export", "--checkpoint", tiny_checkpoint, "--quant", "int8", "--calibration", calib, "--out", out)
    assert_clean_error(result, f"calibration image {bad}", "remove it from")
    assert not out.exists()  # refused before anything was written


# --- 2. outputs that cannot be written ---------------------------------------------------------------


def test_unwritable_outputs_fail_first_naming_the_folder(tiny_checkpoint, tmp_path):
    require_shared(CELEBAMASK_MINI)
    bad = under_a_file(tmp_path)
    prepared = write_tiny_prepared(tmp_path / "prepared", n_train=2, n_val=1, size=TINY)
    for args, option in (
        (["export", "--checkpoint", tiny_checkpoint, "--quant", "fp32", "--out", bad], "--out"),
        (["train", "--data", prepared, "--out", bad, "--epochs", "1"], "--out"),
        # verify and bench check before measuring: without the check, verify would stop at the missing
        # exports/default, and bench would measure PyTorch first and fail only when saving
        (["verify", "--checkpoint", tiny_checkpoint, "--report", bad], "--report"),
        (["bench", "--device", "host", "--checkpoint", tiny_checkpoint, "--out", bad], "--out"),
        (["predict", face_jpeg(), "--checkpoint", tiny_checkpoint, "--out", bad], "--out"),
        (["data", "prepare", "--celebamask", CELEBAMASK_MINI, "--out", bad], "--out"),
    ):
        # "--out DIR: ..." comes from the check made before any work: a failed write at the end reads "cannot write FILE"
        line = assert_clean_error(invoke(*args), f"{option} {bad}", f"{bad.parent} is a file", f"choose another {option}")
        assert ".tmp" not in line
    assert bad.parent.read_text() == "a regular file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "prepared", "prepared-source"]  # nothing new


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_output_folder(tiny_checkpoint, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        line = assert_clean_error(invoke("export", "--checkpoint", tiny_checkpoint, "--out", locked / "out"),
                                  f"--out {locked / 'out'}: no permission to write in {locked}")
        assert ".tmp" not in line and list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_atomic_write_errors_name_the_target_not_the_temp_file(tmp_path):
    target = under_a_file(tmp_path) / "report.json"
    with pytest.raises(OutputError) as err:
        write_bytes_atomic(target, b"{}")
    assert str(target) in str(err.value) and ".tmp" not in str(err.value)
    assert str(target.parent.parent) + " is a file" in str(err.value)
    assert check_writable_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert not (tmp_path / "new").exists()  # the check creates nothing


# --- 3. verify on a prepared set without masks/ ------------------------------------------------------


def test_verify_on_prepared_set_without_masks(tmp_path):
    require_shared(CELEBAMASK_MINI)
    prepared = write_tiny_prepared(tmp_path / "prepared", n_train=2, n_val=2, size=TINY)
    shutil.rmtree(prepared / "masks")
    with pytest.raises(VerifyError, match=r"masks: missing from this prepared set; re-run `facesegtool data prepare"):
        open_faces(prepared, "val", size=TINY)


def test_verify_cli_on_prepared_set_without_masks(small_export, tmp_path):
    require_shared(CELEBAMASK_MINI)
    prepared = write_tiny_prepared(tmp_path / "prepared", n_train=2, n_val=2, size=TINY)
    shutil.rmtree(prepared / "masks")
    result = invoke("verify", "--tflite", small_export.variants["fp32"].tflite, "--data", prepared)
    assert_clean_error(result, f"{prepared / 'masks'}: missing", "facesegtool data prepare")


# --- 4. train --epochs 0 or -1 -----------------------------------------------------------------------


@pytest.mark.parametrize("epochs", ["0", "-1"])
def test_train_refuses_no_epochs(tmp_path, epochs):
    require_shared(CELEBAMASK_MINI)
    prepared = write_tiny_prepared(tmp_path / "prepared", n_train=2, n_val=1, size=TINY)
    out = tmp_path / "run"
    result = invoke("train", "--data", prepared, "--out", out, "--epochs", epochs)
    assert_clean_error(result, "--epochs must be at least 1")
    assert "checkpoints:" not in result.output and not out.exists()


def test_train_refuses_an_unknown_loss_before_writing(tmp_path):
    require_shared(CELEBAMASK_MINI)
    prepared = write_tiny_prepared(tmp_path / "prepared", n_train=2, n_val=1, size=TINY)
    out = tmp_path / "run"
    result = invoke("train", "--data", prepared, "--out", out, "--loss", "ce+lovasz")
    assert_clean_error(result, "--loss ce+lovasz", "ce+dice")
    assert not out.exists()


# --- 5. predict on a truncated and an unreadable file ------------------------------------------------


def test_predict_skips_bad_images_and_runs_the_rest(tiny_checkpoint, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(face_jpeg(), photos / "a-good.jpg")
    truncated_jpeg(photos / "b-truncated.jpg")
    text_as_jpeg(photos / "c-text.jpg")
    shutil.copy(face_jpeg(), photos / "d-good.jpg")  # after the bad ones: must still run
    out = tmp_path / "out"
    result = invoke("predict", photos, "--checkpoint", tiny_checkpoint, "--out", out, "--effect", "none")
    assert_clean_error(result, str(photos / "b-truncated.jpg"), "truncated", "replace or remove it")
    assert_clean_error(result, str(photos / "c-text.jpg"), "replace or remove it")
    written = files_in(out)
    assert {"a-good_mask.png", "a-good_overlay.png", "d-good_mask.png", "d-good_overlay.png", "sheet.jpg"} <= set(written)
    assert not [f for f in written if f.startswith(("b-", "c-", "."))]  # nothing for the bad ones, no temp files
    assert "wrote 2 result(s)" in result.stdout


# --- 6. adb that fails with "error: no devices/emulators found" --------------------------------------


def test_adb_error_is_not_a_device(fake_adb, tmp_path):  # noqa: F811
    assert parse_devices("error: no devices/emulators found\n") == {}
    model = tmp_path / "m.tflite"
    model.write_bytes(b"never read: adb fails first")
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(b"\x7fELF placeholder")
    fake_adb.scenario("none")  # real adb: only the header, exit 0
    with pytest.raises(AdbError, match="no Android device connected: plug the phone in"):
        run_adb_bench(models=[model], benchmark_binary=binary, out_dir=tmp_path / "out", progress=False)
    fake_adb.scenario("server-error")
    args = ["bench", "--device", "adb", "--models", model, "--benchmark-binary", binary, "--out", tmp_path / "out"]
    assert_clean_error(invoke(*args), "`adb devices` failed (exit 1: adb: failed to check server version",
                       "adb kill-server")
    fake_adb.scenario("none")  # real adb: only the header, exit 0
    line = assert_clean_error(invoke(*args), "no Android device connected")
    assert "in state" not in line


# --- 7. data prepare and EXIF orientation ------------------------------------------------------------


def test_data_prepare_refuses_exif_rotated_image(tmp_path):
    require_shared(CELEBAMASK_MINI)
    names = (CELEBAMASK_MINI / "train.txt").read_text().split()[:3]
    source = tmp_path / "source"
    (source / "images").mkdir(parents=True)
    (source / "masks").mkdir()
    for name in names:
        shutil.copy(CELEBAMASK_MINI / "images" / f"{name}.jpg", source / "images")
        shutil.copy(CELEBAMASK_MINI / "masks" / f"{name}.png", source / "masks")
    rotated = exif_rotated_jpeg(CELEBAMASK_MINI / "images" / f"{names[1]}.jpg", source / "images" / f"{names[1]}.jpg")

    out = tmp_path / "prepared"
    result = invoke("data", "prepare", "--celebamask", source, "--size", str(TINY), "--out", out)
    assert_clean_error(result, str(rotated), "EXIF orientation", "save it upright", "check its mask")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source"]  # nothing half-written, no hidden temp folder
    result = invoke("data", "prepare", "--celebamask", source, "--size", str(TINY), "--out", out, "--skip-bad")
    assert result.exit_code == 0 and f"skipped {rotated}: its EXIF orientation tag (6)" in result.output

    # Elsewhere (predict, verify, calibration) the photo is turned upright, as viewers and OpenCV show it.
    with Image.open(rotated) as im:
        stored = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(read_rgb(rotated), np.rot90(stored, k=-1))
    with pytest.raises(BadSampleError, match="EXIF orientation"):
        read_rgb(rotated, orientation="refuse")


# --- 8. kill -9 during export ------------------------------------------------------------------------


def _pids_with(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and text in (proc / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(proc.name))
        except OSError:
            pass
    return pids


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by a container's init, does not count)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="finds the worker through /proc")
def test_export_killed_with_sigkill_leaves_nothing(tiny_checkpoint, tmp_path):
    out = tmp_path / "exports"
    proc = subprocess.Popen([sys.executable, "-m", "facesegtool.cli", "export", "--checkpoint", str(tiny_checkpoint),
                             "--quant", "fp32", "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait(lambda: _pids_with(str(out / ".export-")), 180), "the onnx2tf worker never started"
        workers = _pids_with(str(out / ".export-"))
        proc.send_signal(signal.SIGKILL)  # the exporting process only: its finally blocks never run
        proc.wait()
        started = time.monotonic()
        assert _wait(lambda: not any(_alive(pid) for pid in workers), 10), "the worker outlived the export"
        print(f"worker gone {time.monotonic() - started:.1f}s after kill -9 of the export")
        # The killed run's work folder (tens of MB with a real model) goes with the next export.
        left = list(out.glob(".export-*.tmp"))
        assert remove_stale_work_dirs(out) == left and files_in(out) == []
    finally:
        for pid in [proc.pid, *_pids_with(str(out / ".export-"))]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_next_export_removes_work_folders_of_dead_runs(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / ".export-killed.tmp"
    stale.mkdir()
    (stale / WORK_OWNER).write_text(str(dead.pid))
    (stale / "model.onnx").write_bytes(b"\0" * 1000)
    live = tmp_path / ".export-running.tmp"
    live.mkdir()
    (live / WORK_OWNER).write_text(str(os.getpid()))  # an export still running: left alone
    assert remove_stale_work_dirs(tmp_path) == [stale]
    assert not stale.exists() and live.exists()


# --- 9. a checkpoint whose unpickling would run code -------------------------------------------------


class _RunsCodeWhenUnpickled:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def test_checkpoint_with_code_never_runs_and_no_unsafe_advice(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "facesegtool-checkpoint", "state_dict": _RunsCodeWhenUnpickled(f"touch {marker}")}, evil)
    for args in (["predict", face_jpeg(), "--out", tmp_path / "p"], ["export", "--out", tmp_path / "e"]):
        result = invoke(*args, "--checkpoint", evil)
        line = assert_clean_error(result, f"cannot read checkpoint {evil}", "system", "written by `facesegtool train`")
        assert "weights_only=False" not in result.output and "trust" not in result.output
        assert "never runs" in line
    assert not marker.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["evil.pt"]


# --- 10. the smaller ones ----------------------------------------------------------------------------


def test_next_commands_are_shell_quoted(tmp_path):
    out = tmp_path / "my exports" / "it's here"
    report = ExportReport("m", tmp_path / "run 1" / "best.pt", out, 64, out / "m.onnx", 0.0)
    verify_cmd, bench_cmd = report.next_commands()
    assert shlex.split(verify_cmd) == ["facesegtool", "verify", "--model", str(tmp_path / "run 1" / "best.pt"),
                                       "--export-dir", str(out)]
    assert shlex.split(bench_cmd)[-2:] == ["--export-dir", str(out)]


def test_data_prepare_error_has_a_line_of_its_own(tmp_path):
    require_shared(CELEBAMASK_MINI)
    source = tmp_path / "source"
    (source / "images").mkdir(parents=True)
    (source / "masks").mkdir()
    names = (CELEBAMASK_MINI / "train.txt").read_text().split()[:2]
    for name in names:
        shutil.copy(CELEBAMASK_MINI / "masks" / f"{name}.png", source / "masks")
    shutil.copy(CELEBAMASK_MINI / "images" / f"{names[0]}.jpg", source / "images")
    truncated_jpeg(source / "images" / f"{names[1]}.jpg")
    result = invoke("data", "prepare", "--celebamask", source, "--size", str(TINY), "--out", tmp_path / "out")
    assert_clean_error(result, f"{names[1]}.jpg: unreadable or truncated image")
    assert "\nerror: " in result.stderr or result.stderr.startswith("error: ")  # not after the progress bar


def test_host_bench_exits_non_zero_when_a_model_fails(small_checkpoint, small_export, tmp_path):
    broken = tmp_path / "broken_fp32.tflite"
    good = Path(small_export.variants["fp32"].tflite)
    broken.write_bytes(good.read_bytes()[:1000])
    shutil.copy(good.with_suffix(".json"), broken.with_suffix(".json"))
    result = invoke("bench", "--device", "host", "--checkpoint", small_checkpoint, "--models", broken,
                    "--threads", "1", "--runs", "2", "--warmup", "0", "--out", tmp_path / "bench")
    assert_clean_error(result, "broken_fp32.tflite could not be measured", "re-export it")
    assert (tmp_path / "bench" / "bench_host.json").is_file()  # what was measured is still saved


# --- newcomer: no options right after `make export` on a fresh clone ---------------------------------


def test_bench_and_verify_without_options_after_export(small_checkpoint, small_export, tmp_path, monkeypatch):
    """`make export` leaves exports/default; a clone has no ../shared/data: both commands still do something useful."""
    import facesegtool.data.faces as verify_faces

    monkeypatch.chdir(tmp_path)
    default = tmp_path / "exports" / "default"
    default.mkdir(parents=True)
    int8 = Path(small_export.variants["int8"].tflite)
    for f in (int8, int8.with_suffix(".json")):
        shutil.copy(f, default)
    monkeypatch.setenv("FACESEGTOOL_MODEL", str(small_checkpoint))  # stands in for the shipped model
    monkeypatch.setattr(verify_faces, "DEFAULT_DATA", tmp_path / "no-shared-data")

    result = invoke("bench", "--device", "host", "--threads", "1", "--runs", "2", "--warmup", "0")
    assert result.exit_code == 0, result.output
    assert "tflite int8" in result.stdout and "exports/default" in result.stdout

    result = invoke("verify")
    assert result.exit_code == 0, result.output
    assert "calibration/" in result.stdout and "agreement" in result.stdout


# --- 11. one error base, caught once -----------------------------------------------------------------


class _ErrorNoCommandNames(FacesegError, RuntimeError):
    """A FacesegError subclass no command lists: the CLI must catch it through the base alone."""


def _raise(exc: BaseException):
    def library_call(*args, **kwargs):
        raise exc

    return library_call


# Each command's one library call, and arguments that reach it (the call itself is replaced).
COMMAND_CALLS = [
    ("facesegtool.sweep.combine_results", ["sweep-combine", "s1", "--out", "combined"]),
    ("facesegtool.data.stats.write_frequency_chart", ["data", "stats", "prepared"]),
    ("facesegtool.android.install_model", ["android", "install-model", "--tflite", "m.tflite"]),
    ("facesegtool.predict.predict", ["predict", "photo.jpg", "--out", "p"]),
    ("facesegtool.data.registry.prepare_from_dirs", ["data", "prepare", "--synthesisai", "renders", "--out", "p"]),
]


@pytest.mark.parametrize("target, args", COMMAND_CALLS, ids=[c[1][0] + "-" + c[1][1] for c in COMMAND_CALLS])
def test_any_faceseg_error_is_one_line_and_a_bug_keeps_its_exception(monkeypatch, target, args):
    monkeypatch.setattr(target, _raise(_ErrorNoCommandNames("renders/7.png: the thing to fix")))
    result = invoke(*args)
    assert_clean_error(result, "renders/7.png: the thing to fix")
    assert len([ln for ln in result.stderr.splitlines() if ln.startswith("error: ")]) == 1

    # A file the user named that cannot be read is one line too, naming the file.
    missing = FileNotFoundError(2, "No such file or directory", "renders/7.png")
    monkeypatch.setattr(target, _raise(missing))
    assert_clean_error(invoke(*args), "renders/7.png: No such file or directory")

    # A bug is not turned into a one-line error: the exception comes out as it is (a traceback outside CliRunner).
    for bug in (ZeroDivisionError("division by zero"), ValueError("an internal check failed"),
                OSError("no file involved")):
        monkeypatch.setattr(target, _raise(bug))
        result = invoke(*args)
        assert result.exit_code == 1 and result.exception is bug, result.output
        assert "error:" not in result.output


def test_a_library_plain_value_error_for_bad_input_is_a_faceseg_error(tmp_path):
    """Bad input the CLI once caught as bare ValueError is now a FacesegError (the CLI catches nothing else)."""
    from facesegtool.labels import load_mapping
    from facesegtool.predict.effects import parse_effects
    from facesegtool.sweep import combine_results
    from facesegtool.threads import check_threads

    mapping = tmp_path / "map.json"
    mapping.write_text("[1, 2]")
    for call, message in ((lambda: load_mapping(mapping), "expected one JSON object"),
                          (lambda: parse_effects("hair=#zz"), "bad colour"),
                          (lambda: check_threads(0), "give a thread count"),
                          (lambda: combine_results([tmp_path / "nothing"], tmp_path / "c", "t"), "no readable")):
        with pytest.raises(FacesegError, match=message) as err:
            call()
        assert isinstance(err.value, ValueError)  # callers that caught ValueError still do
