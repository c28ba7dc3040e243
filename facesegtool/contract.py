"""The contract of an exported model: what its sidecar JSON promises about the .tflite beside it.

The one reader of the sidecar (export/sidecar.py is its writer). A sidecar is read and checked once:
every field a consumer uses is validated here, so a missing, edited or damaged sidecar stops verify,
predict, bench and install-model with one ContractError naming the file and the field, never a
traceback later (nor garbage masks from a zero std). A sidecar is data: nothing in it is run.

    contract = read_contract("exports/default/unet-mobilenetv2_256_int8.tflite")   # or its .json
    x = contract.normalize(rgb)             # H x W x 3 uint8 -> the model's input tensor (quantized if it is)
    scores = contract.dequantize(output)    # the model's raw output -> float32
    exported_from(contract, source)         # was this file exported from that model?

Normalization is also the one normaliser of the PyTorch side (training data, calibration, the
reference in verify and bench): x = (rgb / scale - mean) / std, per channel, after an RGB -> BGR flip
for a model trained on OpenCV's order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import FacesegError

if TYPE_CHECKING:
    import torch

    from .model_source import LoadedModel
    from .model_spec import ModelSpec

FORMAT = "facesegtool-sidecar"
VERSION = 1
TENSOR_DTYPES = ("float32", "float16", "int8", "uint8", "int16")
QUANTIZED = {"int8": np.int8, "uint8": np.uint8, "int16": np.int16}
LAYOUTS = ("NHWC", "NCHW")
REQUIRED = ("model", "variant", "tflite", "classes", "input", "output")


class ContractError(FacesegError, ValueError):
    """An exported model's contract cannot be used: its sidecar is missing, damaged or edited, or does not
    describe its .tflite. The message names the file and the field, and says to re-export."""


def sidecar_path(tflite: str | Path) -> Path:
    """The sidecar of a .tflite: the same stem, .json."""
    return Path(tflite).with_suffix(".json")


# --- the parts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quantization:
    """Affine quantization of one tensor: real = (q - zero_point) * scale."""

    scale: float
    zero_point: int

    def quantize(self, x: np.ndarray, dtype: np.dtype) -> np.ndarray:
        info = np.iinfo(dtype)
        return np.clip(np.round(x / self.scale + self.zero_point), info.min, info.max).astype(dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return (q.astype(np.float32) - self.zero_point) * self.scale


@dataclass(frozen=True)
class Normalization:
    """x = (pixel / scale - mean) / std per channel, after flipping RGB to BGR when channel_order says so.

    baked: the exported graph does this itself and takes the pixels as they are (the PyTorch model never does)."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float = 255.0
    channel_order: str = "RGB"
    baked: bool = False

    @classmethod
    def of(cls, contract: dict, baked: bool = False) -> "Normalization":
        """From an input contract dict (a checkpoint's "input", a spec's, a sidecar's), as checked on read."""
        return cls(tuple(float(v) for v in contract["mean"]), tuple(float(v) for v in contract["std"]),
                   float(contract.get("scale", 255.0)), str(contract.get("channel_order", "RGB")).upper(), baked)

    def array(self, rgb: np.ndarray) -> np.ndarray:
        """RGB uint8 (... x H x W x 3) -> float32 of the same shape, normalised (calibration, the references)."""
        if self.channel_order == "BGR":
            rgb = rgb[..., ::-1]
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        return ((rgb.astype(np.float32) / np.float32(self.scale) - mean) / std).astype(np.float32)

    def tensor(self, rgb: "np.ndarray | torch.Tensor") -> "torch.Tensor":
        """RGB uint8 H x W x 3 (numpy or torch) -> normalised float32 3 x H x W (training data); N x H x W x 3
        gives N x 3 x H x W."""
        import torch

        x = torch.as_tensor(np.ascontiguousarray(rgb) if isinstance(rgb, np.ndarray) else rgb)
        if self.channel_order == "BGR":  # a model trained on OpenCV's order
            x = x.flip(-1)
        x = x.movedim(-1, -3).float().div_(self.scale)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)
        return x.sub_(mean).div_(std)


@dataclass(frozen=True)
class Tensor:
    """One end of the model as the sidecar describes it (tensors are selected by index 0, never by name)."""

    shape: tuple[int, ...] | None  # None: not recorded (an output of an older export)
    layout: str  # NHWC or NCHW
    dtype: str | None
    quantization: Quantization | None  # None: a float tensor (or raw integers)


@dataclass(frozen=True)
class Source:
    """The model file an export was made from, as its sidecar records it."""

    path: str | None
    sha256: str | None
    ref: str | None  # what the user passed as --model
    format: str | None

    @property
    def described(self) -> str:
        return self.ref or self.path or "another model"


@dataclass(frozen=True)
class Contract:
    """A checked sidecar: everything a consumer reads, typed; `raw` keeps the whole JSON for the rest
    (export options, graph analysis), already checked for type where a consumer reads it."""

    path: Path  # the sidecar file
    model: str  # the model's name: the registry name, or the model file's stem
    variant: str
    tflite_name: str  # the .tflite file name it was written for
    input: Tensor
    normalization: Normalization
    output: Tensor
    output_kind: str  # logits or probabilities
    output_resized: bool  # the graph upsamples its scores to the input's size itself
    classes: tuple[str, ...]  # the model's labels, one per output channel
    palette: tuple[tuple[int, int, int], ...] | None
    source: Source
    sha256: str | None  # of the .tflite it was written for
    raw: dict = field(repr=False, compare=False)

    @property
    def tflite(self) -> Path:
        """The .tflite this sidecar pairs with (the same stem)."""
        return self.path.with_suffix(".tflite")

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) the model takes."""
        shape = self.input.shape
        return (shape[1], shape[2]) if self.input.layout == "NHWC" else (shape[2], shape[3])

    @property
    def is_integer(self) -> bool:
        """Full-integer I/O (an int8/uint8/int16 input or output tensor)."""
        return any(t.dtype in QUANTIZED for t in (self.input, self.output))

    @property
    def spec(self) -> "ModelSpec | None":
        """The model's recorded contract (labels, mapping onto our classes, output), when the export wrote one."""
        from .model_spec import spec_from_dict

        recorded = self.raw.get("spec")
        return spec_from_dict(recorded) if isinstance(recorded, dict) else None

    def normalize(self, rgb: "np.ndarray | torch.Tensor") -> "np.ndarray | torch.Tensor":
        """numpy: H x W x 3 uint8 RGB at the model's size -> the .tflite's input tensor (1 x H x W x 3, or NCHW),
        normalised unless that is baked in, cast and quantized to the input's dtype.
        torch: uint8 (N x) H x W x 3 -> the PyTorch reference's float (N x) 3 x H x W input, always normalised
        (the checkpoint never has the normalisation baked in)."""
        if not isinstance(rgb, np.ndarray):
            return self.normalization.tensor(rgb)
        if rgb.shape[:2] != self.size:
            raise ValueError(f"image is {rgb.shape[:2]}, {self.tflite.name} takes {self.size}")
        norm = self.normalization
        x = rgb.astype(np.float32)
        if norm.channel_order == "BGR":
            x = x[..., ::-1]
        if not norm.baked:  # baked models take raw 0..255 values and normalise inside
            x = (x / norm.scale - np.asarray(norm.mean, np.float32)) / np.asarray(norm.std, np.float32)
        dtype = np.dtype(self.input.dtype)
        if dtype.name in QUANTIZED:  # an integer input without quantization takes raw bytes
            x = (self.input.quantization or Quantization(1.0, 0)).quantize(x, dtype)
        x = x.astype(dtype)[None]
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if self.input.layout == "NCHW" else x)

    def dequantize(self, output: np.ndarray) -> np.ndarray:
        """The model's raw output (any shape) -> float32, dequantized when it is integer."""
        quant = self.output.quantization
        if quant is None or np.dtype(output.dtype).kind == "f":
            return output.astype(np.float32)
        return quant.dequantize(output)

    def scores(self, output: np.ndarray) -> np.ndarray:
        """The model's raw 1 x ... output -> h x w x C float32 scores, channels-last."""
        out = self.dequantize(output)[0]
        return out.transpose(1, 2, 0) if self.output.layout == "NCHW" else out


def exported_from(contract: Contract, source: "LoadedModel | str") -> bool:
    """Whether the contract's .tflite was exported from `source` (a model_source.LoadedModel, or the sha256 of its
    file), as far as the sidecar records: the model file's sha256 must be the one recorded and, for one of our
    registry checkpoints, the model's name (the architecture) too. A sidecar that records neither cannot tell: True."""
    recorded = contract.source.sha256
    if isinstance(source, str):
        return not recorded or recorded == source
    if recorded and recorded != source.sha256:
        return False
    # A registry checkpoint's name is its architecture; any other model's is only its file's stem.
    return not source.is_registry or not contract.model or contract.model == source.name


# --- reading -----------------------------------------------------------------------------------------


def read_raw(path: str | Path) -> dict | None:
    """The sidecar of a .tflite (or the .json itself) as plain JSON, unchecked: None when there is no readable
    facesegtool sidecar. Only for recognising an export's files (export --replace); consumers use read_contract."""
    try:
        data = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def read_contract(path: str | Path) -> Contract:
    """Read and check the sidecar of FILE.tflite (or FILE.json itself); raises ContractError naming the file and
    the field."""
    path = Path(path)
    if path.suffix.lower() not in (".tflite", ".json"):  # e.g. the .onnx beside it: binary, no sidecar
        raise ContractError(f"{path}: not a .tflite; give a FILE.tflite written by `facesegtool export` "
                            "(its sidecar FILE.json beside it)")
    if path.suffix == ".tflite":
        path = sidecar_path(path)
    if not path.is_file():
        raise ContractError(f"sidecar not found: {path} (written by `facesegtool export` next to each .tflite)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ContractError(f"{path}: not a sidecar (binary, not UTF-8 JSON text at byte {exc.start}); "
                            "export again with `facesegtool export` to rewrite it") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ContractError(f"{path}: unreadable sidecar: {exc}") from exc
    except RecursionError:
        raise ContractError(f"{path}: unreadable sidecar: nested too deeply") from None
    return contract_from_dict(data, path)


def contract_from_dict(data: Any, path: str | Path) -> Contract:
    """A sidecar already parsed (e.g. built by hand for goldens), checked as read_contract checks a file;
    `path` is where it came from, for the messages (and the .tflite it pairs with)."""
    path = Path(path)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ContractError(f"{path}: not a facesegtool sidecar (no 'format': '{FORMAT}')")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise ContractError(f"{path}: missing {', '.join(missing)}")
    _check(data, path)
    inp, out = data["input"], data["output"]
    recorded = data.get("source") or {}
    palette = data.get("palette")
    return Contract(
        path=path,
        model=data["model"],
        variant=data["variant"],
        tflite_name=data["tflite"],
        input=_tensor(inp),
        normalization=Normalization.of(inp, baked=inp.get("normalization_baked", False)),
        output=_tensor(out),
        output_kind=out.get("kind", "logits"),
        output_resized=bool(out.get("resized_to_input", False)),
        classes=tuple(data["classes"]),
        palette=tuple(tuple(c) for c in palette) if palette is not None else None,
        source=Source(recorded.get("path") or data.get("source_checkpoint"), recorded.get("sha256"),
                      recorded.get("ref"), recorded.get("format")),
        sha256=data.get("sha256"),
        raw=data,
    )


def _tensor(side: dict) -> Tensor:
    quant = side.get("quantization")
    shape = side.get("shape")
    return Tensor(tuple(shape) if shape is not None else None, side.get("layout", "NHWC"), side.get("dtype"),
                  Quantization(float(quant["scale"]), int(quant["zero_point"])) if quant is not None else None)


def _check(sidecar: dict, path: Path) -> None:
    """Every field a consumer reads, checked for presence and type (see the module doc)."""
    from .model_spec import ModelSpecError, check_contract_dict, check_labels, check_mapping, check_normalization

    def bad(name: str, what: str) -> ContractError:
        return ContractError(f"{path}: sidecar field {name} {what}; re-export the model with `facesegtool export`")

    for key in ("model", "tflite", "variant"):
        if not isinstance(sidecar[key], str):
            raise bad(key, "must be a string")
    if not sidecar["variant"]:
        raise bad("variant", "must name the variant (fp32, fp16, dynamic, int8)")
    try:
        classes = check_labels(sidecar["classes"], "classes")
        for side in ("input", "output"):
            if not isinstance(sidecar[side], dict):
                raise ModelSpecError(f"{side} must be a mapping")
        check_normalization(sidecar["input"], "input")
        if sidecar.get("mapping") is not None:
            check_mapping(sidecar["mapping"], classes, "mapping")
        if sidecar.get("spec") is not None:
            check_contract_dict(sidecar["spec"], "spec")
    except ModelSpecError as exc:
        raise ContractError(f"{path}: sidecar field {exc}; re-export the model with `facesegtool export`") from None
    for side in ("input", "output"):
        tensor = sidecar[side]
        shape = tensor.get("shape")
        if (shape is not None or side == "input") and not (
                isinstance(shape, list) and len(shape) == 4 and all(_is_int(v) and v > 0 for v in shape)):
            raise bad(f"{side}.shape", f"must be four positive sizes, not {str(shape)[:60]}")
        if side == "input" and tensor.get("dtype") not in TENSOR_DTYPES:
            raise bad("input.dtype", f"must be one of {', '.join(TENSOR_DTYPES)}")
        if side == "output" and tensor.get("dtype") is not None and tensor["dtype"] not in TENSOR_DTYPES:
            raise bad("output.dtype", f"must be one of {', '.join(TENSOR_DTYPES)}")
        if tensor.get("layout", "NHWC") not in LAYOUTS:
            raise bad(f"{side}.layout", "must be NHWC or NCHW")
        if not _is_int(tensor.get("index", 0)) or tensor.get("index", 0) != 0:
            raise bad(f"{side}.index", "must be 0 (the model's one input and output)")
        quant = tensor.get("quantization")
        if quant is not None and not (isinstance(quant, dict) and _is_number(quant.get("scale")) and quant["scale"] > 0
                                      and _is_int(quant.get("zero_point"))):
            raise bad(f"{side}.quantization", "must be null or {\"scale\": number > 0, \"zero_point\": integer}")
    inp, out = sidecar["input"], sidecar["output"]
    if inp["shape"][-1 if inp.get("layout", "NHWC") == "NHWC" else 1] != 3:
        raise bad("input.shape", f"must be one 3-channel image, not {inp['shape']}")
    if not isinstance(inp.get("normalization_baked", False), bool):
        raise bad("input.normalization_baked", "must be true or false")
    if out.get("kind", "logits") not in ("logits", "probabilities"):
        raise bad("output.kind", "must be logits or probabilities")
    if not isinstance(out.get("resized_to_input", False), bool):
        raise bad("output.resized_to_input", "must be true or false")
    if out.get("shape") is not None:
        channels = out["shape"][-1 if out.get("layout", "NHWC") == "NHWC" else 1]
        if channels != len(classes):
            raise bad("classes", f"lists {len(classes)} classes but output.shape {out['shape']} has {channels} channels")
    if sidecar.get("spec") is not None and list(sidecar["spec"]["labels"]) != classes:
        raise bad("spec.labels", "differ from classes")
    palette = sidecar.get("palette")
    if palette is not None and not (isinstance(palette, list) and len(palette) == len(classes) and all(
            isinstance(c, list) and len(c) == 3 and all(_is_int(v) and 0 <= v <= 255 for v in c) for c in palette)):
        raise bad("palette", f"must be one [r, g, b] of 0..255 integers per class ({len(classes)})")
    for key in ("source", "export", "graph"):
        if sidecar.get(key) is not None and not isinstance(sidecar[key], dict):
            raise bad(key, "must be a mapping")
    for key in ("path", "sha256", "ref", "format", "reference"):
        if (sidecar.get("source") or {}).get(key) is not None and not isinstance(sidecar["source"][key], str):
            raise bad(f"source.{key}", "must be a string")
    for key in ("sha256", "source_checkpoint", "reference"):
        if sidecar.get(key) is not None and not isinstance(sidecar[key], str):
            raise bad(key, "must be a string")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and bool(np.isfinite(v))
