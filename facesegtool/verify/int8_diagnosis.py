"""Why did int8 lose IoU? Find the layers where the int8 model leaves the float one, and try remedies.

Both .tflite files come from the same onnx2tf graph, so their activation tensors carry the
same names. Run both on the same faces with every intermediate tensor kept, dequantize the
int8 ones, and measure each layer's relative error ||int8 - fp32|| / ||fp32||. A layer whose
output error jumps well above the error of its inputs is where quantization bites; the rest
of the graph only carries that error along.

Remedies are export options (facesegtool.export.export): per-channel vs per-tensor weight
scales, more calibration images, named layers kept in float, 16-bit activations. With
try_remedies each is exported and verified on the same faces, and its measured drop reported.
"""

from __future__ import annotations

import inspect
import itertools
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..export.calibration import CALIBRATION_DIR, list_images
from ..tflite_runner import TFLiteModel, TFLiteModelError
from .compare import ModelResult, VerifyResult, check_contract, compare
from ..data.faces import DEFAULT_DATA

DIAGNOSIS_FACES = 8
# A layer "jumps" when its output error is at least twice its inputs' and up by this much.
JUMP_RATIO = 2.0
JUMP_ABS = 0.05
MAX_REPORTED = 3


def _dequantize(tensor: np.ndarray, details: dict) -> np.ndarray:
    if tensor.dtype.kind == "f":
        return tensor.astype(np.float32)
    params = details.get("quantization_parameters") or {}
    scales, zeros = np.asarray(params.get("scales", [])), np.asarray(params.get("zero_points", []))
    if scales.size == 0:
        scale, zero = details["quantization"]
        if not scale:
            return tensor.astype(np.float32)
        scales, zeros = np.array([scale]), np.array([zero])
    if scales.size > 1:  # per-channel: broadcast along the quantized axis
        shape = [1] * tensor.ndim
        shape[params.get("quantized_dimension", 0)] = -1
        scales, zeros = scales.reshape(shape), zeros.reshape(shape)
    return ((tensor.astype(np.float32) - zeros) * scales).astype(np.float32)


# Keras names layers "model/..." or, for later models in one process, "model_18/...".
MODEL_PREFIX = re.compile(r"^model(_\d+)?/")


def layer_nodes(tensor_name: str) -> list[str]:
    """The TF layer nodes fused into one TFLite tensor name ("a;b;Const_3" -> the "model.../..." parts)."""
    return [part for part in tensor_name.split(";") if MODEL_PREFIX.match(part)]


def short_name(tensor_name: str) -> str:
    """'model_18/tf.nn.relu_2/Relu;model_18/tf.math.add_2/Add;model_18/tf.nn.convolution_2/convolution;Const_3'
    -> 'tf.nn.convolution_2+tf.math.add_2+tf.nn.relu_2' (TFLite lists fused ops last-first)."""
    layers = [MODEL_PREFIX.sub("", part).split("/")[0] for part in layer_nodes(tensor_name)]
    return "+".join(reversed(layers)) if layers else tensor_name[:60]


def _match_key(tensor_name: str) -> str:
    """A tensor name without the per-process model prefix, so that two exports' names line up."""
    return ";".join(MODEL_PREFIX.sub("", part) for part in tensor_name.split(";"))


def layer_errors(
    int8_path: str | Path, fp32_path: str | Path, images: list[np.ndarray], num_threads: int | None = None
) -> dict:
    """Relative error of every int8 activation that has a float twin, in execution order."""
    q = TFLiteModel(int8_path, num_threads=num_threads, preserve_all_tensors=True)
    f = TFLiteModel(fp32_path, num_threads=num_threads, preserve_all_tensors=True)
    q_details = {d["index"]: d for d in q.interpreter.get_tensor_details()}
    f_by_name = {_match_key(d["name"]): d for d in f.interpreter.get_tensor_details()}
    ops = [op for op in q.interpreter._get_ops_details() if op["op_name"] != "DELEGATE"]

    # Pairs (int8 tensor, float tensor): the model inputs by position, activations by name and shape.
    pairs: dict[int, int] = {q.input_details["index"]: f.input_details["index"]}
    for op in ops:
        for t in op["outputs"]:
            twin = f_by_name.get(_match_key(q_details[t]["name"]))
            if twin is not None and list(twin["shape"]) == list(q_details[t]["shape"]):
                pairs[t] = twin["index"]
    err = dict.fromkeys(pairs, 0.0)
    ref = dict.fromkeys(pairs, 0.0)
    for image in images:
        q.run(image)
        f.run(image)
        for qi, fi in pairs.items():
            a = _dequantize(q.interpreter.get_tensor(qi), q_details[qi])
            b = f.interpreter.get_tensor(fi).astype(np.float32)
            if a.shape != b.shape:  # e.g. NCHW input on one side: compare as the graph does, by value order
                b = b.reshape(a.shape)
            err[qi] += float(np.square(a - b, dtype=np.float64).sum())
            ref[qi] += float(np.square(b, dtype=np.float64).sum())
    rel = {t: float(np.sqrt(err[t] / ref[t])) if ref[t] > 0 else float(np.sqrt(err[t])) for t in pairs}

    layers = []
    last = rel[q.input_details["index"]]
    for op in ops:
        outs = [t for t in op["outputs"] if t in rel]
        if not outs:
            continue
        ins = [rel[t] for t in op["inputs"] if t in rel]
        in_err = max(ins) if ins else last
        out = outs[0]
        name = q_details[out]["name"]
        layers.append({
            "op_index": int(op["index"]),
            "op": op["op_name"],
            "tensor": name,
            "short_name": short_name(name),
            "tf_nodes": layer_nodes(name),
            "shape": [int(v) for v in q_details[out]["shape"]],
            "input_rel_error": round(in_err, 5),
            "rel_error": round(rel[out], 5),
        })
        last = rel[out]
    output_error = rel.get(q.output_details["index"], layers[-1]["rel_error"] if layers else float("nan"))
    return {
        "reference": Path(fp32_path).name,
        "faces": len(images),
        "matched_tensors": len(pairs),
        "input_rel_error": round(rel[q.input_details["index"]], 5),
        "output_rel_error": round(output_error, 5),
        "layers": layers,
    }


def divergence_points(layers: list[dict]) -> list[dict]:
    """The first layers whose error jumps above their inputs'; else the largest increases."""
    jumps = [
        layer for layer in layers
        if layer["rel_error"] >= JUMP_RATIO * layer["input_rel_error"] and layer["rel_error"] - layer["input_rel_error"] >= JUMP_ABS
    ]
    if jumps:
        return [{**layer, "jump": True} for layer in jumps[:MAX_REPORTED]]
    increase = lambda x: x["rel_error"] - x["input_rel_error"]  # noqa: E731
    by_increase = sorted(layers, key=increase, reverse=True)[:MAX_REPORTED]
    if by_increase:  # leave out layers that add next to nothing
        by_increase = [x for x in by_increase if increase(x) > 0 and increase(x) >= 0.25 * increase(by_increase[0])]
    return [{**layer, "jump": False} for layer in sorted(by_increase, key=lambda x: x["op_index"])]


def export_kwargs(sidecar: dict) -> dict:
    """facesegtool.export.export keywords that reproduce a model's export, from its sidecar."""
    options = sidecar.get("export") or {}
    calibration = options.get("calibration") or {}
    kwargs = {
        "size": int(sidecar["input"]["shape"][1]),
        "per_channel": options.get("per_channel"),
        "io_dtype": options.get("int8_io_dtype"),
        "bake_normalization": options.get("normalization_baked"),
        "opset": options.get("opset"),
        "int16_activations": options.get("int16_activations"),
        "float_layers": options.get("float_layers") or None,
        "calibration_dir": calibration.get("folder"),
        "num_calib": calibration.get("images"),
    }
    return {k: v for k, v in kwargs.items() if v is not None}


def _more_calibration(sidecar: dict) -> dict | None:
    """A larger calibration set than the export used: all of its folder, else the shared unlabelled faces."""
    calibration = (sidecar.get("export") or {}).get("calibration") or {}
    used = int(calibration.get("images") or 0)
    folder = Path(calibration.get("folder") or CALIBRATION_DIR)
    shared = DEFAULT_DATA.parent / "faces-unlabelled" / "celebahq"
    for candidate in (folder, shared):
        if candidate.is_dir():
            n = len(list_images(candidate))
            if n > used:
                return {"calibration_dir": str(candidate), "num_calib": n}
    return None


def suggested_remedies(sidecar: dict, points: list[dict]) -> list[dict]:
    """Export options that address what the diagnosis found (as facesegtool.export.export keywords)."""
    per_channel = (sidecar.get("export") or {}).get("per_channel", True)
    remedies = [
        {
            "name": "per-tensor weights" if per_channel else "per-channel weights",
            "kwargs": {"per_channel": not per_channel},
            "why": "per-channel scales fit each filter's range (usually better); per-tensor is what some "
            "older NPUs require: measure both",
        },
    ]
    more = _more_calibration(sidecar)
    if more:
        remedies.append({
            "name": f"more calibration images ({more['num_calib']} from {Path(more['calibration_dir']).name}/)",
            "kwargs": more,
            "why": "activation ranges measured on few faces clip rare but real values (teeth, glasses)",
        })
    points = [p for p in points if p["tf_nodes"]]
    nodes = [n for p in points for n in p["tf_nodes"]]
    if nodes:
        remedies.append({
            "name": "keep " + ", ".join(p["short_name"] for p in points) + " in float",
            "kwargs": {"float_layers": nodes},
            "why": "these layers add the most error; running them in float costs little speed",
        })
    if not (sidecar.get("export") or {}).get("int16_activations"):
        remedies.append({
            "name": "16-bit activations (int16x8)",
            "kwargs": {"int16_activations": True},
            "why": "activation rounding error drops ~256x; the model stays int8-weighted but runs slower and "
            "not every delegate (GPU/NNAPI) supports it",
        })
    return remedies


def find_float_reference(model: TFLiteModel, models: list[TFLiteModel]) -> Path | None:
    """An fp32 export of the same graph: among the verified models, else beside the int8 file."""
    candidates = [m.path for m in models if m.variant == "fp32" and m.input_shape[1:3] == model.input_shape[1:3]]
    candidates += sorted(p for p in model.path.parent.glob("*.tflite") if p != model.path)
    for path in candidates:
        try:
            other = TFLiteModel(path)
        except TFLiteModelError:
            continue
        if other.variant == "fp32" and other.input_shape[1:3] == model.input_shape[1:3]:
            return path
    return None


def diagnose(model: TFLiteModel, models: list[TFLiteModel], images: list[np.ndarray], num_threads: int | None) -> dict:
    reference = find_float_reference(model, models)
    if reference is None:
        return {"error": "no fp32 export of the same model to compare with: export it too (--quant all) "
                "and pass it with --tflite, or verify the whole --export-dir"}
    result = layer_errors(model.path, reference, images, num_threads)
    points = divergence_points(result["layers"])
    result["first_divergence"] = points
    increase = lambda x: x["rel_error"] - x["input_rel_error"]  # noqa: E731
    result["largest_increases"] = sorted(result["layers"], key=increase, reverse=True)[:MAX_REPORTED]
    result["remedies"] = suggested_remedies(model.sidecar, points)
    return result


# --- remedies ---------------------------------------------------------------------------------


def _exporter():
    try:
        from ..export import export  # late: the exporter is only needed to try remedies
    except ImportError:
        return None
    return export


def measure_remedies(
    model_result: ModelResult,
    model: TFLiteModel,
    net: torch.nn.Module,
    ckpt: dict,
    checkpoint: Path,
    faces,
    num_threads: int | None,
    progress: bool,
) -> list[dict]:
    """Re-export with each suggested remedy and verify it on the same faces."""
    export = _exporter()
    if export is None:
        return [{"name": "all", "error": "facesegtool.export is not available"}]
    accepted = set(inspect.signature(export).parameters)
    base = export_kwargs(model.sidecar)
    from ..model_source import load_source

    source = load_source(checkpoint)
    measured = []
    for remedy in model_result.diagnosis.get("remedies", []):
        unsupported = [k for k in remedy["kwargs"] if k not in accepted]
        if unsupported:
            measured.append({"name": remedy["name"], "kwargs": remedy["kwargs"],
                             "error": f"the exporter has no option {', '.join(unsupported)}"})
            continue
        kwargs = {k: v for k, v in {**base, **remedy["kwargs"]}.items() if k in accepted}
        with tempfile.TemporaryDirectory(prefix="facesegtool-remedy-") as tmp:
            start = time.perf_counter()
            try:
                path = _int8_path(export(checkpoint=checkpoint, quant="int8", out_dir=tmp, progress=False, **kwargs),
                                  Path(tmp))
                candidate = TFLiteModel(path, num_threads=num_threads)
                check_contract(candidate, ckpt, checkpoint)
            except Exception as exc:  # an option the converter rejects is a result to report, not a crash
                measured.append({"name": remedy["name"], "kwargs": remedy["kwargs"], "error": f"export failed: {exc}"})
                continue
            seconds = time.perf_counter() - start
            _, (res,) = compare(source, [candidate], faces, model_result.max_drop, model_result.max_class_drop,
                                n_examples=0, progress=progress)
            measured.append({
                "name": remedy["name"],
                "kwargs": remedy["kwargs"],
                "export_seconds": round(seconds, 1),
                "size_bytes": path.stat().st_size,
                "macro_iou_tflite": None if res.tflite is None else round(res.tflite.macro_iou, 6),
                "macro_iou_drop_points": res.drop,
                "class_iou_drop_points": res.class_drops,
                "pixel_agreement": round(res.agreement.pixel_accuracy, 6),
                "agreement_mean_iou": round(res.agreement.macro_iou, 6),
                "passed": res.passed,
                "change_points": None if res.drop is None or model_result.drop is None
                else round(model_result.drop - res.drop, 4),
            })
    return measured


def _int8_path(paths, folder: Path) -> Path:
    """The int8 .tflite an export call produced (an ExportReport, a path, a list or a dict of them)."""
    if hasattr(paths, "variants"):
        paths = [paths.variants["int8"].tflite]
    if isinstance(paths, dict):
        paths = list(paths.values())
    if isinstance(paths, (str, Path)):
        paths = [paths]
    found = [Path(p) for p in (paths or []) if str(p).endswith(".tflite")] or sorted(folder.glob("*.tflite"))
    if not found:
        raise TFLiteModelError(f"the exporter wrote no .tflite into {folder}")
    return found[0]


def diagnose_results(
    result: VerifyResult,
    net: torch.nn.Module,
    ckpt: dict,
    models: list[TFLiteModel],
    force: bool = False,
    try_remedies: bool = False,
    num_threads: int | None = None,
    progress: bool = True,
) -> None:
    """Diagnose int8 models that failed the gate (every int8 model with force); fill result in place."""
    targets = [(r, m) for r, m in zip(result.models, models) if m.is_integer and (force or r.failures)]
    if not targets:
        return
    images = [face.image for face in itertools.islice(iter(result.faces), DIAGNOSIS_FACES)]
    for model_result, model in targets:
        model_result.diagnosis = diagnose(model, models, images, num_threads)
        if try_remedies and not model_result.diagnosis.get("error"):
            model_result.remedies = measure_remedies(model_result, model, net, ckpt, result.checkpoint,
                                                     result.faces, num_threads, progress)
