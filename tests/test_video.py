"""Steady video (facesegtool/predict/video.py): the score smoother's arithmetic and cut reset, and on a
video made from a shared photo with small camera shake and zoom: the tracked crop follows the
face, and consecutive masks agree more (known motion undone) with tracking and smoothing."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import FACES_IN_THE_WILD, assert_clean_error, invoke, require_shared

from android_goldens import GOLDEN_DIR, read_tensor
from facesegtool.labels import CLASSES
from facesegtool.predict.measures import consecutive_iou, shaky_clip
from facesegtool.predict import BlazeFaceDetector as FaceDetector
from facesegtool.predict import TorchSegmenter, predict
from facesegtool.predict.video import FaceTracker, ScoreSmoother, parse_frames

SHAKY_PHOTO = "img3.jpg"  # a portrait with long hair
FRAMES = 12
SCENE_SIDE = 320  # px, the photo's long side in the scene; frames are the scene's size


def test_smoother_averages_and_restarts_on_a_cut():
    frames = read_tensor(GOLDEN_DIR / "frames_float32.f32.gz", "float32", (5, 48, 48, len(CLASSES)))
    s = ScoreSmoother(0.6)
    first = s(frames[0]).copy()
    assert np.array_equal(first, frames[0]) and s.restarts == 1
    second = s(frames[1])
    assert np.allclose(second, 0.4 * frames[1] + 0.6 * first, atol=1e-5)
    # Fewer pixels change class than in either raw frame pair: that is the point of it.
    assert (second.argmax(-1) != first.argmax(-1)).mean() < (frames[1].argmax(-1) != frames[0].argmax(-1)).mean()
    s(frames[2])
    s(frames[3])  # the face upside down: a scene cut
    assert s.restarts == 2 and np.array_equal(s.state, frames[3])
    s(frames[4], reset=True)
    assert s.restarts == 3
    with pytest.raises(ValueError, match="out of range"):
        ScoreSmoother(1.0)


@pytest.fixture(scope="module")
def shaky():
    """Frames of the shaky clip, each frame's scene -> frame motion, and the scene's size."""
    require_shared(FACES_IN_THE_WILD)
    rgb = cv2.cvtColor(cv2.imread(str(FACES_IN_THE_WILD / SHAKY_PHOTO)), cv2.COLOR_BGR2RGB)
    s = SCENE_SIDE / max(rgb.shape[:2])
    scene = cv2.resize(rgb, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    frames, motions = shaky_clip(scene, FRAMES, seed=0)
    return frames, motions, scene.shape[:2]


def test_tracked_crop_follows_the_face_more_steadily_than_detection(shaky):
    """In scene coordinates the face stands still: the tracked crop's centre, moved back by each
    frame's known motion, should stay put; per-frame detections jitter."""
    frames, motions, _ = shaky
    detector = FaceDetector()
    tracker = FaceTracker(detector)
    tracked, detected = [], []
    for rgb, a in zip(frames, motions):
        crop, _ = tracker.update(rgb)
        boxes = detector(rgb)
        assert crop is not None and boxes, "the face is found in every frame"
        inv = cv2.invertAffineTransform(a)
        for c, out in ((crop, tracked), (detector.crop_box(boxes[0]), detected)):
            x0, y0, side = c
            out.append(inv @ np.array([x0 + side / 2, y0 + side / 2, 1.0]))
    jitter = {k: float(np.linalg.norm(np.std(v, 0))) for k, v in (("tracked", tracked), ("detected", detected))}
    print(f"\ncrop centre jitter in the scene (px): {jitter}, detector runs {tracker.detections}/{FRAMES}")
    assert jitter["tracked"] < jitter["detected"]
    assert tracker.detections < FRAMES  # followed, not re-detected every frame


def test_tracking_and_smoothing_steady_the_masks_on_a_shaky_video(shaky, small_checkpoint):
    frames, motions, scene = shaky
    seg = TorchSegmenter(small_checkpoint)
    det = FaceDetector()
    fg = [i for i, c in enumerate(seg.classes) if c != "background"]
    before = [f.parsed.mask for f in parse_frames(frames, seg, det, steady=False)]
    steady = list(parse_frames(frames, seg, det, steady=True))
    after = [f.parsed.mask for f in steady]
    tracked_only = [f.raw for f in steady]
    iou = {k: consecutive_iou(m, motions, scene, fg) for k, m in
           (("per-frame", before), ("tracked", tracked_only), ("tracked+smoothed", after))}
    print(f"\nconsecutive-frame mean IoU, motion undone: {iou}")
    assert iou["tracked+smoothed"] > iou["per-frame"] + 0.01
    assert iou["tracked+smoothed"] >= iou["tracked"]


def test_predict_writes_the_video_figures(shaky, small_checkpoint, tmp_path):
    frames, _, _ = shaky
    clip = tmp_path / "shaky.mp4"
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
    for f in frames[:6]:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    report = predict([clip], checkpoint=small_checkpoint, out_dir=tmp_path / "out", face_crop=True, progress=False)
    m = report.predictions[0].measures
    assert set(m) == {"frame_iou_shown", "frame_iou_raw"} and 0 < m["frame_iou_raw"] <= m["frame_iou_shown"] <= 1
    import json

    doc = json.loads(report.measures.read_text())
    assert doc["inputs"]["shaky"]["frame_iou_shown"] == pytest.approx(m["frame_iou_shown"])
    assert {k: doc["settings"][k] for k in ("face_crop", "whole_head", "temporal")} == {
        "face_crop": True, "whole_head": True, "temporal": 0.6}


# --- issue 31: a truncated video fails as --help says; a full disk leaves no unplayable video ---------


def _clip(path: Path, frames: int = 20, fourcc: str = "MJPG", side: int = 96, noise: bool = False) -> Path:
    """A clip of a real photo panning sideways (noise: each frame is noise over it, which barely compresses)."""
    require_shared(FACES_IN_THE_WILD)
    bgr = cv2.resize(cv2.imread(str(FACES_IN_THE_WILD / SHAKY_PHOTO)), (side, side))
    rng = np.random.default_rng(0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 10, (side, side))
    for i in range(frames):
        frame = np.roll(bgr, 2 * i, axis=1)
        writer.write(rng.integers(0, 256, frame.shape, dtype=np.uint8) if noise else frame)
    writer.release()
    return path


def test_a_truncated_video_fails_naming_the_frames_read(tiny_checkpoint, tmp_path):
    """The first half of an AVI: its header still declares 20 frames, 10 decode; once parsed silently, exit 0."""
    whole = _clip(tmp_path / "whole.avi")
    cut = tmp_path / "in" / "cut.avi"
    cut.parent.mkdir()
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    result = invoke("predict", cut, "--checkpoint", tiny_checkpoint, "--out", tmp_path / "out", "--effect", "none")
    assert_clean_error(result, str(cut), "read 10 of the 20 frames", "truncated")
    out = tmp_path / "out"
    assert not list(out.glob("*.mp4")) and not list(out.glob(".*")) and not (out / "measures.json").exists()
    fine = invoke("predict", whole, "--checkpoint", tiny_checkpoint, "--out", out, "--effect", "none")
    assert fine.exit_code == 0 and "20 frames" in fine.output, fine.output


def test_a_full_disk_leaves_no_unplayable_video(tiny_checkpoint, tmp_path, disks):
    """OpenCV's writer drops frames on a full disk without a word: the outputs are read back before their rename."""
    clip = _clip(tmp_path / "noise.avi", frames=12, side=192, noise=True)
    out = disks(tmp_path / "disk", 0.2)
    result = invoke("predict", clip, "--checkpoint", tiny_checkpoint, "--out", out, "--effect", "none")
    assert_clean_error(result, "cannot write", "_mask.mp4" if "_mask.mp4" in result.output else "_overlay.mp4",
                       "free some space")
    assert not list(out.glob("*.mp4")) and not list(out.glob(".*.mp4"))  # neither final names nor partials
