"""Steady video: a face crop that follows the face, and class scores smoothed over time.

    tracker = FaceTracker(load_detector())
    smoother = ScoreSmoother(strength=0.6)
    for rgb in frames:
        crop, moved = tracker.update(rgb)         # the face crop (x0, y0, side), or None
        ...scores in the crop's frame...
        steady = smoother(scores, reset=moved)   # exponential moving average, reset on a cut

Parsing every frame on its own jumps with the detector's box (a few per cent of the face from
frame to frame) and flickers along uncertain edges. The tracker moves the crop with the face's
own motion (sparse optical flow, a similarity transform fitted to the points of the crop), so the
crop holds the face in place and scores of consecutive frames line up; the detector runs only
to start, when the points are lost, when the face has moved far since it last ran, and every
`recheck` frames to pull the crop back should it drift. The smoother then averages the aligned
scores over time; it starts afresh on a scene cut (most pixels change class at once) or when the
crop had to jump.

ScoreSmoother is the same, to the bit, as the Java core's com.facesegtool.core.ScoreSmoother
(golden files prove it).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np
from tqdm import tqdm

from ..atomic import OutputError, low_space_note
from ..imaging import crop_padded
from ..segmenter import Segmenter, background_index
from .beard import clear_beard_alpha, derive_beard
from .detect import FaceDetector
from .effects import Effects
from .errors import PredictError
from .head import detail_weights, head_grid
from .measures import mean_iou
from .parse import (Parsed, empty_alphas, fade_radius, head_scores, parse_image, paste_scores,
                    scores_to_layers)
from .render import render
from .report import Prediction

DEFAULT_STRENGTH = 0.6  # weight of the past: 0 = off; at 25 fps 0.6 settles in about 0.2 s
CUT_SHARE = 0.5  # a frame whose argmax differs from the smoothed one on more than this share is a cut


class ScoreSmoother:
    """Exponential moving average of H x W x C class scores: s = a x + (1 - a) s, a = 1 - strength,
    in float32 in that order. Restarts from the new scores when asked, when the shape changes, or on
    a scene cut (argmax of new and smoothed scores differ on more than `cut` of the pixels)."""

    def __init__(self, strength: float = DEFAULT_STRENGTH, cut: float = CUT_SHARE):
        if not 0.0 <= strength < 1.0:
            raise ValueError(f"smoothing strength {strength} out of range [0, 1)")
        self.strength = strength
        self.cut = cut
        self.a = np.float32(1.0 - strength)
        self.b = np.float32(1.0) - self.a
        self.state: np.ndarray | None = None
        self.restarts = 0  # times it started afresh (first frame included)

    def reset(self) -> None:
        self.state = None

    def is_cut(self, scores: np.ndarray) -> bool:
        """Whether scores' argmax differs from the smoothed argmax on more than `cut` of the pixels."""
        assert self.state is not None
        changed = np.count_nonzero(scores.argmax(-1) != self.state.argmax(-1))
        return changed > self.cut * scores.shape[0] * scores.shape[1]

    def __call__(self, scores: np.ndarray, reset: bool = False) -> np.ndarray:
        scores = scores.astype(np.float32, copy=False)
        if reset or self.state is None or self.state.shape != scores.shape or self.is_cut(scores):
            self.state = scores.copy()
            self.restarts += 1
        elif self.strength > 0:
            self.state = self.a * scores + self.b * self.state
        else:
            self.state = scores.copy()
        return self.state


@dataclass
class _Box:
    cx: float
    cy: float
    side: float

    def crop(self) -> tuple[int, int, int]:
        side = int(round(self.side))
        return int(round(self.cx - side / 2.0)), int(round(self.cy - side / 2.0)), side


def _overlap(a: _Box, b: _Box) -> float:
    """IoU of two squares."""
    ix = max(0.0, min(a.cx + a.side / 2, b.cx + b.side / 2) - max(a.cx - a.side / 2, b.cx - b.side / 2))
    iy = max(0.0, min(a.cy + a.side / 2, b.cy + b.side / 2) - max(a.cy - a.side / 2, b.cy - b.side / 2))
    inter = ix * iy
    return inter / (a.side**2 + b.side**2 - inter)


class FaceTracker:
    """The largest face's crop (framed by the detector's crop_box), followed frame to frame."""

    MIN_POINTS = 8  # fewer points followed than this: the face is lost, detect again
    FOLLOW = 0.25  # on a routine recheck, move this share of the way to the detector's crop
    JUMP_IOU = 0.3  # a detection overlapping the followed crop less than this: the crop jumps there
    FAR = 0.25  # moved this share of the crop (or scaled by it) since the last detection: detect again
    WORK_SIDE = 160.0  # the crop is followed on a grey copy where it is about this many pixels wide

    def __init__(self, detector, recheck: int = 30):
        self.detector = detector
        self.recheck = recheck
        self.box: _Box | None = None
        self.since_detect = 0
        self.detections = 0  # detector runs, for the record
        self._prev: np.ndarray | None = None
        self._scale = 1.0
        self._anchor: _Box | None = None  # the box when the detector last ran

    def _detect(self) -> _Box | None:
        self.detections += 1
        self.since_detect = 0
        faces = self.detector(self._rgb)
        if not faces:
            return None
        x0, y0, side = self.detector.crop_box(faces[0])
        return _Box(x0 + side / 2.0, y0 + side / 2.0, float(side))

    def _follow(self, grey: np.ndarray) -> bool:
        """Move the box by the motion of its points from the previous frame; False when they are lost."""
        b, s = self.box, self._scale
        h, w = grey.shape
        roi = np.zeros_like(grey)
        x0, y0 = int(max(0, (b.cx - b.side / 2) * s)), int(max(0, (b.cy - b.side / 2) * s))
        x1, y1 = int(min(w, (b.cx + b.side / 2) * s)), int(min(h, (b.cy + b.side / 2) * s))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return False
        roi[y0:y1, x0:x1] = 255
        pts = cv2.goodFeaturesToTrack(self._prev, maxCorners=80, qualityLevel=0.01, minDistance=4, mask=roi)
        if pts is None or len(pts) < self.MIN_POINTS:
            return False
        nxt, status, _ = cv2.calcOpticalFlowPyrLK(self._prev, grey, pts, None, winSize=(15, 15), maxLevel=2)
        ok = status.ravel() == 1
        if ok.sum() < self.MIN_POINTS:
            return False
        m, inliers = cv2.estimateAffinePartial2D(pts[ok], nxt[ok], method=cv2.RANSAC, ransacReprojThreshold=2.0)
        if m is None or inliers.sum() < self.MIN_POINTS:
            return False
        zoom = float(np.hypot(m[0, 0], m[1, 0]))
        cx, cy = m @ np.array([b.cx * s, b.cy * s, 1.0])
        self.box = _Box(cx / s, cy / s, b.side * zoom)
        return True

    def update(self, rgb: np.ndarray) -> tuple[tuple[int, int, int] | None, bool]:
        """This frame's face crop (x0, y0, side) or None, and whether the crop jumped (scores made in
        the last crop's frame no longer line up: restart smoothing)."""
        self._rgb = rgb
        if self.box is None:
            self._scale = 1.0
        grey_full = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        jumped = False
        if self.box is not None:
            self._scale = min(1.0, self.WORK_SIDE / max(self.box.side, 1.0))
        grey = cv2.resize(grey_full, None, fx=self._scale, fy=self._scale, interpolation=cv2.INTER_AREA)
        if self.box is None or self._prev is None or self._prev.shape != grey.shape:
            self.box = self._detect()
            self._anchor = self.box
            jumped = True
        else:
            self.since_detect += 1
            followed = self._follow(grey)
            a = self._anchor
            far = a is None or (
                abs(self.box.cx - a.cx) + abs(self.box.cy - a.cy) > self.FAR * a.side
                or abs(self.box.side / a.side - 1) > self.FAR
            )
            if not followed or far or self.since_detect >= self.recheck:
                found = self._detect()
                if found is None:
                    if not followed:
                        self.box, jumped = None, True
                elif not followed or _overlap(found, self.box) < self.JUMP_IOU:
                    self.box, jumped = found, True
                else:
                    f, b = self.FOLLOW, self.box
                    self.box = _Box(b.cx + f * (found.cx - b.cx), b.cy + f * (found.cy - b.cy),
                                    b.side + f * (found.side - b.side))
                self._anchor = self.box
        # The next frame is followed from this one, at the scale of the box now held.
        if self.box is not None:
            self._scale = min(1.0, self.WORK_SIDE / max(self.box.side, 1.0))
        self._prev = cv2.resize(grey_full, None, fx=self._scale, fy=self._scale, interpolation=cv2.INTER_AREA)
        return (self.box.crop() if self.box is not None else None), jumped


@dataclass
class Frame:
    image: np.ndarray  # the RGB frame
    parsed: Parsed  # the mask shown (smoothed when steady)
    raw: np.ndarray  # H x W mask from this frame's scores alone, in the same crop (for the measures)


def parse_frames(
    frames: Iterable[np.ndarray],
    segmenter: Segmenter,
    detector: FaceDetector | None = None,
    steady: bool = True,
    strength: float = DEFAULT_STRENGTH,
    whole_head: bool = True,
    upsample: str = "bilinear",
    beard: bool = True,
) -> Iterator[Frame]:
    """Masks for a video's RGB frames. steady: the face crop is tracked (FaceTracker) and scores are
    smoothed (ScoreSmoother, strength); otherwise every frame is parsed on its own (parse_image).

    With a detector one face is followed, the largest; without one, or while no face is found, the
    whole frame is parsed (and smoothed). Scores are smoothed on the model's grid, then brought to
    the frame's pixels as parse.py does (upsample)."""
    tracker = FaceTracker(detector) if detector is not None and steady else None
    smoother = ScoreSmoother(strength if steady else 0.0)
    background = background_index(segmenter)
    mode = None
    for rgb in frames:
        if not steady:
            parsed = parse_image(rgb, segmenter, detector, whole_head, upsample, beard)
            yield Frame(rgb, parsed, parsed.mask)
            continue
        h, w = rgb.shape[:2]
        crop, jumped = tracker.update(rgb) if tracker is not None else (None, False)
        if crop is None:
            scores = segmenter.scores(segmenter.fit(rgb))
            box, weight, regions = None, None, []
        elif whole_head:
            grid = head_grid(crop)
            scores = head_scores(rgb, grid, segmenter)
            box, weight, regions = grid.wide, detail_weights(scores.shape[0] // 2), [crop, grid.wide]
        else:
            scores = segmenter.scores(segmenter.fit(crop_padded(rgb, *crop)))
            box, weight, regions = crop, np.zeros(scores.shape[:2], np.float32), [crop]
        now = "frame" if crop is None else "face"
        smoothed = smoother(scores, reset=jumped or now != mode)
        mode = now
        masks = []
        for s in (smoothed, scores):
            shown = not masks  # the smoothed scores are shown: only they need soft alphas for the effects
            if box is None:
                m, alphas = scores_to_layers(s, h, w, (0, h), (0, w), segmenter, upsample, rgb, alphas=shown)
                fade = fade_radius(max(h / s.shape[0], w / s.shape[1]))
            else:
                m = np.full((h, w), background, np.uint8)
                alphas = empty_alphas(segmenter, h, w) if shown and upsample != "nearest" else None
                paste_scores(m, np.full((h, w), -1.0, np.float32), s, weight, box, segmenter, upsample, rgb, alphas)
                fade = fade_radius(box[2] / s.shape[0])
            if beard:
                region = None if box is None else (box[0], box[1], box[0] + box[2], box[1] + box[2])
                derive_beard(m, segmenter.classes, region)
                clear_beard_alpha(alphas, m, segmenter.classes, fade)
            masks.append(m)
            if shown:
                soft = alphas
        scale = (crop[2] if crop else max(h, w)) / segmenter.size[0]
        faces = [] if crop is None else [crop]
        yield Frame(rgb, Parsed(masks[0], faces, scale, regions, soft), masks[1])


# --- writing a video's outputs -----------------------------------------------------------------

PARTIAL = ".{stem}_{name}.partial.mp4"  # a video being written (same .mp4 suffix: it picks the container)


def remove_stale_partials(out_dir: Path) -> list[Path]:
    """Delete half-written videos a killed run left in out_dir (only predict's own .*_NAME.partial.mp4)."""
    stale = [p for n in OUTPUT_NAMES for p in out_dir.glob(f".*_{n}.partial.mp4") if p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


OUTPUT_NAMES = ("mask", "overlay", "effect")


def _frames_in(video: Path) -> int:
    """Frames a finished video file plays (0 when it cannot be opened)."""
    cap = cv2.VideoCapture(str(video))
    try:
        return int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    finally:
        cap.release()


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
    upsample: str = "bilinear",
    beard: bool = True,
) -> Prediction:
    """The three videos of one input. temporal: smoothing strength (ScoreSmoother; with a detector
    the face crop is also tracked); 0 parses every frame on its own."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise PredictError(f"{path}: cannot open as a video")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    names = ["mask", "overlay"] + (["effect"] if effects.any else [])
    outputs = {n: out_dir / f"{stem}_{n}.mp4" for n in names}
    # Written under a temporary name, renamed when complete.
    tmps = {n: out_dir / PARTIAL.format(stem=stem, name=n) for n in names}
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
            for frame in parse_frames(read(), segmenter, detector, temporal > 0, temporal, whole_head, upsample, beard):
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
    except BaseException:  # no half-written video stays behind (Ctrl-C included; a kill -9 is cleaned up next run)
        for w in writers.values():
            w.release()
        for t in tmps.values():
            t.unlink(missing_ok=True)
        raise
    finally:
        cap.release()
        for w in writers.values():
            w.release()
    try:
        if total and frames < total - max(1, total // 100):  # a slack: containers without an index estimate the count
            raise PredictError(f"{path}: read {frames} of the {total} frames its container declares: the file is "
                               "truncated or damaged; copy or re-encode it again")
        if frames == 0:
            raise PredictError(f"{path}: no frames could be read")
        for n in names:  # OpenCV's writer never reports a failed write (a full disk): read each video back
            written = _frames_in(tmps[n])
            if written != frames:
                raise OutputError(f"cannot write {outputs[n]}: {written} of its {frames} frames could be read back"
                                  f"{low_space_note(out_dir) or '; check the disk and choose another --out'}")
    except BaseException:
        for t in tmps.values():
            t.unlink(missing_ok=True)
        raise
    for n in names:
        os.replace(tmps[n], outputs[n])
    # Frame-to-frame agreement of the masks (motion included: 1.0 only for a still scene), as shown and
    # from each frame's own scores: their gap is what the smoothing steadied.
    measures = {f"frame_iou_{k}": float(np.mean(v)) for k, v in ious.items() if v}
    return Prediction(path, "video", outputs, with_face, frames, measures=measures)
