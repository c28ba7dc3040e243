"""int8 calibration data: face crops prepared exactly as training prepares inputs.

Two jobs:
- `calibration_array` reads a folder of face crops (default: the repo's calibration/),
  resizes each to the model size as training does, converts to RGB and normalises it with
  the checkpoint's input contract, giving the NHWC float32 array onnx2tf / the TFLite
  converter calibrate on;
- `build_calibration_set` makes such a folder from ordinary photos: detects faces with
  OpenCV's bundled Haar cascade, crops each with a margin, squares and resizes it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..atomic import atomic_path, check_apart, write_bytes_atomic
from ..checkpoint import CALIBRATION_DIR
from ..contract import Normalization
from ..data.source import BadSampleError
from ..errors import FacesegError
from ..imaging import IMAGE_SUFFIXES, crop_padded, image_files, read_rgb, resize_image



class CalibrationError(FacesegError, ValueError):
    """No usable calibration images (the message names the folder and what to do)."""


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationError(f"calibration folder not found: {folder}")
    return image_files(folder)


def normalize(rgb: np.ndarray, contract: dict) -> np.ndarray:
    """RGB uint8 (... x H x W x 3) -> float32 (x / scale - mean) / std, per the input contract (contract.Normalization)."""
    return Normalization.of(contract).array(rgb)


def load_calibration_images(folder: str | Path | None, size: int, num: int | None = None) -> np.ndarray:
    """Up to `num` face crops from `folder` as RGB uint8 N x size x size x 3 (evenly spread over the sorted files).

    Every file is decoded in full: an unreadable or truncated one raises CalibrationError naming it
    (skipping it silently, or calibrating on the grey rest of a cut-off JPEG, costs int8 accuracy).
    """
    folder = Path(folder) if folder is not None else CALIBRATION_DIR
    paths = list_images(folder)
    if num is not None and 0 < num < len(paths):
        # Even spread, not the first N: consecutive files often come from one source/photo.
        paths = [paths[i] for i in np.linspace(0, len(paths) - 1, num).round().astype(int)]
    images = []
    for path in paths:
        try:
            rgb = read_rgb(path)
        except BadSampleError as exc:
            raise CalibrationError(
                f"calibration image {path}: {exc.reason.split('; ')[0]}; remove it from {folder} or replace it"
            ) from None
        if min(rgb.shape[:2]) < 8:
            raise CalibrationError(f"calibration image {path}: {rgb.shape[1]}x{rgb.shape[0]} px is too small "
                                   f"for a face crop; remove it from {folder}")
        images.append(resize_image(rgb, size))  # as training resizes its faces
    if not images:
        raise CalibrationError(
            f"no usable image in calibration folder {folder} (looked for {', '.join(IMAGE_SUFFIXES)}); "
            "give a folder of face crops with --calibration, or make one with "
            "`facesegtool calibration build --from PHOTOS_DIR --out DIR`"
        )
    return np.stack(images)


def calibration_array(
    folder: str | Path | None, contract: dict, num: int | None = None, baked_normalization: bool = False
) -> np.ndarray:
    """NHWC float32 calibration inputs, exactly what the exported model's float input expects.

    With the contract's normalisation baked into the model the input is raw RGB 0..scale (a BGR
    model's flip is baked too: onnx.BakedNormalization), else (x / scale - mean) / std. Either way
    the values are final: pass mean 0 / std 1 to onnx2tf, which computes (data - mean) / std
    before calibrating.
    """
    rgb = load_calibration_images(folder, int(contract["size"]), num)
    if baked_normalization:
        raw = rgb.astype(np.float32)
        # The input's calibrated range must be exactly 0..255, so a uint8 input tensor gets scale 1 and
        # zero point 0 and takes the camera's bytes as they are (standard runtimes feed them so):
        # one black and one white pixel make sure of it whatever the faces hold.
        raw[0, 0, 0], raw[0, 0, 1] = 0.0, 255.0
        return raw
    return normalize(rgb, contract)


def save_npy(array: np.ndarray, path: str | Path) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, np.ascontiguousarray(array, dtype=np.float32))
    return path


# --- building a calibration set from photos ---------------------------------------------------


@dataclass
class BuildReport:
    out_dir: Path
    written: list[Path] = field(default_factory=list)
    faces_per_photo: dict[str, int] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    def summary(self) -> str:
        photos = sum(1 for n in self.faces_per_photo.values() if n)
        return (
            f"{len(self.written)} face crops from {photos} of {len(self.faces_per_photo)} photos -> {self.out_dir}"
            + (f" ({len(self.skipped)} files skipped)" if self.skipped else "")
        )


def face_detector() -> cv2.CascadeClassifier:
    """OpenCV's bundled frontal-face Haar cascade: ships inside opencv-python, no download."""
    path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    detector = cv2.CascadeClassifier(str(path))
    if detector.empty():
        raise RuntimeError(f"cannot load OpenCV's face detector {path}")
    return detector


def detect_faces(
    bgr: np.ndarray, detector: cv2.CascadeClassifier, min_size: int = 48, min_relative_size: float = 0.5
) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h) in image pixels, largest first.

    Large photos are searched at <= 1024 px on the long side: the cascade is slow on 4k images and
    a face smaller than min_size px there is too small to be a useful crop anyway. Boxes smaller
    than min_relative_size x the largest are dropped: in portraits they are mostly patterns in
    hair, clothes or backdrops (5 of 6 such false faces in the shared test photos), while the
    faces of couples and group selfies are of similar size.
    """
    h, w = bgr.shape[:2]
    scale = min(1.0, 1024.0 / max(h, w))
    small = cv2.resize(bgr, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA) if scale < 1 else bgr
    gray = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY))
    # minNeighbors=6: fewer false faces (patterns in clothes, backgrounds) than the default 3.
    boxes = detector.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=6, minSize=(min_size, min_size))
    faces = sorted(
        (tuple(int(round(v / scale)) for v in box) for box in (boxes if len(boxes) else [])),
        key=lambda b: b[2] * b[3],
        reverse=True,
    )
    return [f for f in faces if f[2] >= min_relative_size * faces[0][2]]


def crop_face(bgr: np.ndarray, box: tuple[int, int, int, int], margin: float, size: int) -> np.ndarray:
    """Square crop around the box, grown by `margin` x box size on each side, padded black at image edges.

    The Haar box covers brows to mouth; a margin of ~0.4 brings in hair, ears and chin, like
    the CelebA-HQ crops the models are trained on.
    """
    x, y, w, h = box
    cx, cy = x + w / 2.0, y + h / 2.0
    half = max(w, h) * (0.5 + margin)
    x0, y0 = int(round(cx - half)), int(round(cy - half))
    side = int(round(2 * half))
    return resize_image(crop_padded(bgr, x0, y0, side, 0), size)


def _write_image(path: Path, bgr: np.ndarray) -> None:
    ok, buf = cv2.imencode(path.suffix, bgr, [cv2.IMWRITE_JPEG_QUALITY, 92] if path.suffix == ".jpg" else [])
    if not ok:
        raise OSError(f"cannot encode {path}")
    write_bytes_atomic(path, buf.tobytes())


def build_calibration_set(
    photos_dir: str | Path,
    out_dir: str | Path,
    size: int = 256,
    margin: float = 0.4,
    max_faces_per_photo: int = 4,
    min_face: int = 48,
    image_format: str = "jpg",
    progress: bool = True,
) -> BuildReport:
    """Detect faces in the photos of `photos_dir`, write square size x size crops to `out_dir`.

    Crops are named <photo stem>_face<k>.<format>, k = 0 for the largest face. Raises
    CalibrationError when no photo yields a face, or when out_dir holds files that are not crops.
    """
    if image_format not in ("jpg", "png"):
        raise CalibrationError(f"--format must be jpg or png, not {image_format!r}")
    if margin < 0:
        raise CalibrationError(f"--margin must be >= 0, not {margin}")
    check_apart({"--out": out_dir}, {"--from": photos_dir})
    crop = re.compile(r".+_face\d+\.(jpg|png)$")  # the crops it writes: PHOTO_faceK.jpg
    theirs = sorted(p.name for p in Path(out_dir).iterdir() if not crop.match(p.name)) if Path(out_dir).is_dir() else []
    if theirs:
        raise CalibrationError(f"--out {out_dir}: holds files that are not calibration crops "
                               f"({', '.join(theirs[:3])}); choose a new or empty --out")
    photos = list_images(photos_dir)
    if not photos:
        raise CalibrationError(f"no photos ({', '.join(IMAGE_SUFFIXES)}) in {photos_dir}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = BuildReport(out_dir=out_dir)
    detector = face_detector()
    for photo in tqdm(photos, desc="detecting faces", unit="photo", disable=not progress):
        try:  # Pillow decodes fully: a truncated photo is skipped, not cropped half grey
            bgr = cv2.cvtColor(read_rgb(photo), cv2.COLOR_RGB2BGR)
        except BadSampleError:
            report.skipped.append((photo.name, "unreadable image"))
            continue
        faces = detect_faces(bgr, detector, min_size=min_face)[:max_faces_per_photo]
        report.faces_per_photo[photo.name] = len(faces)
        if not faces:
            report.skipped.append((photo.name, "no face found"))
        for k, box in enumerate(faces):
            target = out_dir / f"{photo.stem}_face{k}.{image_format}"
            _write_image(target, crop_face(bgr, box, margin, size))
            report.written.append(target)
    if not report.written:
        raise CalibrationError(
            f"no usable face in the {len(photos)} photos of {photos_dir} "
            f"(faces must be frontal and at least {min_face} px); use photos with clearly visible faces"
        )
    return report
