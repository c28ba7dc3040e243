"""The golden files that prove the Android demo's plain-Java core computes what the Python code computes.

    python tools/android_goldens.py    # recompute every expected file from the committed inputs

Run it after changing an effect, the pre/post-processing or the smoothing (both sides must change
together); tests/test_android_core.py recomputes them the same way and fails while the committed
ones are stale. The inputs were written once from a real face:

    write_golden_inputs(GOLDEN_DIR, *golden_face(GOLDEN_STEM))  # image + logits (once)
    write_pipeline_inputs(GOLDEN_DIR)                             # frames + model scores of the frame pipeline (once)
    write_export_sidecar(GOLDEN_DIR, "exports/default/unet-mobilenetv2_256_int8.json")  # a real sidecar (once)

Golden files (android_demo/core/src/test/resources/golden/), plain formats that JUnit reads
without any library: PPM (P6) for RGB pictures, PAM (P7) for RGBA layers, PGM (P5) for masks, raw little-endian NHWC
tensors (.f32 float32, .i8 int8, .u16 uint16 soft alphas), gzipped where large, and JSON
(cases.json, sidecars).
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facesegtool.labels import CLASSES, PALETTE  # noqa: E402
from facesegtool.predict.effects import (EFFECT_CLASSES, EXP_TABLE, Effects, apply_effects,  # noqa: E402
                                         colour_mask, overlay, pixel_weights, resize_mask_nearest, soft_alphas)

GOLDEN_DIR = REPO / "android_demo" / "core" / "src" / "test" / "resources" / "golden"


# --- plain file formats ------------------------------------------------------------------------


def write_pnm(path: Path, pixels: np.ndarray) -> None:
    """HxWx3 uint8 -> binary PPM (P6); HxW uint8 -> binary PGM (P5)."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    magic = b"P6" if pixels.ndim == 3 else b"P5"
    h, w = pixels.shape[:2]
    path.write_bytes(magic + f"\n{w} {h}\n255\n".encode() + pixels.tobytes())


def write_pam(path: Path, rgba: np.ndarray) -> None:
    """HxWx4 uint8 RGBA -> binary PAM (P7, RGB_ALPHA): the transparent layers the app draws over the preview."""
    rgba = np.ascontiguousarray(rgba, dtype=np.uint8)
    h, w = rgba.shape[:2]
    header = f"P7\nWIDTH {w}\nHEIGHT {h}\nDEPTH 4\nMAXVAL 255\nTUPLTYPE RGB_ALPHA\nENDHDR\n"
    path.write_bytes(header.encode() + rgba.tobytes())


def read_pnm(path: Path) -> np.ndarray:
    data = path.read_bytes()
    fields, pos = [], 0
    while len(fields) < 4:  # magic, width, height, maxval; separated by single whitespace
        while data[pos : pos + 1].isspace():
            pos += 1
        start = pos
        while not data[pos : pos + 1].isspace():
            pos += 1
        fields.append(data[start:pos])
    pos += 1
    magic, w, h = fields[0], int(fields[1]), int(fields[2])
    shape = (h, w, 3) if magic == b"P6" else (h, w)
    return np.frombuffer(data, np.uint8, count=int(np.prod(shape)), offset=pos).reshape(shape).copy()


def write_tensor(path: Path, tensor: np.ndarray) -> None:
    """Raw little-endian bytes, gzipped (deterministically: no name or time in the header)."""
    raw = np.ascontiguousarray(tensor).astype(tensor.dtype.newbyteorder("<")).tobytes()
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", filename="", mtime=0) as gz:
        gz.write(raw)


def read_tensor(path: Path, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    return np.frombuffer(gzip.decompress(path.read_bytes()), np.dtype(dtype).newbyteorder("<")).reshape(shape)


# --- goldens -----------------------------------------------------------------------------------

GOLDEN_SIZE = 128
GOLDEN_STEM = "1254fa881fe849a9b5efc25a1288823a"  # celebamask-mini val face showing hair, lips, brows, teeth, ears
# Effects and strengths the goldens cover (the Java test reads them from cases.json).
GOLDEN_EFFECTS = Effects(hair=(128, 64, 192), lips=(192, 32, 64), brows=(80, 56, 48), smooth=3)
GOLDEN_ALPHAS = (0.6, 1.0)
GOLDEN_UPSCALE = (200, 150)  # (height, width) the mask is resized to, nearest (as predict does)
GOLDEN_RESIZE = (80, 96)  # (height, width) of the bilinear resize check against cv2
GOLDEN_FRAMES = 5  # frames of the temporal smoothing check
SMOOTH_SIZE = 48  # their side (px)
GOLDEN_STRENGTH = 0.6
SOFT_UP_FRAME = 0  # frame of frames_float32 (SMOOTH_SIZE^2 scores) upsampled to the face's size for the soft effects


def _sidecar(dtype: str, quant_in: dict | None, quant_out: dict | None, size: int) -> dict:
    """A sidecar in export's format describing the golden model (no .tflite exists for it)."""
    return {
        "format": "facesegtool-sidecar",
        "version": 1,
        "model": "golden",
        "variant": "int8" if dtype == "int8" else "fp32",
        "tflite": f"golden_{dtype}.tflite",
        "classes": list(CLASSES),
        "palette": PALETTE.tolist(),
        "input": {
            "index": 0,
            "shape": [1, size, size, 3],
            "layout": "NHWC",
            "channel_order": "RGB",
            "dtype": dtype,
            "mean": [0.5, 0.5, 0.5],
            "std": [0.5, 0.5, 0.5],
            "scale": 255.0,
            "normalization_baked": False,
            "quantization": quant_in,
        },
        "output": {
            "index": 0,
            "shape": [1, size, size, len(CLASSES)],
            "layout": "NHWC",
            "dtype": dtype,
            "quantization": quant_out,
        },
        "source_checkpoint": None,
        "sha256": None,
    }


def _noisy_logits(mask: np.ndarray, seed: int) -> np.ndarray:
    """H x W x C float32 logits that a model unsure at borders and in blobs might give for `mask`:
    4 x the blurred one-hot truth plus spatially correlated unit noise, on a 1/16 grid."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = mask.shape
    onehot = np.eye(len(CLASSES), dtype=np.float32)[np.minimum(mask, len(CLASSES) - 1)]
    # Soft class evidence (blurred one-hot: borders are uncertain) plus spatially correlated noise.
    evidence = cv2.GaussianBlur(onehot, (0, 0), 1.0)
    noise = cv2.GaussianBlur(rng.normal(0.0, 1.0, (h, w, len(CLASSES))).astype(np.float32), (0, 0), 1.5)
    noise *= 1.0 / noise.std()
    logits = np.round((4.0 * evidence + noise) * 16) / 16
    return logits.astype(np.float32)


def write_golden_inputs(out_dir: Path, image: np.ndarray, mask: np.ndarray, seed: int = 0) -> None:
    """The golden inputs from a real face (RGB GOLDEN_SIZE^2) and its ground-truth 11-class mask.

    The logits are the ground truth made noisy: 4 x the one-hot mask blurred (sigma 1 px, so
    borders are uncertain) plus spatially correlated unit noise, on a 1/16 grid (exact in
    float32, and leaves exact ties to test the first-maximum rule). The argmax then differs
    from the truth in blobs and along borders, like a real model's mistakes, and the goldens
    do not depend on any trained model. int8 logits: scale 1/8, zero point -8 (coarser than the
    grid, so rounding creates more ties and the int8 mask differs from the float one a little).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    h, w = mask.shape
    logits = _noisy_logits(mask, seed)[None]
    q_out = {"scale": 0.125, "zero_point": -8}
    q = np.clip(np.rint(logits / q_out["scale"]) + q_out["zero_point"], -128, 127).astype(np.int8)
    write_pnm(out_dir / "input.ppm", image)
    write_tensor(out_dir / "logits_float32.f32.gz", logits)
    write_tensor(out_dir / "logits_int8.i8.gz", q)
    # The int8 input quantization is what an export of a [-1, 1] model gets: scale 2/255, zp -1.
    q_in = {"scale": 0.007843137718737125, "zero_point": -1}
    for dtype, qi, qo in (("float32", None, None), ("int8", q_in, q_out)):
        text = json.dumps(_sidecar(dtype, qi, qo, w), indent=1)
        (out_dir / f"sidecar_{dtype}.json").write_text(text + "\n")


def contract_of(sidecar: dict, name: str = "golden.json"):
    """The golden sidecar (no .tflite exists for it) read by the one sidecar reader, facesegtool.contract."""
    from facesegtool.contract import contract_from_dict

    return contract_from_dict(sidecar, name)


def preprocess_from_sidecar(rgb: np.ndarray, sidecar: dict) -> np.ndarray:
    """The input tensor predict and verify feed the model (Contract.normalize)."""
    return contract_of(sidecar).normalize(rgb)


def mask_from_output(output: np.ndarray, sidecar: dict) -> np.ndarray:
    """1xHxWxC model output (float or quantized ints) -> HxW mask, first maximum on ties.

    argmax of the raw int8 equals argmax of the dequantized logits (scale > 0), so the phone
    never dequantizes just to find the class."""
    out = output[0]
    if sidecar["output"].get("layout", "NHWC") == "NCHW":
        out = out.transpose(1, 2, 0)
    return out.argmax(-1).astype(np.uint8)


def write_golden_expectations(golden_dir: Path) -> list[Path]:
    """Recompute every expected file from the golden inputs; returns the files written."""
    import cv2

    image = read_pnm(golden_dir / "input.ppm")
    h, w = image.shape[:2]
    written: list[Path] = []

    def put(name: str, pixels: np.ndarray) -> None:
        write_pnm(golden_dir / name, pixels)
        written.append(golden_dir / name)

    cases: dict = {"size": [h, w], "variants": {}, "effects": [], "upscale": list(GOLDEN_UPSCALE), "resize": list(GOLDEN_RESIZE)}
    masks = {}
    for dtype in ("float32", "int8"):
        sidecar = json.loads((golden_dir / f"sidecar_{dtype}.json").read_text())
        tensor = preprocess_from_sidecar(image, sidecar)
        name = f"input_tensor_{dtype}" + (".f32.gz" if dtype == "float32" else ".i8.gz")
        write_tensor(golden_dir / name, tensor)
        written.append(golden_dir / name)
        suffix = ".f32.gz" if dtype == "float32" else ".i8.gz"
        logits = read_tensor(golden_dir / f"logits_{dtype}{suffix}", dtype, (1, h, w, len(CLASSES)))
        masks[dtype] = mask_from_output(logits, sidecar)
        put(f"mask_{dtype}.pgm", masks[dtype])
        cases["variants"][dtype] = {
            "sidecar": f"sidecar_{dtype}.json",
            "input_tensor": name,
            "logits": f"logits_{dtype}{suffix}",
            "mask": f"mask_{dtype}.pgm",
        }
    mask = masks["float32"]
    put("colour_mask.ppm", colour_mask(mask))
    for alpha in GOLDEN_ALPHAS:
        tag = f"{int(round(alpha * 100)):03d}"
        put(f"overlay_a{tag}.ppm", overlay(image, mask, alpha))
        put(f"effects_a{tag}.ppm", apply_effects(image, mask, GOLDEN_EFFECTS, alpha))
        cases["effects"].append(
            {
                "alpha": alpha,
                "hair": "#%02X%02X%02X" % GOLDEN_EFFECTS.hair,
                "lips": "#%02X%02X%02X" % GOLDEN_EFFECTS.lips,
                "brows": "#%02X%02X%02X" % GOLDEN_EFFECTS.brows,
                "smooth": GOLDEN_EFFECTS.smooth,
                "overlay": f"overlay_a{tag}.ppm",
                "effects": f"effects_a{tag}.ppm",
            }
        )
    # The int8 mask with effects too: the phone's usual path.
    put("effects_int8_a060.ppm", apply_effects(image, masks["int8"], GOLDEN_EFFECTS, 0.6))
    cases["effects_int8"] = "effects_int8_a060.ppm"
    put("mask_upscaled.pgm", resize_mask_nearest(mask, *GOLDEN_UPSCALE))
    # Java's bilinear resize is checked against OpenCV's within +-1 (OpenCV rounds in fixed point).
    put("resize_bilinear.ppm", cv2.resize(image, GOLDEN_RESIZE[::-1], interpolation=cv2.INTER_LINEAR))
    written += _steady_expectations(golden_dir, cases, h)
    written += _soft_expectations(golden_dir, cases, image)
    written += _pipeline_expectations(golden_dir)
    written += _sidecar_parity(golden_dir)
    (golden_dir / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    written.append(golden_dir / "cases.json")
    return written


def _steady_expectations(golden_dir: Path, cases: dict, size: int) -> list[Path]:
    """What the whole-head merge, the int8 dequantization and the smoothing make of their inputs."""
    from facesegtool.predict.head import merge_head
    from facesegtool.predict.video import ScoreSmoother

    n = len(CLASSES)
    detail = read_tensor(golden_dir / "logits_float32.f32.gz", "float32", (1, size, size, n))[0]
    wide = read_tensor(golden_dir / "logits_wide_float32.f32.gz", "float32", (1, size, size, n))[0]
    merged = merge_head(detail, wide)
    write_pnm(golden_dir / "head_mask.pgm", merged.argmax(-1).astype(np.uint8))
    # Dequantized int8 output, the scores the phone smooths and merges.
    sidecar = json.loads((golden_dir / "sidecar_int8.json").read_text())
    q8 = read_tensor(golden_dir / "logits_int8.i8.gz", "int8", (1, size, size, n))
    scores = contract_of(sidecar).dequantize(q8)
    write_tensor(golden_dir / "scores_int8.f32.gz", scores)
    frames = read_tensor(golden_dir / "frames_float32.f32.gz", "float32", (GOLDEN_FRAMES, SMOOTH_SIZE, SMOOTH_SIZE, n))
    smoother = ScoreSmoother(GOLDEN_STRENGTH)
    smoothed, restarts = [], []
    for f in frames:
        state = smoother(f)
        smoothed.append(state.argmax(-1).astype(np.uint8))
        restarts.append(smoother.restarts)
    write_pnm(golden_dir / "smooth_masks.pgm", np.concatenate(smoothed, 0))
    write_tensor(golden_dir / "smooth_last.f32.gz", state)
    cases["head"] = {"detail": "logits_float32.f32.gz", "wide": "logits_wide_float32.f32.gz", "mask": "head_mask.pgm"}
    # Class scores upsampled bilinearly before the argmax (imaging.upsample_scores): the model's grid to a
    # photo's size, and a coarse (1/4-like) grid to a non-integer multiple of it.
    from facesegtool.imaging import upsample_scores

    cases["upsample"] = []
    for name, scores, out_hw in (("upsampled_scores.pgm", detail, GOLDEN_UPSCALE),
                                 ("upsampled_coarse.pgm", frames[0], (4 * SMOOTH_SIZE + 3, 4 * SMOOTH_SIZE - 5))):
        write_pnm(golden_dir / name, upsample_scores(scores, out_hw).argmax(-1).astype(np.uint8))
        source = "logits_float32.f32.gz" if scores is detail else "frames_float32.f32.gz"
        cases["upsample"].append({"scores": source, "shape": list(scores.shape), "out": list(out_hw), "mask": name})
    cases["scores_int8"] = "scores_int8.f32.gz"
    cases["smooth"] = {
        "frames": "frames_float32.f32.gz",
        "shape": [GOLDEN_FRAMES, SMOOTH_SIZE, SMOOTH_SIZE, n],
        "strength": GOLDEN_STRENGTH,
        "cut": smoother.cut,
        "masks": "smooth_masks.pgm",
        "last": "smooth_last.f32.gz",
        "restarts": restarts,
    }
    return [golden_dir / f for f in ("head_mask.pgm", "scores_int8.f32.gz", "smooth_masks.pgm", "smooth_last.f32.gz",
                                      "upsampled_scores.pgm", "upsampled_coarse.pgm")]


def _soft_expectations(golden_dir: Path, cases: dict, image: np.ndarray) -> list[Path]:
    """Soft alphas (effects.soft_alphas) of the golden scores, logits and probabilities, and the effects
    blended with them: at the score grid's size, and from a coarse grid (a smoothing frame) upsampled
    to the face's size (the app's path: upsampled scores -> argmax mask and alphas)."""
    from facesegtool.imaging import upsample_scores

    n, (h, w) = len(CLASSES), image.shape[:2]
    written: list[Path] = []

    def put_alphas(name: str, alphas: dict[str, np.ndarray]) -> str:
        write_tensor(golden_dir / name, np.stack([alphas[c] for c in EFFECT_CLASSES], -1))
        written.append(golden_dir / name)
        return name

    def put_picture(name: str, pixels: np.ndarray) -> str:
        write_pnm(golden_dir / name, pixels)
        written.append(golden_dir / name)
        return name

    logits = read_tensor(golden_dir / "logits_float32.f32.gz", "float32", (h, w, n))
    int8 = read_tensor(golden_dir / "scores_int8.f32.gz", "float32", (h, w, n))
    frames = read_tensor(golden_dir / "frames_float32.f32.gz", "float32", (GOLDEN_FRAMES, SMOOTH_SIZE, SMOOTH_SIZE, n))
    coarse = frames[SOFT_UP_FRAME]
    # Probabilities exact in any numpy: the coarse frame's integer softmax weights normalised (float64, then float32).
    weights = pixel_weights(coarse)
    probs = (weights / weights.sum(-1, keepdims=True)).astype(np.float32)
    write_tensor(golden_dir / "probs_float32.f32.gz", probs)
    written.append(golden_dir / "probs_float32.f32.gz")
    soft: dict = {"classes": list(EFFECT_CLASSES), "exp_table": EXP_TABLE.tolist(), "alphas": [], "effects": []}
    for scores, source, kind, name in ((logits, "logits_float32.f32.gz", "logits", "soft_float32.u16.gz"),
                                       (int8, "scores_int8.f32.gz", "logits", "soft_int8.u16.gz"),
                                       (probs, "probs_float32.f32.gz", "probabilities", "soft_probs.u16.gz")):
        put_alphas(name, soft_alphas(scores, kind))
        soft["alphas"].append({"scores": source, "shape": list(scores.shape), "kind": kind, "alphas": name})
    for alpha, dtype, scores, source in ((0.6, "float32", logits, "logits_float32.f32.gz"),
                                         (1.0, "float32", logits, "logits_float32.f32.gz"),
                                         (0.6, "int8", int8, "scores_int8.f32.gz")):
        mask = read_pnm(golden_dir / f"mask_{dtype}.pgm")
        picture = f"effects_soft{'_int8' if dtype == 'int8' else ''}_a{int(round(alpha * 100)):03d}.ppm"
        put_picture(picture, apply_effects(image, mask, GOLDEN_EFFECTS, alpha, soft=soft_alphas(scores)))
        soft["effects"].append({"alpha": alpha, "mask": f"mask_{dtype}.pgm", "scores": source, "effects": picture})
    up = upsample_scores(coarse, (h, w))
    mask, alphas = up.argmax(-1).astype(np.uint8), soft_alphas(up)
    soft["upsampled"] = {
        "scores": "frames_float32.f32.gz", "frame": SOFT_UP_FRAME, "shape": [SMOOTH_SIZE, SMOOTH_SIZE, n], "out": [h, w],
        "mask": put_picture("soft_up_mask.pgm", mask), "alphas": put_alphas("soft_up.u16.gz", alphas), "alpha": 1.0,
        "effects": put_picture("effects_soft_up_a100.ppm", apply_effects(image, mask, GOLDEN_EFFECTS, 1.0, soft=alphas)),
    }
    cases["soft"] = soft
    return written


# --- the app's frame pipeline (com.facesegtool.core.FramePipeline) ---------------------------------
# Real faces as the app gets them (a camera frame still to be turned upright, a photo that is not
# square) and scores a model gave for them, through every step after the model: what the Java
# FramePipeline must show, pixel for pixel. The model is a stand-in (the ground truth made noisy, as
# for the logits above) at half its input's resolution, so the scores are upsampled on every path.

PIPELINE_INPUT, PIPELINE_OUTPUT = 64, 32  # the golden model's input and output side
# name: (face stem, picture side, (height, width) of the picture's centre kept, settings, frames).
# Settings as FramePipeline.Settings; "rotation" and "mirror" say how the camera delivered the frame
# (it is stored turned back, so the pipeline must turn it upright).
PIPELINE_CASES: dict[str, dict] = {
    # A landscape photo in mask mode: padded top and bottom, the overlay from upsampled scores.
    "photo_overlay": {"stem": "01a64ed966194e1baf6b633a108a95eb", "side": 96, "keep": (72, 96), "frames": 1,
                      "settings": {"live": False, "effects": False, "alpha": 0.6}},
    # A portrait photo with effects, lips off: padded left and right, the smoothing radius scaled.
    "photo_effects": {"stem": "0407f265cd1444f1a166facac606aa3b", "side": 90, "keep": (90, 66), "frames": 1,
                      "settings": {"live": False, "effects": True, "alpha": 1.0, "lips": False}},
    # Front camera, rotated 90: three frames smoothed over time (a restart on the first), the mask layer.
    "live_overlay": {"stem": "0700985d198843cbb080fbb525d44012", "side": 120, "keep": (120, 90), "frames": 3,
                     "settings": {"live": True, "rotation": 90, "mirror": True, "effects": False, "alpha": 0.5,
                                  "steady": 0.6, "restart": [True, False, False]}},
    # Back camera, rotated 270, effects drawn at half the frame's side (max_side), smoothing off.
    "live_effects": {"stem": GOLDEN_STEM, "side": 120, "keep": (90, 120), "frames": 1,
                     "settings": {"live": True, "rotation": 270, "mirror": False, "effects": True, "alpha": 0.6,
                                  "steady": 0.0, "max_side": 45}},
}


def _pipeline_sidecar() -> dict:
    sidecar = _sidecar("float32", None, None, PIPELINE_INPUT)
    sidecar["output"]["shape"] = [1, PIPELINE_OUTPUT, PIPELINE_OUTPUT, len(CLASSES)]
    return sidecar


def _square(picture: np.ndarray, settings: dict) -> tuple[np.ndarray, tuple[int, int]]:
    """What the model sees: a camera frame upright (clockwise rotation, then the mirror) and its centre
    square; a photo padded to a square with black (and where it sits in it, x0, y0)."""
    from facesegtool.imaging import center_square, crop_padded

    if settings["live"]:
        upright = np.rot90(picture, -settings["rotation"] // 90)
        if settings["mirror"]:
            upright = upright[:, ::-1]
        return np.ascontiguousarray(center_square(upright)), (0, 0)
    h, w = picture.shape[:2]
    side = max(h, w)
    x0, y0 = (side - w) // 2, (side - h) // 2
    return crop_padded(picture, -x0, -y0, side, 0), (x0, y0)


def write_pipeline_inputs(out_dir: Path, data_dir: Path | None = None) -> None:
    """Each case's frames (real faces, cropped to their shape and turned as the camera gives them) and
    the stand-in model's scores for the square the app feeds it (the face's ground truth there, made
    noisy; one seed per frame, so the smoothing has work)."""
    from facesegtool.imaging import center_square, resize_mask

    (out_dir / "sidecar_pipeline.json").write_text(json.dumps(_pipeline_sidecar(), indent=1) + "\n")
    for name, case in PIPELINE_CASES.items():
        image, mask = golden_face(case["stem"], case["side"], data_dir)
        (kh, kw), side = case["keep"], case["side"]
        top, left = (side - kh) // 2, (side - kw) // 2
        image, mask = image[top : top + kh, left : left + kw], mask[top : top + kh, left : left + kw]
        settings = case["settings"]
        frame = image
        if settings["live"]:  # store it as the camera delivers it: mirrored, then turned back
            frame = np.rot90(image[:, ::-1] if settings["mirror"] else image, settings["rotation"] // 90)
        write_pnm(out_dir / f"pipeline_{name}_frame.ppm", frame)
        # The face's truth on the square the model sees (the pad is background).
        square_mask = center_square(mask) if settings["live"] else _square(mask, settings)[0]
        grid = resize_mask(square_mask, PIPELINE_OUTPUT)
        scores = np.stack([_noisy_logits(grid, seed) for seed in range(case["frames"])])
        write_tensor(out_dir / f"pipeline_{name}_scores.f32.gz", scores)


def pipeline_inputs() -> list[str]:
    """The committed input files of the frame pipeline goldens."""
    return ["sidecar_pipeline.json"] + [f"pipeline_{n}_{k}" for n in PIPELINE_CASES
                                        for k in ("frame.ppm", "scores.f32.gz")]


def _pipeline_expectations(golden_dir: Path) -> list[Path]:
    """What the app must show for each case: the model's input (the square resized as OpenCV does;
    Java's bilinear is within one level of it) and the output pixels, from the Python code's steps:
    smoothing (video.ScoreSmoother), imaging.upsample_scores to the picture, argmax, soft alphas,
    effects.apply_effects / overlay, the photo cropped back. Their index is pipeline.json (cases.json
    stays as it was)."""
    import cv2

    from facesegtool.imaging import upsample_scores
    from facesegtool.predict.effects import DEFAULT_EFFECTS
    from facesegtool.predict.video import ScoreSmoother

    n = len(CLASSES)
    written: list[Path] = []
    out_cases = []
    for name, case in PIPELINE_CASES.items():
        settings = case["settings"]
        frame = read_pnm(golden_dir / f"pipeline_{name}_frame.ppm")
        all_scores = read_tensor(golden_dir / f"pipeline_{name}_scores.f32.gz", "float32",
                                 (case["frames"], PIPELINE_OUTPUT, PIPELINE_OUTPUT, n))
        square, (x0, y0) = _square(frame, settings)
        side = square.shape[0]
        model_input = cv2.resize(square, (PIPELINE_INPUT, PIPELINE_INPUT), interpolation=cv2.INTER_LINEAR)
        write_pnm(golden_dir / f"pipeline_{name}_input.ppm", model_input)
        written.append(golden_dir / f"pipeline_{name}_input.ppm")
        out = settings.get("max_side", 0) if settings["live"] and 0 < settings.get("max_side", 0) < side else side
        # An exact 2x reduction: half-pixel bilinear weights are all 1/2, where Java's float bilinear and
        # OpenCV's fixed point round alike (other ratios differ by one level: GoldenTest's resize check).
        pixels = square if out == side else cv2.resize(square, (out, out), interpolation=cv2.INTER_LINEAR)
        steady = settings.get("steady", 0.0)
        smoother = ScoreSmoother(steady) if settings["live"] and steady > 0 else None
        restarts = settings.get("restart", [False] * case["frames"])
        outputs = []
        for i, scores in enumerate(all_scores):
            if smoother is not None:
                scores = smoother(scores, reset=restarts[i])
            up = upsample_scores(scores, (out, out))
            mask = up.argmax(-1).astype(np.uint8)
            alpha = settings["alpha"]
            if settings["effects"]:
                effects = replace(DEFAULT_EFFECTS,
                                  hair=DEFAULT_EFFECTS.hair if settings.get("hair", True) else None,
                                  lips=DEFAULT_EFFECTS.lips if settings.get("lips", True) else None,
                                  brows=DEFAULT_EFFECTS.brows if settings.get("brows", True) else None,
                                  smooth=DEFAULT_EFFECTS.smooth if settings.get("smooth", True) else 0)
                shown = apply_effects(pixels, mask, effects.scaled(out / PIPELINE_INPUT), alpha, soft=soft_alphas(up))
            elif settings["live"]:  # the layer over the preview: class colours at the opacity, background clear
                shown = np.zeros((out, out, 4), np.uint8)
                fg = mask != CLASSES.index("background")
                shown[fg, :3] = PALETTE[mask[fg]]
                shown[fg, 3] = min(255, max(0, math.floor(alpha * 255 + 0.5)))
            else:
                shown = overlay(pixels, mask, alpha)
            if not settings["live"]:
                shown = shown[y0 : y0 + frame.shape[0], x0 : x0 + frame.shape[1]]
            picture = f"pipeline_{name}_out{i}." + ("pam" if shown.shape[-1] == 4 else "ppm")
            (write_pam if shown.shape[-1] == 4 else write_pnm)(golden_dir / picture, shown)
            written.append(golden_dir / picture)
            outputs.append(picture)
        out_cases.append({"name": name, "settings": settings, "frame": f"pipeline_{name}_frame.ppm",
                          "scores": f"pipeline_{name}_scores.f32.gz", "scores_shape": list(all_scores.shape),
                          "model_input": f"pipeline_{name}_input.ppm", "outputs": outputs, "out_side": out,
                          "restarts": smoother.restarts if smoother is not None else 0})
    index = {"sidecar": "sidecar_pipeline.json", "cases": out_cases}
    (golden_dir / "pipeline.json").write_text(json.dumps(index, indent=1) + "\n")
    return written + [golden_dir / "pipeline.json"]


# --- the Java Sidecar as the twin of facesegtool.contract ------------------------------------------
# The real int8 export's sidecar and copies of it tampered one field at a time: the Python reader's
# verdict (and, where it accepts, the values it reads) is what Sidecar.parse must give.

EXPORT_SIDECAR = "sidecar_export_int8.json"


def write_export_sidecar(out_dir: Path, sidecar: str | Path) -> None:
    """A real export's sidecar, its absolute paths made relative to the repository (once)."""
    text = Path(sidecar).read_text().replace(str(REPO) + "/", "")
    (out_dir / EXPORT_SIDECAR).write_text(text)


def _tampered(base: dict) -> dict[str, object]:
    """name -> a sidecar (a dict to dump, or raw text) differing from `base` in one field."""
    import copy

    def edit(fn) -> dict:
        d = copy.deepcopy(base)
        fn(d)
        return d

    def drop(*path: str):
        def fn(d: dict) -> None:
            for key in path[:-1]:
                d = d[key]
            del d[path[-1]]
        return fn

    def put(value, *path: str):
        def fn(d: dict) -> None:
            for key in path[:-1]:
                d = d[key]
            d[path[-1]] = value
        return fn

    n = len(base["classes"])
    nchw = edit(put([1, 3, 256, 256], "input", "shape"))
    nchw["input"]["layout"] = "NCHW"
    fewer = edit(put(base["classes"][:-1], "classes"))
    fewer["palette"] = base["palette"][:-1]
    return {
        "real": base,
        "missing_classes": edit(drop("classes")), "missing_variant": edit(drop("variant")),
        "missing_input": edit(drop("input")), "missing_input_dtype": edit(drop("input", "dtype")),
        "missing_output_shape": edit(drop("output", "shape")), "missing_output_dtype": edit(drop("output", "dtype")),
        "missing_mean": edit(drop("input", "mean")),
        "missing_zero_point": edit(drop("output", "quantization", "zero_point")),
        "shape_string": edit(put("1,256,256,3", "input", "shape")),
        "shape_3d": edit(put([1, 256, 256], "input", "shape")),
        "shape_float": edit(put([1, 256.0, 256, 3], "input", "shape")),
        "shape_zero": edit(put([1, 0, 256, 3], "input", "shape")),
        "four_channels": edit(put([1, 256, 256, 4], "input", "shape")), "nchw_input": nchw,
        "output_shape_string": edit(put("big", "output", "shape")),
        "dtype_float64": edit(put("float64", "input", "dtype")), "dtype_number": edit(put(8, "output", "dtype")),
        "float32_input_no_quant": edit(lambda d: d["input"].update(dtype="float32", quantization=None)),
        "layout_unknown": edit(put("NWHC", "input", "layout")), "layout_null": edit(put(None, "output", "layout")),
        "index_one": edit(put(1, "output", "index")),
        "quant_scale_zero": edit(put(0.0, "output", "quantization", "scale")),
        "quant_scale_negative": edit(put(-0.2, "output", "quantization", "scale")),
        "quant_scale_string": edit(put("0.2", "output", "quantization", "scale")),
        "quant_zero_point_float": edit(put(146.5, "output", "quantization", "zero_point")),
        "quant_per_axis": edit(put([0.1, 0.2], "output", "quantization", "scale")),
        "quant_list": edit(put([0.2, 146], "input", "quantization")),
        "quant_null": edit(put(None, "input", "quantization")),
        "kind_softmax": edit(put("softmax", "output", "kind")),
        "kind_probabilities": edit(put("probabilities", "output", "kind")),
        "resized_string": edit(put("no", "output", "resized_to_input")),
        "std_zero": edit(put([0.5, 0.0, 0.5], "input", "std")), "mean_two": edit(put([0.5, 0.5], "input", "mean")),
        "mean_string": edit(put(["0.5", 0.5, 0.5], "input", "mean")), "scale_null": edit(put(None, "input", "scale")),
        "scale_missing": edit(drop("input", "scale")),
        "bgr": edit(put("bgr", "input", "channel_order")),
        "channel_order_xyz": edit(put("XYZ", "input", "channel_order")),
        "baked_string": edit(put("true", "input", "normalization_baked")),
        "classes_one_fewer": fewer, "classes_duplicate": edit(put(base["classes"][:-1] + ["hair"], "classes")),
        "classes_empty_name": edit(put([""] + base["classes"][1:], "classes")),
        "classes_string": edit(put("hair", "classes")),
        "palette_short": edit(put(base["palette"][:-1], "palette")),
        "palette_300": edit(put([[300, 0, 0]] * n, "palette")),
        "palette_null": edit(put(None, "palette")), "palette_missing": edit(drop("palette")),
        "mapping_unknown_target": edit(put("cheeks", "mapping", "face")),
        "mapping_missing_label": edit(drop("mapping", "hair")),
        "mapping_extra_key": edit(put("hair", "mapping", "tail")), "mapping_null": edit(put(None, "mapping")),
        "mapping_list": edit(put(["face"], "mapping")),
        "source_sha_number": edit(put(12, "source", "sha256")), "source_string": edit(put("model.pt", "source")),
        "sha256_number": edit(put(5, "sha256")), "variant_empty": edit(put("", "variant")),
        "model_number": edit(put(3, "model")), "format_wrong": edit(put("other", "format")),
        "not_json": json.dumps(base)[:200], "json_list": "[1, 2]",
    }


def _contract_values(c) -> dict:
    """What a consumer reads from a Contract, in the Java Sidecar's terms."""
    def quant(q):
        return None if q is None else [q.scale, q.zero_point]

    nhwc = c.output.layout == "NHWC"
    shape = c.output.shape
    return {
        "input_hw": list(c.size), "input_dtype": c.input.dtype, "input_layout": c.input.layout,
        "channel_order": c.normalization.channel_order, "mean": list(c.normalization.mean), "std": list(c.normalization.std),
        "scale": c.normalization.scale, "baked": c.normalization.baked, "input_quant": quant(c.input.quantization),
        "output_hw": list(shape[1:3] if nhwc else shape[2:4]), "num_classes": shape[3] if nhwc else shape[1],
        "output_dtype": c.output.dtype, "output_layout": c.output.layout, "output_quant": quant(c.output.quantization),
        "kind": c.output_kind, "classes": list(c.classes), "model": c.model, "variant": c.variant,
    }


def _sidecar_parity(golden_dir: Path) -> list[Path]:
    """sidecar_parity.json: each tampered sidecar's text and what facesegtool.contract makes of it (accepted, and
    the values; refused, and its message). "app_needs": accepted by the contract, refused by the app, which sizes its
    buffers from output.shape and output.dtype (the one difference, on purpose: Sidecar.java says why)."""
    from facesegtool.contract import ContractError, contract_from_dict

    base = json.loads((golden_dir / EXPORT_SIDECAR).read_text())
    cases = []
    for name, sidecar in _tampered(base).items():
        text = sidecar if isinstance(sidecar, str) else json.dumps(sidecar, indent=1)
        case: dict = {"name": name, "text": text}
        try:
            contract = contract_from_dict(json.loads(text), f"{name}.json")
        except (ContractError, json.JSONDecodeError) as exc:
            case.update(accepted=False, error=str(exc))
        else:
            needs = contract.output.shape is None or contract.output.dtype is None
            case.update(accepted=True, app_needs=needs, values=None if needs else _contract_values(contract))
        cases.append(case)
    path = golden_dir / "sidecar_parity.json"
    path.write_text(json.dumps({"source": EXPORT_SIDECAR, "cases": cases}, indent=1) + "\n")
    return [path]


def golden_face(stem: str, size: int = GOLDEN_SIZE, data_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A celebamask-mini face and its 11-class ground truth at size x size."""
    import cv2
    from PIL import Image

    from facesegtool.labels import celebamask_lut

    root = data_dir or REPO.parent / "shared" / "data" / "celebamask-mini"
    bgr = cv2.imread(str(root / "images" / f"{stem}.jpg"), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read {root / 'images' / (stem + '.jpg')}")
    ids = np.array(Image.open(root / "masks" / f"{stem}.png"))  # palette PNG: PIL keeps the indices
    image = cv2.cvtColor(cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    mask = cv2.resize(celebamask_lut()[ids], (size, size), interpolation=cv2.INTER_NEAREST)
    return image, mask


def main() -> None:
    parser = argparse.ArgumentParser(description="Recompute the Android core's expected golden files from their inputs.")
    parser.add_argument("--golden-dir", type=Path, default=GOLDEN_DIR, help="folder of the golden inputs [%(default)s]")
    args = parser.parse_args()
    written = write_golden_expectations(args.golden_dir)
    print(f"wrote {len(written)} files into {args.golden_dir}")


if __name__ == "__main__":
    main()
