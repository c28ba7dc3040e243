"""Run an exported .tflite model the way the app does: pre-process and read the output from its sidecar JSON.

The sidecar (<stem>.json next to <stem>.tflite, written by `facesegtool export`) says what the
model wants: input size and layout, RGB order, mean/std, whether normalisation is baked in,
and the int8/uint8 quantization of input and output. Tensors are selected by index, never by
name: onnx2tf names differ from variant to variant.

    model = TFLiteModel("exports/model_int8.tflite")
    logits = model.logits(rgb)        # H x W x C float32 (dequantized)
    mask = logits.argmax(-1)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .export.sidecar import SidecarError, sidecar_path
from .export.sidecar import read_sidecar as _read_sidecar

QUANTIZED = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16}


class TFLiteModelError(ValueError):
    """The .tflite or its sidecar cannot be used (the message names the file and what to do)."""


def read_sidecar(tflite: str | Path) -> dict:
    """The sidecar JSON of a .tflite, checked for the keys pre- and post-processing need."""
    try:
        sidecar = _read_sidecar(tflite)
    except SidecarError as exc:
        raise TFLiteModelError(str(exc)) from exc
    missing = [k for k in ("shape", "dtype", "mean", "std") if k not in sidecar["input"]]
    if missing:
        raise TFLiteModelError(f"{sidecar_path(tflite)}: sidecar input lacks {', '.join(missing)}")
    return sidecar


def _interpreter(path: Path, content: bytes, num_threads: int | None, preserve_all_tensors: bool = False):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    # From bytes, not model_path: a path is mmap'd without the flatbuffer check, and a truncated
    # file then dies with SIGBUS instead of raising ValueError.
    kwargs: dict = {"model_content": content, "num_threads": num_threads}
    if preserve_all_tensors:
        # Intermediate tensors inside the XNNPACK delegate are not kept; run the builtin kernels instead.
        kwargs["experimental_preserve_all_tensors"] = True
        kwargs["experimental_op_resolver_type"] = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        interpreter = Interpreter(**kwargs)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise TFLiteModelError(f"{path}: cannot load as a TFLite model ({exc}); the file is corrupt or not a .tflite") from exc
    return interpreter


def _quant(details: dict) -> tuple[float, int] | None:
    scale, zero_point = details["quantization"]
    return (float(scale), int(zero_point)) if scale else None


class TFLiteModel:
    """One exported model and its sidecar, on the interpreter's default CPU path (XNNPACK)."""

    def __init__(
        self,
        path: str | Path,
        num_threads: int | None = None,
        preserve_all_tensors: bool = False,
        check_sha256: bool = True,
    ):
        self.path = Path(path)
        if not self.path.is_file():
            raise TFLiteModelError(f"{self.path}: no such .tflite file")
        self.sidecar = read_sidecar(self.path)
        self._content = self.path.read_bytes()  # the interpreter reads from this buffer: keep it alive
        self.interpreter = _interpreter(self.path, self._content, num_threads, preserve_all_tensors)
        expected = self.sidecar.get("sha256")
        if check_sha256 and expected and expected != hashlib.sha256(self._content).hexdigest():
            raise TFLiteModelError(
                f"{self.path}: does not match the sha256 in its sidecar {sidecar_path(self.path).name}: "
                "the file was changed after export or the sidecar belongs to another export"
            )
        self.input_details = self.interpreter.get_input_details()[self.sidecar["input"].get("index", 0)]
        self.output_details = self.interpreter.get_output_details()[self.sidecar["output"].get("index", 0)]
        self._check_sidecar()

    # --- what the sidecar promises, checked against the model itself -------------------------
    def _check_sidecar(self) -> None:
        inp, out = self.sidecar["input"], self.sidecar["output"]
        problems = []
        if list(self.input_details["shape"]) != list(inp["shape"]):
            problems.append(f"input shape {list(self.input_details['shape'])} vs sidecar {inp['shape']}")
        if np.dtype(self.input_details["dtype"]).name != inp["dtype"]:
            problems.append(f"input dtype {np.dtype(self.input_details['dtype']).name} vs sidecar {inp['dtype']}")
        if "shape" in out and list(self.output_details["shape"]) != list(out["shape"]):
            problems.append(f"output shape {list(self.output_details['shape'])} vs sidecar {out['shape']}")
        for name, details, side in (("input", self.input_details, inp), ("output", self.output_details, out)):
            actual, promised = _quant(details), side.get("quantization")
            if actual and promised and not np.isclose(actual[0], promised["scale"], rtol=1e-5):
                problems.append(f"{name} quantization scale {actual[0]} vs sidecar {promised['scale']}")
        if len(self.input_shape) != 4 or self.input_shape[-1 if self.layout == "NHWC" else 1] != 3:
            problems.append(f"input shape {self.input_shape} is not one {self.layout} RGB image")
        if problems:
            raise TFLiteModelError(
                f"{self.path}: its sidecar does not describe it ({'; '.join(problems)}); re-export to get a matching pair"
            )

    @property
    def variant(self) -> str:
        return str(self.sidecar.get("variant") or self.path.stem)

    @property
    def classes(self) -> list[str]:
        return list(self.sidecar["classes"])

    @property
    def layout(self) -> str:
        return self.sidecar["input"].get("layout", "NHWC")

    @property
    def input_shape(self) -> list[int]:
        return [int(v) for v in self.input_details["shape"]]

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) the model takes."""
        h, w = self.input_shape[1:3] if self.layout == "NHWC" else self.input_shape[2:4]
        return h, w

    @property
    def is_integer(self) -> bool:
        """Full-integer model (int8/uint8 input or output)."""
        return any(np.dtype(d["dtype"]).name in QUANTIZED for d in (self.input_details, self.output_details))

    # --- inference -------------------------------------------------------------------------------
    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """H x W x 3 uint8 RGB (already at the model's size) -> the input tensor, per the sidecar."""
        inp = self.sidecar["input"]
        if rgb.shape[:2] != self.size:
            raise ValueError(f"image is {rgb.shape[:2]}, {self.path.name} takes {self.size}")
        x = rgb.astype(np.float32)
        if inp.get("channel_order", "RGB").upper() == "BGR":
            x = x[..., ::-1]
        if not inp.get("normalization_baked", False):
            # Baked models take raw 0..255 values and normalise inside.
            x = (x / float(inp.get("scale", 255.0)) - np.asarray(inp["mean"], np.float32)) / np.asarray(inp["std"], np.float32)
        dtype = np.dtype(self.input_details["dtype"])
        if dtype.name in QUANTIZED:
            quant = _quant(self.input_details)
            if quant is None:  # integer input without scale: raw bytes
                quant = (1.0, 0)
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / quant[0] + quant[1]), info.min, info.max)
        x = x.astype(dtype)[None]
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if self.layout == "NCHW" else x)

    def dequantize(self, tensor: np.ndarray, details: dict) -> np.ndarray:
        quant = _quant(details)
        if quant is None or np.dtype(tensor.dtype).kind == "f":
            return tensor.astype(np.float32)
        return (tensor.astype(np.float32) - quant[1]) * quant[0]

    def run(self, rgb: np.ndarray) -> None:
        """Run on one image; intermediate tensors stay readable when preserve_all_tensors is on."""
        self.interpreter.set_tensor(self.input_details["index"], self.preprocess(rgb))
        self.interpreter.invoke()

    def logits(self, rgb: np.ndarray) -> np.ndarray:
        """H x W x C float32 logits (dequantized) for one H x W x 3 uint8 RGB image."""
        self.run(rgb)
        out = self.dequantize(self.interpreter.get_tensor(self.output_details["index"]), self.output_details)[0]
        return out.transpose(1, 2, 0) if self.sidecar["output"].get("layout", "NHWC") == "NCHW" else out

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """H x W uint8 class-index mask."""
        return self.logits(rgb).argmax(-1).astype(np.uint8)
