"""Runs in a child process for conversion_check.py: convert ONNX prefixes to fp32 TFLite and run them.

    python -m facesegtool.export.conversion_check_worker      (cwd: a folder with onnx2tf's sample file)

Reads one JSON request a line on stdin, {"onnx", "inputs" (.npy, N x C x H x W), "out" (.npz),
"param_replacement" (JSON path or null)}, converts the ONNX file the way the exporter does
(onnx2tf, then a SavedModel, then TFLiteConverter with builtin ops), runs the .tflite on each
input and writes "in{i}_out{j}" arrays, the outputs in the ONNX graph's order. Replies one JSON
line on stdout: {"outputs": n} or {"error": "..."}. One process for many conversions: TensorFlow
loads once. All library output goes to stderr (the parent's log).
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path


def convert_and_run(request: dict, work: Path) -> int:
    import numpy as np
    import onnx2tf
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    tf.keras.backend.clear_session()
    options = {"param_replacement_file": request["param_replacement"]} if request.get("param_replacement") else {}
    model = onnx2tf.convert(
        input_onnx_file_path=request["onnx"],
        disable_model_save=True,
        disable_group_convolution=True,  # as the exporter converts (onnx2tf_worker.py)
        replace_to_pseudo_operators=["erf"],
        verbosity="error",
        **options,
    )
    if model is None:
        raise RuntimeError("onnx2tf returned no model")
    module = tf.Module()
    module.model = model

    def serve(x):
        outs = model(x)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        return {f"out{j}": y for j, y in enumerate(outs)}

    module.serve = tf.function(serve, input_signature=[tf.TensorSpec(model.inputs[0].shape, model.inputs[0].dtype, "input")])
    saved = work / "saved_model_check"
    tf.saved_model.save(module, str(saved), signatures=module.serve.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    runner = interpreter.get_signature_runner()
    inputs = np.load(request["inputs"])
    arrays = {}
    n = len(model.outputs)
    for i, x in enumerate(inputs):
        x = x[None]
        if x.shape != tuple(model.inputs[0].shape):  # onnx2tf takes NHWC for a 4-D image input
            x = np.moveaxis(x, 1, -1)
        got = runner(input=x.astype(np.float32))
        for j in range(n):
            arrays[f"in{i}_out{j}"] = got[f"out{j}"]
    np.savez(request["out"], **arrays)
    return n


def main() -> int:
    replies = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # library noise on fd 1 goes to the log with stderr
    work = Path.cwd()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            reply = {"outputs": convert_and_run(request, work)}
        except Exception as exc:  # the parent reports it with the log's tail
            traceback.print_exc()
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        replies.write(json.dumps(reply) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
