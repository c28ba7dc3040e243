"""Runs with the litert-torch venv's python (see litert_torch.py): a torch.export program -> TFLite variants.

    .venv-litert/bin/python -P facesegtool/export/litert_torch_worker.py SPEC.json

(-P: this folder off sys.path, where litert_torch.py would shadow the litert_torch package.)

Its own venv because litert-torch 0.10 pulls ai-edge-litert 2.3, while onnx2tf in the main venv pins
2.1. So this script imports only the standard library, numpy, torch, litert_torch and
ai_edge_quantizer, never facesegtool. Data come in and go out as files (the .pt2 program, .npy
arrays, .tflite files), never pickles. The spec (written by litert_torch.py):

    {"program": path.pt2, "variants": [...], "calibration_npy": path|null, "out_dir": path, "stem": str,
     "per_channel": bool}

Library noise goes to the log (fds 1 and 2); the original stdout carries one JSON line per step:
    {"step": "fp32", "seconds": 30.1}
    {"variant": "int8", "file": "...", "seconds": 5.2}
The int8 file keeps the quantizer's int8 I/O; the parent re-types it (litert_torch.retype_io).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def _progress_stream():
    """Keep the real stdout for progress lines; send fd 1 (all library noise) where stderr goes: the log.

    The same four lines as onnx2tf_worker's: this worker runs in .venv-litert, where facesegtool is not
    installed, so it can import nothing from the package."""
    progress = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return progress


def main(spec_path: str) -> int:
    progress = _progress_stream()
    spec = json.loads(Path(spec_path).read_text())
    out_dir, stem = Path(spec["out_dir"]), spec["stem"]

    t = time.time()
    import numpy as np
    import torch

    import litert_torch

    calib = np.load(spec["calibration_npy"]).astype(np.float32) if spec["calibration_npy"] else None
    program = torch.export.load(spec["program"])
    size = program.example_inputs[0][0].shape[-1]
    # NHWC in and out, as onnx2tf's files: the transposes sit at the ends, where the converter folds them.
    module = litert_torch.to_channel_last_io(program.module(), args=[0], outputs=[0])
    sample = torch.from_numpy(calib[:1]) if calib is not None else torch.zeros(1, size, size, 3)
    fp32 = out_dir / f"{stem}_fp32.tflite"
    litert_torch.convert(module, (sample,)).export(str(fp32))
    fp32_seconds = time.time() - t
    progress.write(json.dumps({"step": "fp32", "seconds": round(fp32_seconds, 2)}) + "\n")

    for variant in spec["variants"]:
        t = time.time()
        path = out_dir / f"{stem}_{variant}.tflite"
        if variant == "fp32":
            seconds = fp32_seconds
        else:
            path.write_bytes(_quantize(fp32, variant, calib, spec["per_channel"]))
            seconds = time.time() - t
        progress.write(json.dumps({"variant": variant, "file": str(path), "seconds": round(seconds, 2)}) + "\n")
    if "fp32" not in spec["variants"]:
        fp32.unlink()
    return 0


def _quantize(fp32: Path, variant: str, calib, per_channel: bool) -> bytes:
    """fp16 / dynamic / int8 from the fp32 file with ai-edge-quantizer (int8 calibrated on our face crops)."""
    from ai_edge_quantizer import qtyping, quantizer, recipe

    q = quantizer.Quantizer(str(fp32))
    granularity = qtyping.QuantGranularity.CHANNELWISE if per_channel else qtyping.QuantGranularity.TENSORWISE
    if variant == "fp16":  # float16 weights, float compute (as TFLite's float16 post-training quantization)
        q.add_weight_only_config(".*", "*", 16, algorithm_key="float_casting")
        return bytes(q.quantize(enable_progress_report=False).quantized_model)
    if variant == "dynamic":  # int8 weights, float activations
        q.add_dynamic_config(".*", "*", 8, granularity)
        return bytes(q.quantize(enable_progress_report=False).quantized_model)
    if variant != "int8":
        raise ValueError(f"litert-torch: no {variant} variant")
    if calib is None:
        raise ValueError("int8 needs calibration data")
    q.add_static_config(".*", "*", 8, 8, granularity)
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_path=str(fp32)).get_signature_list()
    name = next(iter(signatures))
    input_name = signatures[name]["inputs"][0]
    calibration = q.calibrate({name: [{input_name: calib[i : i + 1]} for i in range(len(calib))]},
                              num_threads=os.cpu_count() or 1)
    return bytes(q.quantize(calibration, enable_progress_report=False).quantized_model)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
