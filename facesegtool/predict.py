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
from typing import Iterable, Iterator, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from .atomic import check_writable_dir, write_bytes_atomic
from .data.source import BadSampleError, read_rgb
from .effects import NO_EFFECTS, Effects, apply_effects, colour_mask, overlay, parse_effects, resize_mask_nearest
from .head import HeadGrid, detail_weights, head_grid, merge_head
from .labels import CLASSES, PALETTE
from .measures import mean_iou, seam_pixels

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

    def logits(self, rgb: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        """RGB uint8 at the model's input size -> H x W x C float32 class scores (logits)."""
        raise NotImplementedError

    def fit(self, rgb: np.ndarray) -> np.ndarray:
        """Any-size RGB image resized to the model's input (INTER_AREA when shrinking)."""
        h, w = self.size
        interp = cv2.INTER_AREA if rgb.shape[0] > h or rgb.shape[1] > w else cv2.INTER_LINEAR
        return cv2.resize(rgb, (w, h), interpolation=interp)

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        """Any-size RGB image -> class mask of the same size (resize in, nearest back)."""
        return resize_mask_nearest(self(self.fit(rgb)), rgb.shape[0], rgb.shape[1])


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

    def logits(self, rgb: np.ndarray) -> np.ndarray:
        x = rgb[..., ::-1] if self.bgr else rgb
        x = (x.astype(np.float32) / self.scale - self.mean) / self.std
        with self._torch.no_grad():
            logits = self.model(self._torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None])
        return np.ascontiguousarray(logits[0].numpy().transpose(1, 2, 0), np.float32)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        return self.logits(rgb).argmax(-1).astype(np.uint8)


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

    def logits(self, rgb: np.ndarray) -> np.ndarray:
        return self.model.logits(rgb)

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
    regions: list[tuple[int, int, int]] = field(default_factory=list)  # squares parsed (x0, y0, side): seams lie there


def background_index(segmenter: Segmenter) -> int:
    return segmenter.classes.index("background") if "background" in segmenter.classes else 0


def head_logits(rgb: np.ndarray, grid: HeadGrid, segmenter: Segmenter) -> np.ndarray:
    """2S x 2S x C merged logits over grid.wide: the face crop for detail, the wide box around it."""
    if segmenter.size[0] != segmenter.size[1]:
        raise PredictError(f"whole-head parsing needs a square model input, {segmenter.description} is not")
    detail = segmenter.logits(segmenter.fit(_crop(rgb, *grid.crop)))
    wide = segmenter.logits(segmenter.fit(_crop(rgb, *grid.wide)))
    return merge_head(detail, wide)


def paste_head(
    full: np.ndarray, priority: np.ndarray, mask: np.ndarray, weight: np.ndarray, box: tuple[int, int, int], background: int
) -> None:
    """Paste a G x G merge-grid mask over box (x0, y0, side) of the image, nearest (pixel centres).

    Where faces' boxes overlap, a pixel goes to the face whose crop weighs more there (its detail
    beats a neighbour's wide pass); on a tie (both wide passes) a non-background class wins.
    """
    h, w = full.shape
    x0, y0, side = box
    ya, yb, xa, xb = max(0, y0), min(h, y0 + side), max(0, x0), min(w, x0 + side)
    if ya >= yb or xa >= xb:
        return
    g = mask.shape[0]
    rows = ((2 * (np.arange(ya, yb) - y0) + 1) * g) // (2 * side)
    cols = ((2 * (np.arange(xa, xb) - x0) + 1) * g) // (2 * side)
    part, wpart = mask[rows[:, None], cols[None, :]], weight[rows[:, None], cols[None, :]]
    old = priority[ya:yb, xa:xb]
    take = (wpart > old) | ((wpart == old) & (part != background))
    full[ya:yb, xa:xb][take] = part[take]
    old[take] = wpart[take]


def parse_image(
    rgb: np.ndarray, segmenter: Segmenter, detector: FaceDetector | None = None, whole_head: bool = True
) -> Parsed:
    """Class mask for a whole image; with a detector, per face (whole image if no face).

    whole_head: each face's crop merged with the wide pass around it (head.py), so hair past the
    crop is parsed and no crop edge shows; off: the crop alone, pasted back (outside: background).
    """
    background = background_index(segmenter)
    faces = detector(rgb) if detector is not None else []
    if not faces:
        scale = max(rgb.shape[0] / segmenter.size[0], rgb.shape[1] / segmenter.size[1])
        return Parsed(segmenter.segment(rgb), [], scale)
    h, w = rgb.shape[:2]
    full = np.full((h, w), background, np.uint8)
    priority = np.full((h, w), -1.0, np.float32)
    sides, regions = [], []
    # Smallest first, so that the largest face wins where crops overlap.
    for box in reversed(faces):
        crop = face_crop_box(box)
        sides.append(crop[2])
        regions.append(crop)
        if whole_head:
            grid = head_grid(crop)
            regions.append(grid.wide)
            mask = head_logits(rgb, grid, segmenter).argmax(-1).astype(np.uint8)
            paste_head(full, priority, mask, detail_weights(segmenter.size[0]), grid.wide, background)
        else:
            crop_mask = segmenter(segmenter.fit(_crop(rgb, *crop)))
            paste_head(full, priority, crop_mask, np.zeros(crop_mask.shape, np.float32), crop, background)
    return Parsed(full, faces, max(sides) / segmenter.size[0], regions)


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
    measures: dict = field(default_factory=dict)  # seam (image, face crops) or frame-to-frame IoU (video); see measures.py


@dataclass
class PredictReport:
    model: str
    out_dir: Path
    predictions: list[Prediction]
    sheet: Path | None = None  # contact sheet of the image results
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (input, why): unreadable inputs, the rest still ran
    measures: Path | None = None  # measures.json: the seam / flicker figures per input


SHEET_TILE = 240  # contact sheet row height, px


def _thumbnail(rendered: Rendered, label: str | None = None) -> np.ndarray:
    """Overlay and effect side by side at SHEET_TILE px high (kept in memory: the sheet re-reads nothing),
    with an optional label (the seam figure) in the top-left corner."""
    pair = [img for img in (rendered.overlay, rendered.effect) if img is not None]
    h, w = pair[0].shape[:2]
    size = (round(w * SHEET_TILE / h), SHEET_TILE)
    tile = np.hstack([cv2.resize(img, size, interpolation=cv2.INTER_AREA) for img in pair])
    return label_tile(tile, label) if label else tile


def label_tile(tile: np.ndarray, label: str) -> np.ndarray:
    """Black text on a white box in the top-left corner of an RGB picture (in place; returned)."""
    (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
    tile[: th + 10, : tw + 8] = 255
    cv2.putText(tile, label, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return tile


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


def seam_measures(parsed: Parsed, segmenter: Segmenter) -> dict:
    """The crop-seam figure of one parsed image (measures.seam_pixels); empty without face crops."""
    if not parsed.regions or "hair" not in segmenter.classes:
        return {}
    on_edge, boundary = seam_pixels(parsed.mask, segmenter.classes.index("hair"), parsed.regions)
    return {"seam_share": on_edge / boundary if boundary else 0.0, "seam_px": on_edge, "hair_boundary_px": boundary}


def predict_image(
    path: Path,
    stem: str,
    out_dir: Path,
    segmenter: Segmenter,
    detector: FaceDetector | None,
    effects: Effects,
    alpha: float,
    whole_head: bool = True,
) -> Prediction:
    try:  # Pillow decodes fully (a truncated JPEG fails instead of parsing its grey rest) and turns EXIF-rotated photos upright
        rgb = read_rgb(path)
    except BadSampleError as exc:
        raise PredictError(str(exc)) from None
    parsed = parse_image(rgb, segmenter, detector, whole_head)
    rendered = render(rgb, parsed, segmenter, effects, alpha)
    measures = seam_measures(parsed, segmenter)
    outputs = {"mask": out_dir / f"{stem}_mask.png", "overlay": out_dir / f"{stem}_overlay.png"}
    _write_image(outputs["mask"], rendered.mask)
    _write_image(outputs["overlay"], rendered.overlay)
    if rendered.effect is not None:
        outputs["effect"] = out_dir / f"{stem}_effect.png"
        _write_image(outputs["effect"], rendered.effect)
    counts = np.bincount(parsed.mask.ravel(), minlength=len(segmenter.classes))
    pixels = {name: int(counts[i]) for i, name in enumerate(segmenter.classes)}
    label = f"seam {100 * measures['seam_share']:.1f}%" if "seam_share" in measures else None
    return Prediction(path, "image", outputs, len(parsed.faces), 1, pixels, _thumbnail(rendered, label), measures)


def predict_video(
    path: Path,
    stem: str,
    out_dir: Path,
    segmenter: Segmenter,
    detector: FaceDetector | None,
    effects: Effects,
    alpha: float,
    progress: bool = True,
    whole_head: bool = True,
    temporal: float = 0.6,
) -> Prediction:
    """temporal: smoothing strength (video.ScoreSmoother; with a detector the face crop is also
    tracked); 0 parses every frame on its own."""
    from .video import parse_frames

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
    foreground = [i for i in range(len(segmenter.classes)) if i != background_index(segmenter)]
    ious: dict[str, list[float]] = {"shown": [], "raw": []}
    last: dict[str, np.ndarray] = {}

    def read() -> Iterator[np.ndarray]:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    try:
        with tqdm(total=total, desc=path.name, unit="frame", disable=not progress, leave=False) as bar:
            for frame in parse_frames(read(), segmenter, detector, temporal > 0, temporal, whole_head):
                rgb, parsed = frame.image, frame.parsed
                for key, mask in (("shown", parsed.mask), ("raw", frame.raw)):
                    if key in last:
                        ious[key].append(mean_iou(last[key], mask, np.ones(mask.shape, bool), foreground))
                    last[key] = mask
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
    except BaseException:  # no half-written video stays behind
        for w in writers.values():
            w.release()
        for t in tmps.values():
            t.unlink(missing_ok=True)
        raise
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
    # Frame-to-frame agreement of the masks (motion included: 1.0 only for a still scene), as shown and
    # from each frame's own scores: their gap is what the smoothing steadied.
    measures = {f"frame_iou_{k}": float(np.mean(v)) for k, v in ious.items() if v}
    return Prediction(path, "video", outputs, with_face, frames, measures=measures)


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
    whole_head: bool = True,
    temporal: float = 0.6,
) -> PredictReport:
    """Parse every image/video in inputs (folders expand) and write mask, overlay and effect outputs.

    effects: an Effects, or a spec string like "hair=#8040C0,smooth=3" (see effects.parse_effects).
    An input that cannot be read (unreadable or truncated image, unopenable video) is listed in
    report.skipped with the reason, and the others still run.
    whole_head (with face_crop): hair past the face crop parsed by a wider pass, merged without a
    seam (head.py). temporal: for videos, the smoothing strength of the class scores, with the face
    crop tracked (video.py); 0 parses each frame on its own. The figures that show both go to
    OUT/measures.json (see measures.py).
    """
    if not 0.0 <= temporal < 1.0:
        raise PredictError(f"temporal smoothing strength {temporal} out of range [0, 1)")
    if isinstance(effects, str):
        effects = parse_effects(effects)
    if not 0.0 <= alpha <= 1.0:
        raise PredictError(f"alpha {alpha} out of range [0, 1]")
    files = collect_inputs(inputs)
    out = check_writable_dir(out_dir, "--out")
    segmenter = segmenter or load_segmenter(model, checkpoint)
    detector = FaceDetector() if face_crop else None
    out.mkdir(parents=True, exist_ok=True)
    results, skipped = [], []
    for f, stem in tqdm(list(zip(files, _stems(files))), desc="predict", unit="file", disable=not progress or len(files) < 2):
        try:  # one unreadable file must not cost the others their results
            if f.suffix.lower() in VIDEO_SUFFIXES:
                results.append(predict_video(f, stem, out, segmenter, detector, effects, alpha, progress, whole_head,
                                             temporal))
            else:
                results.append(predict_image(f, stem, out, segmenter, detector, effects, alpha, whole_head))
        except PredictError as exc:
            skipped.append((f, str(exc)))
    settings = {"face_crop": face_crop, "whole_head": whole_head, "temporal": temporal}
    measures = write_measures(results, out / "measures.json", segmenter.description, settings)
    return PredictReport(segmenter.description, out, results, contact_sheet(results, out / "sheet.jpg"), skipped, measures)


def summarize_seams(predictions: Sequence[Prediction]) -> dict | None:
    """All images' crop seams together: seam pixels over hair boundary pixels, and the mean per-image share."""
    rows = [p.measures for p in predictions if "seam_share" in p.measures]
    if not rows:
        return None
    boundary = sum(r["hair_boundary_px"] for r in rows)
    return {
        "images": len(rows),
        "seam_share": sum(r["seam_px"] for r in rows) / boundary if boundary else 0.0,
        "mean_image_seam_share": float(np.mean([r["seam_share"] for r in rows])),
    }


def write_measures(predictions: Sequence[Prediction], path: Path, model: str, settings: dict) -> Path:
    """OUT/measures.json: the settings, per input its figures, and the seam summary."""
    import json

    doc = {
        "model": model,
        "settings": settings,
        "seam": summarize_seams(predictions),
        "inputs": {p.outputs["mask"].stem.removesuffix("_mask"): {"input": str(p.input), "kind": p.kind, **p.measures}
                   for p in predictions},
    }
    return write_bytes_atomic(path, (json.dumps(doc, indent=1) + "\n").encode())
