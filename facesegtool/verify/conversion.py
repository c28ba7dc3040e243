"""An fp32 model that disagrees with PyTorch: is it the conversion? Name the first ONNX node that converts wrongly.

fp32 TFLite should match PyTorch to rounding (>= 99.9 % argmax agreement). When it does not, the
export's ONNX file (beside the .tflite, named in its sidecar) is bisected node by node with
export/conversion_check.py on a few of the verified faces: the result names the node, its op
type, shapes and error, which says what to change in the model (or in onnx2tf's parameters).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from ..export.conversion_check import ConversionCheckError, locate_conversion_fault
from ..tflite_runner import TFLiteModel
from .compare import VerifyResult

CONVERSION_FACES = 2  # inputs per conversion check: each adds little time, one face can hide a fault


def onnx_source(model: TFLiteModel) -> Path | None:
    """The ONNX file the .tflite was converted from, when it is still beside it."""
    name = (model.sidecar.get("export") or {}).get("onnx")
    path = model.path.parent / name if name else None
    return path if path is not None and path.is_file() else None


def onnx_inputs(model: TFLiteModel, images: list[np.ndarray]) -> list[np.ndarray]:
    """Faces as the ONNX graph takes them: the sidecar's pre-processing, NCHW float32."""
    return [np.moveaxis(model.preprocess(image), -1, 1).astype(np.float32) for image in images]


def diagnose_conversions(result: VerifyResult, models: list[TFLiteModel], progress: bool = True) -> None:
    """Check the conversion of every fp32 model; fills result.models[i].conversion."""
    for model_result, model in zip(result.models, models):
        if model.variant != "fp32" or model.is_integer:
            continue
        onnx = onnx_source(model)
        if onnx is None:
            model_result.conversion = {"error": f"no ONNX file beside {model.path.name} (the export writes one); "
                                                "re-export into one folder to check the conversion"}
            continue
        images = [face.image for face in itertools.islice(iter(result.faces), CONVERSION_FACES)]
        try:
            model_result.conversion = locate_conversion_fault(onnx, onnx_inputs(model, images), progress=progress)
        except ConversionCheckError as exc:
            model_result.conversion = {"error": str(exc)}
