"""The sidecar JSON next to each .tflite, and the labels embedded in the .tflite itself.

The sidecar (<same stem>.json) is what verify, bench, predict and the Android app read:

    {"format": "facesegtool-sidecar", "version": 1, "model": ..., "variant": "fp32|fp16|dynamic|int8",
     "tflite": "<file name>", "classes": [...], "palette": [[r,g,b], ...],
     "input":  {"index": 0, "shape": [1,H,W,3], "layout": "NHWC", "channel_order": "RGB",
                "dtype": ..., "mean": [...], "std": [...], "scale": 255.0,
                "normalization_baked": bool, "quantization": {"scale": s, "zero_point": z} | null},
     "output": {"index": 0, "shape": [1,H,W,C], "layout": "NHWC", "dtype": ..., "quantization": ... | null},
     "output" also says "kind" (logits | probabilities) and "resized_to_input"; its H x W may be a
     fraction of the input's (1/4, 1/8): consumers upsample the scores bilinearly before the argmax,
     "mapping": {model label: one of "target_classes" (our 11) or "ignore"}, "spec": the whole contract,
     "source": {"path", "format", "sha256", "reference"}, "reference": "pytorch" | "onnxruntime",
     "source_checkpoint": "...", "sha256": "<of the tflite>",
     "export": {...how it was made: per-channel, io dtype, calibration...},
     "graph": {"ops": {"CONV_2D": 56, ...}, "layout_ops": {"TRANSPOSE": 0, ...},
               "gpu_incompatible": {"OP": ["Op#i: reason"], ...}}}   (op_analysis.py; {} = GPU-ready)

Shapes, dtypes and quantization parameters are read back from the finished .tflite with the
LiteRT interpreter (tensors selected by index, never by name), so they are what the phone sees.
onnx2tf writes NHWC: the input is 1 x H x W x 3 and the logits 1 x H x W x C.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..model_spec import ModelSpec

from ..atomic import write_bytes_atomic
from ..contract import FORMAT, VERSION, ContractError, read_contract, sidecar_path
from ..hashing import sha256_file
from ..labels import CLASSES
from .op_analysis import analyze_ops
from .tflite_metadata import LABELS_FILE
from .variants import VARIANTS

METADATA_NAME = "facesegtool"  # name of our entry in the .tflite's metadata table


SidecarError = ContractError  # the writer's errors and the reader's are one kind: the sidecar cannot be used


def _quantization(detail: dict) -> dict | None:
    params = detail.get("quantization_parameters") or {}
    scales = np.asarray(params.get("scales", []))
    zero_points = np.asarray(params.get("zero_points", []))
    if scales.size == 0 or not np.any(scales):
        return None  # float tensor
    if scales.size > 1:  # per-axis (never the case for model inputs/outputs, kept explicit)
        return {"scale": scales.tolist(), "zero_point": zero_points.tolist(), "axis": params.get("quantized_dimension")}
    return {"scale": float(scales[0]), "zero_point": int(zero_points[0])}


def tensor_details(tflite: str | Path) -> tuple[dict, dict]:
    """(input, output) details of a .tflite: index, shape, dtype name, quantization (or None)."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        # From bytes, not a path: a truncated file mapped by path can crash the process (SIGBUS).
        interpreter = Interpreter(model_content=Path(tflite).read_bytes())
    except Exception as exc:
        raise SidecarError(f"{tflite}: not a loadable TFLite model: {exc}") from exc
    result = []
    for detail in (interpreter.get_input_details()[0], interpreter.get_output_details()[0]):
        result.append(
            {
                "index": 0,
                "shape": [int(v) for v in detail["shape"]],
                "dtype": np.dtype(detail["dtype"]).name,
                "quantization": _quantization(detail),
            }
        )
    return result[0], result[1]


def make_sidecar(
    tflite: str | Path,
    model: str,
    variant: str,
    contract: dict,
    classes: list[str],
    palette: list[list[int]],
    normalization_baked: bool,
    source_checkpoint: str | Path,
    export_options: dict | None = None,
    spec: "ModelSpec | None" = None,
    source: dict | None = None,
    output_resized: bool = False,
) -> dict:
    """The sidecar of one exported .tflite. spec: the model's contract (labels, mapping onto our classes,
    output kind and selection); source: model_source.LoadedModel.describe() (file, format, sha256, reference)."""
    if variant not in VARIANTS:
        raise SidecarError(f"unknown variant {variant!r}; one of {', '.join(VARIANTS)}")
    tflite = Path(tflite)
    inp, out = tensor_details(tflite)
    if spec is None:
        from ..model_spec import checkpoint_spec

        spec = checkpoint_spec({"classes": classes, "input": contract})
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": model,
        "variant": variant,
        "tflite": tflite.name,
        "classes": list(classes),
        "palette": [list(map(int, c)) for c in palette],
        "input": {
            "index": inp["index"],
            "shape": inp["shape"],
            "layout": "NHWC",
            "channel_order": contract.get("channel_order", "RGB"),
            "dtype": inp["dtype"],
            "mean": list(map(float, contract["mean"])),
            "std": list(map(float, contract["std"])),
            "scale": float(contract["scale"]),
            "normalization_baked": bool(normalization_baked),
            "quantization": inp["quantization"],
        },
        "output": {
            "index": out["index"],
            "shape": out["shape"],
            "layout": "NHWC",
            "dtype": out["dtype"],
            "quantization": out["quantization"],
            "kind": spec.output_kind,
            "resized_to_input": bool(output_resized),
        },
        "mapping": dict(spec.mapping),
        "target_classes": list(CLASSES),
        "spec": spec.to_dict(),
        "source": dict(source or {}),
        "reference": (source or {}).get("reference", "pytorch"),
        "source_checkpoint": str(source_checkpoint),
        "sha256": sha256_file(tflite),
        "export": dict(export_options or {}),
        "graph": analyze_ops(tflite),
    }


def write_sidecar(sidecar: dict, path: str | Path) -> Path:
    """Atomic write (temp file, then rename)."""
    path = Path(path)
    write_bytes_atomic(path, (json.dumps(sidecar, indent=1) + "\n").encode())
    return path


def read_sidecar(path: str | Path) -> dict:
    """The checked sidecar of FILE.tflite (or FILE.json) as a dict; contract.read_contract is the reader."""
    return read_contract(path).raw


# --- labels inside the .tflite ------------------------------------------------------------------
#
# Two entries in the model's flatbuffer `metadata` table:
# - TFLITE_METADATA, the standard one that MediaPipe Tasks and the LiteRT support library read
#   (normalisation, labels.txt as an associated file zipped onto the model, the output's activation):
#   tflite_metadata.py;
# - "facesegtool", ours: UTF-8 JSON with what the standard has no field for (palette, the mapping
#   of the model's labels onto our classes, the whole input contract), written here with TF's own
#   flatbuffer_utils, before the standard entry (which keeps every other entry).


def embed_metadata(tflite: str | Path, labels: list[str], info: dict) -> None:
    """Rewrite `tflite` in place with our JSON entry (see above). Needs TensorFlow (worker side)."""
    from tensorflow.lite.python import schema_py_generated as schema_fb
    from tensorflow.lite.tools import flatbuffer_utils

    tflite = Path(tflite)
    model = flatbuffer_utils.read_model(str(tflite))
    buffer = schema_fb.BufferT()
    buffer.data = np.frombuffer(json.dumps(dict(info, classes=list(labels))).encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema_fb.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = list(model.metadata or []) + [entry]
    flatbuffer_utils.write_model(model, str(tflite))


def read_embedded_labels(tflite: str | Path) -> list[str]:
    """labels.txt from the associated files zipped onto the .tflite ([] when there is none)."""
    try:
        with zipfile.ZipFile(tflite) as archive:
            return archive.read(LABELS_FILE).decode().splitlines()
    except (zipfile.BadZipFile, KeyError):
        return []


def read_embedded_metadata(tflite: str | Path) -> dict | None:
    """Our JSON entry in the .tflite's flatbuffer metadata table (None when absent).

    Reads the flatbuffer with LiteRT's generated schema (no TensorFlow import).
    """
    from ai_edge_litert import schema_py_generated as schema_fb

    data = Path(tflite).read_bytes()
    model = schema_fb.Model.GetRootAsModel(data, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() and entry.Name().decode() == METADATA_NAME:
            raw = model.Buffers(entry.Buffer()).DataAsNumpy()
            return json.loads(raw.tobytes().decode())
    return None
