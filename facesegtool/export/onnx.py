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

from ..errors import FacesegError

OPSET = 17
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


class ExportError(FacesegError, RuntimeError):
    """An export step failed; the message says what to do."""


class BakedNormalization(nn.Module):
    """Wraps a model so it takes raw RGB values 0..scale (e.g. bytes) instead of normalised input.

    The phone then feeds camera bytes as they are; with int8/uint8 input the quantizer maps
    0..255 onto the input tensor's range, so no per-pixel float work is left on the device.
    A BGR model's channels are flipped inside too: standard runtimes (MediaPipe) feed RGB only.
    """

    def __init__(self, model: nn.Module, contract: dict):
        super().__init__()
        self.model = model
        self.bgr = str(contract.get("channel_order", "RGB")).upper() == "BGR"
        mean = torch.tensor(contract["mean"], dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(contract["std"], dtype=torch.float32).view(1, 3, 1, 1)
        # (x / scale - mean) / std == x * a + b: one multiply-add, folded into the first layer by converters.
        self.register_buffer("a", 1.0 / (float(contract["scale"]) * std))
        self.register_buffer("b", -mean / std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bgr:  # slices + concat, which every delegate takes (a Gather may not be)
            x = torch.cat([x[:, 2:3], x[:, 1:2], x[:, 0:1]], dim=1)
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
    """onnxsim folds shape arithmetic (keeping the original graph if it cannot; onnx2tf simplifies again),
    then the rewrites the converter needs (edge_pad_max_pools)."""
    try:
        import onnxsim

        simplified, ok = onnxsim.simplify(proto)
        proto = simplified if ok else proto
    except Exception:  # onnxsim is an optimisation, never a reason to fail
        pass
    edge_pad_max_pools(proto)
    return proto


def edge_pad_max_pools(proto: onnx.ModelProto) -> int:
    """Give every padded MaxPool its padding as an edge-mode Pad before it; returns how many.

    onnx2tf pads a MaxPool with the float minimum (-3.4e38). int8 calibration then sees that value as
    the tensor's range: ResNet's stem max pool (3x3, stride 2, pad 1) came out with scale 1.3e36 and
    the interpreter aborted on the model. Edge padding is exact for max pooling with dilation 1: a
    window that covers a padded cell also covers the edge pixel it copies (pads <= kernel / 2), so
    the max is unchanged, and the padded values stay in the tensor's own range.
    """
    from onnx import helper

    nodes, count = [], 0
    for node in proto.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        pads = list(attrs.get("pads", []))
        if (node.op_type != "MaxPool" or len(node.output) != 1 or not any(pads)
                or attrs.get("auto_pad", b"NOTSET") != b"NOTSET" or attrs.get("ceil_mode", 0)
                or any(d != 1 for d in attrs.get("dilations", []))):
            nodes.append(node)
            continue
        half = len(pads) // 2
        name = f"{node.output[0]}_edge_pad"
        proto.graph.initializer.append(helper.make_tensor(
            f"{name}_pads", onnx.TensorProto.INT64, [2 * (half + 2)], [0, 0, *pads[:half], 0, 0, *pads[half:]]))
        nodes.append(helper.make_node("Pad", [node.input[0], f"{name}_pads"], [name], mode="edge", name=name))
        pool = onnx.NodeProto()
        pool.CopyFrom(node)
        pool.input[0] = name
        for attr in pool.attribute:
            if attr.name == "pads":
                attr.ints[:] = [0] * len(pads)
        nodes.append(pool)
        count += 1
    if count:
        del proto.graph.node[:]
        proto.graph.node.extend(nodes)
    return count


def onnx_ops(path: str | Path) -> set[str]:
    """Op types used by the main graph of an ONNX file."""
    return {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}


def adapt_onnx(
    src: str | Path,
    path: str | Path,
    size: int,
    select: int | str | None = None,
    layout: str = "NCHW",
    resize_to: int | None = None,
    opset: int = OPSET,
    bake: dict | None = None,
) -> Path:
    """A user's ONNX file as the converter wants it: input fixed at 1 x 3 x size x size, only the selected
    output (dead heads pruned), NCHW, optionally resized to the input (bilinear, half-pixel centres, as
    F.interpolate(align_corners=False) and the app do); bake: the input contract to normalise (and flip
    BGR) inside, as BakedNormalization does for torch models. Written atomically to `path`."""
    from onnx import helper, shape_inference

    path = Path(path)
    proto = onnx.load(str(src))
    inits = {i.name for i in proto.graph.initializer}
    graph_input = next(i for i in proto.graph.input if i.name not in inits)
    for dim, value in zip(graph_input.type.tensor_type.shape.dim, (1, 3, size, size)):
        dim.ClearField("dim_param")
        dim.dim_value = value
    outputs = [o.name for o in proto.graph.output]
    if isinstance(select, str):
        if select not in outputs:
            raise ExportError(f"{src}: output select {select!r} is not one of its outputs {outputs}")
        keep = select
    else:
        index = 0 if select is None else int(select)
        if not -len(outputs) <= index < len(outputs):
            raise ExportError(f"{src}: output select {select!r}, but it has {len(outputs)} outputs")
        keep = outputs[index]
    del proto.graph.value_info[:]
    proto = shape_inference.infer_shapes(proto)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".onnx-") as tmp:
        full = Path(tmp) / "full.onnx"
        pruned = Path(tmp) / "pruned.onnx"
        onnx.save(proto, str(full))
        onnx.utils.extract_model(str(full), str(pruned), [graph_input.name], [keep])
        proto = onnx.load(str(pruned))
        out = proto.graph.output[0]
        tail = out.name
        nodes = []
        if layout == "NHWC":
            nodes.append(helper.make_node("Transpose", [tail], [tail + "_nchw"], perm=[0, 3, 1, 2]))
            tail = tail + "_nchw"
        if resize_to is not None:
            channels = _channels(proto, out.name, layout)
            sizes = helper.make_tensor(tail + "_sizes", onnx.TensorProto.INT64, [4], [1, channels, resize_to, resize_to])
            proto.graph.initializer.append(sizes)
            nodes.append(helper.make_node("Resize", [tail, "", "", sizes.name], [tail + "_full"], mode="linear",
                                          coordinate_transformation_mode="half_pixel"))
            tail = tail + "_full"
        if nodes:
            proto.graph.node.extend(nodes)
            del proto.graph.output[:]
            proto.graph.output.append(helper.make_tensor_value_info(tail, onnx.TensorProto.FLOAT, None))
        if bake is not None:
            _bake_normalization(proto, bake)
        del proto.graph.value_info[:]
        proto = shape_inference.infer_shapes(_simplify(proto))
        try:
            onnx.checker.check_model(proto, full_check=True)
        except onnx.checker.ValidationError as exc:
            raise ExportError(f"{src}: the adapted ONNX graph is invalid: {exc}") from exc
        tmp_path = Path(tmp) / path.name
        onnx.save(proto, str(tmp_path))
        os.replace(tmp_path, path)
    return path


def _bake_normalization(proto: onnx.ModelProto, contract: dict) -> None:
    """The graph takes RGB 0..255: (flip BGR,) x * a + b in front of every use of its input (in place)."""
    import numpy as np
    from onnx import helper, numpy_helper

    name = proto.graph.input[0].name
    std = np.asarray(contract["std"], np.float32).reshape(1, 3, 1, 1)
    mean = np.asarray(contract["mean"], np.float32).reshape(1, 3, 1, 1)
    a = numpy_helper.from_array((1.0 / (float(contract["scale"]) * std)).astype(np.float32), name + "_bake_a")
    b = numpy_helper.from_array((-mean / std).astype(np.float32), name + "_bake_b")
    proto.graph.initializer.extend([a, b])
    nodes, src = [], name
    if str(contract.get("channel_order", "RGB")).upper() == "BGR":
        split = numpy_helper.from_array(np.ones(3, np.int64), name + "_bake_split")
        proto.graph.initializer.append(split)
        parts = [f"{name}_bake_c{i}" for i in range(3)]
        nodes.append(helper.make_node("Split", [name, split.name], parts, axis=1))
        nodes.append(helper.make_node("Concat", parts[::-1], [name + "_bake_bgr"], axis=1))
        src = name + "_bake_bgr"
    nodes.append(helper.make_node("Mul", [src, a.name], [name + "_bake_scaled"]))
    nodes.append(helper.make_node("Add", [name + "_bake_scaled", b.name], [name + "_bake_normalised"]))
    for node in proto.graph.node:
        node.input[:] = [name + "_bake_normalised" if i == name else i for i in node.input]
    for node in reversed(nodes):
        proto.graph.node.insert(0, node)


def _channels(proto: onnx.ModelProto, name: str, layout: str) -> int:
    from onnx import shape_inference

    inferred = shape_inference.infer_shapes(proto)
    for info in [*inferred.graph.output, *inferred.graph.value_info]:
        if info.name == name:
            dims = [d.dim_value for d in info.type.tensor_type.shape.dim]
            if len(dims) == 4 and dims[1 if layout == "NCHW" else 3]:
                return int(dims[1 if layout == "NCHW" else 3])
    raise ExportError(f"cannot tell the channel count of output {name!r} (shape inference gave none)")
