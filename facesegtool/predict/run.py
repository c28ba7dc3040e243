"""`facesegtool predict` over files and folders: inputs collected, each image or video parsed and
its pictures written, the contact sheet and measures.json at the end."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from tqdm import tqdm

from ..atomic import check_apart, check_writable_dir
from ..data.source import BadSampleError
from ..imaging import IMAGE_SUFFIXES, read_rgb
from ..segmenter import Segmenter, load_segmenter
from .detect import FaceDetector, load_detector
from .effects import NO_EFFECTS, Effects, parse_effects
from .errors import PredictError
from .parse import UPSAMPLE_MODES, parse_image
from .render import contact_sheet, render, thumbnail, write_image
from .report import Prediction, PredictReport, seam_measures, write_measures
from .video import predict_video, remove_stale_partials

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm")
INPUT_SUFFIXES = frozenset(IMAGE_SUFFIXES + VIDEO_SUFFIXES)  # images: imaging's one list (.gif: its first frame)


def collect_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders expand to their images and videos (sorted, not recursive). A broken
    link among them is kept, so that it fails as an unreadable input instead of vanishing."""
    files: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if (f.is_file() or (f.is_symlink() and not f.exists()))
                           and f.suffix.lower() in INPUT_SUFFIXES)
            if not found:
                raise PredictError(f"{p}: no images or videos in this folder")
            files.extend(found)
        elif p.is_file():
            if p.suffix.lower() not in INPUT_SUFFIXES:
                raise PredictError(f"{p}: not an image or video ({', '.join(sorted(INPUT_SUFFIXES))})")
            files.append(p)
        else:
            raise PredictError(f"{p}: no such file or folder")
    if not files:
        raise PredictError("no inputs given")
    return files


def check_out_dir(inputs: Iterable[str | Path], out_dir: Path) -> None:
    """Refuse an --out that is, holds or lies inside an input (a photo's own folder included): outputs
    would overwrite inputs of the same name, and a rerun would parse its own outputs."""
    inputs = [Path(p) for p in inputs]
    check_apart({"--out": out_dir}, {"folder": [p for p in inputs if p.is_dir()],
                                     "file": [p for p in inputs if not p.is_dir()]})


def stems(files: Sequence[Path]) -> list[str]:
    """Output name per input: the stem, made unique when two inputs share one."""
    seen: dict[str, int] = {}
    out = []
    for f in files:
        n = seen.get(f.stem, 0)
        seen[f.stem] = n + 1
        out.append(f.stem if n == 0 else f"{f.stem}_{n + 1}")
    return out


def gif_frames(path: Path) -> int:
    """Frames in an animated GIF (1 for any other picture)."""
    if path.suffix.lower() != ".gif":
        return 1
    from PIL import Image

    try:
        with Image.open(path) as im:
            return int(getattr(im, "n_frames", 1))
    except (OSError, ValueError):
        return 1


def predict_image(path: Path, stem: str, out_dir: Path, segmenter: Segmenter, detector: FaceDetector | None,
                  effects: Effects, alpha: float, whole_head: bool = True, upsample: str = "bilinear",
                  beard: bool = True) -> Prediction:
    try:  # Pillow decodes fully (a truncated JPEG fails instead of parsing its grey rest) and turns EXIF-rotated photos upright
        rgb = read_rgb(path)
    except BadSampleError as exc:
        raise PredictError(str(exc)) from None
    frames = gif_frames(path)
    if frames > 1:
        print(f"warning: {path} is an animated GIF of {frames} frames: parsed its first frame only; to parse every "
              f"frame make it a video (e.g. `ffmpeg -i {path.name} {path.stem}.mp4`)", file=sys.stderr)
    parsed = parse_image(rgb, segmenter, detector, whole_head, upsample, beard)
    rendered = render(rgb, parsed, segmenter, effects, alpha)
    measures = seam_measures(parsed, segmenter)
    outputs = {"mask": out_dir / f"{stem}_mask.png", "overlay": out_dir / f"{stem}_overlay.png"}
    write_image(outputs["mask"], rendered.mask)
    write_image(outputs["overlay"], rendered.overlay)
    if rendered.effect is not None:
        outputs["effect"] = out_dir / f"{stem}_effect.png"
        write_image(outputs["effect"], rendered.effect)
    counts = np.bincount(parsed.mask.ravel(), minlength=len(segmenter.classes))
    pixels = {name: int(counts[i]) for i, name in enumerate(segmenter.classes)}
    label = f"seam {100 * measures['seam_share']:.1f}%" if "seam_share" in measures else None
    return Prediction(path, "image", outputs, len(parsed.faces), 1, pixels, thumbnail(rendered, label), measures)


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
    upsample: str = "bilinear",
    beard: bool = True,
    lut: Sequence[int] | None = None,
    detector: FaceDetector | str | None = None,
    spec: str | Path | dict | None = None,
    weights: str | Path | None = None,
    runtime: str = "litert",
) -> PredictReport:
    """Parse every image/video in inputs (folders expand) and write mask, overlay and effect outputs.

    effects: an Effects, or a spec string like "hair=#8040C0,smooth=3" (see effects.parse_effects).
    An input that cannot be read (unreadable or truncated image, unopenable video) is listed in
    report.skipped with the reason, and the others still run.
    face_crop: faces found (detector: "blazeface", the default, or "haar", or a detector object).
    whole_head (with face_crop): hair past the face crop parsed by a wider pass, merged without a
    seam (head.py). temporal: for videos, the smoothing strength of the class scores, with the face
    crop tracked (video.py); 0 parses each frame on its own. upsample: how scores reach the photo's
    pixels (nearest | bilinear | refined; parse.py). beard: facial hair as the beard class (beard.py).
    lut: model class -> our class table, for a model with other labels. The figures go to
    OUT/measures.json (see measures.py).
    """
    if not 0.0 <= temporal < 1.0:
        raise PredictError(f"temporal smoothing strength {temporal} out of range [0, 1)")
    if upsample not in UPSAMPLE_MODES:
        raise PredictError(f"unknown upsampling {upsample!r}; known: {', '.join(UPSAMPLE_MODES)}")
    if isinstance(effects, str):
        effects = parse_effects(effects)
    if not 0.0 <= alpha <= 1.0:
        raise PredictError(f"alpha {alpha} out of range [0, 1]")
    files = collect_inputs(inputs)
    out = check_writable_dir(out_dir, "--out")
    check_out_dir(inputs, out)
    if segmenter is None:
        segmenter = load_segmenter(model, checkpoint, lut, spec=spec, weights=weights, runtime=runtime)
    elif lut is not None:
        segmenter.set_lut(lut)
    if face_crop:
        detector = load_detector(detector or "blazeface") if isinstance(detector, str) or detector is None else detector
    else:
        detector = None
    out.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_partials(out):
        print(f"warning: removed {stale}, a half-written video a stopped run left", file=sys.stderr)
    results, skipped = [], []
    for f, stem in tqdm(list(zip(files, stems(files))), desc="predict", unit="file", disable=not progress or len(files) < 2):
        try:  # one unreadable file must not cost the others their results
            if f.suffix.lower() in VIDEO_SUFFIXES:
                results.append(predict_video(f, stem, out, segmenter, detector, effects, alpha, progress, whole_head,
                                             temporal, upsample, beard))
            else:
                results.append(predict_image(f, stem, out, segmenter, detector, effects, alpha, whole_head, upsample,
                                             beard))
        except PredictError as exc:
            skipped.append((f, str(exc)))
    if not results:  # nothing parsed: no figures file to suggest otherwise
        return PredictReport(segmenter.description, out, results, None, skipped, None)
    settings = {"face_crop": face_crop, "whole_head": whole_head, "temporal": temporal, "upsample": upsample,
                "beard": beard}
    if detector is not None:
        settings["detector"] = getattr(detector, "description", type(detector).__name__)
    measures = write_measures(results, out / "measures.json", segmenter.description, settings)
    sheet = contact_sheet([p.thumbnail for p in results], out / "sheet.jpg")
    return PredictReport(segmenter.description, out, results, sheet, skipped, measures)
