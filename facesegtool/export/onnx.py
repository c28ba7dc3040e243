"""PyTorch -> ONNX: one self-contained file, checked, optionally simplified.

The ONNX graph is NCHW float32 with a fixed 1 x 3 x size x size input named "input" and
1 x C x size x size logits named "logits"; onnx2tf turns it into NHWC TFLite.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import onnx
import torch
import torch.nn as nn

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


class ExportError(RuntimeError):
    """An export step failed; the message says what to do."""


class BakedNormalization(nn.Module):
    """Wraps a model so it takes raw RGB values 0..scale (e.g. bytes) instead of normalised input.

    The phone then feeds camera bytes as they are; with int8/uint8 input the quantizer maps
    0..255 onto the input tensor's range, so no per-pixel float work is left on the device.
    """

    def __init__(self, model: nn.Module, contract: dict):
        super().__init__()
        self.model = model
        mean = torch.tensor(contract["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(contract["std"], dtype=torch.float32).view(1, 3, 1, 1)
        # (x / scale - mean) / std == x * a + b: one multiply-add, folded into the first layer by converters.
        self.register_buffer("a", 1.0 / (float(contract["scale"]) * std))
        self.register_buffer("b", -mean / std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x * self.a + self.b)


def export_onnx(model: nn.Module, path: str | Path, size: int, opset: int = OPSET, simplify: bool = True) -> Path:
    """Export `model` (eval mode, CPU) for a 1 x 3 x size x size input; written atomically to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    dummy = torch.zeros(1, 3, size, size)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".onnx-") as tmp:
        tmp_path = Path(tmp) / path.name
        try:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
                # dynamo=False: the TorchScript exporter writes one file with weights inside and
                # plain opset-17 ops that onnx2tf knows; external_data=False keeps it one file.
                torch.onnx.export(
                    model,
                    (dummy,),
                    str(tmp_path),
                    dynamo=False,
                    external_data=False,
                    opset_version=opset,
                    input_names=[INPUT_NAME],
                    output_names=[OUTPUT_NAME],
                    do_constant_folding=True,
                )
        except Exception as exc:
            raise ExportError(f"torch -> ONNX export failed: {exc}") from exc
        proto = onnx.load(str(tmp_path))
        if simplify:
            proto = _simplify(proto)
        try:
            onnx.checker.check_model(proto, full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"the exported ONNX graph is invalid: {exc}") from exc
        onnx.save(proto, str(tmp_path))
        os.replace(tmp_path, path)
    return path


def _simplify(proto: onnx.ModelProto) -> onnx.ModelProto:
    """onnxsim folds shape arithmetic; keep the original graph if it cannot (onnx2tf simplifies again)."""
    try:
        import onnxsim

        simplified, ok = onnxsim.simplify(proto)
        return simplified if ok else proto
    except Exception:  # onnxsim is an optimisation, never a reason to fail
        return proto


def onnx_ops(path: str | Path) -> set[str]:
    """Op types used by the main graph of an ONNX file."""
    return {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}
