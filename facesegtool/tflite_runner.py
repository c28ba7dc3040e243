"""Run an exported .tflite model the way the app does: fed and read as its contract (the sidecar JSON) says.

The sidecar (<stem>.json next to <stem>.tflite, written by `facesegtool export`) says what the
model wants: input size and layout, RGB order, mean/std, whether normalisation is baked in,
and the int8/uint8 quantization of input and output; contract.py reads and checks it, and here it
is checked against the model itself. Tensors are selected by index, never by name: onnx2tf names
differ from variant to variant.

    model = TFLiteModel("exports/model_int8.tflite")
    logits = model.logits(rgb)        # H x W x C float32 (dequantized)
    mask = logits.argmax(-1)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .contract import QUANTIZED, ContractError, Quantization, read_contract, sidecar_path

# Kept for the callers that catch it: a .tflite that cannot be used and a sidecar that cannot are one kind.
TFLiteModelError = ContractError


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


def _quant(details: dict) -> Quantization | None:
    scale, zero_point = details["quantization"]
    return Quantization(float(scale), int(zero_point)) if scale else None


class TFLiteModel:
    """One exported model and its contract, on the interpreter's default CPU path (XNNPACK)."""

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
        self.contract = read_contract(self.path)
        self._content = self.path.read_bytes()  # the interpreter reads from this buffer: keep it alive
        self.interpreter = _interpreter(self.path, self._content, num_threads, preserve_all_tensors)
        expected = self.contract.sha256
        if check_sha256 and expected and expected != hashlib.sha256(self._content).hexdigest():
            raise TFLiteModelError(
                f"{self.path}: does not match the sha256 in its sidecar {sidecar_path(self.path).name}: "
                "the file was changed after export or the sidecar belongs to another export"
            )
        self.input_details = self.interpreter.get_input_details()[0]  # the contract allows index 0 only
        self.output_details = self.interpreter.get_output_details()[0]
        self._check_contract()

    @property
    def sidecar(self) -> dict:
        """The whole sidecar JSON (checked); `contract` is its typed form."""
        return self.contract.raw

    # --- what the contract promises, checked against the model itself ----------------------------
    def _check_contract(self) -> None:
        inp, out = self.contract.input, self.contract.output
        problems = []
        if tuple(self.input_details["shape"]) != inp.shape:
            problems.append(f"input shape {list(self.input_details['shape'])} vs sidecar {list(inp.shape)}")
        if np.dtype(self.input_details["dtype"]).name != inp.dtype:
            problems.append(f"input dtype {np.dtype(self.input_details['dtype']).name} vs sidecar {inp.dtype}")
        if out.shape is not None and tuple(self.output_details["shape"]) != out.shape:
            problems.append(f"output shape {list(self.output_details['shape'])} vs sidecar {list(out.shape)}")
        for name, details, side in (("input", self.input_details, inp), ("output", self.output_details, out)):
            # The contract's quantization is the one applied, so it must be the model's.
            actual, promised = _quant(details), side.quantization
            if (actual is None) != (promised is None) and np.dtype(details["dtype"]).name in QUANTIZED:
                problems.append(f"{name} quantization {actual} vs sidecar {promised}")
            elif actual and promised and (not np.isclose(actual.scale, promised.scale, rtol=1e-5)
                                          or actual.zero_point != promised.zero_point):
                problems.append(f"{name} quantization scale {actual.scale} zero point {actual.zero_point} vs sidecar "
                                f"{promised.scale} / {promised.zero_point}")
        if problems:
            raise TFLiteModelError(
                f"{self.path}: its sidecar does not describe it ({'; '.join(problems)}); re-export to get a matching pair"
            )

    @property
    def variant(self) -> str:
        return self.contract.variant

    @property
    def classes(self) -> list[str]:
        return list(self.contract.classes)

    @property
    def layout(self) -> str:
        return self.contract.input.layout

    @property
    def input_shape(self) -> list[int]:
        return [int(v) for v in self.input_details["shape"]]

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) the model takes."""
        return self.contract.size

    @property
    def is_integer(self) -> bool:
        """Full-integer model (int8/uint8 input or output)."""
        return any(np.dtype(d["dtype"]).name in QUANTIZED for d in (self.input_details, self.output_details))

    # --- inference -------------------------------------------------------------------------------
    def preprocess(self, rgb: np.ndarray) -> np.ndarray:
        """H x W x 3 uint8 RGB (already at the model's size) -> the input tensor, per the contract."""
        return self.contract.normalize(rgb)

    def run(self, rgb: np.ndarray) -> None:
        """Run on one image; intermediate tensors stay readable when preserve_all_tensors is on."""
        self.interpreter.set_tensor(self.input_details["index"], self.preprocess(rgb))
        self.interpreter.invoke()

    def logits(self, rgb: np.ndarray) -> np.ndarray:
        """H x W x C float32 logits (dequantized) for one H x W x 3 uint8 RGB image."""
        self.run(rgb)
        return self.contract.scores(self.interpreter.get_tensor(self.output_details["index"]))

    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """H x W uint8 class-index mask."""
        return self.logits(rgb).argmax(-1).astype(np.uint8)
