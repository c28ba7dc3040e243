"""litert-torch, the second converter: the shipped model to TFLite, judged on real faces against torch.

Needs .venv-litert (`make litert`); without it the conversion tests skip and the missing-venv
message is tested instead.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import CELEBAMASK_MINI, require_shared, val_faces

from facesegtool import mediapipe_runtime
from facesegtool.export import litert_torch
from facesegtool.export.calibration import calibration_array
from facesegtool.export.exporter import standard_metadata
from facesegtool.export.onnx import BakedNormalization
from facesegtool.export.sidecar import read_embedded_metadata
from facesegtool.export.tflite_metadata import read_standard_metadata
from facesegtool.export.variants import ExportOptionError
from facesegtool.model_source import load_source

needs_litert = pytest.mark.skipif(not litert_torch.available(), reason="litert-torch venv missing (make litert)")
FACES = 8


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    require_shared(CELEBAMASK_MINI)
    source = load_source(None)  # the shipped default model, 256 px
    net = BakedNormalization(source.net, source.contract).eval()
    size = int(source.contract["size"])
    calib = calibration_array(None, source.contract, 32, baked_normalization=True)
    conversion = litert_torch.convert(
        net, tmp_path_factory.mktemp("litert"), ["fp32", "int8"], size, calib, source.classes,
        {"format": "facesegtool-tflite-metadata", "model": source.name},
        standard_metadata(source.name, source.classes, dict(source.contract), True, source.spec.output_kind, True),
        stem=source.name, progress=False)
    faces, _ = val_faces(FACES, size)
    with torch.no_grad():
        want = net(torch.from_numpy(faces.astype(np.float32)).permute(0, 3, 1, 2)).numpy()
    return conversion, faces, want, source


def run_tflite(path, faces: np.ndarray) -> tuple[np.ndarray, dict, dict]:
    """NCHW float scores of each face through the LiteRT interpreter (quantized I/O mapped by its scale)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    scores = []
    for face in faces:
        x = face[None].astype(np.float32)
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            x = np.clip(np.round(x / scale + zero), 0, 255).astype(inp["dtype"])
        it.set_tensor(inp["index"], x)
        it.invoke()
        y = it.get_tensor(out["index"])[0]
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        scores.append(y.transpose(2, 0, 1))
    return np.stack(scores), inp, out


@needs_litert
@pytest.mark.slow
def test_fp32_is_exact_against_torch_on_real_faces_with_nhwc_io(converted):
    conversion, faces, want, source = converted
    got, inp, out = run_tflite(conversion.variants["fp32"].path, faces)
    size = faces.shape[1]
    assert list(inp["shape"]) == [1, size, size, 3] and inp["dtype"] == np.float32  # NHWC RGB 0..255
    assert list(out["shape"]) == [1, size, size, len(source.classes)]
    assert float(np.mean(got.argmax(1) == want.argmax(1))) >= 0.9999
    assert float(np.abs(got - want).max()) < 1e-3 * max(1.0, float(np.abs(want).max()))
    assert len(np.unique(want.argmax(1))) >= 6  # real face parses, not one class


@needs_litert
@pytest.mark.slow
def test_int8_takes_camera_bytes_and_agrees_on_real_faces(converted):
    conversion, faces, want, _ = converted
    got, inp, out = run_tflite(conversion.variants["int8"].path, faces)
    # uint8 in at scale 1, zero point 0: the pixels as they are, as onnx2tf's uint8 files
    assert inp["dtype"] == np.uint8 and inp["quantization"] == (1.0, 0)
    assert out["dtype"] == np.uint8
    assert float(np.mean(got.argmax(1) == want.argmax(1))) >= 0.97


@needs_litert
@pytest.mark.slow
def test_metadata_is_ours_and_standard(converted):
    conversion, _, _, source = converted
    for variant, conv in conversion.variants.items():
        ours = read_embedded_metadata(conv.path)
        assert ours["converter"] == "litert-torch" and ours["variant"] == variant
        assert ours["classes"] == list(source.classes)
        standard = read_standard_metadata(conv.path)
        assert standard["labels"] == list(source.classes) and standard["version"].endswith(variant)


@needs_litert
@pytest.mark.slow
@pytest.mark.skipif(not mediapipe_runtime.available(), reason="mediapipe extra not installed")
def test_mediapipe_segments_the_fp32_file_as_the_interpreter(converted):
    import mediapipe as mp
    from mediapipe.tasks.python.core import base_options
    from mediapipe.tasks.python.vision import image_segmenter

    conversion, faces, _, source = converted
    path = conversion.variants["fp32"].path
    options = image_segmenter.ImageSegmenterOptions(
        base_options=base_options.BaseOptions(model_asset_path=str(path)), output_category_mask=True)
    with image_segmenter.ImageSegmenter.create_from_options(options) as task:
        assert list(task.labels) == list(source.classes)
        masks = np.stack([np.array(task.segment(mp.Image(image_format=mp.ImageFormat.SRGB,
                                                         data=np.ascontiguousarray(f))).category_mask.numpy_view())
                          .reshape(f.shape[:2]) for f in faces])
    got, _, _ = run_tflite(path, faces)
    assert float(np.mean(masks == got.argmax(1))) >= 0.999


def test_missing_venv_says_how_to_create_it(monkeypatch, tmp_path):
    monkeypatch.setenv(litert_torch.PYTHON_ENV, str(tmp_path / "no-such-python"))
    assert not litert_torch.available()
    with pytest.raises(litert_torch.LitertUnavailableError, match="make litert"):
        litert_torch.convert(torch.nn.Conv2d(3, 2, 1), tmp_path, ["fp32"], 32, None, ["a", "b"], {})


def test_options_it_cannot_honour_are_refused_before_work():
    litert_torch.check_options(["fp32", "int8"], io_dtype="uint8")
    with pytest.raises(ExportOptionError, match="--io-dtype float32"):
        litert_torch.check_options(["int8"], io_dtype="float32")
    with pytest.raises(ExportOptionError, match="--float-layer"):
        litert_torch.check_options(["int8"], float_layers=("x",))


def test_auto_rule_exactness_first_then_latency_then_ops():
    floors = {"fp32": 0.999, "int8": 0.97}
    fig = lambda agree, ops, ms: {"agreement": agree, "ops": ops, "host_ms_1thread": ms}  # noqa: E731
    # SegFormer-B0's shape: litert-torch far leaner and faster, both exact -> litert-torch
    name, why = litert_torch.choose({"onnx2tf": {"fp32": fig(1.0, 4919, 122.0)},
                                     "litert-torch": {"fp32": fig(1.0, 734, 62.0)}}, floors)
    assert name == "litert-torch" and "62.0 ms" in why
    # the faster one is out when its int8 is under the gate
    name, _ = litert_torch.choose({"onnx2tf": {"fp32": fig(1.0, 88, 60.0), "int8": fig(0.99, 88, 30.0)},
                                   "litert-torch": {"fp32": fig(1.0, 86, 40.0), "int8": fig(0.95, 95, 20.0)}}, floors)
    assert name == "onnx2tf"
    # latency within the margin: fewer ops; a full tie keeps onnx2tf
    name, _ = litert_torch.choose({"onnx2tf": {"fp32": fig(1.0, 90, 40.0)},
                                   "litert-torch": {"fp32": fig(1.0, 86, 39.0)}}, floors)
    assert name == "litert-torch"
    name, _ = litert_torch.choose({"onnx2tf": {"fp32": fig(1.0, 86, 40.0)},
                                   "litert-torch": {"fp32": fig(1.0, 86, 40.0)}}, floors)
    assert name == "onnx2tf"
    with pytest.raises(litert_torch.ConversionError, match="no converter"):
        litert_torch.choose({"onnx2tf": {"fp32": fig(0.9, 86, 40.0)}}, floors)


# --- through `facesegtool export --converter` (exporter.py) ---------------------------------------------------


@needs_litert
@pytest.mark.slow
def test_export_with_litert_torch_passes_the_same_verify_gate(small_checkpoint, tmp_path):
    import json

    from facesegtool.export import export
    from facesegtool.verify import verify

    report = export(checkpoint=small_checkpoint, quant="fp32,int8", out_dir=tmp_path, num_calib=32, progress=False,
                    converter="litert-torch")
    int8 = json.loads(report.variants["int8"].sidecar.read_text())
    assert int8["export"]["converter"] == "litert-torch" and report.options["converter"] == "litert-torch"
    assert int8["input"]["dtype"] == "uint8" and int8["input"]["layout"] == "NHWC"
    assert read_embedded_metadata(report.variants["fp32"].tflite)["converter"] == "litert-torch"
    result = verify(checkpoint=small_checkpoint, export_dir=tmp_path, data_dir=CELEBAMASK_MINI, limit=4,
                    diagnose=False, progress=False)
    assert {m.variant for m in result.models} == {"fp32", "int8"}
    assert result.passed, result.failures


@needs_litert
@pytest.mark.slow
def test_export_auto_records_both_candidates_and_its_choice(small_checkpoint, tmp_path):
    import json

    from facesegtool.export import export

    report = export(checkpoint=small_checkpoint, quant="fp32", out_dir=tmp_path, num_calib=16, progress=False,
                    converter="auto")
    choice = report.options["converter_choice"]
    assert set(choice["candidates"]) == {"onnx2tf", "litert-torch"}
    assert all(f["fp32"]["agreement"] >= 0.999 for f in choice["candidates"].values())  # both exact on faces
    assert choice["chosen"] == report.options["converter"] in choice["candidates"]
    sidecar = json.loads(report.variants["fp32"].sidecar.read_text())
    assert sidecar["export"]["converter_choice"]["chosen"] == choice["chosen"]


def test_explicit_litert_torch_without_its_venv_is_one_error_line(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from facesegtool.cli import main

    monkeypatch.setenv(litert_torch.PYTHON_ENV, str(tmp_path / "no-such-python"))
    result = CliRunner().invoke(main, ["export", "--converter", "litert-torch", "--quant", "fp32",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines[-1].startswith("error:") and "make litert" in lines[-1]
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_failed_litert_conversion_is_explained_and_its_log_kept(small_checkpoint, tmp_path, monkeypatch):
    from facesegtool.export import ConversionError, export

    fake = tmp_path / "python"  # stands in for the venv's interpreter: the worker dies as a converter would
    fake.write_text("#!/bin/sh\necho 'RuntimeError: Could not legalize op tfl.foo' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv(litert_torch.PYTHON_ENV, str(fake))
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match="legalize op tfl.foo") as info:
        export(checkpoint=small_checkpoint, quant="fp32", out_dir=out, progress=False, converter="litert-torch")
    kept = out / info.value.args[0].split("full log: ")[1]
    assert kept.is_file() and "tfl.foo" in kept.read_text()
    assert not list(out.glob("*.tflite")) and not list(out.glob(".export-*"))
