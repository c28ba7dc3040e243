"""Where does a conversion break? Find the first ONNX node whose TFLite output differs from ONNX Runtime's.

    from facesegtool.export.conversion_check import locate_conversion_fault
    fault = locate_conversion_fault("exports/ddrnet23-slim/ddrnet23-slim_128.onnx", inputs)
    fault["node"], fault["op_type"], fault["onnx_shape"], fault["tflite_shape"], fault["max_abs_error"]

Bisection over the graph's nodes in topological order. A prefix "up to node k" is the ONNX graph cut
(onnx.utils.extract_model) at every tensor that nodes 0..k make and later nodes (or the graph's
outputs) still read: the frontier. It converts with the exporter's onnx2tf settings into an fp32
TFLite whose outputs are compared with ONNX Runtime's values of the same tensors. A prefix that
is exact up to k - 1 and wrong up to k names node k: its inputs are all in the exact frontier.
One conversion of the whole graph first (is anything wrong at all?), then about log2(nodes) more:
a 300-node graph takes 10 conversions, all in one child process so TensorFlow loads once.

Errors are relative to each tensor's scale: max |tflite - onnx| / max(1, max |onnx|) > tolerance.
onnx2tf makes 4-D tensors NHWC: a TFLite tensor is compared in the layout whose shape matches,
and a shape that matches no layout (a broadcast gone wrong) is a fault in itself.

Shapes are all onnx2tf has to tell NCHW from NHWC where a Reshape makes a 4-D tensor out of
tokens or another layout. When such a tensor has as many channels as rows or columns
(1x32x32x32: a SegFormer stage of 32 channels at 1/4 of a 128-px input), both layouts have the
same shape and onnx2tf can keep it channels-first while every later op reads it as channels-last.
`ambiguous_layouts` lists those tensors before converting; the bisection then names, beside the
first wrong node, the input it found exact only channels-first and the node that made it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import FacesegError

DEFAULT_TOLERANCE = 1e-3
FLOAT_TYPES = (1, 10, 11, 16)  # onnx.TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16


class ConversionCheckError(FacesegError, RuntimeError):
    """The diagnosis itself could not run (the message says why)."""


def locate_conversion_fault(
    onnx_path: str | Path,
    inputs: np.ndarray | list[np.ndarray],
    tolerance: float = DEFAULT_TOLERANCE,
    param_replacement: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Bisect the graph for the first node whose converted output differs; see the module doc.

    inputs: one or more 1 x C x H x W float32 arrays, as the ONNX model takes them (real faces).
    param_replacement: an onnx2tf parameter-replacement JSON applied to every conversion (how a
        user patches an op mapping, and how the tests inject a known fault).
    Returns {"exact": True, ...} when the whole graph converts within tolerance, else the node's
    "node", "op_type", "index" (in graph order), "inputs" (name, shape), "onnx_shape",
    "tflite_shape", "max_abs_error", "rel_error", plus "conversions" and "seconds".
    """
    import onnx

    started = time.time()
    onnx_path = Path(onnx_path).resolve()
    batch = [np.asarray(x, np.float32) for x in (inputs if isinstance(inputs, list) else [inputs])]
    model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    graph = model.graph
    nodes = list(graph.node)
    # Only tensors computed from the image: a Constant's value is not converted, and onnx2tf folds it away.
    float_tensors = _float_tensors(model) & _computed_from_input(model)
    candidates = [k for k, n in enumerate(nodes) if any(o in float_tensors for o in n.output)]
    if not candidates:
        raise ConversionCheckError(f"{onnx_path}: no node with a float output to check")
    reference = _reference_values(model, float_tensors, batch)

    with tempfile.TemporaryDirectory(prefix="facesegtool-convcheck-") as tmp, \
            _Converter(Path(tmp), batch, param_replacement) as converter:
        bar = tqdm(total=int(np.ceil(np.log2(len(candidates) + 1))) + 1, desc="conversion check", unit="conversion",
                   disable=not progress, leave=False)
        checked: dict[int, dict] = {}

        def check(pos: int) -> dict:
            k = candidates[pos]
            outputs = _frontier(nodes, k, graph, float_tensors)
            prefix = Path(tmp) / f"prefix_{k}.onnx"
            onnx.utils.extract_model(str(onnx_path), str(prefix), [i.name for i in graph.input], outputs)
            got = converter.convert(prefix, _rename_outputs(prefix))
            if any(len(g) != len(outputs) for g in got):
                raise ConversionCheckError(f"the converted prefix {prefix.name} has {len(got[0])} outputs, "
                                           f"its ONNX graph {len(outputs)}: cannot compare them")
            checked[pos] = {name: _compare(reference[name], [g[j] for g in got], tolerance)
                            for j, name in enumerate(outputs)}
            bar.update(1)
            return checked[pos]

        try:
            if not _bad(check(len(candidates) - 1)):
                return {"exact": True, "onnx": str(onnx_path), "nodes": len(nodes), "tolerance": tolerance,
                        "conversions": converter.count, "seconds": round(time.time() - started, 1)}
            good, bad = -1, len(candidates) - 1  # prefix "good" converts exactly, prefix "bad" does not
            while bad - good > 1:
                mid = (good + bad) // 2
                if _bad(check(mid)):
                    bad = mid
                else:
                    good = mid
        finally:
            bar.close()

    node = nodes[candidates[bad]]
    errors = checked[bad]
    producers = {o: n for n in nodes for o in n.output}
    exact_before = checked.get(good, {})
    # An input exact only as-is (channels-first) in a shape that reads both ways: onnx2tf's layout guess failed there.
    channels_first = [{"name": i, "shape": exact_before[i]["onnx_shape"], "producer": producers[i].name,
                       "producer_op": producers[i].op_type}
                      for i in node.input if i in exact_before and i in producers
                      and exact_before[i]["layout"] == "as-is" and _layout_ambiguous(exact_before[i]["onnx_shape"])]
    own = [o for o in node.output if o in errors and errors[o]["bad"]] or [n for n, e in errors.items() if e["bad"]]
    worst = errors[own[0]]
    shapes = _shapes(model)
    weights = {t.name for t in graph.initializer}
    finite = lambda x: x if np.isfinite(x) else None  # noqa: E731  (a shape mismatch has no error value; JSON)
    return {
        "exact": False,
        "onnx": str(onnx_path),
        "node": node.name or own[0],
        "op_type": node.op_type,
        "index": candidates[bad],
        "nodes": len(nodes),
        "output": own[0],
        "inputs": [{"name": i, "shape": shapes.get(i)} for i in node.input if i and i not in weights],
        "onnx_shape": worst["onnx_shape"],
        "tflite_shape": worst["tflite_shape"],
        "max_abs_error": finite(worst["max_abs_error"]),
        "rel_error": finite(worst["rel_error"]),
        "shape_mismatch": worst["shape_mismatch"],
        "previous_exact": None if bad == 0 else nodes[candidates[bad - 1]].name,
        "channels_first_inputs": channels_first,
        "tolerance": tolerance,
        "conversions": converter.count,
        "seconds": round(time.time() - started, 1),
    }


def describe_fault(fault: dict) -> str:
    """One paragraph for a report."""
    if fault.get("error"):
        return f"conversion check: {fault['error']}"
    if fault["exact"]:
        return (f"conversion check: the whole ONNX graph ({fault['nodes']} nodes) converts to TFLite within "
                f"{fault['tolerance']:g} ({fault['conversions']} conversion, {fault['seconds']:.0f}s)")
    ins = ", ".join(f"{i['name']} {i['shape']}" for i in fault["inputs"])
    what = (f"shape {fault['tflite_shape']} where ONNX has {fault['onnx_shape']}" if fault["shape_mismatch"]
            else f"max |error| {fault['max_abs_error']:.4g} (relative {fault['rel_error']:.3g}) on {fault['onnx_shape']}")
    return (f"conversion check: first node whose TFLite output differs from ONNX Runtime: {fault['node']} "
            f"({fault['op_type']}, node {fault['index']} of {fault['nodes']}): {what}; inputs {ins}. "
            f"Everything before it converts exactly ({fault['conversions']} conversions, {fault['seconds']:.0f}s)."
            + "".join(f" Cause: its input {c['name']} {c['shape']}, made by {c['producer']} ({c['producer_op']}), "
                      "has as many channels as rows or columns, so onnx2tf cannot tell NCHW from NHWC by its shape "
                      "and kept it channels-first while the next op reads it channels-last; at an input size where "
                      "its channels differ from its height and width it converts (export warns of such tensors)."
                      for c in fault.get("channels_first_inputs", [])))


def ambiguous_layouts(onnx_path: str | Path) -> list[dict]:
    """4-D tensors that a Reshape makes with C equal to H or W: see the module doc (a Transpose's layout
    onnx2tf tracks by its permutation, not by shape).

    Each: {"node", "op_type", "output", "shape"}. Static shapes only (ONNX shape inference)."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)))
    shapes = _shapes(model)
    found = []
    for node in model.graph.node:
        if node.op_type != "Reshape":
            continue
        for out in node.output:
            shape = shapes.get(out)
            if shape and _layout_ambiguous(shape):
                found.append({"node": node.name or out, "op_type": node.op_type, "output": out, "shape": shape})
    return found


def check_layouts_converted(onnx_path: str | Path, fp32_tflite: str | Path, inputs_nhwc: np.ndarray,
                            tolerance: float = DEFAULT_TOLERANCE) -> dict:
    """Did a possible layout ambiguity bite? The converted fp32 file against ONNX Runtime on the same inputs.

    inputs_nhwc: N x H x W x C float32, as the TFLite model takes them (real faces, normalised).
    Returns {"faces", "argmax_agreement", "rel_error", "exact"}: exact when the outputs agree within
    tolerance (relative to the output's scale), as locate_conversion_fault judges a node."""
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    interpreter = Interpreter(model_content=Path(fp32_tflite).read_bytes())
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    same = total = 0
    rel = 0.0
    for x in np.asarray(inputs_nhwc, np.float32):
        want = session.run(None, {feed: np.moveaxis(x, -1, 0)[None]})[0]
        nhwc = list(inp["shape"])[-1] == x.shape[-1]  # onnx2tf's input is NHWC for an image
        interpreter.set_tensor(inp["index"], x[None] if nhwc else np.moveaxis(x, -1, 0)[None])
        interpreter.invoke()
        got = interpreter.get_tensor(out["index"])
        if got.shape != want.shape and got.ndim == 4:
            got = np.moveaxis(got, -1, 1)  # onnx2tf's NHWC output, in ONNX's NCHW
        if got.shape != want.shape:
            return {"faces": len(inputs_nhwc), "argmax_agreement": 0.0, "rel_error": float("inf"), "exact": False}
        same += int((got.argmax(1) == want.argmax(1)).sum())
        total += want.shape[0] * want.shape[2] * want.shape[3]
        rel = max(rel, float(np.abs(got - want).max()) / max(1.0, float(np.abs(want).max())))
    return {"faces": len(inputs_nhwc), "argmax_agreement": same / max(total, 1), "rel_error": rel,
            "exact": rel <= tolerance}


def _layout_ambiguous(shape: list[int]) -> bool:
    """N x C x H x W with C > 1 equal to H or W: the NHWC shape of an NCHW tensor could be either."""
    return len(shape) == 4 and all(d > 0 for d in shape) and shape[1] > 1 and shape[1] in (shape[2], shape[3])


# --- the graph ------------------------------------------------------------------------------------


def _float_tensors(model) -> set[str]:
    infos = list(model.graph.value_info) + list(model.graph.output)
    return {v.name for v in infos if v.type.tensor_type.elem_type in FLOAT_TYPES and v.type.tensor_type.HasField("shape")}


def _computed_from_input(model) -> set[str]:
    """Tensors that depend on a graph input (nodes are in topological order, as ONNX requires)."""
    weights = {t.name for t in model.graph.initializer}
    live = {i.name for i in model.graph.input if i.name not in weights}
    for node in model.graph.node:
        if any(i in live for i in node.input):
            live.update(node.output)
    return live


def _shapes(model) -> dict[str, list[int]]:
    infos = list(model.graph.value_info) + list(model.graph.output) + list(model.graph.input)
    return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in infos}


def _frontier(nodes: list, k: int, graph, float_tensors: set[str]) -> list[str]:
    """Float tensors made by nodes 0..k that nodes after k or the graph outputs still read, node k's first."""
    later = {i for n in nodes[k + 1 :] for i in n.input} | {o.name for o in graph.output}
    made = [o for n in nodes[: k + 1] for o in n.output if o in float_tensors]
    own = [o for o in nodes[k].output if o in float_tensors]
    return own + [o for o in made if o in later and o not in own]


def _rename_outputs(path: Path) -> dict[str, str]:
    """Outputs named out_0, out_1, ...: TensorFlow refuses scope names like "/layer1/Conv_output_0"."""
    import onnx

    model = onnx.load(str(path))
    names = {o.name: f"out_{j}" for j, o in enumerate(model.graph.output)}
    for node in model.graph.node:
        node.input[:] = [names.get(i, i) for i in node.input]
        node.output[:] = [names.get(o, o) for o in node.output]
    for info in list(model.graph.output) + list(model.graph.value_info):
        info.name = names.get(info.name, info.name)
    onnx.save(model, str(path))
    return names


def _reference_values(model, float_tensors: set[str], batch: list[np.ndarray]) -> dict[str, list[np.ndarray]]:
    """ONNX Runtime's value of every float tensor, per input."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    known = {o.name for o in probe.graph.output}
    infos = {v.name: v for v in probe.graph.value_info}
    probe.graph.output.extend(infos[n] for n in sorted(float_tensors - known) if n in infos)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feed = session.get_inputs()[0].name
    runs = [session.run(names, {feed: x}) for x in batch]
    return {name: [run[j] for run in runs] for j, name in enumerate(names)}


def _compare(want: list[np.ndarray], got: list[np.ndarray], tolerance: float) -> dict:
    """Worst error over the inputs; the TFLite tensor in whichever layout (as is, or channels last) fits."""
    worst = {"bad": False, "max_abs_error": 0.0, "rel_error": 0.0, "shape_mismatch": False,
             "onnx_shape": list(want[0].shape), "tflite_shape": list(got[0].shape), "layout": "as-is"}
    for w, g in zip(want, got):
        layouts = {"as-is": w, **({"channels-last": np.moveaxis(w, 1, -1)} if w.ndim >= 3 else {})}
        errors = {name: float(np.abs(g - lay).max()) for name, lay in layouts.items() if lay.shape == g.shape}
        if not errors:
            return dict(worst, bad=True, shape_mismatch=True, max_abs_error=float("inf"), rel_error=float("inf"))
        # channels-last first: on a tie (a constant tensor) it is the layout onnx2tf means to keep
        layout = min(sorted(errors, reverse=True), key=errors.get)
        err = errors[layout]
        worst["layout"] = layout  # the same for every input: one conversion
        rel = err / max(1.0, float(np.abs(w).max()))
        if rel > worst["rel_error"]:
            worst.update(max_abs_error=err, rel_error=rel)
    worst["bad"] = worst["rel_error"] > tolerance
    return worst


def _bad(errors: dict) -> bool:
    return any(e["bad"] for e in errors.values())


# --- the converter, in a child process ------------------------------------------------------------


class _Converter:
    """A child process that converts ONNX files as the exporter does and runs them on the inputs."""

    def __init__(self, work: Path, batch: list[np.ndarray], param_replacement: str | Path | None):
        self.work, self.batch, self.count = work, batch, 0
        self.replacement = json.loads(Path(param_replacement).read_text()) if param_replacement else None

    def __enter__(self) -> "_Converter":
        from .tflite import ONNX2TF_SAMPLE_FILE, child_env, write_onnx2tf_sample

        # onnx2tf reads its sample images from its working folder instead of downloading them.
        nhwc = np.concatenate([np.moveaxis(x, 1, -1) for x in self.batch])
        lo, hi = float(nhwc.min()), float(nhwc.max())
        faces = ((nhwc - lo) / max(hi - lo, 1e-6) * 255).astype(np.uint8)
        write_onnx2tf_sample(faces, self.work / ONNX2TF_SAMPLE_FILE)
        self.inputs = self.work / "inputs.npy"
        np.save(self.inputs, np.concatenate(self.batch))
        self.log = open(self.work / "convert.log", "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "facesegtool.export.conversion_check_worker"],
                                     cwd=self.work, env=child_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True)
        return self

    def convert(self, onnx_file: Path, renamed: dict[str, str]) -> list[list[np.ndarray]]:
        """Per input, the converted model's outputs in the ONNX graph's output order."""
        out = onnx_file.with_suffix(".npz")
        replacement = None
        if self.replacement is not None:  # the user's replacements, on the tensors' names in this prefix
            ops = [dict(op, param_name=renamed.get(op.get("param_name"), op.get("param_name")))
                   for op in self.replacement.get("operations", [])]
            replacement = onnx_file.with_suffix(".replace.json")
            replacement.write_text(json.dumps(dict(self.replacement, operations=ops)))
        request = {"onnx": str(onnx_file), "inputs": str(self.inputs), "out": str(out),
                   "param_replacement": str(replacement) if replacement else None}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        self.count += 1
        reply = json.loads(line) if line else {"error": f"the converter process died (exit {self.proc.poll()})"}
        if reply.get("error"):
            self.log.flush()
            tail = (self.work / "convert.log").read_text(errors="replace").strip().splitlines()[-5:]
            raise ConversionCheckError(f"converting {onnx_file.name} failed: {reply['error']}\n  " + "\n  ".join(tail))
        data = np.load(out)
        n = reply["outputs"]
        return [[data[f"in{i}_out{j}"] for j in range(n)] for i in range(len(self.batch))]

    def __exit__(self, *exc) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
