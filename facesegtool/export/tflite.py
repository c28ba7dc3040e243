"""ONNX -> TFLite with onnx2tf, offline, in a child process and a private working directory.

Offline by construction: onnx2tf fetches a sample-image .npy from GitHub whenever the model
has one 4-D RGB input, unless a file of that name sits in its working directory, and it
calibrates int8 on MS-COCO images unless given data. We always run it in a temp dir holding
that file (made from our own face crops) and always pass our calibration array.

onnx2tf runs `onnxsim` as a subprocess: the child's PATH starts with this interpreter's bin dir.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

import facesegtool

from ..errors import FacesegError
from ..processes import dies_with_this_process
from .calibration import save_npy
from .onnx import INPUT_NAME, onnx_ops

# The file onnx2tf's download_test_image_data() reads from the cwd instead of downloading.
ONNX2TF_SAMPLE_FILE = "calibration_image_sample_data_20x128x128x3_float32.npy"
ONNX2TF_SAMPLE_SHAPE = (20, 128, 128, 3)


class ConversionError(FacesegError, RuntimeError):
    """onnx2tf / the TFLite converter failed; the message says why and what to do."""


@dataclass
class Converted:
    variant: str
    path: Path  # inside the work dir; the caller moves it
    seconds: float  # SavedModel -> this .tflite
    folded_transposes: int = 0  # TRANSPOSE ops removed around concats (lean_graph.py)


@dataclass
class Conversion:
    tf_seconds: float  # ONNX -> TensorFlow SavedModel (onnx2tf), shared by all variants
    variants: dict[str, Converted]


def onnx2tf_ops() -> set[str]:
    """ONNX op types onnx2tf converts: one module per op in onnx2tf/ops (found without importing TF)."""
    spec = importlib.util.find_spec("onnx2tf")
    if spec is None or not spec.submodule_search_locations:
        raise ConversionError("onnx2tf is not installed: pip install onnx2tf==1.29.24")
    ops_dir = Path(list(spec.submodule_search_locations)[0]) / "ops"
    return {p.stem for p in ops_dir.glob("*.py") if not p.stem.startswith("_")}


def unsupported_ops(onnx_path: str | Path) -> list[str]:
    return sorted(onnx_ops(onnx_path) - onnx2tf_ops())


def write_onnx2tf_sample(faces_rgb: np.ndarray, path: str | Path) -> Path:
    """onnx2tf's sample file: 20 x 128 x 128 x 3 float32 RGB in 0..1 (here: our face crops, repeated if few)."""
    import cv2

    n, size = ONNX2TF_SAMPLE_SHAPE[0], ONNX2TF_SAMPLE_SHAPE[1]
    picks = [faces_rgb[i % len(faces_rgb)] for i in range(n)]
    small = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in picks])
    return save_npy(small.astype(np.float32) / 255.0, path)


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    # The child imports this very package, wherever it was imported from here.
    env["PYTHONPATH"] = str(Path(facesegtool.__file__).resolve().parents[1]) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("CUDA_VISIBLE_DEVICES", "")  # conversion is CPU work; skip GPU probing
    return env


def convert(
    onnx_path: str | Path,
    work_dir: str | Path,
    variants: list[str],
    calibration: np.ndarray | None,
    sample_faces: np.ndarray,
    per_channel: bool = True,
    io_dtype: str = "int8",
    baked_normalization: bool = False,
    int16_activations: bool = False,
    float_layers: list[str] | None = None,
    labels: list[str] | None = None,
    metadata: dict | None = None,
    standard_metadata: dict | None = None,
    progress: bool = True,
) -> Conversion:
    """Convert `onnx_path` into the requested variants inside `work_dir` (which becomes onnx2tf's cwd).

    calibration: NHWC float32 inputs exactly as the model takes them (required for int8; also fed to
    onnx2tf's own consistency checks). sample_faces: RGB uint8 face crops for onnx2tf's sample file.
    The options were checked by the caller (variants.check_options).
    Raises ConversionError with the reason; files in work_dir are then the caller's to delete.
    """
    if "int8" in variants and calibration is None:
        raise ValueError("int8 needs calibration data")
    missing_ops = unsupported_ops(onnx_path)
    if missing_ops:
        raise ConversionError(
            f"onnx2tf cannot convert ONNX op(s) {', '.join(missing_ops)} in {Path(onnx_path).name}; "
            "replace the layer(s) that produce them in the model with supported ones (see onnx2tf's "
            "list of supported ops), or export the ONNX with another opset (--opset)"
        )

    work = Path(work_dir).resolve()  # the worker runs with work as its cwd: every path must be absolute
    work.mkdir(parents=True, exist_ok=True)
    write_onnx2tf_sample(sample_faces, work / ONNX2TF_SAMPLE_FILE)
    calib_path = save_npy(calibration, work / "calibration.npy") if calibration is not None else None
    spec = {
        "onnx": str(Path(onnx_path).resolve()),
        "input_name": INPUT_NAME,
        "variants": list(variants),
        "calibration_npy": str(calib_path) if calib_path else None,
        "per_channel": per_channel,
        "io_dtype": io_dtype,
        "baked_normalization": baked_normalization,
        "int16_activations": int16_activations,
        "float_layers": list(float_layers or []),
        "labels": list(labels or []),
        "metadata": dict(metadata or {}),
        "standard_metadata": dict(standard_metadata) if standard_metadata else None,
    }
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps(spec, indent=1))
    log_path = work / "onnx2tf.log"

    done: dict[str, Converted] = {}
    tf_seconds = 0.0
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "facesegtool.export.onnx2tf_worker", str(spec_path)],
            cwd=work,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            # Killed by the kernel when the exporting process dies, even by kill -9 (whose cleanup never runs; the
            # next export removes the work folder it leaves, see exporter.remove_stale_work_dirs).
            preexec_fn=dies_with_this_process(),
        )
        bar = tqdm(total=len(variants) + 1, desc="ONNX -> TF", unit="step", disable=not progress)
        watcher = _LogProgress(log_path, bar) if progress else None
        try:
            for line in proc.stdout:  # one JSON line per finished step
                msg = json.loads(line)
                if msg.get("step") == "tf":
                    tf_seconds = msg["seconds"]
                    if progress:
                        bar.write(f"export: onnx2tf built the TensorFlow graph in {tf_seconds:.0f}s", file=sys.stderr)
                    bar.set_description("TF -> TFLite")
                    bar.update(1)
                elif "variant" in msg:
                    done[msg["variant"]] = Converted(msg["variant"], Path(msg["file"]), msg["seconds"],
                                                     msg.get("folded_transposes", 0))
                    bar.set_postfix_str(msg["variant"])
                    bar.update(1)
                    if progress:
                        bar.write(f"export: {msg['variant']} written: {_op_count(Path(msg['file']))} TFLite ops, "
                                  f"{msg['seconds']:.0f}s", file=sys.stderr)
            rc = proc.wait()
        except BaseException:  # Ctrl-C or an error here: do not leave a converter running
            proc.kill()
            proc.wait()
            raise
        finally:
            if watcher is not None:
                watcher.stop()
            bar.close()
    if rc != 0 or any(v not in done for v in variants):
        raise ConversionError(_diagnose(log_path, rc, [v for v in variants if v not in done]))
    check_runs([done[v].path for v in variants])
    return Conversion(tf_seconds, done)


def _op_count(path: Path) -> int | str:
    from .op_analysis import analyze_ops

    try:
        return sum(analyze_ops(path)["ops"].values())
    except Exception:  # a count for the progress line only; the summary table reports the real analysis
        return "?"


class _LogProgress:
    """Where onnx2tf is, read from its log while it runs: "op 812 / 4919" on the bar (onnx2tf logs
    "INFO: i / n" before each op), so a long conversion shows how far it has got, not only a spinner."""

    _OP = re.compile(r"INFO:\S*\s+(?:\x1b\[[0-9;]*m)?(\d+) / (\d+)")

    def __init__(self, log_path: Path, bar: tqdm, every: float = 1.0):
        self.log_path, self.bar, self.every = log_path, bar, every
        self._done = threading.Event()
        self._offset = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(self.every):
            try:
                with open(self.log_path, "rb") as f:
                    f.seek(self._offset)
                    text = f.read().decode(errors="replace")
                    self._offset = f.tell()
            except OSError:
                continue
            if not self.bar.desc.startswith("ONNX -> TF"):
                continue
            found = self._OP.findall(text)
            if found:
                i, n = found[-1]
                self.bar.set_postfix_str(f"op {i} / {n}")
            elif "Model optimizing started" in text:
                self.bar.set_postfix_str("simplifying (onnxsim)")

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)


# Loads each model as the CPU runtime does (default delegates: XNNPACK), allocates and invokes once.
# In a child: a model the interpreter rejects can abort the process instead of raising.
_RUN_CHECK = """
import sys, numpy as np
from ai_edge_litert.interpreter import Interpreter
for path in sys.argv[1:]:
    print(path, flush=True)
    it = Interpreter(model_path=path)
    it.allocate_tensors()
    d = it.get_input_details()[0]
    it.set_tensor(d["index"], np.zeros(d["shape"], d["dtype"]))
    it.invoke()
    print("ok", flush=True)
"""


def check_runs(paths: list[Path]) -> None:
    """Every converted file must load and run in the interpreter before it is called exported."""
    proc = subprocess.run([sys.executable, "-c", _RUN_CHECK, *map(str, paths)], capture_output=True, text=True,
                          env=child_env())
    if proc.returncode == 0:
        return
    lines = proc.stdout.split()
    failed = Path(lines[-1]).name if lines and lines[-1] != "ok" else "?"
    errors = [line for line in proc.stderr.strip().splitlines() if line.strip() and not line.startswith("INFO:")]
    reason = errors[-1].strip() if errors else (f"the interpreter aborted (signal {-proc.returncode})"
                                                if proc.returncode < 0 else f"exit {proc.returncode}")
    raise ConversionError(f"{failed} was converted but the TFLite interpreter cannot run it: {reason[:300]}; "
                          "nothing was exported (export the other variants alone with --quant, or "
                          "`facesegtool verify --diagnose` on an fp32 export)")


def _diagnose(log_path: Path, rc: int, missing: list[str]) -> str:
    text = log_path.read_text(errors="replace") if log_path.is_file() else ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    for ln in lines:
        if "OP is not yet implemented" in ln:
            op = ln.split("OP is not yet implemented")[0].split()[-1]
            return (
                f"onnx2tf cannot convert ONNX op {op}; replace the layer that produces it in the model "
                "with a supported one, or export with another opset"
            )
    for ln in reversed(lines):  # our own checks in the worker raise ValueError with a full sentence
        if ln.startswith("ValueError: "):
            return ln[len("ValueError: ") :]
    errors = [ln for ln in lines if "ERROR" in ln or "Error" in ln or "error:" in ln]
    detail = "\n  ".join((errors or lines)[-8:])
    return (
        f"TFLite conversion failed (exit code {rc}; not produced: {', '.join(missing)}).\n  {detail}\n"
        "If an op or layer is named above, change it in the model; otherwise try --per-tensor, "
        "or a different --io-dtype for int8."
    )
