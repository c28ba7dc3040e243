"""The pictures and figures under models/<name>/predict/, made again with one command:

    python tools/showcase.py --checkpoint models/default/model.pt --out models/default/predict

* sheet.jpg: the shared photos in the wild, overlay | effects per photo, each labelled with its
  crop seam (share of the hair outline on a crop edge), face crop alone -> whole head;
* measures.json: predict's figures per photo, plus the crop-only seam and the video figures;
* zoom.jpg: an eyebrow and the hairline of a 1350 x 1800 portrait at full size, magnified 3x:
  the argmax upsampled nearest (left, ~5-px steps) and the scores upsampled bilinearly (right);
  then the hair recolour at the hairline from the hard mask (left) and with soft alphas (right);
* steady.jpg: frames of a shaky clip made from a shared photo (small camera shake and zoom), each
  frame parsed on its own (top row) and with the tracked crop and smoothed scores (bottom row);
  red: pixels whose class changed since the previous frame once the camera's motion is undone.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facesegtool.atomic import write_bytes_atomic  # noqa: E402
from facesegtool.imaging import read_rgb  # noqa: E402
from facesegtool.segmenter import Segmenter, TorchSegmenter  # noqa: E402
from facesegtool.predict.detect import FaceDetector, load_detector  # noqa: E402
from facesegtool.predict.effects import DEFAULT_EFFECTS, DEFAULT_HAIR, Effects, apply_effects, overlay  # noqa: E402
from facesegtool.predict.measures import consecutive_iou, seam_pixels, shaky_clip  # noqa: E402
from facesegtool.predict.parse import parse_image  # noqa: E402
from facesegtool.predict.render import contact_sheet, label_tile  # noqa: E402
from facesegtool.predict.run import predict  # noqa: E402
from facesegtool.predict.video import DEFAULT_STRENGTH, parse_frames  # noqa: E402

PHOTOS = REPO.parent / "shared" / "data" / "faces-in-the-wild"
CLIP_PHOTO = "img3.jpg"  # long hair past the face crop
CLIP_FRAMES = 16
CLIP_SIDE = 360  # px, the long side of the clip's frames
STRIP_FRAMES = 5  # the last frames of the clip shown in steady.jpg


def changed_since_previous(prev: np.ndarray, mask: np.ndarray, a_prev: np.ndarray, a_now: np.ndarray,
                           background: int) -> np.ndarray:
    """H x W bool: foreground pixels whose class differs from the previous frame's, moved by the known motion."""
    m = np.vstack([a_now, [0, 0, 1]]) @ np.vstack([cv2.invertAffineTransform(a_prev), [0, 0, 1]])
    h, w = mask.shape
    moved = cv2.warpAffine(prev, m[:2], (w, h), flags=cv2.INTER_NEAREST, borderValue=255)
    return (moved != 255) & (moved != mask) & ((moved != background) | (mask != background))


def steady_strip(segmenter: Segmenter, detector: FaceDetector, photo: Path, path: Path,
                 frames: int = CLIP_FRAMES, strength: float = DEFAULT_STRENGTH) -> dict:
    """Write steady.jpg (see the module doc) and return the clip's flicker figures."""
    rgb = read_rgb(photo)
    s = CLIP_SIDE / max(rgb.shape[:2])
    scene = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    clip, motions = shaky_clip(scene, frames, seed=0)
    background = segmenter.classes.index("background") if "background" in segmenter.classes else 0
    fg = [i for i in range(len(segmenter.classes)) if i != background]
    per_frame = [f.parsed.mask for f in parse_frames(clip, segmenter, detector, steady=False)]
    steady = list(parse_frames(clip, segmenter, detector, steady=True, strength=strength))
    figures = {
        "photo": photo.name,
        "frames": frames,
        "strength": strength,
        "iou_per_frame": consecutive_iou(per_frame, motions, scene.shape[:2], fg),
        "iou_tracked": consecutive_iou([f.raw for f in steady], motions, scene.shape[:2], fg),
        "iou_tracked_smoothed": consecutive_iou([f.parsed.mask for f in steady], motions, scene.shape[:2], fg),
    }
    rows = []
    for masks, name, key in ((per_frame, "each frame on its own", "iou_per_frame"),
                             ([f.parsed.mask for f in steady], "tracked crop + smoothed scores", "iou_tracked_smoothed")):
        tiles = []
        for t in range(frames - STRIP_FRAMES, frames):
            tile = overlay(clip[t], masks[t], 0.5, segmenter.palette, segmenter.classes)
            tile[changed_since_previous(masks[t - 1], masks[t], motions[t - 1], motions[t], background)] = (255, 0, 0)
            tiles.append(np.pad(tile, ((0, 4), (0, 4), (0, 0)), constant_values=255))
        row = np.hstack(tiles)
        rows.append(label_tile(row, f"{name}: consecutive-frame IoU {figures[key]:.3f} (red: changed class)"))
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    write_bytes_atomic(path, data.tobytes())
    return figures


ZOOM_PHOTO = "img47.jpg"  # a 1350 x 1800 portrait: the nearest mask's steps show at full size
ZOOM_SIDE = 160  # px of the photo per zoomed crop
ZOOM = 3  # display magnification (nearest, so the photo's own pixels show)


def _zoom_box(mask: np.ndarray, region: np.ndarray) -> tuple[int, int]:
    """Top-left (x, y) of a ZOOM_SIDE square centred on a region's pixels (within the image)."""
    ys, xs = np.nonzero(region)
    cy, cx = int(np.median(ys)), int(np.median(xs))
    h, w = mask.shape
    return (min(max(0, cx - ZOOM_SIDE // 2), w - ZOOM_SIDE), min(max(0, cy - ZOOM_SIDE // 2), h - ZOOM_SIDE))


def zoom_strip(segmenter: Segmenter, detector: FaceDetector, photo: Path, path: Path) -> dict:
    """Write zoom.jpg: an eyebrow and the hairline of one photo at its full resolution, the overlay
    from the nearest-upsampled argmax (left) and from bilinear scores (right), then the hair effect at
    the hairline from the hard mask (left) and with soft alphas (right), magnified ZOOM x."""
    rgb = read_rgb(photo)
    parsed = {m: parse_image(rgb, segmenter, detector, upsample=m) for m in ("nearest", "bilinear")}
    masks = {m: p.mask for m, p in parsed.items()}
    mask = masks["bilinear"]
    brows, hair, face = (mask == segmenter.classes.index(n) for n in ("eyebrows", "hair", "face"))
    hairline = hair & (cv2.dilate(face.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0)
    fy, fx = np.nonzero(face)
    hairline[int(np.median(fy)):] = False  # the forehead's edge, not the neck's
    band = np.zeros_like(hairline)  # above the forehead's middle
    cx = int(np.median(fx))
    band[:, max(0, cx - ZOOM_SIDE // 2) : cx + ZOOM_SIDE // 2] = True
    hairline = hairline & band if (hairline & band).any() else hairline
    rows, figures = [], {"photo": photo.name, "size": list(rgb.shape[:2])}
    for name, region in (("eyebrow", brows), ("hairline", hairline)):
        x, y = _zoom_box(mask, region)
        tiles = []
        for mode in ("nearest", "bilinear"):
            over = overlay(rgb, masks[mode], 0.5, segmenter.palette, segmenter.classes)[y : y + ZOOM_SIDE, x : x + ZOOM_SIDE]
            big = cv2.resize(over, None, fx=ZOOM, fy=ZOOM, interpolation=cv2.INTER_NEAREST)
            tiles.append(np.pad(label_tile(big, f"{name}: {mode}"), ((0, 4), (0, 4), (0, 0)), constant_values=255))
        rows.append(np.hstack(tiles))
        figures[name] = {"x": x, "y": y, "side": ZOOM_SIDE}
    hair_only = Effects(hair=DEFAULT_HAIR)
    tiles = []
    for label, soft in (("hair effect: hard mask", None), ("hair effect: soft alpha", parsed["bilinear"].alphas)):
        out = apply_effects(rgb, mask, hair_only, 0.5, segmenter.classes, soft)  # predict's default strength
        big = cv2.resize(out[y : y + ZOOM_SIDE, x : x + ZOOM_SIDE], None, fx=ZOOM, fy=ZOOM, interpolation=cv2.INTER_NEAREST)
        tiles.append(np.pad(label_tile(big, label), ((0, 4), (0, 4), (0, 0)), constant_values=255))
    rows.append(np.hstack(tiles))
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(np.vstack(rows), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    write_bytes_atomic(path, data.tobytes())
    return figures


def regenerate(out_dir: str | Path, checkpoint: str | Path | None = None, photos: str | Path = PHOTOS,
               progress: bool = True) -> dict:
    """sheet.jpg, zoom.jpg, measures.json and steady.jpg in out_dir for a checkpoint (the shipped default when None)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    segmenter, detector = TorchSegmenter(checkpoint), load_detector()
    with tempfile.TemporaryDirectory() as tmp:
        report = predict([photos], out_dir=tmp, effects=DEFAULT_EFFECTS, face_crop=True, progress=progress,
                         segmenter=segmenter, detector=detector)
        doc = json.loads(report.measures.read_text())
    hair = segmenter.classes.index("hair")
    edge = boundary = 0
    for p in report.predictions:
        before = parse_image(read_rgb(p.input), segmenter, detector, whole_head=False)
        e, b = seam_pixels(before.mask, hair, before.regions)
        edge, boundary = edge + e, boundary + b
        crop_only = e / b if b else 0.0
        doc["inputs"][p.input.stem]["crop_only_seam_share"] = crop_only
        if "seam_share" in p.measures:
            label_tile(p.thumbnail, f"seam {100 * crop_only:.1f}% -> {100 * p.measures['seam_share']:.1f}%")
    doc["seam"]["crop_only_seam_share"] = edge / boundary if boundary else 0.0
    contact_sheet([p.thumbnail for p in report.predictions], out / "sheet.jpg")
    doc["video"] = steady_strip(segmenter, detector, Path(photos) / CLIP_PHOTO, out / "steady.jpg")
    doc["zoom"] = zoom_strip(segmenter, detector, Path(photos) / ZOOM_PHOTO, out / "zoom.jpg")
    doc["model"] = segmenter.description
    write_bytes_atomic(out / "measures.json", (json.dumps(doc, indent=1) + "\n").encode())
    return doc


@click.command()
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="PyTorch checkpoint [default: the shipped models/default/model.pt].")
@click.option("--photos", type=click.Path(file_okay=False), default=str(PHOTOS), show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="models/default/predict", show_default=True)
def main(checkpoint, photos, out_dir) -> None:
    """Remake sheet.jpg, zoom.jpg, measures.json and steady.jpg (predict's pictures and figures) for a model."""
    doc = regenerate(out_dir, checkpoint, photos)
    seam, video = doc["seam"], doc["video"]
    click.echo(f"seam share of the hair outline over {seam['images']} photos: crop only "
               f"{seam['crop_only_seam_share']:.4f} -> whole head {seam['seam_share']:.4f}")
    click.echo(f"shaky clip ({video['photo']}, {video['frames']} frames), consecutive-frame IoU with the motion undone: "
               f"per frame {video['iou_per_frame']:.4f}, tracked {video['iou_tracked']:.4f}, "
               f"tracked + smoothed {video['iou_tracked_smoothed']:.4f}")
    click.echo(f"wrote {Path(out_dir) / 'sheet.jpg'}, {Path(out_dir) / 'zoom.jpg'}, {Path(out_dir) / 'steady.jpg'}, "
               f"{Path(out_dir) / 'measures.json'}")


if __name__ == "__main__":
    main()
