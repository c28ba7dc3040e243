"""The golden files that prove the Android demo's plain-Java core computes what the Python code computes.

    python tools/android_goldens.py    # recompute every expected file from the committed inputs

Run it after changing an effect, the pre/post-processing or the smoothing (both sides must change
together); tests/test_android_core.py recomputes them the same way and fails while the committed
ones are stale. The inputs were written once from a real face:

    write_golden_inputs(GOLDEN_DIR, *golden_face(GOLDEN_STEM))  # image + logits (once)

Golden files (android_demo/core/src/test/resources/golden/), plain formats that JUnit reads
without any library: PPM (P6) for RGB pictures, PGM (P5) for masks, raw little-endian NHWC
tensors (.f32 float32, .i8 int8, .u16 uint16 soft alphas), gzipped where large, and JSON
(cases.json, sidecars).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facesegtool.labels import CLASSES, PALETTE  # noqa: E402
from facesegtool.predict.effects import (EFFECT_CLASSES, EXP_TABLE, Effects, apply_effects, class_weights,  # noqa: E402
                                         colour_mask, overlay, resize_mask_nearest, soft_alphas)

GOLDEN_DIR = REPO / "android_demo" / "core" / "src" / "test" / "resources" / "golden"


# --- plain file formats ------------------------------------------------------------------------


def write_pnm(path: Path, pixels: np.ndarray) -> None:
    """HxWx3 uint8 -> binary PPM (P6); HxW uint8 -> binary PGM (P5)."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    magic = b"P6" if pixels.ndim == 3 else b"P5"
    h, w = pixels.shape[:2]
    path.write_bytes(magic + f"\n{w} {h}\n255\n".encode() + pixels.tobytes())


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


class _SidecarOnly:
    """What TFLiteModel.preprocess reads, from a sidecar alone (the goldens have no .tflite):
    the golden input tensors are made by the very code predict and verify run."""

    def __init__(self, sidecar: dict):
        inp = sidecar["input"]
        self.sidecar = sidecar
        self.path = Path(sidecar.get("tflite") or "golden.tflite")
        self.layout = inp.get("layout", "NHWC")
        self.size = tuple(inp["shape"][1:3]) if self.layout == "NHWC" else tuple(inp["shape"][2:4])
        q = inp.get("quantization")
        self.input_details = {"dtype": np.dtype(inp["dtype"]), "quantization": (q["scale"], q["zero_point"]) if q else (0.0, 0)}


def preprocess_from_sidecar(rgb: np.ndarray, sidecar: dict) -> np.ndarray:
    from facesegtool.tflite_runner import TFLiteModel

    return TFLiteModel.preprocess(_SidecarOnly(sidecar), rgb)  # type: ignore[arg-type]


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
    (golden_dir / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
    written.append(golden_dir / "cases.json")
    return written


def _steady_expectations(golden_dir: Path, cases: dict, size: int) -> list[Path]:
    """What the whole-head merge, the int8 dequantization and the smoothing make of their inputs."""
    from facesegtool.predict.head import merge_head
    from facesegtool.tflite_runner import TFLiteModel
    from facesegtool.predict.video import ScoreSmoother

    n = len(CLASSES)
    detail = read_tensor(golden_dir / "logits_float32.f32.gz", "float32", (1, size, size, n))[0]
    wide = read_tensor(golden_dir / "logits_wide_float32.f32.gz", "float32", (1, size, size, n))[0]
    merged = merge_head(detail, wide)
    write_pnm(golden_dir / "head_mask.pgm", merged.argmax(-1).astype(np.uint8))
    # Dequantized int8 output, the scores the phone smooths and merges.
    sidecar = json.loads((golden_dir / "sidecar_int8.json").read_text())
    q = sidecar["output"]["quantization"]
    q8 = read_tensor(golden_dir / "logits_int8.i8.gz", "int8", (1, size, size, n))
    scores = TFLiteModel.dequantize(None, q8, {"quantization": (q["scale"], q["zero_point"])})  # type: ignore[arg-type]
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
    weights = class_weights(coarse)
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
