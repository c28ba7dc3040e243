"""Segmenter backends: an RGB image at the model's input size -> class scores.

    segmenter = load_segmenter(model="exports/model_int8.tflite")   # or checkpoint=..., or neither
    scores = segmenter.scores(segmenter.fit(rgb))                   # h x w x C float32

Scores are channels-last (h x w x C, as TFLite gives them and the phone keeps them) and may be
coarser than the input (a model with a 1/4 or 1/8 output): imaging.upsample_scores brings them to
any size before the argmax. C is the model's own class count; `lut` (model class -> one of our
11 classes, labels.CLASSES) maps the argmax onto ours, so a model with 19 labels works with the
effects and overlays, which are written against our 11 classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..imaging import resize_image, upsample_scores
from ..labels import CLASSES, PALETTE
from .errors import PredictError


def finite_scores(scores: np.ndarray, description: str) -> np.ndarray:
    """`scores`, unless they hold NaN or Inf: those have no argmax (masks, effects and alphas would index garbage)."""
    if not np.isfinite(scores).all():
        raise PredictError(f"{description}: the model's scores are NaN or Inf on this image, so there is no mask; "
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

    def scores(self, rgb: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

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
            raise PredictError(f"class lookup table must give one of our {len(CLASSES)} classes (0..{len(CLASSES) - 1}) "
                               f"for each of the model's {len(self.model_classes)} classes, got {list(table)}")
        self.lut = table.astype(np.uint8)
        self.palette = PALETTE

    def to_mask(self, scores: np.ndarray) -> np.ndarray:
        """h x w x C scores -> h x w uint8 mask in self.classes (first maximum wins, as in Java)."""
        idx = scores.argmax(-1)
        return self.lut[idx] if self.lut is not None else idx.astype(np.uint8)

    def soft_alphas(self, scores: np.ndarray, kind: str | None = None) -> dict[str, np.ndarray]:
        """h x w x C scores (at the output's pixels) -> the effect classes' soft alphas 0..256, by name
        (effects.soft_alphas); kind: of these scores when not the model's own (refined: probabilities)."""
        from .effects import soft_alphas

        return soft_alphas(scores, kind or self.output_kind, self.lut, self.classes)

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
                     weights: str | Path | None = None):
    """The one place the torch backend loads a model: any model model_source reads (a checkpoint, .pt2,
    TorchScript, code.py:function + weights, ONNX run by ONNX Runtime), with its contract."""
    from ..model_source import load_source

    return load_source(checkpoint, spec=spec, weights=weights)


class TorchSegmenter(Segmenter):
    def __init__(self, checkpoint: str | Path | None = None, spec: str | Path | dict | None = None,
                 weights: str | Path | None = None):
        import torch

        self._torch = torch
        source = load_torch_model(checkpoint, spec, weights)
        self.model, contract = source.net, source.contract
        self.size = (int(contract["size"]), int(contract["size"]))
        self.model_classes = source.classes
        self.palette = np.asarray(source.spec.palette(), np.uint8)
        self.default_lut = None if source.spec.is_ours else source.spec.display_lut()
        self.output_kind = source.spec.output_kind
        self.mean = np.asarray(contract["mean"], np.float32)
        self.std = np.asarray(contract["std"], np.float32)
        self.scale = float(contract.get("scale", 255.0))
        self.bgr = contract.get("channel_order", "RGB").upper() == "BGR"
        self.description = f"{source.format} {checkpoint or 'default'} ({source.name}, {self.size[0]} px)"

    def scores(self, rgb: np.ndarray) -> np.ndarray:
        x = rgb[..., ::-1] if self.bgr else rgb
        x = (x.astype(np.float32) / self.scale - self.mean) / self.std
        with self._torch.no_grad():
            out = self.model(self._torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None])
        return finite_scores(np.ascontiguousarray(out[0].numpy().transpose(1, 2, 0), np.float32), self.description)


class TFLiteSegmenter(Segmenter):
    """An exported .tflite, fed and read exactly as its sidecar says (the app does the same)."""

    def __init__(self, path: str | Path, num_threads: int | None = None):
        from ..tflite_runner import TFLiteModel

        self.model = TFLiteModel(path, num_threads=num_threads)
        self.size = self.model.size
        self.model_classes = self.model.classes
        palette = self.model.sidecar.get("palette")
        self.palette = np.asarray(palette, np.uint8) if palette else _fallback_palette(len(self.model_classes))
        self.description = f"{Path(path).name} ({self.model.variant}, {self.size[0]}x{self.size[1]})"
        self.output_kind = (self.model.sidecar.get("output") or {}).get("kind", "logits")
        recorded = self.model.sidecar.get("spec")  # an own model's labels map onto ours as the export recorded
        self.default_lut = None
        if isinstance(recorded, dict):
            from ..model_spec import spec_from_dict

            contract = spec_from_dict(recorded)
            self.default_lut = None if contract.is_ours else contract.display_lut()

    def scores(self, rgb: np.ndarray) -> np.ndarray:
        return finite_scores(np.asarray(self.model.logits(rgb), np.float32), self.description)


class MediaPipeSegmenter(TFLiteSegmenter):
    """An exported .tflite run by MediaPipe's stock ImageSegmenter from its path (the file's standard
    metadata says how to feed it); the sidecar only names colours and the mapping onto our classes.
    Scores are MediaPipe's confidence masks: probabilities, at the input's pixels."""

    output_kind = "probabilities"

    def __init__(self, path: str | Path):
        from ..mediapipe_runtime import MediaPipeError, MediaPipeSegmenter as Task

        super().__init__(path)
        self.output_kind = "probabilities"
        try:
            self.task = Task(path)
        except MediaPipeError as exc:
            raise PredictError(str(exc)) from None
        if self.task.labels and self.task.labels != self.model_classes:
            raise PredictError(f"{Path(path).name}: MediaPipe reads labels {self.task.labels[:4]}... from the file's "
                               f"metadata, the sidecar names {self.model_classes[:4]}...: re-export the pair")
        self.description = f"{Path(path).name} in MediaPipe's ImageSegmenter ({self.model.variant})"

    def scores(self, rgb: np.ndarray) -> np.ndarray:
        from ..mediapipe_runtime import MediaPipeError

        try:
            probs = self.task.confidence_masks(rgb)
        except MediaPipeError as exc:
            raise PredictError(str(exc)) from None
        return finite_scores(probs.astype(np.float32), self.description)


RUNTIMES = ("litert", "mediapipe")


def load_segmenter(model: str | Path | None = None, checkpoint: str | Path | None = None,
                   lut: Sequence[int] | None = None, spec: str | Path | dict | None = None,
                   weights: str | Path | None = None, runtime: str = "litert") -> Segmenter:
    """A TFLite model (FILE.tflite, read through its sidecar) or any model model_source reads (the shipped
    default when both are None); lut: model class -> our class table [default: the model's mapping].
    runtime: what runs a .tflite: "litert" (the interpreter, fed as the sidecar says) or "mediapipe"
    (MediaPipe's stock ImageSegmenter, fed as the file's standard metadata says)."""
    if model is not None and checkpoint is not None:
        raise PredictError("give either --model or --checkpoint (the same option), not both")
    if runtime not in RUNTIMES:
        raise PredictError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    model = model if model is not None else checkpoint
    is_tflite = model is not None and str(model).lower().endswith(".tflite")
    if runtime == "mediapipe":
        from ..mediapipe_runtime import EXTRA, available

        if not is_tflite:
            raise PredictError("--runtime mediapipe runs an exported FILE.tflite: give it with --model")
        if not available():
            raise PredictError(f"--runtime mediapipe needs MediaPipe: {EXTRA}")
        segmenter: Segmenter = MediaPipeSegmenter(model)
    elif is_tflite:
        segmenter = TFLiteSegmenter(model)
    else:
        segmenter = TorchSegmenter(model, spec, weights)
    segmenter.set_lut(lut if lut is not None else segmenter.default_lut)
    return segmenter


def background_index(segmenter: Segmenter) -> int:
    return segmenter.classes.index("background") if "background" in segmenter.classes else 0
