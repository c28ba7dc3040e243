"""The Segmenter: one interface over PyTorch, ONNX Runtime, TFLite and MediaPipe. An RGB image at the model's
input size -> class scores; predict, verify and bench run models through it.

    segmenter = load_segmenter(model="exports/model_int8.tflite")   # or checkpoint=..., or neither
    scores = segmenter.scores(segmenter.fit(rgb))                   # h x w x C float32

Scores are channels-last (h x w x C, as TFLite gives them and the phone keeps them) and may be
coarser than the input (a model with a 1/4 or 1/8 output): imaging.upsample_scores brings them to
any size before the argmax. C is the model's own class count; `lut` (model class -> one of our
11 classes, labels.CLASSES) maps the argmax onto ours, so a model with 19 labels works with the
effects and overlays, which are written against our 11 classes.

A PyTorch model is fed as it was trained (contract.Normalization.tensor, the training data's
normaliser); a .tflite as its contract says (contract.Contract.normalize, what the app does).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .contract import Normalization
from .errors import FacesegError
from .imaging import resize_image, upsample_scores
from .labels import CLASSES, PALETTE

if TYPE_CHECKING:
    import torch

    from .model_source import LoadedModel
    from .tflite_runner import TFLiteModel


class SegmenterError(FacesegError, ValueError):
    """A model or image that cannot be segmented (the message says which file and what to do); predict's
    PredictError is this class, so predict skips the one file and goes on."""


def finite_scores(scores: np.ndarray, description: str) -> np.ndarray:
    """`scores`, unless they hold NaN or Inf: those have no argmax (masks, effects and alphas would index garbage)."""
    if not np.isfinite(scores).all():
        raise SegmenterError(f"{description}: the model's scores are NaN or Inf on this image, so there is no mask; "
                           "check the model with `facesegtool verify`")
    return scores


def _fallback_palette(n: int) -> np.ndarray:
    return PALETTE[np.arange(n) % len(PALETTE)]


class Segmenter:
    """A model: scores(rgb at its input size) -> h x w x C float32; classes name the mask's values
    (ours when a lut maps the model's classes; the model's own otherwise)."""

    size: tuple[int, int]  # (height, width) of the input
    model_classes: list[str]  # the model's own labels, one per score channel
    lut: np.ndarray | None = None  # model class index -> mask value (None: the identity)
    default_lut: np.ndarray | None = None  # the model's own mapping onto our classes (None: it has ours)
    palette: np.ndarray
    description: str
    output_kind: str = "logits"  # what scores() gives: logits or probabilities (the model's contract says)

    def raw_scores(self, rgb: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        """h x w x C float32 scores at the model's output grid, as the model gives them (NaN or Inf included)."""
        raise NotImplementedError

    def scores(self, rgb: np.ndarray) -> np.ndarray:
        """raw_scores, refused when they hold NaN or Inf (no mask can come of them)."""
        return finite_scores(self.raw_scores(rgb), self.description)

    def input_scores(self, rgb: np.ndarray) -> np.ndarray:
        """raw_scores brought to the input's pixels (imaging.upsample_scores): how verify compares two runtimes."""
        return upsample_scores(self.raw_scores(rgb), rgb.shape[:2])

    @property
    def classes(self) -> list[str]:
        return list(CLASSES) if self.lut is not None else self.model_classes

    def set_lut(self, lut: Sequence[int] | None) -> None:
        """Map the model's classes onto ours (lut[i]: our class index for model class i)."""
        if lut is None:
            self.lut = None
            return
        table = np.asarray(lut, np.int64)
        if table.shape != (len(self.model_classes),) or table.min() < 0 or table.max() >= len(CLASSES):
            raise SegmenterError(f"class lookup table must give one of our {len(CLASSES)} classes (0..{len(CLASSES) - 1}) "
                               f"for each of the model's {len(self.model_classes)} classes, got {list(table)}")
        self.lut = table.astype(np.uint8)
        self.palette = PALETTE

    def to_mask(self, scores: np.ndarray) -> np.ndarray:
        """h x w x C scores -> h x w uint8 mask in self.classes (first maximum wins, as in Java)."""
        idx = scores.argmax(-1)
        return self.lut[idx] if self.lut is not None else idx.astype(np.uint8)

    def fit(self, rgb: np.ndarray) -> np.ndarray:
        """Any-size RGB image resized to the model's input (imaging's rule: INTER_AREA when shrinking)."""
        return resize_image(rgb, self.size)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        """The mask at the score grid's resolution (no upsampling)."""
        return self.to_mask(self.scores(rgb))

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """Any-size RGB image -> class mask of the same size (resized in, scores upsampled bilinearly back)."""
        return self.to_mask(upsample_scores(self.scores(self.fit(rgb)), rgb.shape[:2]))


def load_torch_model(checkpoint: str | Path | None, spec: str | Path | dict | None = None,
                     weights: str | Path | None = None) -> "LoadedModel":
    """The one place the torch backend loads a model: any model model_source reads (a checkpoint, .pt2,
    TorchScript, code.py:function + weights, ONNX run by ONNX Runtime), with its contract."""
    from .model_source import load_source

    return load_source(checkpoint, spec=spec, weights=weights)


def torch_scores(net: "torch.nn.Module", rgb: np.ndarray, contract: dict) -> np.ndarray:
    """h x w x C float32 scores of a PyTorch (or ONNX Runtime) model for one RGB uint8 image at its input size,
    fed per the input contract `contract` exactly as training fed it."""
    import torch

    with torch.inference_mode():
        out = net(Normalization.of(contract).tensor(rgb)[None])[0].permute(1, 2, 0).numpy()
    return np.ascontiguousarray(out, np.float32)


class TorchSegmenter(Segmenter):
    """A model model_source reads; give its file (checkpoint, with spec and weights as model_source takes them) or
    a source already loaded."""

    def __init__(self, checkpoint: str | Path | None = None, spec: str | Path | dict | None = None,
                 weights: str | Path | None = None, source: "LoadedModel | None" = None):
        source = source if source is not None else load_torch_model(checkpoint, spec, weights)
        self.source = source
        self.model, self.contract = source.net, source.contract
        self.size = (int(self.contract["size"]), int(self.contract["size"]))
        self.model_classes = source.classes
        self.palette = np.asarray(source.spec.palette(), np.uint8)
        self.default_lut = None if source.spec.is_ours else source.spec.display_lut()
        self.output_kind = source.spec.output_kind
        self.description = f"{source.format} {checkpoint or 'default'} ({source.name}, {self.size[0]} px)"

    def raw_scores(self, rgb: np.ndarray) -> np.ndarray:
        return torch_scores(self.model, rgb, self.contract)


class TFLiteSegmenter(Segmenter):
    """An exported .tflite (its path, or a TFLiteModel already loaded), fed and read exactly as its contract says
    (the app does the same)."""

    def __init__(self, path: "str | Path | TFLiteModel", num_threads: int | None = None):
        from .tflite_runner import TFLiteModel

        self.model = path if isinstance(path, TFLiteModel) else TFLiteModel(path, num_threads=num_threads)
        contract = self.model.contract
        self.size = contract.size
        self.model_classes = list(contract.classes)
        self.palette = (np.asarray(contract.palette, np.uint8) if contract.palette
                        else _fallback_palette(len(self.model_classes)))
        self.description = f"{self.model.path.name} ({contract.variant}, {self.size[0]}x{self.size[1]})"
        self.output_kind = contract.output_kind
        recorded = contract.spec  # an own model's labels map onto ours as the export recorded
        self.default_lut = None if recorded is None or recorded.is_ours else recorded.display_lut()

    def raw_scores(self, rgb: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.logits(rgb), np.float32)


class MediaPipeSegmenter(TFLiteSegmenter):
    """An exported .tflite run by MediaPipe's stock ImageSegmenter from its path (the file's standard
    metadata says how to feed it); the sidecar only names colours and the mapping onto our classes.
    Scores are MediaPipe's confidence masks: probabilities, at the input's pixels."""

    output_kind = "probabilities"

    def __init__(self, path: str | Path):
        from .mediapipe_runtime import MediaPipeError, MediaPipeSegmenter as Task

        super().__init__(path)
        self.output_kind = "probabilities"
        try:
            self.task = Task(path)
        except MediaPipeError as exc:
            raise SegmenterError(str(exc)) from None
        if self.task.labels and self.task.labels != self.model_classes:
            raise SegmenterError(f"{Path(path).name}: MediaPipe reads labels {self.task.labels[:4]}... from the file's "
                               f"metadata, the sidecar names {self.model_classes[:4]}...: re-export the pair")
        self.description = f"{Path(path).name} in MediaPipe's ImageSegmenter ({self.model.variant})"

    def raw_scores(self, rgb: np.ndarray) -> np.ndarray:
        from .mediapipe_runtime import MediaPipeError

        try:
            probs = self.task.confidence_masks(rgb)
        except MediaPipeError as exc:
            raise SegmenterError(str(exc)) from None
        return probs.astype(np.float32)


RUNTIMES = ("litert", "mediapipe")


def load_segmenter(model: str | Path | None = None, checkpoint: str | Path | None = None,
                   lut: Sequence[int] | None = None, spec: str | Path | dict | None = None,
                   weights: str | Path | None = None, runtime: str = "litert") -> Segmenter:
    """A TFLite model (FILE.tflite, read through its sidecar) or any model model_source reads (the shipped
    default when both are None); lut: model class -> our class table [default: the model's mapping].
    runtime: what runs a .tflite: "litert" (the interpreter, fed as the sidecar says) or "mediapipe"
    (MediaPipe's stock ImageSegmenter, fed as the file's standard metadata says)."""
    if model is not None and checkpoint is not None:
        raise SegmenterError("give either --model or --checkpoint (the same option), not both")
    if runtime not in RUNTIMES:
        raise SegmenterError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    model = model if model is not None else checkpoint
    is_tflite = model is not None and str(model).lower().endswith(".tflite")
    if runtime == "mediapipe":
        from .mediapipe_runtime import EXTRA, available

        if not is_tflite:
            raise SegmenterError("--runtime mediapipe runs an exported FILE.tflite: give it with --model")
        if not available():
            raise SegmenterError(f"--runtime mediapipe needs MediaPipe: {EXTRA}")
        segmenter: Segmenter = MediaPipeSegmenter(model)
    elif is_tflite:
        segmenter = TFLiteSegmenter(model)
    else:
        segmenter = TorchSegmenter(model, spec, weights)
    segmenter.set_lut(lut if lut is not None else segmenter.default_lut)
    return segmenter


def background_index(segmenter: Segmenter) -> int:
    return segmenter.classes.index("background") if "background" in segmenter.classes else 0
