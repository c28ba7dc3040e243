"""MediaPipe Tasks' ImageSegmenter as a runtime: the stock task, given nothing but the model's path.

This is what most apps run (Android, iOS, web and Python share the C++ task): it reads the model's
standard TFLite Metadata (tflite_metadata.py) for the input's normalisation, the labels and the
output's activation, and refuses a model without them. verify runs every export through it and
predict can parse through it (`--runtime mediapipe`), so "MediaPipe takes our file and gives our
mask" is measured, not assumed.

Optional: `pip install -e '.[mediapipe]'` (mediapipe 1.2.2). Without it, available() is False and
unavailable_note() is the line to print instead; nothing here is imported before it is asked for.

    with MediaPipeSegmenter("exports/default/unet-mobilenetv2_256_int8.tflite") as seg:
        mask = seg.category_mask(rgb)        # H x W uint8, one label index per pixel
        probs = seg.confidence_masks(rgb)    # H x W x C float32 (the model's activation applied)
"""

from __future__ import annotations

import importlib.util
import weakref
from pathlib import Path

import numpy as np

from .errors import FacesegError

EXTRA = "pip install -e '.[mediapipe]'"


class MediaPipeError(FacesegError, RuntimeError):
    """MediaPipe refused the model or the image (its own message is kept)."""


def available() -> bool:
    """Whether the mediapipe package is installed (found without importing it: it loads a 120 MB library)."""
    return importlib.util.find_spec("mediapipe") is not None


def unavailable_note() -> str:
    return f"MediaPipe is not installed, so exports were not run through its ImageSegmenter ({EXTRA} to add it)"


def version() -> str:
    from importlib.metadata import version as package_version

    return package_version("mediapipe")


class MediaPipeSegmenter:
    """One .tflite in MediaPipe's stock ImageSegmenter (IMAGE mode, CPU), created from its path alone."""

    def __init__(self, path: str | Path):
        if not available():
            raise MediaPipeError(unavailable_note())
        from mediapipe.tasks.python.core import base_options
        from mediapipe.tasks.python.vision import image_segmenter

        self.path = Path(path)
        options = image_segmenter.ImageSegmenterOptions(
            base_options=base_options.BaseOptions(model_asset_path=str(self.path)),
            output_category_mask=True,
            output_confidence_masks=True,
        )
        try:
            self._task = image_segmenter.ImageSegmenter.create_from_options(options)
        except Exception as exc:  # noqa: BLE001 - its C API maps statuses to many types (a refused model is FileNotFoundError)
            raise MediaPipeError(f"{self.path.name}: MediaPipe's ImageSegmenter refuses it: {exc}") from None
        self.labels = list(self._task.labels or [])
        # Closed at exit at the latest: MediaPipe's own __del__ fails once the interpreter tears its modules down.
        self._finalizer = weakref.finalize(self, self._task.close)

    def _segment(self, rgb: np.ndarray):
        import mediapipe as mp

        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise MediaPipeError(f"expected an H x W x 3 uint8 RGB image, got {rgb.shape} {rgb.dtype}")
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))
        try:
            return self._task.segment(image)
        except Exception as exc:  # noqa: BLE001 - as above
            raise MediaPipeError(f"{self.path.name}: MediaPipe failed on an image: {exc}") from None

    def category_mask(self, rgb: np.ndarray) -> np.ndarray:
        """H x W uint8 label indices at the image's size (MediaPipe resizes in and out itself)."""
        return np.array(self._segment(rgb).category_mask.numpy_view()).reshape(rgb.shape[:2])

    def confidence_masks(self, rgb: np.ndarray) -> np.ndarray:
        """H x W x C float32 per-label scores, after the activation the metadata names (SOFTMAX: probabilities)."""
        result = self._segment(rgb)
        return np.stack([np.array(m.numpy_view()).reshape(rgb.shape[:2]) for m in result.confidence_masks], -1)

    def close(self) -> None:
        if getattr(self, "_finalizer", None) is not None:
            self._finalizer()  # closes the task once

    def __enter__(self) -> "MediaPipeSegmenter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

