"""export/conversion_check.py: the bisection names the ONNX node whose TFLite conversion is wrong.

The fault is injected the way a user patches onnx2tf: a parameter-replacement JSON, here one that
transposes H and W of one node's output (same shape, wrong values), in a tiny conv net fed real faces.
"""

from __future__ import annotations

import json
import math

import numpy as np
import onnx
import torch
import torch.nn as nn
from conftest import CELEBAMASK_MINI, require_shared, val_faces

from facesegtool.checkpoint import DEFAULT_INPUT
from facesegtool.data.dataset import to_input_tensor
from facesegtool.export.conversion_check import describe_fault, locate_conversion_fault
from facesegtool.export.onnx import export_onnx

SIZE = 32  # px, square: a transposed H x W map keeps its shape, only the values go wrong


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    layers = []
    for c_in, c_out in ((3, 8), (8, 8), (8, 8)):
        layers += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]
    return nn.Sequential(*layers, nn.Conv2d(8, 4, 1)).eval()


def test_diagnosis_names_the_injected_faulty_node(tmp_path):
    require_shared(CELEBAMASK_MINI)
    path = export_onnx(_tiny_net(), tmp_path / "tiny.onnx", SIZE)
    nodes = list(onnx.load(str(path)).graph.node)  # Conv, Relu, Conv, Relu, Conv, Relu, Conv (BN folded)
    target = nodes[3]
    replacement = tmp_path / "fault.json"
    replacement.write_text(json.dumps({"format_version": 1, "operations": [{
        "op_name": target.name, "param_target": "outputs", "param_name": target.output[0],
        "post_process_transpose_perm": [0, 2, 1, 3],
    }]}))
    faces, _ = val_faces(2, SIZE)
    inputs = [to_input_tensor(face, DEFAULT_INPUT)[None].numpy() for face in faces]

    fault = locate_conversion_fault(path, inputs, param_replacement=replacement, progress=False)

    assert not fault["exact"], fault
    assert (fault["node"], fault["op_type"], fault["index"]) == (target.name, target.op_type, 3)
    assert fault["previous_exact"] == nodes[2].name  # everything before it converted within tolerance
    assert fault["onnx_shape"] == [1, 8, SIZE, SIZE] and not fault["shape_mismatch"]
    assert fault["rel_error"] > 1e-2 and np.isfinite(fault["max_abs_error"])
    assert fault["conversions"] <= 1 + math.ceil(math.log2(len(nodes) + 1))  # bisection, not node by node
    text = describe_fault(fault)
    assert target.name in text and "Relu" in text and "differs" in text
