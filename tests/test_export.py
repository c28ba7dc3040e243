"""Export: torch -> ONNX -> TFLite fp32/fp16/dynamic/int8 on a small trained model, checked on real faces.

The expensive part (training a small model, one export of all four variants) is shared through
the session fixtures in conftest.py; the other tests here are cheap or reuse them.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from onnx import TensorProto, helper

from conftest import (
    CELEBAMASK_MINI,
    FACES_IN_THE_WILD,
    SMALL_SIZE,
    require_shared,
    val_faces,
)
from facesegtool.checkpoint import DEFAULT_INPUT, CheckpointError, load_model
from facesegtool.cli import main as cli
from facesegtool.data.dataset import to_input_tensor
from facesegtool.export import CalibrationError, ConversionError, export, parse_quant
from facesegtool.export import calibration as calib
from facesegtool.export import tflite as tfl
from facesegtool.export.onnx import INPUT_NAME
from facesegtool.export.sidecar import read_embedded_labels, read_embedded_metadata, read_sidecar
from facesegtool.hashing import sha256_file
from facesegtool.labels import CLASSES, PALETTE

# --- helpers -------------------------------------------------------------------------------------


def torch_masks(checkpoint: Path, rgb: np.ndarray) -> np.ndarray:
    model, ckpt = load_model(checkpoint)
    x = torch.from_numpy(calib.normalize(rgb, ckpt["input"])).permute(0, 3, 1, 2)
    with torch.no_grad():
        return model(x).argmax(1).numpy()


def tflite_masks(tflite: Path, rgb: np.ndarray) -> np.ndarray:
    """Run a .tflite the way the app does: everything it needs comes from the sidecar."""
    from ai_edge_litert.interpreter import Interpreter

    side = read_sidecar(tflite)
    interpreter = Interpreter(model_path=str(tflite))
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    contract = side["input"]
    masks = []
    for image in rgb:
        x = image.astype(np.float32) if contract["normalization_baked"] else calib.normalize(image, contract)
        q = contract["quantization"]
        if q is not None:
            info = np.iinfo(np.dtype(contract["dtype"]))
            x = np.clip(np.round(x / q["scale"] + q["zero_point"]), info.min, info.max)
        interpreter.set_tensor(inp["index"], x[None].astype(contract["dtype"]))
        interpreter.invoke()
        masks.append(interpreter.get_tensor(out["index"])[0].argmax(-1))  # NHWC: classes last
    return np.stack(masks)


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float((a == b).mean())


def castlike_onnx(path: Path) -> Path:
    """A valid opset-17 model using CastLike, one of the two standard ops onnx2tf 1.29 cannot convert."""
    x = helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3, 8, 8])
    like = helper.make_tensor("like", TensorProto.FLOAT, [1], [0.0])
    graph = helper.make_graph(
        [helper.make_node("Relu", [INPUT_NAME], ["r"]), helper.make_node("CastLike", ["r", "like"], ["logits"])],
        "castlike",
        [x],
        [y],
        [like],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def leftovers(folder: Path) -> list[str]:
    return sorted(
        p.name for p in folder.iterdir() if p.suffix in (".tflite", ".json", ".onnx") or p.name.startswith(".")
    )


# --- calibration -------------------------------------------------------------------------------


def test_shipped_calibration_set_is_usable():
    images = calib.list_images(calib.CALIBRATION_DIR)
    assert 24 <= len(images) <= 64, "a few dozen crops"
    first = cv2.imread(str(images[0]))
    assert first.shape == (256, 256, 3)
    readme = (calib.CALIBRATION_DIR / "README.md").read_text()
    assert "CelebA" in readme and "non-commercial" in readme


def test_calibration_array_is_exactly_the_training_input():
    contract = dict(DEFAULT_INPUT, size=SMALL_SIZE)
    arr = calib.calibration_array(None, contract, num=5)
    assert arr.shape == (5, SMALL_SIZE, SMALL_SIZE, 3) and arr.dtype == np.float32  # NHWC for onnx2tf
    # The same crop through the training path (dataset.to_input_tensor after the training resize).
    path = calib.list_images(calib.CALIBRATION_DIR)[0]
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    rgb = cv2.resize(rgb, (SMALL_SIZE, SMALL_SIZE), interpolation=cv2.INTER_AREA)
    expected = to_input_tensor(rgb, contract).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(arr[0], expected, atol=1e-6)
    assert -1.0 <= arr.min() < -0.5 and 0.5 < arr.max() <= 1.0  # real faces span the [-1, 1] range
    raw = calib.calibration_array(None, contract, num=5, baked_normalization=True)
    # raw RGB spans exactly 0..255 (one black and one white pixel), so a uint8 input gets scale 1, zero point 0
    assert raw.min() == 0.0 and raw.max() == 255.0
    assert (raw[0, 0, 0] == 0).all() and (raw[0, 0, 1] == 255).all()
    raw[0, 0, :2], arr[0, 0, :2] = 0.0, calib.normalize(np.zeros((2, 3), np.uint8), contract)
    np.testing.assert_allclose(calib.normalize(raw, contract), arr, atol=1e-6)


def test_build_calibration_set_finds_and_crops_faces(tmp_path):
    require_shared(FACES_IN_THE_WILD)
    photos = tmp_path / "photos"
    photos.mkdir()
    names = ["couple.jpg", "img1.jpg", "img17.jpg", "img27.jpg", "img43.jpg", "selfie-many-people.jpg"]
    for name in names:
        shutil.copy(FACES_IN_THE_WILD / name, photos / name)
    (photos / "notes.txt").write_text("not an image")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "crops"
    report = calib.build_calibration_set(photos, out, size=128, margin=0.4, progress=False)

    assert report.faces_per_photo["couple.jpg"] == 2
    assert report.faces_per_photo["selfie-many-people.jpg"] >= 2
    assert all(report.faces_per_photo[n] >= 1 for n in names)
    assert ("broken.jpg", "unreadable image") in report.skipped
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in report.written)  # no temp files left
    detector = calib.face_detector()
    for path in report.written:
        crop = cv2.imread(str(path))
        assert crop.shape == (128, 128, 3)
        # The crop is centred on a face that fills about 1 / (1 + 2 * margin) of it.
        faces = calib.detect_faces(crop, detector, min_size=24)
        assert faces, f"no face in {path.name}"
        x, y, w, h = faces[0]
        assert abs(x + w / 2 - 64) < 20 and abs(y + h / 2 - 64) < 20, path.name
        assert 0.45 < w / 128 < 0.95, path.name
    # The crops are a usable calibration folder.
    assert calib.calibration_array(out, dict(DEFAULT_INPUT, size=64)).shape == (len(report.written), 64, 64, 3)


def test_build_calibration_set_without_faces_fails_clearly(tmp_path):
    require_shared(CELEBAMASK_MINI)
    photos = tmp_path / "masks"
    photos.mkdir()
    for path in sorted((CELEBAMASK_MINI / "masks").glob("*.png"))[:3]:  # real images, but no faces in them
        shutil.copy(path, photos / path.name)
    with pytest.raises(CalibrationError, match="no usable face"):
        calib.build_calibration_set(photos, tmp_path / "out", progress=False)
    result = CliRunner().invoke(cli, ["calibration", "build", "--from", str(photos), "--out", str(tmp_path / "o2")])
    assert result.exit_code == 2 and "error: no usable face" in result.output and "Traceback" not in result.output


def test_calibration_cli_on_shared_photos(tmp_path):
    require_shared(FACES_IN_THE_WILD)
    photos = tmp_path / "p"
    photos.mkdir()
    for name in ("img5.jpg", "img9.jpg"):
        shutil.copy(FACES_IN_THE_WILD / name, photos / name)
    args = ["calibration", "build", "--from", str(photos), "--out", str(tmp_path / "c"), "--size", "96"]
    args += ["--format", "png"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "2 face crops from 2 of 2 photos" in result.output
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["img5_face0.png", "img9_face0.png"]


# --- the export of all four variants (shared fixture) ---------------------------------------------


def test_export_writes_every_variant_with_sidecar(small_export, small_checkpoint):
    report = small_export
    assert list(report.variants) == ["fp32", "fp16", "dynamic", "int8"]
    onnx_model = onnx.load(str(report.onnx))
    assert onnx_model.opset_import[0].version == 17 and not [
        t for t in onnx_model.graph.initializer if t.data_location == TensorProto.EXTERNAL
    ]
    assert list(report.out_dir.glob("*.data")) == []  # single file, no external data
    sizes = {v: r.size_bytes for v, r in report.variants.items()}
    assert sizes["fp16"] < 0.6 * sizes["fp32"] and sizes["int8"] < 0.35 * sizes["fp32"]
    assert sizes["dynamic"] < 0.35 * sizes["fp32"]
    for variant, result in report.variants.items():
        side = read_sidecar(result.sidecar)
        assert side["variant"] == variant and side["model"] == "unet-mobilenetv3-small"
        assert side["tflite"] == result.tflite.name and side["sha256"] == sha256_file(result.tflite)
        assert side["classes"] == list(CLASSES) and side["palette"] == PALETTE.tolist()
        assert side["input"]["shape"] == [1, SMALL_SIZE, SMALL_SIZE, 3] and side["input"]["layout"] == "NHWC"
        assert side["output"]["shape"] == [1, SMALL_SIZE, SMALL_SIZE, len(CLASSES)]
        assert side["input"]["channel_order"] == "RGB" and side["input"]["mean"] == [0.5, 0.5, 0.5]
        # baked by default: every variant takes RGB 0..255, as standard runtimes feed it
        assert side["input"]["normalization_baked"] is True
        assert Path(side["source_checkpoint"]) == small_checkpoint
        # Labels inside the .tflite itself: associated labels.txt and a metadata entry.
        assert read_embedded_labels(result.tflite) == list(CLASSES)
        meta = read_embedded_metadata(result.tflite)
        assert meta["classes"] == list(CLASSES) and meta["variant"] == variant and meta["input"]["size"] == SMALL_SIZE
        if variant == "int8":
            assert side["input"]["dtype"] == "uint8" and side["output"]["dtype"] == "uint8"
            # Raw RGB input calibrated over exactly 0..255: the camera's bytes are the input tensor as they are.
            assert side["input"]["quantization"] == {"scale": 1.0, "zero_point": 0}
            assert side["output"]["quantization"]["scale"] > 0
            assert side["export"]["calibration"]["images"] == 32
        else:
            assert side["input"]["dtype"] == "float32" and side["input"]["quantization"] is None
            assert side["output"]["quantization"] is None
    table = report.table()
    for result in report.variants.values():
        assert result.tflite.name in table
    assert any("facesegtool verify" in c and str(report.out_dir) in c for c in report.next_commands())
    assert leftovers(report.out_dir) == sorted(
        [report.onnx.name] + [p.name for r in report.variants.values() for p in (r.tflite, r.sidecar)]
    )


def test_tflite_masks_agree_with_pytorch_on_real_faces(small_export, small_checkpoint):
    require_shared(CELEBAMASK_MINI)
    rgb, truth = val_faces(8)
    reference = torch_masks(small_checkpoint, rgb)
    # The small model has learnt something: its masks are not one class, and mostly right.
    assert len(np.unique(reference)) >= 5
    assert agreement(reference, truth) > 0.7
    scores = {v: agreement(tflite_masks(r.tflite, rgb), reference) for v, r in small_export.variants.items()}
    print("\ntorch vs TFLite pixel agreement on 8 val faces:", {k: f"{v:.4%}" for k, v in scores.items()})
    assert scores["fp32"] >= 0.999
    assert scores["fp16"] >= 0.995
    assert scores["dynamic"] >= 0.95
    assert scores["int8"] >= 0.90  # reported above; verify measures it per class


def test_export_made_no_network_connection(small_export, offline):
    """small_export ran with internet sockets blocked in this process and in onnx2tf's process."""
    assert small_export.net_log.read_text() == ""  # and no connection was even attempted
    with offline() as net_log:  # the block really applies to child Pythons
        probe = subprocess.run(
            [sys.executable, "-c", "import socket; socket.create_connection(('192.0.2.1', 443), timeout=2)"],
            capture_output=True,
            text=True,
        )
    assert probe.returncode != 0 and "network blocked" in probe.stderr
    assert "192.0.2.1" in net_log.read_text()


# --- options: uint8 I/O with normalisation baked in ----------------------------------------------


def test_int8_uint8_io_with_baked_normalization_takes_raw_bytes(small_checkpoint, tmp_path, monkeypatch):
    require_shared(CELEBAMASK_MINI)
    monkeypatch.chdir(tmp_path)  # a relative --out, like the CLI's default exports/default
    report = export(
        checkpoint=small_checkpoint,
        quant="int8",
        out_dir="exports/raw",
        num_calib=16,
        io_dtype="uint8",
        bake_normalization=True,
        per_channel=False,
        progress=False,
    )
    side = read_sidecar(report.variants["int8"].sidecar)
    assert side["input"]["dtype"] == "uint8" and side["output"]["dtype"] == "uint8"
    assert side["input"]["normalization_baked"] is True and side["export"]["per_channel"] is False
    q = side["input"]["quantization"]
    assert q["scale"] == pytest.approx(1.0, rel=0.02) and q["zero_point"] == 0  # the camera's bytes, as they are
    rgb, _ = val_faces(4)
    score = agreement(tflite_masks(report.variants["int8"].tflite, rgb), torch_masks(small_checkpoint, rgb))
    print(f"\nint8 per-tensor, uint8 raw-RGB input: {score:.4%} pixels agree with torch")
    assert score >= 0.85


@pytest.mark.slow  # minutes on 2 cores; `make test` runs it
def test_int8_with_a_layer_kept_in_float(small_export, small_checkpoint, tmp_path):
    """The remedy `facesegtool verify` proposes: name a layer of the int8 model, get it back in float."""
    from ai_edge_litert.interpreter import Interpreter

    def tensors(path: Path) -> dict[str, str]:
        return {d["name"]: np.dtype(d["dtype"]).name for d in Interpreter(model_path=str(path)).get_tensor_details()}

    int8 = tensors(small_export.variants["int8"].tflite)
    # Tensor names are fused op names ("model_18/tf.math.add_4/Add;model_18/tf.nn.convolution_3/convolution;...");
    # verify names a layer by one part, as here.
    convs = [p for n, dtype in int8.items() if dtype == "int8" for p in n.split(";") if p.endswith("/convolution")]
    assert convs, "no int8 convolution in the int8 model"
    layer = convs[len(convs) // 2]
    report = export(checkpoint=small_checkpoint, quant="int8", out_dir=tmp_path, num_calib=16, float_layers=[layer],
                    progress=False)
    kept = tensors(report.variants["int8"].tflite)
    key = layer.split("/", 1)[1]  # Keras's "model_N/" prefix may differ from process to process
    assert "float32" in {dtype for n, dtype in kept.items() if any(p.split("/", 1)[-1] == key for p in n.split(";"))}
    side = read_sidecar(report.variants["int8"].sidecar)
    # the default uint8 I/O holds with a layer kept in float (the int8 model's ends re-typed, as TF does)
    assert side["input"]["dtype"] == "uint8" and side["export"]["float_layers"] == [layer]
    rgb, _ = val_faces(4)
    assert agreement(tflite_masks(report.variants["int8"].tflite, rgb), torch_masks(small_checkpoint, rgb)) >= 0.85


# --- bad input and failures -------------------------------------------------------------------------


def test_missing_and_corrupt_checkpoint_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        export(checkpoint=tmp_path / "nope.pt", out_dir=tmp_path / "out")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"truncated")
    result = CliRunner().invoke(cli, ["export", "--checkpoint", str(bad), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "error: cannot read checkpoint" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["export", "--checkpoint", str(bad), "--quant", "int4"])
    assert result.exit_code == 2 and "unknown quantization int4" in result.output


class _RunsCodeWhenUnpickled:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoint_with_code_in_it_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"format": "facesegtool-checkpoint", "state_dict": _RunsCodeWhenUnpickled(marker)}, evil)
    result = CliRunner().invoke(cli, ["export", "--checkpoint", str(evil), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "cannot read checkpoint" in result.output
    assert "never runs" in result.output and "weights_only=False" not in result.output  # no unsafe advice
    assert not marker.exists()


def test_parse_quant():
    assert parse_quant("all") == ["fp32", "fp16", "dynamic", "int8"]
    assert parse_quant("int8,fp32") == ["fp32", "int8"]
    assert parse_quant(["fp16"]) == ["fp16"]
    with pytest.raises(ValueError):
        parse_quant("")


def test_calibration_folder_without_images_fails_before_converting(small_checkpoint, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "readme.txt").write_text("no images here")
    out = tmp_path / "out"
    with pytest.raises(CalibrationError, match="no usable image in calibration folder"):
        export(checkpoint=small_checkpoint, quant="int8", calibration_dir=empty, out_dir=out, progress=False)
    assert not out.exists() or leftovers(out) == []


def test_unsupported_onnx_op_is_named_before_converting(tmp_path):
    model = castlike_onnx(tmp_path / "castlike.onnx")
    assert tfl.unsupported_ops(model) == ["CastLike"]
    faces = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(ConversionError, match="cannot convert ONNX op.*CastLike.*replace the layer"):
        tfl.convert(model, tmp_path / "work", ["fp32"], None, faces, progress=False)


def test_onnx2tf_failure_in_child_is_explained(tmp_path, monkeypatch):
    """Same model with our pre-check off: onnx2tf itself fails in the child, and the log is turned into advice."""
    model = castlike_onnx(tmp_path / "castlike.onnx")
    monkeypatch.setattr(tfl, "unsupported_ops", lambda path: [])
    faces = np.zeros((1, 8, 8, 3), np.uint8)
    with pytest.raises(ConversionError, match="cannot convert ONNX op CastLike"):
        tfl.convert(model, tmp_path / "work", ["fp32"], None, faces, progress=False)
    assert list((tmp_path / "work").glob("*.tflite")) == []


def test_interrupted_export_leaves_no_partial_files(small_checkpoint, tmp_path):
    """Ctrl-C after the first .tflite exists (in the temp dir): nothing lands in --out, the converter dies."""
    import psutil

    out = tmp_path / "out"
    seen: list[str] = []

    def interrupt_when_a_tflite_exists():
        deadline = time.time() + 600
        while time.time() < deadline:
            found = list(out.glob(".export-*/*.tflite"))
            if found:
                seen.append(found[0].name)
                # To the main thread itself, as a terminal's Ctrl-C reaches the foreground process: a
                # process-wide kill may land on any thread and leave the main one blocked in its read.
                signal.pthread_kill(main, signal.SIGINT)
                return
            time.sleep(0.05)

    main = threading.main_thread().ident
    # Python's own Ctrl-C handler, whatever an earlier test's imports did to it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    watcher = threading.Thread(target=interrupt_when_a_tflite_exists, daemon=True)
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            export(checkpoint=small_checkpoint, quant="all", out_dir=out, num_calib=8, progress=False)
            pytest.fail(f"the export finished without being interrupted (the watcher saw {seen or 'no .tflite'})")
    finally:
        signal.signal(signal.SIGINT, previous)
    watcher.join(timeout=5)
    assert seen, "the export never produced a .tflite to interrupt"
    assert leftovers(out) == []
    workers = [p for p in psutil.process_iter(["cmdline"]) if str(out) in " ".join(p.info["cmdline"] or [])]
    assert workers == []


def tflite_ops(path: Path) -> list[str]:
    """The builtin op names of a single-subgraph .tflite in execution order, from its flatbuffer."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(path.read_bytes()))
    names = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    codes = [names[flatbuffer_utils.get_builtin_code_from_operator_code(c)] for c in model.operatorCodes]
    (graph,) = model.subgraphs
    return [codes[op.opcodeIndex] for op in graph.operators]


def test_sidecar_and_summary_record_ops_and_gpu_readiness(small_export):
    """Each variant's op histogram and GPU-delegate refusals, from TFLite's analyzer, in sidecar and table."""
    from facesegtool.export.op_analysis import LAYOUT_OPS, analyze_ops

    for variant, result in small_export.variants.items():
        graph = read_sidecar(result.sidecar)["graph"]
        assert graph == result.graph == analyze_ops(result.tflite)
        assert graph["ops"]["CONV_2D"] >= 20 and "HARD_SWISH" in graph["ops"]  # MobileNetV3 encoder
        # The analyzer's report, parsed, against the file's own operator list (read from the flatbuffer).
        ops = tflite_ops(result.tflite)
        assert graph["ops"] == dict(Counter(ops))
        assert graph["layout_ops"] == {op: ops.count(op) for op in LAYOUT_OPS}
        for op, refusals in graph["gpu_incompatible"].items():  # each refusal names an op of that type by index
            assert all(ops[int(r.split(":")[0].removeprefix("Op#"))] == op for r in refusals), refusals
        assert small_export.as_dict()["variants"][variant]["graph"] == graph
        # The TRANSPOSE pairs onnx2tf puts around the decoder's concats are folded away (lean_graph.py);
        # the sidecar says how many went. Exactness: test_tflite_masks_agree_with_pytorch_on_real_faces.
        assert graph["layout_ops"]["TRANSPOSE"] == 0
        assert read_sidecar(result.sidecar)["export"]["folded_transposes"] > 0
    table = small_export.table()
    assert "GPU delegate" in table and "/".join(LAYOUT_OPS) in table
    # fp16 is what the GPU delegate runs; the small U-Net's ops are all GPU-compatible, so no warning.
    assert small_export.variants["fp16"].graph["gpu_incompatible"] == {} and small_export.warnings == []


def test_gpu_refusals_are_named_per_op():
    """The analyzer's report format (tensorflow/lite/python/analyzer_wrapper/model_analyzer.cc): a refusal
    follows its op's line; the subgraph summary line is not an op."""
    from facesegtool.export.op_analysis import gpu_warning, parse_analyzer

    text = "\n".join([
        "Subgraph#0 main(T#0) -> [T#9]",
        "  Op#0 CONV_2D(T#0, T#1, T#2) -> [T#3]",
        "  Op#1 TRANSPOSE(T#3, T#4[0, 3, 1, 2]) -> [T#5]",
        "  Op#2 GATHER(T#5, T#6) -> [T#7]",
        "GPU COMPATIBILITY WARNING: Not supported op GATHER",
        "  Op#3 CAST(T#7) -> [T#9]",
        "GPU COMPATIBILITY WARNING: Not supported Cast case. Input type: FLOAT32 and output type: INT32",
        "",
        "GPU COMPATIBILITY WARNING: Subgraph#0 has GPU delegate compatibility issues at nodes 2, 3 with TFLite runtime",
    ])
    info = parse_analyzer(text)
    assert info["ops"] == {"CONV_2D": 1, "TRANSPOSE": 1, "GATHER": 1, "CAST": 1}
    assert info["layout_ops"] == {"TRANSPOSE": 1, "GATHER": 1, "CAST": 1, "RESHAPE": 0}
    assert info["gpu_incompatible"] == {"GATHER": ["Op#2: Not supported op GATHER"],
                                        "CAST": ["Op#3: Not supported Cast case. Input type: FLOAT32 and output type: INT32"]}
    warning = gpu_warning("fp16", info)
    assert "GATHER x1" in warning and "CAST x1" in warning and "fp16" in warning
    assert gpu_warning("fp16", parse_analyzer("  Op#0 CONV_2D(T#0) -> [T#1]")) is None


def test_padded_max_pool_quantizes_to_a_model_that_runs(tmp_path):
    """A ResNet stem's max pool (3x3, stride 2, pad 1): onnx2tf pads it with -3.4e38, which int8
    calibration took as the tensor's range (scale 1.3e36: the interpreter aborted on the model).
    The exporter pads it at the edge instead (exact for max pooling), so the int8 model runs."""
    from ai_edge_litert import schema_py_generated as schema

    from facesegtool.export.onnx import edge_pad_max_pools

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                              torch.nn.MaxPool2d(3, 2, 1), torch.nn.Conv2d(16, len(CLASSES), 1),
                              torch.nn.Upsample(scale_factor=4, mode="bilinear")).eval()
    model = tmp_path / "stem.pt2"
    torch.export.save(torch.export.export(net, (torch.rand(1, 3, 64, 64),)), model)
    report = export(model, spec={"preset": "facesegtool11"}, quant="fp32,int8", out_dir=tmp_path / "out",
                    progress=False, num_calib=8)
    graph = onnx.load(str(report.onnx)).graph
    pools = [n for n in graph.node if n.op_type == "MaxPool"]
    assert all(list(helper.get_attribute_value(a)) == [0, 0, 0, 0] for n in pools for a in n.attribute
               if a.name == "pads")
    assert any(n.op_type == "Pad" and helper.get_attribute_value(n.attribute[0]) == b"edge" for n in graph.node)
    content = report.variants["int8"].tflite.read_bytes()
    tflite = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(content, 0))
    scales = [s for t in tflite.subgraphs[0].tensors if t.quantization is not None and t.quantization.scale is not None
              for s in t.quantization.scale]
    assert scales and max(scales) < 1e3  # every activation quantized over its own range
    # the rewrite changes no value: a padded max pool in ONNX Runtime, before and after
    padded = tmp_path / "pool.onnx"
    torch.onnx.export(torch.nn.MaxPool2d(3, 2, 1), (torch.rand(1, 2, 9, 9),), str(padded), dynamo=False)
    proto = onnx.load(str(padded))
    assert edge_pad_max_pools(proto) == 1
    import onnxruntime as ort

    x = np.random.default_rng(0).normal(size=(1, 2, 9, 9)).astype(np.float32) - 5  # all negative: no zero padding would do
    name = proto.graph.input[0].name
    want = ort.InferenceSession(str(padded)).run(None, {name: x})[0]
    got = ort.InferenceSession(proto.SerializeToString()).run(None, {name: x})[0]
    assert np.array_equal(want, got)
    with pytest.raises(ConversionError, match="cannot run it"):
        broken = tmp_path / "broken.tflite"
        broken.write_bytes(content[: len(content) // 2])
        tfl.check_runs([broken])


class _TokenMixer(torch.nn.Module):
    """SegFormer's Mix-FFN in small: a depthwise conv on tokens viewed as an image (a Reshape feeds it),
    beside a CNN's depthwise conv (a conv feeds it) and RegSeg's grouped conv (group width 16)."""

    def __init__(self, c: int = 32):
        super().__init__()
        nn = torch.nn
        self.stem = nn.Conv2d(3, c, 4, stride=4)
        self.dw_cnn = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.fc1, self.fc2 = nn.Linear(c, 2 * c), nn.Linear(2 * c, c)
        self.dw_tokens = nn.Conv2d(2 * c, 2 * c, 3, padding=1, groups=2 * c)
        self.grouped = nn.Conv2d(c, c, 3, padding=1, groups=c // 16)
        self.head = nn.Conv2d(c, len(CLASSES), 1)

    def forward(self, x):
        x = torch.relu(self.dw_cnn(self.stem(x)))
        b, c, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        u = self.fc1(tokens).transpose(1, 2).reshape(b, -1, h, w)  # tokens -> image, as SegFormer does
        u = self.dw_tokens(u).flatten(2).transpose(1, 2)
        x = (tokens + self.fc2(torch.nn.functional.gelu(u))).transpose(1, 2).reshape(b, c, h, w)
        x = torch.relu(self.grouped(x))
        return torch.nn.functional.interpolate(self.head(x), scale_factor=4, mode="bilinear")


def test_depthwise_convs_stay_depthwise_and_grouped_convs_split_per_group(tmp_path):
    """A depthwise conv fed by a Reshape (SegFormer's Mix-FFN) once became one CONV_2D per channel
    (SegFormer-B0: 4,096 of its 4,919 ops): onnx2tf tested "depthwise" on its input's NCHW shape
    (see export/onnx2tf_fixes.py). Both depthwise convs must be DEPTHWISE_CONV_2D, the grouped conv
    one CONV_2D per group (2 here), and the model must still give PyTorch's masks on real faces."""
    require_shared(CELEBAMASK_MINI)
    from facesegtool.tflite_runner import TFLiteModel

    torch.manual_seed(0)
    net = _TokenMixer().eval()
    model = tmp_path / "mixer.pt2"
    torch.export.save(torch.export.export(net, (torch.rand(1, 3, 64, 64),)), model)
    report = export(model, spec={"preset": "facesegtool11"}, quant="fp32", out_dir=tmp_path / "out", progress=False)
    ops = report.variants["fp32"].graph["ops"]
    assert ops.get("DEPTHWISE_CONV_2D") == 2, ops
    assert ops.get("CONV_2D") == 4, ops  # stem, the grouped conv's 2 groups, head
    tflite = TFLiteModel(report.variants["fp32"].tflite)
    images, _ = val_faces(4, 64)
    for image in images:
        with torch.no_grad():
            want = net(to_input_tensor(image, tflite.sidecar["input"])[None])[0].permute(1, 2, 0).numpy()
        got = tflite.logits(image)
        assert np.abs(got - want).max() < 1e-4 * max(1.0, float(np.abs(want).max()))
        assert agreement(got.argmax(-1), want.argmax(-1)) >= 0.999
