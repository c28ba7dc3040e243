"""Runs in a child process (see tflite.py): ONNX -> TensorFlow (onnx2tf) -> the requested TFLite variants.

    python -m facesegtool.export.onnx2tf_worker SPEC.json

A child process because TensorFlow is heavy and process-global (memory, logging, cwd): the CLI
and the tests stay light, a failed or interrupted conversion is killed cleanly, and onnx2tf
runs in a private working directory with its PATH set. The spec (written by tflite.py):

    {"onnx": path, "variants": [...], "calibration_npy": path|null, "per_channel": bool,
     "io_dtype": "float32"|"int8"|"uint8", "baked_normalization": bool,
     "int16_activations": bool, "float_layers": [tensor names] | [],
     "metadata": {...}, "labels": [...],
     "standard_metadata": tflite_metadata.StandardMetadata fields | null}

Everything onnx2tf and TensorFlow print goes to the log (fds 1 and 2); this process's original
stdout carries one JSON line per finished step, which the parent reads for progress:
    {"step": "tf", "seconds": 40.1}
    {"variant": "fp32", "file": "...", "seconds": 5.2, "folded_transposes": 6}
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path


def _progress_stream():
    """Keep the real stdout for progress lines; send fd 1 (all library noise) where stderr goes: the log."""
    progress = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return progress


def main(spec_path: str) -> int:
    progress = _progress_stream()
    spec = json.loads(Path(spec_path).read_text())
    work = Path.cwd()  # the parent's temp dir; onnx2tf reads its sample data file from here

    t = time.time()
    import numpy as np
    import onnx2tf
    import tensorflow as tf

    from facesegtool.export.lean_graph import fold_concat_transposes
    from facesegtool.export.onnx2tf_fixes import fix_depthwise_detection
    from facesegtool.export.sidecar import embed_metadata
    from facesegtool.export.tflite_metadata import StandardMetadata, write_standard_metadata

    # Depthwise convs after a Reshape (SegFormer's Mix-FFN) otherwise split into one conv per channel.
    fix_depthwise_detection()
    onnx_path = Path(spec["onnx"])
    # onnx2tf builds the NHWC Keras model. Its own TFLite writer is skipped (disable_model_save):
    # it re-traces the model for every file (~30 s each on a small CPU); tracing once into a
    # SavedModel and converting that is several times faster and gives equivalent models.
    model = onnx2tf.convert(
        input_onnx_file_path=str(onnx_path),
        disable_model_save=True,
        # onnx2tf checks its ops on sample input, our face crops in 0..1 (see tflite.py);
        # "denorm" scales them by 255 when the model takes raw RGB.
        check_onnx_tf_outputs_sample_data_normalization="denorm" if spec["baked_normalization"] else "norm",
        # Grouped convs (RegSeg's group width 16) otherwise become a TF op that fails to trace
        # into a SavedModel ("untracked resource"); split convs (one per group) convert and match
        # torch to 1e-6. Depthwise convs (groups = channels) never take this path: DEPTHWISE_CONV_2D.
        disable_group_convolution=True,
        # Exact GELU (nn.GELU, SegFormer's MLPs) exports as Erf, which TFLite has no builtin for (it would
        # need the Flex delegate, absent on phones): onnx2tf's pseudo-Erf builds it from builtin ops.
        replace_to_pseudo_operators=["erf"],
        verbosity="debug",  # "INFO: i / n" before each op: the parent shows how far it has got (tflite.py)
    )
    if model is None:
        print("onnx2tf returned no model", file=sys.stderr)
        return 3
    saved_model = work / "saved_model"
    module = tf.Module()
    module.model = model  # tracks the variables
    module.serve = tf.function(
        lambda x: model(x), input_signature=[tf.TensorSpec(model.inputs[0].shape, model.inputs[0].dtype, "input")]
    )
    tf.saved_model.save(module, str(saved_model), signatures=module.serve.get_concrete_function())
    progress.write(json.dumps({"step": "tf", "seconds": round(time.time() - t, 2)}) + "\n")

    calib = np.load(spec["calibration_npy"]).astype(np.float32) if spec["calibration_npy"] else None

    def representative_dataset():
        for i in range(len(calib)):
            yield [calib[i : i + 1]]

    io_type = {"float32": tf.float32, "int8": tf.int8, "uint8": tf.uint8}[spec["io_dtype"]]
    if spec.get("int16_activations") and io_type != tf.float32:
        io_type = tf.int16  # 16x8 models take and give int16 (or float32)
    for variant in spec["variants"]:
        t = time.time()
        converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
        # Builtin ops only: the phone runs the plain TFLite runtime, without the Flex (Select TF ops) delegate.
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        converter._experimental_disable_per_channel = not spec["per_channel"]
        if variant == "fp16":  # float16 weights, float32 compute unless the delegate chooses fp16
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif variant == "dynamic":  # int8 weights, float activations
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif variant == "int8":  # full integer: int8 weights and activations, calibrated on faces
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.representative_dataset = representative_dataset
            converter.inference_input_type = io_type
            converter.inference_output_type = io_type
            if spec.get("int16_activations"):
                # 16-bit activations, int8 weights; ops without a 16x8 kernel (e.g. HARD_SWISH) stay float.
                converter.target_spec.supported_ops = [
                    tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8,
                    tf.lite.OpsSet.TFLITE_BUILTINS,
                ]
        path = work / f"{onnx_path.stem}_{variant}.tflite"
        if variant == "int8" and spec.get("float_layers"):
            content = _quantize_keeping_float(converter, spec["float_layers"], io_type, tf)
        else:
            content = converter.convert()
        # Before the metadata: TRANSPOSE pairs that onnx2tf put around channel concats go (lean_graph.py).
        content, folded = fold_concat_transposes(content)
        path.write_bytes(content)
        seconds = time.time() - t
        embed_metadata(path, spec["labels"], spec["metadata"] | {"variant": variant})
        if spec.get("standard_metadata"):  # last: the standard writer keeps our entry
            standard = dict(spec["standard_metadata"])
            standard["version"] = f"{standard.get('version', '')} {variant}".strip()
            write_standard_metadata(path, StandardMetadata(**standard))
        progress.write(json.dumps({"variant": variant, "file": str(path), "seconds": round(seconds, 2),
                                   "folded_transposes": folded}) + "\n")
    return 0


def layer_key(name: str) -> str:
    """A tensor name without Keras's per-process model prefix ("model_18/tf.nn.relu/Relu" -> "tf.nn.relu/Relu")."""
    return re.sub(r"^model(_\d+)?/", "", name)


def _quantize_keeping_float(converter, float_layers: list[str], io_type, tf) -> bytes:
    """Full-integer int8 except the named layers, which stay float (dequantize before, quantize after).

    What TF's QuantizationDebugger does for selective quantization (calibrate, then quantize with a
    denylist), without its debug-model run. Names are TFLite tensor names as an int8 export shows
    them (e.g. "model_18/tf.nn.convolution_3/convolution"); fused names ("a;b") match on any part.
    """
    from ai_edge_litert.interpreter import Interpreter
    from tensorflow.lite.python.convert import mlir_quantize

    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    converter.experimental_mlir_quantizer = True
    converter._experimental_calibrate_only = True
    calibrated = converter.convert()
    wanted = {layer_key(part) for name in float_layers for part in name.split(";") if part}
    tensors = [d["name"] for d in Interpreter(model_content=calibrated).get_tensor_details()]
    deny = [t for t in tensors if any(layer_key(part) in wanted for part in t.split(";"))]
    found = {layer_key(part) for t in deny for part in t.split(";")}
    missing = sorted(wanted - found)
    if missing:
        raise ValueError(f"float_layers: no tensor named {', '.join(missing)} in the model")
    if io_type not in (tf.int8, tf.uint8, tf.float32):
        raise ValueError("float_layers works with int8, uint8 or float32 input/output")
    content = mlir_quantize(
        calibrated,
        disable_per_channel=converter._experimental_disable_per_channel,
        fully_quantize=io_type == tf.int8,
        input_data_type=io_type if io_type == tf.int8 else tf.float32,
        output_data_type=io_type if io_type == tf.int8 else tf.float32,
        denylisted_nodes=deny,
    )
    if io_type == tf.uint8:  # as TF re-types ends: its float input's QUANTIZE op becomes uint8 -> int8
        from tensorflow.lite.python.util import modify_model_io_type

        content = modify_model_io_type(content, tf.uint8, tf.uint8)
    return content


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
