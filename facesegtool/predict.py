"""`facesegtool predict`: masks, overlays and beauty effects for photos, folders and videos.

    report = predict(["photo.jpg", "clips/"], model="exports/model_int8.tflite", out_dir="out",
                     effects=parse_effects("hair=#8040C0"), alpha=0.5, face_crop=True)

Per input it writes <stem>_mask.png (palette colours), <stem>_overlay.png (translucent palette
over the photo) and <stem>_effect.png (the beauty effects); for a video, the same three as
.mp4. The model is a TFLite export (pre/post-processing from its sidecar JSON, as on the
phone) or a PyTorch checkpoint (the shipped default when neither is given).

Without face_crop the whole image is resized to the model's square input (what the app does
with a gallery photo). With face_crop, faces are found with OpenCV's bundled Haar cascade,
each is cropped the way the training faces are framed, parsed, and its mask pasted back.
The class mask is brought back to the image with the same nearest-neighbour rule as the app
(effects.resize_mask_nearest), and effects/overlay run at the image's resolution.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from .atomic import write_bytes_atomic
from .effects import NO_EFFECTS, Effects, apply_effects, colour_mask, overlay, parse_effects, resize_mask_nearest
from .labels import CLASSES, PALETTE

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm"}

# Face framing, measured: on celebamask-mini (the training faces) the Haar box is 0.66 of the
# crop's side and its centre sits at 0.55 of the height (30 val faces, sd 0.045 / 0.009).
CROP_SCALE = 1.0 / 0.66
CROP_CENTRE_Y = 0.55


class PredictError(ValueError):
    """Bad input for predict (the message says which file and what to do)."""


# --- models ------------------------------------------------------------------------------------


class Segmenter:
    """A model: an RGB uint8 image at its input size -> class mask (__call__), or any size (segment)."""

    size: tuple[int, int]  # (height, width)
    classes: list[str]
    palette: np.ndarray
    description: str

    def __call__(self, rgb: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """Any-size RGB image -> class mask of the same size (resize in, nearest back)."""
        h, w = self.size
        interp = cv2.INTER_AREA if rgb.shape[0] > h or rgb.shape[1] > w else cv2.INTER_LINEAR
        small = cv2.resize(rgb, (w, h), interpolation=interp)
        return resize_mask_nearest(self(small), rgb.shape[0], rgb.shape[1])


class TorchSegmenter(Segmenter):
    def __init__(self, checkpoint: str | Path | None = None):
        import torch

        from .checkpoint import load_model

        self._torch = torch
        self.model, ckpt = load_model(checkpoint)
        contract = ckpt["input"]
        self.size = (int(contract["size"]), int(contract["size"]))
        self.classes = list(ckpt["classes"])
        self.palette = PALETTE if self.classes == list(CLASSES) else _fallback_palette(len(self.classes))
        self.mean = np.asarray(contract["mean"], np.float32)
        self.std = np.asarray(contract["std"], np.float32)
        self.scale = float(contract.get("scale", 255.0))
        self.bgr = contract.get("channel_order", "RGB").upper() == "BGR"
        self.description = f"checkpoint {checkpoint or 'default'} ({ckpt['model']['name']}, {self.size[0]} px)"

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        x = rgb[..., ::-1] if self.bgr else rgb
        x = (x.astype(np.float32) / self.scale - self.mean) / self.std
        with self._torch.no_grad():
            logits = self.model(self._torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None])
        return logits[0].argmax(0).numpy().astype(np.uint8)


class TFLiteSegmenter(Segmenter):
    """An exported .tflite, fed and read exactly as its sidecar says (the app does the same)."""

    def __init__(self, path: str | Path, num_threads: int | None = None):
        from .tflite_runner import TFLiteModel

        self.model = TFLiteModel(path, num_threads=num_threads)
        self.size = self.model.size
        self.classes = self.model.classes
        palette = self.model.sidecar.get("palette")
        self.palette = np.asarray(palette, np.uint8) if palette else _fallback_palette(len(self.classes))
        self.description = f"{Path(path).name} ({self.model.variant}, {self.size[0]}x{self.size[1]})"

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return self.model.predict(rgb)


def _fallback_palette(n: int) -> np.ndarray:
    return PALETTE[np.arange(n) % len(PALETTE)]


def load_segmenter(model: str | Path | None = None, checkpoint: str | Path | None = None) -> Segmenter:
    """A TFLite model (model=FILE.tflite) or a checkpoint (the shipped default when both are None)."""
    if model is not None and checkpoint is not None:
        raise PredictError("give either a .tflite model or a checkpoint, not both")
    if model is not None:
        if Path(model).suffix.lower() != ".tflite":
            raise PredictError(f"{model}: --model takes a .tflite file (use --checkpoint for a .pt)")
        return TFLiteSegmenter(model)
    return TorchSegmenter(checkpoint)


# --- faces -------------------------------------------------------------------------------------


class FaceDetector:
    """OpenCV's bundled Haar cascades (no download). Boxes come from the calibration builder's
    detect_faces (frontalface_default; boxes under half the largest dropped) and count only where
    frontalface_alt2 agrees (IoU >= 0.5): on the 35 faces-in-the-wild photos that keeps the 38
    real faces and drops the one false face left (a necklace)."""

    AGREE_IOU = 0.5

    def __init__(self, min_size: int = 32):
        from .export.calibration import face_detector

        try:
            self.cascade = face_detector()
        except RuntimeError as exc:
            raise PredictError(str(exc)) from exc
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_alt2.xml"
        self.check = cv2.CascadeClassifier(str(path))
        if self.check.empty():
            raise PredictError(f"cannot load OpenCV's face detector {path}")
        self.min_size = min_size

    def __call__(self, rgb: np.ndarray) -> list[tuple[int, int, int, int]]:
        """Face boxes (x, y, w, h) in image pixels, largest first."""
        from .export.calibration import detect_faces

        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
        boxes = detect_faces(bgr, self.cascade, self.min_size)
        if not boxes:
            return []
        checks = detect_faces(bgr, self.check, self.min_size)
        return [b for b in boxes if any(_iou(b, c) >= self.AGREE_IOU for c in checks)]


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / float(a[2] * a[3] + b[2] * b[3] - inter)


def face_crop_box(box: tuple[int, int, int, int]) -> tuple[int, int, int]:
    """Haar box -> square crop (x0, y0, side) framed like the training faces (may leave the image)."""
    x, y, w, h = box
    side = int(round(max(w, h) * CROP_SCALE))
    cx, cy = x + w / 2.0, y + h / 2.0
    return int(round(cx - side / 2.0)), int(round(cy - CROP_CENTRE_Y * side)), side


def _crop(rgb: np.ndarray, x0: int, y0: int, side: int) -> np.ndarray:
    """Square crop; the part outside the image is black."""
    out = np.zeros((side, side, 3), np.uint8)
    h, w = rgb.shape[:2]
    ya, yb, xa, xb = max(0, y0), min(h, y0 + side), max(0, x0), min(w, x0 + side)
    if ya < yb and xa < xb:
        out[ya - y0 : yb - y0, xa - x0 : xb - x0] = rgb[ya:yb, xa:xb]
    return out


@dataclass
class Parsed:
    mask: np.ndarray  # H x W class indices, image resolution
    faces: list[tuple[int, int, int, int]] = field(default_factory=list)  # detected boxes
    scale: float = 1.0  # image pixels per model pixel (for the smoothing radius)


def parse_image(rgb: np.ndarray, segmenter: Segmenter, detector: FaceDetector | None = None) -> Parsed:
    """Class mask for a whole image; with a detector, per face crop pasted back (whole image if no face)."""
    background = segmenter.classes.index("background") if "background" in segmenter.classes else 0
    faces = detector(rgb) if detector is not None else []
    if not faces:
        scale = max(rgb.shape[0] / segmenter.size[0], rgb.shape[1] / segmenter.size[1])
        return Parsed(segmenter.segment(rgb), [], scale)
    h, w = rgb.shape[:2]
    full = np.full((h, w), background, np.uint8)
    sides = []
    # Smallest first, so that the largest face wins where crops overlap.
    for box in reversed(faces):
        x0, y0, side = face_crop_box(box)
        sides.append(side)
        crop_mask = segmenter.segment(_crop(rgb, x0, y0, side))
        ya, yb, xa, xb = max(0, y0), min(h, y0 + side), max(0, x0), min(w, x0 + side)
        part = crop_mask[ya - y0 : yb - y0, xa - x0 : xb - x0]
        keep = part != background
        full[ya:yb, xa:xb][keep] = part[keep]
    return Parsed(full, faces, max(sides) / segmenter.size[0])


# --- outputs -----------------------------------------------------------------------------------


@dataclass
class Rendered:
    mask: np.ndarray
    overlay: np.ndarray
    effect: np.ndarray | None


def render(
    rgb: np.ndarray, parsed: Parsed, segmenter: Segmenter, effects: Effects, alpha: float
) -> Rendered:
    colours = colour_mask(parsed.mask, segmenter.palette)
    over = overlay(rgb, parsed.mask, alpha, segmenter.palette, segmenter.classes)
    effect = (
        apply_effects(rgb, parsed.mask, effects.scaled(parsed.scale), alpha, segmenter.classes) if effects.any else None
    )
    return Rendered(colours, over, effect)


def _write_image(path: Path, rgb: np.ndarray) -> None:
    ok, data = cv2.imencode(path.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise PredictError(f"cannot encode {path}")
    write_bytes_atomic(path, data.tobytes())


@dataclass
class Prediction:
    input: Path
    kind: str  # "image" | "video"
    outputs: dict[str, Path]  # "mask" / "overlay" / "effect" -> file
    faces: int  # faces found (image), or frames with a face (video)
    frames: int = 1
    class_pixels: dict[str, int] = field(default_factory=dict)  # image: pixels per class in the mask
    thumbnail: np.ndarray | None = None  # image: overlay | effect, RGB, SHEET_TILE px high, for the contact sheet


@dataclass
class PredictReport:
    model: str
    out_dir: Path
    predictions: list[Prediction]
    sheet: Path | None = None  # contact sheet of the image results


SHEET_TILE = 240  # contact sheet row height, px


def _thumbnail(rendered: Rendered) -> np.ndarray:
    """Overlay and effect side by side at SHEET_TILE px high (kept in memory: the sheet re-reads nothing)."""
    pair = [img for img in (rendered.overlay, rendered.effect) if img is not None]
    h, w = pair[0].shape[:2]
    size = (round(w * SHEET_TILE / h), SHEET_TILE)
    return np.hstack([cv2.resize(img, size, interpolation=cv2.INTER_AREA) for img in pair])


def contact_sheet(predictions: Sequence[Prediction], path: Path, columns: int = 2) -> Path | None:
    """One JPEG to look at: per image, its overlay and effect side by side, tiles in a grid."""
    rows = [cv2.cvtColor(p.thumbnail, cv2.COLOR_RGB2BGR) for p in predictions if p.thumbnail is not None]
    if not rows:
        return None
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1] + 4), (0, 0)), constant_values=255) for r in rows]
    rows += [np.full_like(rows[0], 255)] * (-len(rows) % columns)
    grid = np.vstack([np.hstack(rows[i:i + columns]) for i in range(0, len(rows), columns)])
    ok, data = cv2.imencode(".jpg", grid, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise PredictError(f"cannot encode {path}")
    return write_bytes_atomic(path, data.tobytes())


def collect_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders expand to their images and videos (sorted, not recursive)."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES)
            if not found:
                raise PredictError(f"{p}: no images or videos in this folder")
            files.extend(found)
        elif p.is_file():
            if p.suffix.lower() not in IMAGE_SUFFIXES | VIDEO_SUFFIXES:
                raise PredictError(f"{p}: not an image or video ({', '.join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))})")
            files.append(p)
        else:
            raise PredictError(f"{p}: no such file or folder")
    if not files:
        raise PredictError("no inputs given")
    return files


def _stems(files: Sequence[Path]) -> list[str]:
    """Output name per input: the stem, made unique when two inputs share one."""
    seen: dict[str, int] = {}
    out = []
    for f in files:
        n = seen.get(f.stem, 0)
        seen[f.stem] = n + 1
        out.append(f.stem if n == 0 else f"{f.stem}_{n + 1}")
    return out


def predict_image(
    path: Path, stem: str, out_dir: Path, segmenter: Segmenter, detector: FaceDetector | None, effects: Effects, alpha: float
) -> Prediction:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise PredictError(f"{path}: cannot read as an image")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    parsed = parse_image(rgb, segmenter, detector)
    rendered = render(rgb, parsed, segmenter, effects, alpha)
    outputs = {"mask": out_dir / f"{stem}_mask.png", "overlay": out_dir / f"{stem}_overlay.png"}
    _write_image(outputs["mask"], rendered.mask)
    _write_image(outputs["overlay"], rendered.overlay)
    if rendered.effect is not None:
        outputs["effect"] = out_dir / f"{stem}_effect.png"
        _write_image(outputs["effect"], rendered.effect)
    counts = np.bincount(parsed.mask.ravel(), minlength=len(segmenter.classes))
    pixels = {name: int(counts[i]) for i, name in enumerate(segmenter.classes)}
    return Prediction(path, "image", outputs, len(parsed.faces), 1, pixels, _thumbnail(rendered))


def predict_video(
    path: Path,
    stem: str,
    out_dir: Path,
    segmenter: Segmenter,
    detector: FaceDetector | None,
    effects: Effects,
    alpha: float,
    progress: bool = True,
) -> Prediction:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise PredictError(f"{path}: cannot open as a video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    names = ["mask", "overlay"] + (["effect"] if effects.any else [])
    outputs = {n: out_dir / f"{stem}_{n}.mp4" for n in names}
    # Written under a temporary name (same .mp4 suffix: it picks the container), renamed when complete.
    tmps = {n: out_dir / f".{stem}_{n}.partial.mp4" for n in names}
    writers: dict[str, cv2.VideoWriter] = {}
    frames = with_face = 0
    try:
        with tqdm(total=total, desc=path.name, unit="frame", disable=not progress, leave=False) as bar:
            while True:
                ok, bgr = cap.read()
                if not ok:
                    break
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                parsed = parse_image(rgb, segmenter, detector)
                rendered = render(rgb, parsed, segmenter, effects, alpha)
                if not writers:
                    size = (rgb.shape[1], rgb.shape[0])
                    for n in names:
                        writers[n] = cv2.VideoWriter(str(tmps[n]), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
                        if not writers[n].isOpened():
                            raise PredictError(f"cannot write video {outputs[n]} (OpenCV has no mp4v encoder?)")
                for n in names:
                    writers[n].write(cv2.cvtColor(getattr(rendered, n), cv2.COLOR_RGB2BGR))
                frames += 1
                with_face += bool(parsed.faces)
                bar.update(1)
    finally:
        cap.release()
        for w in writers.values():
            w.release()
    if frames == 0:
        for t in tmps.values():
            t.unlink(missing_ok=True)
        raise PredictError(f"{path}: no frames could be read")
    for n in names:
        os.replace(tmps[n], outputs[n])
    return Prediction(path, "video", outputs, with_face, frames)


def predict(
    inputs: Sequence[str | Path],
    model: str | Path | None = None,
    checkpoint: str | Path | None = None,
    out_dir: str | Path = "predictions",
    effects: Effects | str = NO_EFFECTS,
    alpha: float = 0.5,
    face_crop: bool = False,
    progress: bool = True,
    segmenter: Segmenter | None = None,
) -> PredictReport:
    """Parse every image/video in inputs (folders expand) and write mask, overlay and effect outputs.

    effects: an Effects, or a spec string like "hair=#8040C0,smooth=3" (see effects.parse_effects).
    """
    if isinstance(effects, str):
        effects = parse_effects(effects)
    if not 0.0 <= alpha <= 1.0:
        raise PredictError(f"alpha {alpha} out of range [0, 1]")
    files = collect_inputs(inputs)
    segmenter = segmenter or load_segmenter(model, checkpoint)
    detector = FaceDetector() if face_crop else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for f, stem in tqdm(list(zip(files, _stems(files))), desc="predict", unit="file", disable=not progress or len(files) < 2):
        if f.suffix.lower() in VIDEO_SUFFIXES:
            results.append(predict_video(f, stem, out, segmenter, detector, effects, alpha, progress))
        else:
            results.append(predict_image(f, stem, out, segmenter, detector, effects, alpha))
    return PredictReport(segmenter.description, out, results, contact_sheet(results, out / "sheet.jpg"))
