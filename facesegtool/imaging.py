"""Pictures in and out of a model's pixel grid, written once for every verb and the training data.

    IMAGE_SUFFIXES, image_files(folder)      which files are face images (every verb lists folders so)
    read_rgb(path), read_index_mask(path)    the one image reader and the one index-mask reader
    resize_image, resize_mask                the one resize rule (area when shrinking, bilinear when
                                             enlarging; masks nearest)
    center_square, square_crop, fit_square,  the square rules: a centre crop (verify, pseudo-label), a
    crop_padded                              pad to a square (data prepare), a window padded where it
                                             leaves the picture (face crops)
    upsample_scores, upsample_score_batch    class scores to another resolution: the exact half-pixel
                                             bilinear the Java core mirrors to the bit

Colour order: the decoder is Pillow, which yields RGB; nothing here calls cv2.imread (BGR), so there
is no channel swap to forget. cv2 only resizes arrays.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np
from PIL import Image, ImageOps

from .data.source import BadSampleError

if TYPE_CHECKING:  # torch only for the type of the batch helper; predict on TFLite never imports it
    import torch

# Every format Pillow decodes that a face photo comes in (.gif: its first frame). One list, so a
# folder of .webp faces is seen alike by predict, verify, pseudo-label, calibration and data prepare.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif")


def is_image_file(path: Path) -> bool:
    """Whether path names a face image by its suffix (any case)."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def image_files(folder: Path) -> list[Path]:
    """The image files directly in folder (not recursive), sorted."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and is_image_file(p))


# --- reading ----------------------------------------------------------------------------------

# EXIF orientation tag (0x0112) values other than 1: how a viewer turns the stored pixels.
EXIF_ORIENTATION = 0x0112
ORIENTATIONS = {2: "mirrored", 3: "rotated 180 degrees", 4: "flipped upside down", 5: "mirrored and rotated",
                6: "rotated 90 degrees clockwise", 7: "mirrored and rotated", 8: "rotated 90 degrees anticlockwise"}


def read_rgb(path: Path, orientation: str = "apply") -> np.ndarray:
    """Decode an image file to RGB uint8 H x W x 3, failing (BadSampleError) on unreadable or truncated files.

    The one image reader of the tool (prepare, training, calibration, predict, verify, pseudo-label):
    16-bit images are scaled to 8 bits, not clipped.

    orientation: a photo whose EXIF tag says to rotate or flip it is turned upright ("apply", as
    viewers, OpenCV and `predict` show it), or refused ("refuse": for `data prepare`, where a
    mask drawn on the stored pixels and one drawn on the upright picture look alike, and a
    wrong guess pairs a face with a turned mask).
    """
    try:
        with Image.open(path) as im:
            im.load()  # decodes fully: a truncated JPEG raises here instead of coming back half grey
            turn = im.getexif().get(EXIF_ORIENTATION, 1)
            if turn in ORIENTATIONS:
                if orientation == "refuse":
                    raise BadSampleError(
                        path, f"its EXIF orientation tag ({turn}) says it is shown {ORIENTATIONS[turn]}, so its "
                        "mask may match the stored or the turned picture; save it upright with the tag cleared "
                        "(e.g. `mogrify -auto-orient`) and check its mask")
                im = ImageOps.exif_transpose(im)
            return _rgb8(im)
    except BadSampleError:
        raise
    except FileNotFoundError:
        raise BadSampleError(path, "file not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BadSampleError(path, f"unreadable or truncated image ({exc}); replace or remove it") from None


def _rgb8(im: Image.Image) -> np.ndarray:
    """RGB uint8 from any decoded image. 16-bit grey (PNG mode I;16 / I) is scaled to 8 bits:
    Pillow's own convert("RGB") clips it, so a mid-grey 16-bit face would come out near white."""
    if im.mode.startswith("I;16") or im.mode == "I":
        grey = np.asarray(im).astype(np.float64)
        grey = np.clip(grey / 257.0, 0, 255).round().astype(np.uint8)  # 65535 -> 255
        return np.repeat(grey[..., None], 3, axis=2)
    return np.array(im.convert("RGB"))  # a writable copy, as cv2 gives: training augments it in place


def read_index_mask(path: Path) -> np.ndarray:
    """A single-channel index mask (PNG mode L or P: the stored indices, not the palette colours).

    The one reader of class / label-id masks: sources' masks, prepared sets' masks (training, carve)."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("L", "P"):
                return np.array(im)  # writable, as the image
            if im.mode in ("RGB", "RGBA"):
                arr = np.asarray(im)[..., :3]
                if (arr == arr[..., :1]).all():  # grey saved as RGB: the value is the index
                    return np.ascontiguousarray(arr[..., 0])
            raise BadSampleError(path, f"not a single-channel index mask (PNG mode {im.mode})")
    except FileNotFoundError:
        raise BadSampleError(path, "file not found") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadSampleError(path, f"unreadable mask ({exc})") from None


# --- resizing and squares ---------------------------------------------------------------------


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def resize_image(rgb: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """An image at size (side, or (height, width)): INTER_AREA when either side shrinks (no aliasing),
    INTER_LINEAR when enlarging; the same array when already that size. Training, calibration,
    verify, pseudo-label and the segmenters all resize so, so every model sees the same pixels."""
    h, w = _hw(size)
    if rgb.shape[:2] == (h, w):
        return rgb
    shrink = rgb.shape[0] > h or rgb.shape[1] > w
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def resize_mask(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """A class mask at size, nearest (a blend of two class ids is a third class)."""
    h, w = _hw(size)
    if mask.shape[:2] == (h, w):
        return mask
    return cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)


def center_square(array: np.ndarray) -> np.ndarray:
    """The centred square of side min(h, w): face crops are square, anything else is cropped, not stretched."""
    h, w = array.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return array[top : top + side, left : left + side]


def square_crop(rgb: np.ndarray, size: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Centre square, then size x size (the image by resize_image, the mask nearest): what verify and
    pseudo-label feed a model."""
    image = np.ascontiguousarray(resize_image(center_square(rgb), size))
    return image, None if mask is None else resize_mask(center_square(mask), size)


def fit_square(rgb: np.ndarray, mask: np.ndarray, size: int, mask_fill: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad to a square (image black, mask `mask_fill`, so the pad teaches nothing), then size x size:
    what `data prepare` stores (a crop would cut off labelled pixels)."""
    side = max(mask.shape[:2])
    x0, y0 = -((side - mask.shape[1]) // 2), -((side - mask.shape[0]) // 2)  # the picture centred
    rgb, mask = crop_padded(rgb, x0, y0, side, 0), crop_padded(mask, x0, y0, side, mask_fill)
    return resize_image(rgb, size), resize_mask(mask, size)


def crop_padded(array: np.ndarray, x0: int, y0: int, side: int, fill: int = 0) -> np.ndarray:
    """The square (x0, y0, side) of array (array[y0:y0+side, x0:x0+side]) as a new array, `fill` where it
    leaves the picture: a face crop near an edge keeps the face where the model expects it."""
    out = np.full((side, side) + array.shape[2:], fill, array.dtype)
    h, w = array.shape[:2]
    ya, yb, xa, xb = max(0, y0), min(h, y0 + side), max(0, x0), min(w, x0 + side)
    if ya < yb and xa < xb:
        out[ya - y0 : yb - y0, xa - x0 : xb - x0] = array[ya:yb, xa:xb]
    return out


# --- scores to another resolution -------------------------------------------------------------
# Face parsers often output at 1/4 or 1/8 of their input. Their scores (logits or probabilities)
# are upsampled, and only then turned into a mask: upsampling the argmax (nearest) steps every edge
# in blocks of the factor. The rule is the half-pixel bilinear of F.interpolate(align_corners=False),
# OpenCV and TFLite's RESIZE_BILINEAR(half_pixel_centers): source coordinate (i + 0.5) * in / out
# - 0.5, clamped to the first and last source centres. It is written out exactly, columns first then
# rows, weights computed in double and used in float32, so that the Java core
# (com.facesegtool.core.ImageOps.upsampleScores) gives the same floats and the same argmax to the
# bit (golden files prove it); verify, evaluate and pseudo-label use it too, so a model is scored
# on the same mask it shows in predict and the app.


def axis_weights(n_in: int, n_out: int, start: int = 0, stop: int | None = None):
    """For output indices start..stop-1: (lower index, upper index, lower weight, upper weight).
    Source (i + 0.5) * n_in / n_out - 0.5 in double; before the first or past the last source
    centre the edge value is taken whole (weight 1, 0); weights float32, as in Java."""
    i = np.arange(start, n_out if stop is None else stop, dtype=np.float64)
    src = (i + 0.5) * (n_in / n_out) - 0.5
    lo = np.floor(src).astype(np.int64)
    frac = src - lo
    edge = (lo < 0) | (lo >= n_in - 1)
    lo = np.clip(lo, 0, n_in - 1)
    frac[edge] = 0.0
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, (1.0 - frac).astype(np.float32), frac.astype(np.float32)


def upsample_scores(scores: np.ndarray, size: tuple[int, int], rows: tuple[int, int] | None = None,
                    cols: tuple[int, int] | None = None) -> np.ndarray:
    """h x w x C float scores -> size[0] x size[1] x C float32, half-pixel bilinear (see above).

    rows / cols: compute only output rows [r0, r1) / columns [c0, c1) of that grid (the part of a
    face's box inside the photo); the values are those of the full grid. Scores already at size come
    back as they are (the weights would be 1 and 0: the same floats, for nothing)."""
    height, width = size
    s = np.asarray(scores, np.float32)
    if s.shape[:2] == (height, width) and rows is None and cols is None:
        return s
    r0, r1 = rows or (0, height)
    c0, c1 = cols or (0, width)
    x0, x1, wx0, wx1 = axis_weights(s.shape[1], width, c0, c1)
    y0, y1, wy0, wy1 = axis_weights(s.shape[0], height, r0, r1)
    need = np.unique(np.concatenate([y0, y1]))  # only the source rows these output rows read
    remap = np.zeros(s.shape[0], np.int64)
    remap[need] = np.arange(len(need))
    sub = s[need]
    across = wx0[None, :, None] * sub[:, x0] + wx1[None, :, None] * sub[:, x1]  # columns first
    return wy0[:, None, None] * across[remap[y0]] + wy1[:, None, None] * across[remap[y1]]


def upsample_score_batch(scores: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """N x C x h x w torch scores -> N x C x size[0] x size[1] through upsample_scores (the same floats as
    predict and the app), on the scores' device; the same tensor when already that size."""
    if tuple(scores.shape[-2:]) == tuple(size):
        return scores
    planes = scores.detach().permute(0, 2, 3, 1).float().cpu().numpy()
    full = np.stack([upsample_scores(p, size) for p in planes]).transpose(0, 3, 1, 2)
    return scores.new_tensor(np.ascontiguousarray(full), dtype=scores.dtype)
