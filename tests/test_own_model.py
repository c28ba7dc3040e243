"""Bring your own face parser: models that are not in the registry, in every format, through every command.

The four architectures of tests/own_models.py are trained briefly on real celebamask-mini faces
(in their own label sets: 19 CelebAMask-HQ classes, LaPa's 11, ours), saved the four ways a user
hands a model over, exported to TFLite and verified on real val faces.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from conftest import CELEBAMASK_MINI, FACES_UNLABELLED, ParallelExports, require_shared

sys.path.insert(0, str(Path(__file__).parent))
import own_models  # noqa: E402
from own_model_training import FORMATS, OWN, SIZE, SIZES, faces, model_args, save_forms, train  # noqa: E402


@pytest.fixture(scope="session")
def own_models_saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    """name -> {"spec": spec file, "pt2", "ts", "weights", "onnx": paths, "net": the trained module}."""
    require_shared(CELEBAMASK_MINI)
    from facesegtool.model_spec import PRESETS

    root = tmp_path_factory.mktemp("own-models")
    saved = {}
    for name, (_, spec, _) in own_models.ARCHITECTURES.items():
        net = train(name)
        folder = root / name
        saved[name] = dict(save_forms(name, net, folder), net=net, folder=folder,
                           labels=list(PRESETS[spec["preset"]][0]), size=SIZES.get(name, SIZE))
    return saved


# --- loading: every format, one contract ---------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_loads_to_the_same_scores(own_models_saved, fmt):
    from facesegtool.model_source import load_source

    for name, saved in own_models_saved.items():
        x = torch.rand(1, 3, saved["size"], saved["size"])
        args = model_args(saved, fmt)
        source = load_source(args["checkpoint"], spec=args["spec"], weights=args.get("weights"))
        expected_fmt = {"pt2": "exported-program", "ts": "torchscript", "module": "module", "onnx": "onnx"}[fmt]
        assert source.format == expected_fmt
        scores = source.scores(x)
        reference = own_models_saved[name]["net"](x)
        reference = {"bisenet": lambda r: r[0], "dictnet": lambda r: r["seg"].permute(0, 3, 1, 2)}.get(
            name, lambda r: r)(reference)
        assert scores.shape == reference.shape
        assert torch.allclose(scores, reference, atol=1e-4), (name, fmt)
        assert source.reference == ("onnxruntime" if fmt == "onnx" else "pytorch")


def test_contract_inferred_and_assumptions_said(own_models_saved):
    from facesegtool.model_source import load_source
    from facesegtool.model_spec import CELEBAMASK19

    source = load_source(own_models_saved["bisenet"]["pt2"])  # no spec: 19 channels, size from the graph
    assert source.classes == list(CELEBAMASK19)
    assert source.spec.size == SIZE
    said = " ".join(source.notes)
    assert "celebamask19" in said and "size 128" in said and "mean" in said
    lut = source.spec.lut()
    assert lut[CELEBAMASK19.index("skin")] == lut[CELEBAMASK19.index("neck")] == 7  # face
    assert lut[CELEBAMASK19.index("l_eye")] == lut[CELEBAMASK19.index("r_eye")] == 2  # eyes


# --- export + verify: fp32 exact, int8 drop reported ----------------------------------------------


@pytest.mark.slow  # four exports (five .tflite files) and four verifies per architecture
@pytest.mark.parametrize("name", list(own_models.ARCHITECTURES))
def test_every_architecture_converts_exactly_in_every_format(own_models_saved, name, tmp_path):
    from facesegtool.verify import verify

    saved = own_models_saved[name]
    rows = {}
    exports = ParallelExports(tmp_path)  # the four forms convert two at a time
    try:
        for fmt in FORMATS:
            exports.start(fmt, quant="fp32,int8" if fmt == "pt2" else "fp32", out_dir=tmp_path / fmt, num_calib=16,
                          **model_args(saved, fmt))
        for fmt in FORMATS:
            args = model_args(saved, fmt)
            out = tmp_path / fmt
            sidecar = json.loads(exports.result(fmt)["fp32"]["sidecar"].read_text())
            assert sidecar["classes"] == own_models_saved[name]["labels"]
            assert sidecar["mapping"] and sidecar["target_classes"][7] == "face"
            assert sidecar["reference"] == ("onnxruntime" if fmt == "onnx" else "pytorch")
            result = verify(args["checkpoint"], spec=args["spec"], weights=args.get("weights"), export_dir=out,
                            data_dir=CELEBAMASK_MINI, limit=12, diagnose=False, progress=False)
            by_variant = {m.variant: m for m in result.models}
            rows[fmt] = by_variant
            fp32 = by_variant["fp32"].agreement.pixel_accuracy
            assert fp32 >= 0.999, (name, fmt, fp32)
    finally:
        exports.stop()
    int8 = rows["pt2"]["int8"]
    assert int8.drop is not None and int8.agreement.pixel_accuracy > 0.8


# --- refusals: nothing unpickles code; contradictions stop with one clear line ------------------------


class _Evil:
    """Unpickling this runs a shell command: the payload every loader here must refuse."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _rewrite_zip_entry(src: Path, dst: Path, suffix: str, data: bytes) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            zout.writestr(item, data if item.filename.endswith(suffix) else zin.read(item.filename))


def _small_net() -> torch.nn.Module:
    return own_models.DictNet().eval()


def test_whole_pickled_module_is_refused_with_how_to_save_it(tmp_path):
    from facesegtool.model_source import ModelSourceError, load_source

    path = tmp_path / "whole.pt"
    torch.save(_small_net(), path)
    with pytest.raises(ModelSourceError) as err:
        load_source(path)
    message = str(err.value)
    assert "pickled" in message and "torch.export.save" in message and "torch.jit.save" in message
    assert "--weights" in message and "\n" not in message


def test_malicious_files_are_refused_in_every_format_and_never_run(tmp_path):
    from facesegtool.model_source import ModelSourceError, load_source

    marker = tmp_path / "pwned"
    x = torch.rand(1, 3, 64, 64)
    net = _small_net()
    evil_bytes = pickle.dumps(_Evil(marker), protocol=2)

    checkpoint = tmp_path / "evil.pt"  # a torch.save zip (checkpoint / pickled-module path)
    torch.save({"format": "facesegtool-checkpoint", "payload": _Evil(marker)}, checkpoint)

    good_pt2 = tmp_path / "good.pt2"
    torch.export.save(torch.export.export(net, (x,)), good_pt2)
    evil_pt2 = tmp_path / "evil.pt2"  # sample inputs, which torch.export.load unpickles with weights_only=False
    buffer = tmp_path / "evil-inputs.pt"
    torch.save(((x,), {"evil": _Evil(marker)}), buffer)
    _rewrite_zip_entry(good_pt2, evil_pt2, "sample_inputs/model.pt", buffer.read_bytes())

    good_ts = tmp_path / "good.ts"
    torch.jit.save(torch.jit.trace(net, x, strict=False), good_ts)
    evil_ts = tmp_path / "evil.ts"
    _rewrite_zip_entry(good_ts, evil_ts, "/data.pkl", evil_bytes)

    weights = tmp_path / "evil-weights.pt"  # the code.py:function form's state_dict
    torch.save({"seg.weight": _Evil(marker)}, weights)

    cases = [(checkpoint, {}), (evil_pt2, {}), (evil_ts, {"spec": {"input": {"size": 64}}}),
             (f"{OWN}:build_dict_net", {"weights": weights})]
    for model, kwargs in cases:
        with pytest.raises(ModelSourceError):
            load_source(model, **kwargs)
        assert not marker.exists(), f"loading {model} ran the code in it"
    # the untouched files load: the refusals are about the payload, not the format
    # (its "seg" output: the first one, "aux", is a 1-channel edge map, which is no face parser's output)
    assert load_source(good_pt2, spec={"output": {"select": "seg", "layout": "NHWC"}}).format == "exported-program"


def test_spec_contradicting_the_model_stops_with_one_error(tmp_path, own_models_saved):
    from facesegtool.model_source import load_source
    from facesegtool.model_spec import ModelSpecError

    pt2 = own_models_saved["bisenet"]["pt2"]
    cases = {
        "7 labels": ({"labels": ["a", "b", "c", "d", "e", "f", "g"]}, "7 classes but the model's output has 19"),
        "unknown class": ({"preset": "celebamask19", "mapping": {"hat": "crown"}}, "unknown class"),
        "unknown label": ({"preset": "celebamask19", "mapping": {"moustache": "beard"}}, "does not have"),
        "size vs graph": ({"input": {"size": 96}}, "fixed at 128x128"),
        "bad select": ({"output": {"select": 5}}, "returns 3 outputs"),
        "bad preset": ({"preset": "celebamask20"}, "unknown preset"),
    }
    for name, (spec, expected) in cases.items():
        with pytest.raises(ModelSpecError) as err:
            load_source(pt2, spec=spec)
        assert expected in str(err.value), (name, str(err.value))
        assert "\n" not in str(err.value)


def test_dynamic_shape_graph_without_a_size_is_refused(tmp_path):
    from facesegtool.model_source import load_source
    from facesegtool.model_spec import ModelSpecError

    net = own_models.AlignCornersNet().eval()
    path = tmp_path / "dynamic.onnx"
    torch.onnx.export(net, (torch.rand(1, 3, 64, 64),), str(path), dynamo=False, opset_version=17,
                      input_names=["image"], dynamic_axes={"image": {2: "h", 3: "w"}})
    with pytest.raises(ModelSpecError, match="dynamic shapes"):
        load_source(path)
    ts = tmp_path / "scripted.ts"  # TorchScript keeps no input size either
    torch.jit.save(torch.jit.script(net), ts)
    with pytest.raises(ModelSpecError, match="--size N"):
        load_source(ts)
    assert load_source(path, size=64).spec.size == 64  # with a size it runs


def test_cli_refusals_are_one_error_line(tmp_path):
    from facesegtool.cli import main

    whole = tmp_path / "whole.pt"
    torch.save(_small_net(), whole)
    result = CliRunner().invoke(main, ["export", "--model", str(whole), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "torch.export.save" in lines[0]
    result = CliRunner().invoke(main, ["eval", "--model", f"{OWN}:build_dict_net", "--data", str(tmp_path)])
    assert result.exit_code == 2 and result.output.startswith("error:") and "needs --weights" in result.output


def test_export_refuses_to_mix_models_in_one_folder(tmp_path, own_models_saved):
    from facesegtool.export import ExportError, export

    out = tmp_path / "exports"
    out.mkdir()
    other = out / "someone_128_fp32.tflite"
    other.write_bytes(b"not read")
    (out / "someone_128_fp32.json").write_text(json.dumps({
        "format": "facesegtool-sidecar", "model": "someone", "variant": "fp32", "tflite": other.name, "classes": [],
        "input": {}, "output": {}, "source": {"sha256": "0" * 64, "path": "elsewhere.pt2"}}))
    with pytest.raises(ExportError, match="holds exports of another model .*someone_128_fp32.tflite.*--replace"):
        export(own_models_saved["dictnet"]["pt2"], spec=own_models_saved["dictnet"]["spec"], quant="fp32", out_dir=out,
               progress=False)
    assert other.is_file()  # nothing of the user's was touched


def test_resize_output_bakes_full_size_masks_and_bench_runs_it_beside_onnxruntime(own_models_saved, tmp_path):
    """An ONNX BiSeNet-style model (three outputs at 1/8): --resize-output gives a full-size output whose
    mask matches the reference's upsampled scores; bench runs it next to ONNX Runtime (the reference)."""
    from facesegtool.bench.host import run_host_bench
    from facesegtool.export import export
    from facesegtool.tflite_runner import TFLiteModel
    from facesegtool.verify import verify

    saved = own_models_saved["bisenet"]
    out = tmp_path / "full"
    report = export(saved["onnx"], spec=saved["spec"], quant="fp32", out_dir=out, resize_output=True, progress=False)
    tflite = TFLiteModel(report.variants["fp32"].tflite)
    assert tflite.output_details["shape"].tolist() == [1, SIZE, SIZE, 19]
    assert tflite.sidecar["output"]["resized_to_input"] is True
    result = verify(saved["onnx"], spec=saved["spec"], export_dir=out, data_dir=CELEBAMASK_MINI, limit=8,
                    diagnose=False, progress=False)
    assert result.source["reference"] == "onnxruntime" and "ONNX Runtime" in summary(result)
    assert result.models[0].agreement.pixel_accuracy >= 0.999
    bench = run_host_bench(export_dir=out, threads=[1], runs=3, warmup=1, progress=False)  # model from the sidecar
    runtimes = {r["runtime"]: r for r in bench["results"]}
    assert set(runtimes) == {"onnxruntime", "tflite"} and bench["reference"] == "onnxruntime"
    assert all(r["status"] == "ok" and r["median_ms"] > 0 for r in bench["results"])


def summary(result) -> str:
    from facesegtool.verify import summary_text

    return summary_text(result)


def test_predict_runs_a_19_class_model_through_its_mapping(own_models_saved, tmp_path):
    """predict with a user's TorchScript BiSeNet-style model: its 19 labels become our classes, so the
    masks and the effects (hair, lips, brows, skin) work unchanged."""
    from facesegtool.labels import CLASS_INDEX, CLASSES
    from facesegtool.predict import predict
    from facesegtool.segmenter import load_segmenter

    saved = own_models_saved["bisenet"]
    segmenter = load_segmenter(saved["ts"], spec=saved["spec"])
    assert segmenter.model_classes[17] == "hair" and segmenter.classes == list(CLASSES)
    names = (CELEBAMASK_MINI / "val.txt").read_text().split()[:3]
    rgb = np.asarray(Image.open(CELEBAMASK_MINI / "images" / f"{names[0]}.jpg").convert("RGB"))
    scores = segmenter.scores(segmenter.fit(rgb))
    assert scores.shape == (SIZE // 8, SIZE // 8, 19)  # the model's own 1/8 output
    mask = segmenter.to_mask(scores)
    assert {CLASS_INDEX["face"], CLASS_INDEX["hair"]} <= set(np.unique(mask).tolist())
    inputs = tmp_path / "faces"
    inputs.mkdir()
    for name in names:
        (inputs / f"{name}.jpg").write_bytes((CELEBAMASK_MINI / "images" / f"{name}.jpg").read_bytes())
    report = predict([inputs], model=str(saved["ts"]), spec=saved["spec"], out_dir=tmp_path / "out", progress=False,
                     effects="hair=#8040C0,lips=#C02040")
    assert len(report.predictions) == 3
    assert all((tmp_path / "out" / f"{n}_effect.png").is_file() for n in names)


@pytest.mark.slow  # minutes on 2 cores; `make test` runs it
def test_ambiguous_layout_is_warned_at_export_and_named_by_diagnose(own_models_saved, tmp_path):
    """At 128 px the SegFormer's first stage is 1x32x32x32: onnx2tf cannot tell its layout by shape and
    lays it out wrongly. export warns before anyone runs it; verify --diagnose names the first wrong node
    and the Reshape that made its input; at 160 px (the test above) the same net converts exactly."""
    from facesegtool.export import export
    from facesegtool.verify import summary_text, verify

    saved = own_models_saved["segformer"]
    onnx_path = tmp_path / "segformer128.onnx"
    torch.onnx.export(saved["net"], (torch.rand(1, 3, SIZE, SIZE),), str(onnx_path), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["logits"])
    spec = {"preset": "lapa11", "input": {"size": SIZE}}
    out = tmp_path / "exports"
    report = export(onnx_path, spec=spec, quant="fp32", out_dir=out, progress=False)
    reshapes = {a["node"] for a in report.ambiguous_layouts}
    assert reshapes and all(a["op_type"] == "Reshape" and a["shape"] == [1, 32, 32, 32] for a in report.ambiguous_layouts)
    assert any("cannot tell NCHW from NHWC" in w for w in report.warnings)
    result = verify(onnx_path, spec=spec, export_dir=out, data_dir=CELEBAMASK_MINI, limit=4, diagnose=True,
                    progress=False)
    fp32 = result.models[0]
    assert fp32.agreement.pixel_accuracy < 0.99
    fault = fp32.conversion
    assert fault["exact"] is False
    culprits = fault["channels_first_inputs"]
    assert culprits and culprits[0]["producer"] in reshapes and culprits[0]["producer_op"] == "Reshape"
    assert f"made by {culprits[0]['producer']}" in summary_text(result)
    # Without labels there is no IoU to gate on, but a wrong fp32 conversion still fails.
    unlabelled = verify(onnx_path, spec=spec, export_dir=out, data_dir=FACES_UNLABELLED, limit=4, diagnose=False,
                        progress=False)
    assert not unlabelled.gate_applied and not unlabelled.passed
    assert "fp32 argmax agreement" in unlabelled.failures[0] and "gate: FAILED" in summary_text(unlabelled)


# --- standard runtimes: a user's model in stock MediaPipe, with its own labels ------------------------


# The .pt2's four variants convert only in the full suite; the fast form takes the ONNX's fp32 and int8.
@pytest.mark.parametrize("fmt", [pytest.param("pt2", marks=pytest.mark.slow), "onnx"])
def test_stock_mediapipe_takes_a_19_label_models_exports_with_its_own_labels(own_models_saved, fmt, tmp_path):
    """Every variant of a BiSeNet-style parser (19 CelebAMask labels, ImageNet mean/std per channel, outputs
    at 1/8) loads in MediaPipe's ImageSegmenter from its path alone, names the model's own 19 labels and
    gives the interpreter's mask on real faces. Both forms are baked (normalisation inside the graph: the
    .pt2 by a torch wrapper, the .onnx by nodes put in front of its input). --resize-output:
    MediaPipe upsamples a coarse output its own way (92.4 % of pixels agreed with our bilinear scores at
    1/8, measured), so a file for standard runtimes bakes our upsample in."""
    from facesegtool import mediapipe_runtime
    from facesegtool.export import export
    from facesegtool.export.tflite_metadata import read_standard_metadata
    from facesegtool.tflite_runner import TFLiteModel

    if not mediapipe_runtime.available():
        pytest.skip("mediapipe extra not installed")
    saved = own_models_saved["bisenet"]
    report = export(checkpoint=saved[fmt], spec=saved["spec"], quant="all" if fmt == "pt2" else "fp32,int8",
                    out_dir=tmp_path, num_calib=16, resize_output=True, progress=False)
    images, _ = faces((CELEBAMASK_MINI / "val.txt").read_text().split()[:12], saved["size"])
    floors = {"fp32": 0.999, "fp16": 0.999, "dynamic": 0.999, "int8": 0.995}
    for variant, result in report.variants.items():
        md = read_standard_metadata(result.tflite)
        assert md["labels"] == saved["labels"] and len(md["labels"]) == 19
        # ImageNet's per-channel mean/std baked into the graph (MediaPipe refuses per-channel normalisation)
        assert md["mean"] == [0.0] and md["std"] == [1.0]
        model = TFLiteModel(result.tflite)
        with mediapipe_runtime.MediaPipeSegmenter(result.tflite) as seg:
            assert seg.labels == saved["labels"]
            same = [np.mean(seg.category_mask(img) == model.predict(img)) for img in images]
        assert float(np.mean(same)) >= floors[variant], (fmt, variant, float(np.mean(same)))
