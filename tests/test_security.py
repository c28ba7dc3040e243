"""Security and data loss, round three (issue 31, part A): what a received export folder, a tampered
sidecar or checkpoint, or `export --replace` could make the tool do, on real models and faces.

A sidecar is data: it never makes code run, and `--replace` removes only files a previous export
recorded inside --out. Every refusal is one `error:` line naming the file (and the field), exit 2.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from conftest import CELEBAMASK_MINI, assert_clean_error, face_jpeg, invoke, require_shared

from facesegtool.checkpoint import read_checkpoint, save_checkpoint
from facesegtool.export.onnx import ExportError
from facesegtool.hashing import sha256_file

HELPER = """
from pathlib import Path
Path({marker!r}).write_text("the sidecar's code ran")
import torch.nn as nn

def build_model():
    Path({marker!r}).write_text("the sidecar's code ran")
    return nn.Conv2d(3, 11, 1)
"""


def copy_export(variant, folder: Path, name: str | None = None, **changes) -> tuple[Path, Path]:
    """One exported .tflite and its sidecar copied into folder (as `name`), the sidecar updated with changes."""
    folder.mkdir(parents=True, exist_ok=True)
    tflite = folder / (name or variant.tflite.name)
    shutil.copy(variant.tflite, tflite)
    sidecar = json.loads(variant.sidecar.read_text())
    sidecar.update(tflite=tflite.name, **changes)
    sidecar_file = tflite.with_suffix(".json")
    sidecar_file.write_text(json.dumps(sidecar))
    return tflite, sidecar_file


def edit_sidecar(sidecar_file: Path, edit) -> None:
    sidecar = json.loads(sidecar_file.read_text())
    edit(sidecar)
    sidecar_file.write_text(json.dumps(sidecar))


# --- high 1: a sidecar never makes verify or bench run code ---------------------------------------


def write_helper(folder: Path, marker: Path) -> tuple[str, Path]:
    """A user's code file that leaves `marker` when imported, and weights for it: (CODE.py:build_model, weights)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "helper.py").write_text(HELPER.format(marker=str(marker)))
    weights = folder / "weights.pt"
    torch.save(nn.Conv2d(3, 11, 1).state_dict(), weights)
    return f"{folder}/helper.py:build_model", weights


def test_a_sidecar_naming_code_never_runs_it(small_export, tmp_path):
    received = tmp_path / "received"
    marker = tmp_path / "MARKER"
    ref, weights = write_helper(received, marker)
    copy_export(small_export.variants["fp32"], received, source={
        "path": str(weights), "format": "module", "sha256": sha256_file(weights), "reference": "pytorch",
        "name": "helper", "ref": ref, "weights": str(weights)})

    line = assert_clean_error(invoke("verify", "--export-dir", received, "--limit", "1"), ref, "never run",
                              f"--model {ref} --weights {weights}")
    assert "\n" not in line
    assert_clean_error(invoke("bench", "--device", "host", "--export-dir", received, "--runs", "1", "--warmup", "0"),
                       ref, "never run")
    assert not marker.exists()


def test_code_named_on_the_command_line_is_imported_only_after_its_weights_match(small_export, tmp_path):
    """`--model code.py:fn --weights W` runs the user's code, but only once W is the file the export recorded."""
    folder = tmp_path / "exports"
    marker = tmp_path / "MARKER"
    folder.mkdir()
    ref, weights = write_helper(tmp_path, marker)
    copy_export(small_export.variants["fp32"], folder)  # recorded: small_checkpoint's sha256, not these weights
    for verb in (["verify", "--limit", "1"], ["bench", "--device", "host", "--runs", "1", "--warmup", "0"]):
        result = invoke(*verb, "--model", ref, "--weights", weights, "--export-dir", folder)
        assert_clean_error(result, "was exported from", str(weights), "was not imported")
    assert not marker.exists()


# --- high 2 and medium 5: --replace removes only recorded files inside --out, never an input -------


def test_replace_removes_only_recorded_files_inside_out_and_never_the_model(small_export, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    # A genuine previous export of small_checkpoint: its ONNX becomes the model exported now (--model in --out).
    fp32 = small_export.variants["fp32"]
    copy_export(fp32, out)
    model = Path(shutil.copy(small_export.onnx, out / small_export.onnx.name))
    # Other "exports" whose sidecars name files outside --out (relative, absolute, through a link) as their ONNX.
    victims = {name: tmp_path / name for name in ("victim.onnx", "absolute.onnx", "linked.onnx")}
    for path in victims.values():
        path.write_text("a user's file outside --out\n")
    (out / "link.onnx").symlink_to(victims["linked.onnx"])
    for name, onnx in (("a", "../victim.onnx"), ("b", str(victims["absolute.onnx"])), ("c", "link.onnx")):
        copy_export(fp32, out, f"other{name}_fp32.tflite", export={"onnx": onnx})
    result = invoke("export", "--model", model, "--quant", "fp32", "--out", out, "--replace")
    assert result.exit_code == 0, result.output
    for path in victims.values():
        assert path.read_text() == "a user's file outside --out\n"
    assert (out / "link.onnx").is_symlink()  # not a file the export wrote: left alone
    assert model.is_file()  # the --model file is an input, never removed
    assert f"--model {model}" in result.output  # ... and the next: lines name a file that exists
    left = sorted(p.name for p in out.iterdir())
    assert not [n for n in left if n.startswith("other") or n == fp32.tflite.name], left  # the recorded ones went
    assert f"{model.stem}_96_fp32.tflite" in left


def test_export_never_overwrites_a_users_file_with_an_exports_name(tiny_checkpoint, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    notes = out / "unet-mobilenetv3-small_64_fp32.json"
    notes.write_text("my notes\n")
    result = invoke("export", "--checkpoint", tiny_checkpoint, "--quant", "fp32", "--out", out)
    assert_clean_error(result, f"--out {out}", notes.name, "not written by `facesegtool export`")
    assert notes.read_text() == "my notes\n" and sorted(p.name for p in out.iterdir()) == [notes.name]


def test_export_folder_lock_and_own_int16_name(tmp_path):
    from facesegtool.export.replace import lock_out_dir, variant_file_name

    fd = lock_out_dir(tmp_path)
    try:  # a second export into the same --out (another process, or this one) is refused while the first runs
        with pytest.raises(ExportError, match="another `facesegtool export` is writing into this folder"):
            lock_out_dir(tmp_path)
    finally:
        os.close(fd)
    os.close(lock_out_dir(tmp_path))  # released
    assert variant_file_name("m_96", "int8", int16_activations=True) == "m_96_int16x8.tflite"
    assert variant_file_name("m_96", "int8") == "m_96_int8.tflite"


def test_unknown_float_layer_is_refused_before_converting(small_checkpoint, small_export, tmp_path):
    from facesegtool.export.replace import check_float_layers

    out = tmp_path / "out"
    copy_export(small_export.variants["int8"], out)
    with pytest.raises(ExportError, match="no tensor named nosuch/layer"):
        check_float_layers(out / small_export.variants["int8"].tflite.name, ["model_3/nosuch/layer"],
                           sha256_file(small_checkpoint))
    result = invoke("export", "--checkpoint", small_checkpoint, "--quant", "int8", "--float-layer", "nosuch/layer",
                    "--out", out)
    assert_clean_error(result, "--float-layer", "nosuch/layer")
    assert not list(out.glob("*.log")) and not list(out.glob("*.onnx"))


# --- medium 1: NaN / Inf scores --------------------------------------------------------------------


@pytest.fixture()
def nan_checkpoint(small_checkpoint, tmp_path) -> Path:
    """small_checkpoint with one NaN in its classifier's bias: every output pixel of that class is NaN."""
    ckpt = read_checkpoint(small_checkpoint)
    state = dict(ckpt["state_dict"])
    last_bias = [k for k, v in state.items() if k.endswith("bias") and v.shape == (11,)][-1]
    state[last_bias] = state[last_bias].clone()
    state[last_bias][3] = float("nan")
    return save_checkpoint(dict(ckpt, state_dict=state), tmp_path / "nan.pt")


def test_nan_model_is_refused_by_export_fails_verify_and_never_reaches_predict(nan_checkpoint, small_export, tmp_path):
    require_shared(CELEBAMASK_MINI)
    out = tmp_path / "out"
    result = invoke("export", "--checkpoint", nan_checkpoint, "--quant", "fp32", "--out", out)
    assert_clean_error(result, str(nan_checkpoint), "NaN or Inf")
    assert not out.exists() or not list(out.iterdir())

    # verify: an export whose reference gives NaN (the sidecar says it came from that checkpoint) fails the gate
    folder = tmp_path / "exports"
    copy_export(small_export.variants["fp32"], folder, source=dict(
        json.loads(small_export.variants["fp32"].sidecar.read_text())["source"],
        sha256=sha256_file(nan_checkpoint), path=str(nan_checkpoint)))
    result = invoke("verify", "--checkpoint", nan_checkpoint, "--export-dir", folder, "--data", CELEBAMASK_MINI,
                    "--limit", "2")
    assert result.exit_code == 1, result.output
    assert "NaN or Inf" in result.output

    # predict: an error for the photo, not an IndexError in the effects
    result = invoke("predict", face_jpeg(), "--checkpoint", nan_checkpoint, "--effect", "hair=#8040C0",
                    "--out", tmp_path / "pred")
    assert_clean_error(result, "NaN or Inf")


def test_nan_or_zero_normalisation_in_a_spec_is_refused(tmp_path):
    from facesegtool.model_source import load_source
    from facesegtool.model_spec import ModelSpecError

    pt2 = tiny_pt2(tmp_path / "m.pt2")
    for text, expected in (("input: {std: [.nan, 0.5, 0.5]}", "std"), ("input: {scale: 0}", "scale"),
                           ("input: {scale: .inf}", "scale"), ("input: {mean: [.nan, 0, 0]}", "mean"),
                           ("input: {std: [0, 1, 1]}", "std must be > 0")):
        spec = tmp_path / "spec.yaml"
        spec.write_text(text)
        with pytest.raises(ModelSpecError, match=expected) as err:
            load_source(pt2, spec=spec)
        assert str(spec) in str(err.value)


# --- medium 2: a tampered sidecar is one error naming the file and the field -----------------------


SIDECAR_TAMPERS = {
    "input.quantization": lambda s: s["input"].update(quantization=[0.5, 3]),
    "input.quantization ": lambda s: s["input"].update(quantization="0.5"),
    "output.quantization": lambda s: s["output"].update(quantization={"zero_point": 0}),
    "mapping": lambda s: s.update(mapping=dict(s["mapping"], hair="crown")),
    "classes": lambda s: s.update(classes=s["classes"][:5], palette=s["palette"][:5]),
    "input.std": lambda s: s["input"].update(std=[0.0, 0.5, 0.5]),
    "palette": lambda s: s.update(palette=[["red", 0, 0]] * len(s["classes"])),
    "spec.mapping": lambda s: s["spec"]["mapping"].update(hair="crown"),
}


@pytest.mark.parametrize("field", list(SIDECAR_TAMPERS))
def test_a_tampered_sidecar_is_one_error_naming_the_field(small_export, tmp_path, field):
    tflite, sidecar_file = copy_export(small_export.variants["fp32"], tmp_path / "exports")
    edit_sidecar(sidecar_file, SIDECAR_TAMPERS[field])
    app = tmp_path / "app"
    (app / "app").mkdir(parents=True)
    for args in (["verify", "--tflite", tflite, "--limit", "1"],
                 ["predict", face_jpeg(), "--model", tflite, "--out", tmp_path / "pred"],
                 ["bench", "--device", "host", "--models", tflite, "--runs", "1", "--warmup", "0"],
                 ["android", "install-model", "--tflite", tflite, "--app", app]):
        assert_clean_error(invoke(*args), str(sidecar_file), f"field {field.strip()}")
    assert not (app / "app" / "src").exists()


# --- medium 3: a tampered checkpoint is one error --------------------------------------------------


def _tampered(ckpt: dict, change: str) -> dict:
    ckpt = dict(ckpt)
    if change == "unknown kwargs":
        ckpt["model"] = dict(ckpt["model"], kwargs={"no_such_option": 1})
    elif change == "kwargs list":
        ckpt["model"] = dict(ckpt["model"], kwargs=[1, 2])
    elif change == "classes number":
        ckpt["classes"] = 11
    elif change == "no input":
        del ckpt["input"]
    elif change == "classes empty":
        ckpt["classes"] = []
    elif change == "half state_dict":
        items = list(ckpt["state_dict"].items())
        ckpt["state_dict"] = dict(items[: len(items) // 2])
    return ckpt


@pytest.mark.parametrize("change", ["unknown kwargs", "kwargs list", "classes number", "no input", "classes empty",
                                    "half state_dict"])
def test_a_tampered_checkpoint_is_one_error(tiny_checkpoint, tmp_path, change):
    bad = save_checkpoint(_tampered(read_checkpoint(tiny_checkpoint), change), tmp_path / "bad.pt")
    for args in (["export", "--checkpoint", bad, "--quant", "fp32", "--out", tmp_path / "out"],
                 ["predict", face_jpeg(), "--checkpoint", bad, "--out", tmp_path / "pred"]):
        result = invoke(*args)
        line = assert_clean_error(result, str(bad))
        assert len(line) < 600, line
        assert not [ln for ln in result.output.splitlines() if ln[:1].isspace()], result.output  # no continuation
    assert not (tmp_path / "out").exists()


# --- medium 4: YAML aliases ------------------------------------------------------------------------


def tiny_pt2(path: Path, channels: int = 11) -> Path:
    net = nn.Conv2d(3, channels, 1).eval()
    torch.export.save(torch.export.export(net, (torch.rand(1, 3, 64, 64),)), str(path))
    return path


def test_spec_aliases_are_refused_and_select_is_checked(tmp_path):
    from facesegtool.model_source import load_source
    from facesegtool.model_spec import ModelSpecError
    from facesegtool.sweep import SpecError, load_spec

    pt2 = tiny_pt2(tmp_path / "m.pt2")
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 6)]
    bomb = tmp_path / "bomb.yaml"  # 9**6 strings once expanded, from a few hundred bytes
    bomb.write_text("mapping:\n" + "".join(f"  {lv}\n" for lv in levels))
    with pytest.raises(ModelSpecError, match="aliases") as err:
        load_source(pt2, spec=bomb)
    assert str(bomb) in str(err.value)
    assert_clean_error(invoke("export", "--model", pt2, "--spec", bomb, "--quant", "fp32", "--out", tmp_path / "o"),
                       str(bomb), "aliases")
    nested = tmp_path / "nested.yaml"
    nested.write_text("output:\n  select: [[0, 0], [0, 0]]\n")
    with pytest.raises(ModelSpecError, match="output select"):
        load_source(pt2, spec=nested)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("name: s\nbase: &b {epochs: 1}\ntrain: *b\n")
    with pytest.raises(SpecError, match="aliases"):
        load_spec(sweep)


# --- low: export and model messages ----------------------------------------------------------------


def test_model_and_spec_messages_name_the_file(tmp_path, tiny_checkpoint):
    from facesegtool.model_source import ModelSourceError, load_source
    from facesegtool.model_spec import ModelSpecError

    pt2 = tiny_pt2(tmp_path / "m.pt2")
    spec = tmp_path / "spec.yaml"
    for text, expected in (("input: {scale: abc}", "scale"), ('input: {size: "64"}', "whole number of pixels")):
        spec.write_text(text)
        with pytest.raises(ModelSpecError, match=expected) as err:
            load_source(pt2, spec=spec)
        assert str(spec) in str(err.value) and "dynamic" not in str(err.value)
    with pytest.raises(ModelSpecError, match="1 channel"):
        load_source(tiny_pt2(tmp_path / "one.pt2", channels=1))
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelSourceError, match="not an ONNX model"):
        load_source(tmp_path / "empty.onnx")
    with pytest.raises(ModelSourceError, match="is a folder"):
        load_source(tmp_path)
    cut = tmp_path / "cut.pt2"
    cut.write_bytes(pt2.read_bytes()[:-30])
    with pytest.raises(ModelSourceError) as err:
        load_source(cut)
    assert "miniz" not in str(err.value) and "checkpoint" not in str(err.value) and str(cut) in str(err.value)


def test_user_code_calling_exit_is_an_error(tmp_path):
    code = tmp_path / "quits.py"
    code.write_text("raise SystemExit(0)\n")
    weights = tmp_path / "w.pt"
    torch.save(nn.Conv2d(3, 11, 1).state_dict(), weights)
    out = tmp_path / "out"
    result = invoke("export", "--model", f"{code}:build_model", "--weights", weights, "--size", "64",
                    "--quant", "fp32", "--out", out)
    assert_clean_error(result, str(code), "exit(0)")
    assert not out.exists()
