"""Non-finite scores: a model whose output holds NaN or Inf has no argmax (predict's masks would index
with -2**31) and no quantization range (int8 calibration would fold the NaN into every scale)."""

from __future__ import annotations

import numpy as np
import torch


def nonfinite_faces(net: torch.nn.Module, inputs: np.ndarray) -> list[int]:
    """Indices of the inputs (N x H x W x 3 float32, already normalised) on which `net` gives a NaN or Inf score.
    One at a time: a torch.export or ONNX graph may be fixed at batch 1."""
    bad = []
    with torch.inference_mode():
        for i, face in enumerate(inputs):
            if not torch.isfinite(net(torch.from_numpy(np.ascontiguousarray(face.transpose(2, 0, 1)))[None])).all():
                bad.append(i)
    return bad
