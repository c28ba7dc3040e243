"""Model zoo: each registered model builds at the design's size, runs at 256 px, and exports to ONNX."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner
from conftest import CELEBAMASK_MINI, ParallelExports, read_celebamask_pairs, require_shared, val_faces

from facesegtool.checkpoint import DEFAULT_INPUT
from facesegtool.cli import main
from facesegtool.data.dataset import to_input_tensor
from facesegtool.export.tflite import unsupported_ops
from facesegtool.labels import NUM_CLASSES
from facesegtool.models import count_parameters, create_model, list_models
from facesegtool.models.summary import count_macs

# Parameter counts of the design's table (11 classes), in millions.
DESIGN_PARAMS = {
    "unet-mobilenetv3-small": 3.6,
    "unet-mobilenetv3-large": 6.7,
    "ddrnet23-slim": 5.7,
    "ddrnet23": 20.1,
    "regseg": 3.7,
}
SMALL_MODELS = ["unet-mobilenetv3-small", "regseg"]  # cheap enough for the extra checks


def test_registry_lists_the_design_models():
    assert set(DESIGN_PARAMS) <= set(list_models())


@pytest.mark.parametrize("name", sorted(DESIGN_PARAMS))
def test_parameter_count_matches_design(name):
    model = create_model(name, num_classes=NUM_CLASSES)
    millions = count_parameters(model) / 1e6
    assert abs(millions - DESIGN_PARAMS[name]) <= 0.05 * DESIGN_PARAMS[name], f"{name}: {millions:.3f}M"
    assert model.input_contract == DEFAULT_INPUT


def _export(model: nn.Module, x: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(model, (x,), buf, opset_version=17, dynamo=False, input_names=["input"], output_names=["logits"])
    return buf.getvalue()


@pytest.mark.parametrize("name", sorted(DESIGN_PARAMS))
def test_forward_at_256_and_onnx_export_match(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name).eval()
    x = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        ref = model(x)
    assert isinstance(ref, torch.Tensor) and ref.shape == (1, NUM_CLASSES, 256, 256)
    assert torch.isfinite(ref).all()

    blob = _export(model, x)
    onnx.checker.check_model(onnx.load_from_string(blob))
    (tmp_path / "m.onnx").write_bytes(blob)
    assert unsupported_ops(tmp_path / "m.onnx") == []  # every op has an onnx2tf converter
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    ref = ref.numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-4 * max(1.0, float(np.abs(ref).max())))
    # Same class decision almost everywhere (ties between near-equal logits may flip a few pixels).
    assert (out.argmax(1) == ref.argmax(1)).mean() > 0.999


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_relu_flag_removes_hard_activations_from_the_export(name):
    hard = create_model(name, activation="hardswish").eval()
    soft = create_model(name, activation="relu").eval()
    assert count_parameters(hard) == count_parameters(soft)  # same architecture, other non-linearities
    x = torch.randn(1, 3, 64, 64)
    ops_hard = {n.op_type for n in onnx.load_from_string(_export(hard, x)).graph.node}
    ops_soft = {n.op_type for n in onnx.load_from_string(_export(soft, x)).graph.node}
    assert {"HardSwish", "HardSigmoid"} <= ops_hard
    assert not {"HardSwish", "HardSigmoid"} & ops_soft
    assert {"Relu", "Sigmoid"} <= ops_soft


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(ValueError, match="activation"):
        create_model("unet-mobilenetv3-small", activation="gelu")


@pytest.mark.parametrize("name", SMALL_MODELS + ["ddrnet23-slim"])
def test_every_parameter_gets_a_gradient_on_non_square_input(name):
    torch.manual_seed(0)
    model = create_model(name).train()
    x = torch.randn(2, 3, 96, 160)
    target = torch.randint(0, NUM_CLASSES, (2, 96, 160))
    out = model(x)
    assert out.shape == (2, NUM_CLASSES, 96, 160)
    nn.functional.cross_entropy(out, target).backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not dead, f"parameters without a finite gradient: {dead[:5]}"


def test_ddrnet_aux_head_only_in_training():
    model = create_model("ddrnet23-slim", aux_head=True)
    x = torch.randn(2, 3, 64, 64)  # batch 2: the global-pool branch's BN needs 2 values in training
    main_out, aux_out = model.train()(x)
    assert main_out.shape == aux_out.shape == (2, NUM_CLASSES, 64, 64)
    with torch.no_grad():
        out = model.eval()(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, NUM_CLASSES, 64, 64)
    # The aux head adds parameters but not to the inference path: without it the state dict is a subset.
    plain = create_model("ddrnet23-slim")
    assert set(plain.state_dict()) < set(model.state_dict())


def test_count_macs_of_a_single_conv():
    conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
    macs = count_macs(nn.Sequential(conv), size=32)
    assert macs == 8 * 16 * 16 * 3 * 3 * 3
    depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    assert count_macs(nn.Sequential(nn.Conv2d(3, 8, 1), depthwise), size=16) == 16 * 16 * 8 * 3 + 16 * 16 * 8 * 9


def test_models_command_lists_names_and_counts():
    result = CliRunner().invoke(main, ["models", "--no-macs"])
    assert result.exit_code == 0, result.output
    for name, millions in DESIGN_PARAMS.items():
        line = next(ln for ln in result.output.splitlines() if ln.split() and ln.split()[0] == name)
        assert abs(float(line.split()[1].rstrip("M")) - millions) <= 0.05 * millions


CONVERSION_SIZE = 128  # px: DDRNet's pyramid pools still see more than one pixel at stride 64
CONVERSION_TRAIN_FACES = 8
CONVERSION_VAL_FACES = 8


def _briefly_trained(name: str) -> nn.Module:
    """One epoch over a few real faces: logits with a real spread, BN statistics of real activations."""
    torch.manual_seed(0)
    names = (CELEBAMASK_MINI / "train.txt").read_text().split()[:CONVERSION_TRAIN_FACES]
    images, masks = read_celebamask_pairs(names, CONVERSION_SIZE)
    x_all = torch.stack([to_input_tensor(im, DEFAULT_INPUT) for im in images])
    y_all = torch.from_numpy(masks).long()
    model = create_model(name).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for i in range(0, len(x_all), 4):
        loss = nn.functional.cross_entropy(model(x_all[i : i + 4]), y_all[i : i + 4], ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def registry_fp32(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """name -> (briefly trained model, its fp32 export: variant -> tflite, sidecar, graph) of each registry model
    whose agreement test was selected (`-k ddrnet23` converts one). Two convert at once while the next trains."""
    require_shared(CELEBAMASK_MINI)
    from facesegtool.checkpoint import make_checkpoint, save_checkpoint

    root = tmp_path_factory.mktemp("registry-fp32")
    contract = dict(DEFAULT_INPUT, size=CONVERSION_SIZE)
    selected = [item.callspec.params["name"] for item in request.session.items
                if item.originalname == "test_fp32_tflite_agrees_with_torch_on_real_faces"]
    exports, models = ParallelExports(root), {}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # two exports and this process share the cores
    try:
        for name in selected:
            models[name] = _briefly_trained(name)
            ckpt = save_checkpoint(make_checkpoint(models[name], name, input_contract=contract), root / f"{name}.pt")
            exports.start(name, checkpoint=ckpt, quant="fp32", out_dir=root / name)
        torch.set_num_threads(threads)
        yield {name: (model, exports) for name, model in models.items()}
    finally:
        torch.set_num_threads(threads)
        exports.stop()


@pytest.mark.slow  # trains and exports every registry model
@pytest.mark.parametrize("name", list_models())
def test_fp32_tflite_agrees_with_torch_on_real_faces(name, registry_fp32):
    """Every registry model (new ones too): the exported fp32 TFLite gives PyTorch's mask on real val faces.

    The converter, not just the ONNX file, must keep the model: a wrong op mapping shows as lost
    agreement (DDRNet's BatchNorm after a keepdim mean once gave 56 %); `verify --diagnose` names the node.
    """
    from facesegtool.tflite_runner import TFLiteModel
    from facesegtool.segmenter import torch_scores

    model, exports = registry_fp32[name]
    exported = exports.result(name)["fp32"]
    contract = dict(DEFAULT_INPUT, size=CONVERSION_SIZE)
    tflite = TFLiteModel(exported["tflite"])
    images, _ = val_faces(CONVERSION_VAL_FACES, CONVERSION_SIZE)
    agree, max_diff, scale = [], 0.0, 0.0
    for image in images:
        want, got = torch_scores(model, image, contract), tflite.logits(image)
        agree.append(float((want.argmax(-1) == got.argmax(-1)).mean()))
        max_diff, scale = max(max_diff, float(np.abs(got - want).max())), max(scale, float(np.abs(want).max()))
    graph = exported["graph"]
    print(f"\n{name}: agreement {100 * np.mean(agree):.3f} %, max |dlogit| {max_diff:.2g} (max |logit| {scale:.3g}), "
          f"layout ops {graph['layout_ops']}, GPU-incompatible {sorted(graph['gpu_incompatible']) or 'none'}, "
          f"ops {graph['ops']}")
    assert np.mean(agree) >= 0.999 and min(agree) >= 0.99, agree
    assert max_diff < 1e-3 * max(1.0, scale)
