"""torch model -> TFLite with litert-torch (Google's PyTorch -> LiteRT converter), the second converter.

    conversion = convert(net, work, ["fp32", "int8"], calibration=calib, labels=..., metadata=...,
                         standard_metadata=...)

onnx2tf goes torch -> ONNX -> TensorFlow -> TFLite; litert-torch goes from the torch.export program
straight to TFLite, which keeps transformer graphs lean (a SegFormer-B0: hundreds of ops where
onnx2tf gave thousands). It lives in its own venv (.venv-litert, `make litert`): litert-torch 0.10
pulls ai-edge-litert 2.3 while onnx2tf pins 2.1. So the conversion runs there as a child process
(litert_torch_worker.py), with data in and out as files: the .pt2 program, the calibration faces as
.npy, the .tflite files back.

The files then get the same post-steps as onnx2tf's (litert_torch_post.py, a child of this venv:
TensorFlow): int8 re-typed to the I/O the export asks for (uint8 by default: the camera's bytes as
they are), our metadata entry (sidecar.embed_metadata), the standard TFLite Metadata
(tflite_metadata), and then the interpreter's load-and-run check.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

import facesegtool

from ..errors import FacesegError
from ..processes import dies_with_this_process
from .calibration import save_npy
from .tflite import Conversion, ConversionError, Converted, check_runs, child_env
from .variants import ExportOptionError

REPO = Path(facesegtool.__file__).resolve().parents[1]
VENV = REPO / ".venv-litert"
PYTHON_ENV = "FACESEGTOOL_LITERT_PYTHON"  # another interpreter with litert-torch, instead of .venv-litert
WORKER = Path(__file__).with_name("litert_torch_worker.py")
SETUP_HINT = "create it with `make litert` (about 2 GB: torch 2.13 + litert-torch 0.10 in .venv-litert)"
LOG_NAME = "litert-torch.log"  # in the work folder: everything the worker and its libraries print
IO_DTYPES = ("uint8", "int8")  # the int8 variant's I/O; the quantizer gives int8, uint8 is re-typed here


class LitertUnavailableError(FacesegError, RuntimeError):
    """The litert-torch venv is missing; the message says how to create it."""


def litert_python() -> Path | None:
    """The interpreter that has litert-torch: $FACESEGTOOL_LITERT_PYTHON, else .venv-litert's; None if absent."""
    given = os.environ.get(PYTHON_ENV)
    path = Path(given) if given else VENV / "bin" / "python"
    return path if path.is_file() and os.access(path, os.X_OK) else None


def available() -> bool:
    return litert_python() is not None


def unavailable_reason() -> str:
    where = os.environ.get(PYTHON_ENV) or str(VENV)
    return f"--converter litert-torch needs its own venv, and {where} is missing: {SETUP_HINT}"


def check_options(variants: list[str], per_channel: bool = True, io_dtype: str | None = None,
                  int16_activations: bool = False, float_layers: tuple[str, ...] | list[str] = ()) -> None:
    """Options litert-torch cannot honour, refused before any work (ExportOptionError, one line)."""
    refused = []
    if "int8" in variants and io_dtype not in (None, *IO_DTYPES):
        refused.append(f"--io-dtype {io_dtype} (int8 I/O is {' or '.join(IO_DTYPES)} here)")
    if int16_activations:
        refused.append("--int16-activations")
    if float_layers:
        refused.append("--float-layer")
    if refused:
        raise ExportOptionError(f"--converter litert-torch does not take {', '.join(refused)}; "
                                "use --converter onnx2tf for those")


def convert(
    net: torch.nn.Module,
    work_dir: str | Path,
    variants: list[str],
    size: int,
    calibration: np.ndarray | None,
    labels: list[str],
    metadata: dict,
    standard_metadata: dict | None = None,
    io_dtype: str = "uint8",
    per_channel: bool = True,
    stem: str = "model",
    progress: bool = True,
) -> Conversion:
    """Convert `net` (NCHW in, NCHW scores out, normalisation baked when the export bakes it) into `work_dir`.

    calibration: NHWC float32 inputs exactly as the graph takes them (required for int8); the first
    one is also the sample the program is exported with. Returns tflite.Conversion, as onnx2tf's
    path does (tf_seconds: torch.export + the fp32 conversion, which every variant starts from).
    Raises LitertUnavailableError without the venv, ConversionError when the conversion fails.
    """
    python = litert_python()
    if python is None:
        raise LitertUnavailableError(unavailable_reason())
    if "int8" in variants and calibration is None:
        raise ValueError("int8 needs calibration data")
    work = Path(work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)

    t = time.time()
    program = work / f"{stem}.pt2"
    try:
        with torch.no_grad():
            exported = torch.export.export(net.eval(), (torch.zeros(1, 3, size, size),))
    except Exception as exc:
        raise ConversionError(f"torch.export of the model failed (litert-torch converts torch.export programs): "
                              f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}") from exc
    torch.export.save(exported, program)
    calib_path = save_npy(calibration, work / "calibration.npy") if calibration is not None else None
    spec = {"program": str(program), "variants": list(variants), "out_dir": str(work), "stem": stem,
            "calibration_npy": str(calib_path) if calib_path else None, "per_channel": per_channel}
    spec_path = work / "litert_spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    done, fp32_seconds = _run_worker(python, spec_path, work / LOG_NAME, variants, progress)
    export_seconds = time.time() - t - fp32_seconds - sum(c.seconds for v, c in done.items() if v != "fp32")

    post = {"files": {v: str(c.path) for v, c in done.items()}, "io_dtype": io_dtype, "labels": list(labels),
            "metadata": dict(metadata), "standard_metadata": dict(standard_metadata) if standard_metadata else None}
    post_path = work / "litert_post.json"
    post_path.write_text(json.dumps(post, indent=1))
    # The same post-steps as onnx2tf_worker's files, in a child of this venv: they import TensorFlow.
    proc = subprocess.run([sys.executable, "-m", "facesegtool.export.litert_torch_post", str(post_path)],
                          capture_output=True, text=True, env=child_env(), preexec_fn=dies_with_this_process())
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        raise ConversionError(f"writing the metadata into litert-torch's files failed: "
                              f"{lines[-1].strip()[:300] if lines else f'exit {proc.returncode}'}")
    check_runs([done[v].path for v in variants])
    return Conversion(round(export_seconds + fp32_seconds, 2), done)


def _run_worker(python: Path, spec_path: Path, log_path: Path, variants: list[str],
                progress: bool) -> tuple[dict[str, Converted], float]:
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", PYTHONNOUSERSITE="1")
    env.pop("PYTHONPATH", None)  # the worker imports nothing of the main venv
    done: dict[str, Converted] = {}
    fp32_seconds = 0.0
    with open(log_path, "w") as log:
        # -P: the worker's folder stays off sys.path, where this module would shadow the litert_torch package
        proc = subprocess.Popen([str(python), "-P", str(WORKER), str(spec_path)], cwd=spec_path.parent, env=env,
                                stdout=subprocess.PIPE, stderr=log, text=True, preexec_fn=dies_with_this_process())
        try:
            for line in proc.stdout:
                msg = json.loads(line)
                if msg.get("step") == "fp32":
                    fp32_seconds = msg["seconds"]
                    _say(progress, f"export: litert-torch converted the program in {fp32_seconds:.0f}s")
                elif "variant" in msg:
                    done[msg["variant"]] = Converted(msg["variant"], Path(msg["file"]), msg["seconds"])
            rc = proc.wait()
        except BaseException:  # Ctrl-C or an error here: do not leave a converter running
            proc.kill()
            proc.wait()
            raise
    if rc != 0 or any(v not in done for v in variants):
        lines = [ln for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
        errors = [ln for ln in lines if "Error" in ln or "error:" in ln] or lines
        raise ConversionError(f"litert-torch conversion failed (exit code {rc}; not produced: "
                              f"{', '.join(v for v in variants if v not in done)}): "
                              f"{errors[-1].strip()[:300] if errors else 'no log'}; full log: {log_path}")
    return done, fp32_seconds


def retype_io_uint8(path: str | Path) -> None:
    """An int8-I/O model -> uint8 I/O, in place: a QUANTIZE op (uint8 -> int8) before the input, one after the output.

    What TFLite's converter does for inference_input_type=uint8 (its modify_model_io_type only takes
    float I/O, which ai-edge-quantizer's static int8 does not leave). The uint8 input gets scale 1,
    zero point 0 whatever the calibrated input scale: the graph takes the camera's bytes as they are,
    as onnx2tf's uint8 files do. The uint8 output keeps the int8 grid (zero point + 128): exact.
    """
    from tensorflow.lite.python import schema_py_generated as schema_fb
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]
    quantize = _opcode(model, schema_fb, schema_fb.BuiltinOperator.QUANTIZE)

    def uint8_twin(index: int, scale: float, zero_point: int) -> int:
        old = graph.tensors[index]
        twin = schema_fb.TensorT()
        twin.shape, twin.type = list(old.shape), schema_fb.TensorType.UINT8
        twin.buffer = _empty_buffer(model, schema_fb)
        twin.name = (old.name.decode() if isinstance(old.name, bytes) else old.name) + "_uint8"
        twin.quantization = schema_fb.QuantizationParametersT()
        twin.quantization.scale, twin.quantization.zeroPoint = [scale], [zero_point]
        graph.tensors.append(twin)
        return len(graph.tensors) - 1

    def op(inputs: list[int], outputs: list[int]):
        o = schema_fb.OperatorT()
        o.opcodeIndex, o.inputs, o.outputs = quantize, inputs, outputs
        return o

    (inp,), (out,) = graph.inputs, graph.outputs
    if graph.tensors[inp].type != schema_fb.TensorType.INT8 or graph.tensors[out].type != schema_fb.TensorType.INT8:
        raise ConversionError(f"{Path(path).name}: expected int8 input and output to re-type as uint8")
    new_in = uint8_twin(inp, 1.0, 0)
    q = graph.tensors[out].quantization
    new_out = uint8_twin(out, float(q.scale[0]), int(q.zeroPoint[0]) + 128)
    graph.operators = [op([new_in], [inp]), *graph.operators, op([out], [new_out])]
    graph.inputs, graph.outputs = [new_in], [new_out]
    for signature in model.signatureDefs or []:
        for io in signature.inputs:
            io.tensorIndex = new_in if io.tensorIndex == inp else io.tensorIndex
        for io in signature.outputs:
            io.tensorIndex = new_out if io.tensorIndex == out else io.tensorIndex
    flatbuffer_utils.write_model(model, str(path))


# --- auto: both converters measured, one chosen --------------------------------------------------------


def candidate_figures(path: str | Path, inputs_nhwc: np.ndarray, reference_nchw: np.ndarray, runs: int = 10) -> dict:
    """One converted file judged as `auto` judges it: argmax agreement and max |d score| against torch on
    `inputs_nhwc` (the graph's float input: RGB 0..255 when baked), TFLite op count, file size, and
    host latency (median ms, LiteRT interpreter, 1 thread)."""
    from ai_edge_litert.interpreter import Interpreter

    from .op_analysis import analyze_ops

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]

    def feed(x: np.ndarray) -> np.ndarray:
        x = x[None].astype(np.float32)
        if inp["dtype"] != np.float32:
            scale, zero = inp["quantization"]
            info = np.iinfo(inp["dtype"])
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(inp["dtype"])
        return x

    scores = []
    for x in inputs_nhwc:
        it.set_tensor(inp["index"], feed(x))
        it.invoke()
        y = it.get_tensor(out["index"])[0]
        if out["dtype"] != np.float32:
            scale, zero = out["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        scores.append(y.transpose(2, 0, 1))
    got = np.stack(scores)
    x0 = feed(inputs_nhwc[0])
    times = []
    for _ in range(runs + 2):  # two warm-up runs
        t = time.perf_counter()
        it.set_tensor(inp["index"], x0)
        it.invoke()
        times.append(1000 * (time.perf_counter() - t))
    ops = analyze_ops(path)["ops"]
    return {"agreement": round(float(np.mean(got.argmax(1) == reference_nchw.argmax(1))), 6),
            "max_abs_diff": round(float(np.abs(got - reference_nchw).max()), 5),
            "ops": int(sum(ops.values())), "transposes": int(ops.get("TRANSPOSE", 0)),
            "bytes": Path(path).stat().st_size, "host_ms_1thread": round(float(np.median(times[2:])), 2)}


LATENCY_MARGIN = 0.10  # a converter must be 10 % faster to win on latency; closer than that, fewer ops decides


def choose(candidates: dict[str, dict[str, dict]], floors: dict[str, float]) -> tuple[str, str]:
    """(converter, why) from {converter: {variant: candidate_figures}}: exactness first, then latency, then ops.

    A converter whose file of any variant agrees with torch below that variant's floor (verify's gate)
    is out. Of those left, the one whose files run >= LATENCY_MARGIN faster (summed over the variants,
    1 thread) wins; else the one with fewer ops; a tie keeps onnx2tf, the long-tested path. Raises
    ConversionError when none passes.
    """
    passed = {name: figs for name, figs in candidates.items()
              if all(f["agreement"] >= floors.get(v, 0.0) for v, f in figs.items())}
    if not passed:
        worst = {name: min(figs, key=lambda v: figs[v]["agreement"] - floors.get(v, 0.0))
                 for name, figs in candidates.items()}
        raise ConversionError("--converter auto: no converter's files pass the agreement gate ("
                              + "; ".join(f"{n} {v} {100 * candidates[n][v]['agreement']:.2f} % < "
                                          f"{100 * floors.get(v, 0.0):.1f} %" for n, v in worst.items()) + ")")
    if len(passed) == 1:
        (name,) = passed
        out = sorted(set(candidates) - {name})
        return name, f"{name}: the only one above the agreement gate ({', '.join(out)} below it)"
    ms = {n: sum(f["host_ms_1thread"] for f in figs.values()) for n, figs in passed.items()}
    ops = {n: sum(f["ops"] for f in figs.values()) for n, figs in passed.items()}
    fast = min(ms, key=ms.get)
    others = [n for n in ms if n != fast]
    if all(ms[fast] <= (1 - LATENCY_MARGIN) * ms[n] for n in others):
        return fast, f"{fast}: {ms[fast]:.1f} ms vs " + ", ".join(f"{n} {ms[n]:.1f} ms" for n in others) + " (1 thread)"
    few = min(ops, key=lambda n: (ops[n], n != "onnx2tf"))
    return few, (f"{few}: latency within {100 * LATENCY_MARGIN:.0f} %, {ops[few]} ops vs "
                 + ", ".join(f"{n} {ops[n]}" for n in ops if n != few))


def _opcode(model, schema_fb, builtin: int) -> int:
    for i, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return i
    code = schema_fb.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def _empty_buffer(model, schema_fb) -> int:
    model.buffers.append(schema_fb.BufferT())
    return len(model.buffers) - 1


def _say(progress: bool, line: str) -> None:
    if progress:
        print(line, file=sys.stderr, flush=True)
