"""The Android demo's two links to the Python side: installing a model into its assets, and the
golden files that prove its plain-Java core computes what the Python code computes.

    install_model("exports/default/model_int8.tflite")      # -> android_demo/app/src/main/assets/
    write_golden_inputs(GOLDEN_DIR, *golden_face(GOLDEN_STEM))  # image + logits from a real face (once)
    write_golden_expectations(GOLDEN_DIR)                   # what Python computes from them

Golden files (android_demo/core/src/test/resources/golden/), plain formats that JUnit reads
without any library: PPM (P6) for RGB pictures, PGM (P5) for masks, raw little-endian NHWC
tensors (.f32 float32, .i8 int8, .u16 uint16 soft alphas), gzipped where large, and JSON
(cases.json, sidecars).
Inputs are written once from a real face; expectations are recomputed from the committed
inputs by tests/test_android_core.py, so a change on either side shows.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .predict.effects import (EFFECT_CLASSES, EXP_TABLE, Effects, apply_effects, class_weights, colour_mask, overlay,
                              resize_mask_nearest, soft_alphas)
from .labels import CLASSES, PALETTE

REPO_ROOT = Path(__file__).resolve().parent.parent
APP_DIR = REPO_ROOT / "android_demo"
GOLDEN_DIR = APP_DIR / "core" / "src" / "test" / "resources" / "golden"
ASSET_MODEL = "model.tflite"  # the app loads these two names from its assets
ASSET_SIDECAR = "model.json"


class AndroidError(ValueError):
    pass


# --- install-model -----------------------------------------------------------------------------


def _atomic_copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


# Tensor types the app's ModelIO can feed and read (fillInput / argmax / scores).
APP_IO_DTYPES = ("float32", "int8", "uint8")


def install_model(tflite: str | Path, app_dir: str | Path = APP_DIR) -> tuple[Path, Path]:
    """Copy FILE.tflite and its sidecar FILE.json into the app's assets as model.tflite / model.json.

    Checks first, so that the app never meets a model it cannot run on its first frame: the sidecar
    is a facesegtool sidecar whose sha256 is the .tflite's; the .tflite loads in the TFLite
    interpreter (a truncated file fails here, even when its sidecar was written for it) and the
    sidecar describes its tensors; its input and output types are ones the app feeds and reads
    (float32, int8, uint8: not an --int16-activations export's int16 I/O).
    """
    from .tflite_runner import TFLiteModel, TFLiteModelError

    tflite = Path(tflite)
    if not tflite.is_file():
        raise AndroidError(f"{tflite}: no such .tflite file")
    try:
        model = TFLiteModel(tflite, num_threads=1)
    except TFLiteModelError as exc:
        raise AndroidError(f"{exc}; the app would fail on it: re-export it with `facesegtool export`") from exc
    except UnicodeDecodeError:
        raise AndroidError(f"{tflite.with_suffix('.json')}: the sidecar is not UTF-8 JSON; re-export the model") from None
    digest = hashlib.sha256(model._content).hexdigest()
    if model.sidecar.get("sha256") and model.sidecar["sha256"] != digest:
        raise AndroidError(f"{tflite}: its sidecar's sha256 is another file's; re-export to get a matching pair")
    io = {"input": np.dtype(model.input_details["dtype"]).name, "output": np.dtype(model.output_details["dtype"]).name}
    bad = {k: v for k, v in io.items() if v not in APP_IO_DTYPES}
    if bad:
        what = ", ".join(f"{k} {v}" for k, v in bad.items())
        raise AndroidError(
            f"{tflite}: {what}: the app feeds and reads only {'/'.join(APP_IO_DTYPES)} tensors; install the fp32, "
            "fp16, dynamic or int8 export (an --int16-activations export keeps int16 I/O, for host use)"
        )
    app = Path(app_dir)
    if not (app / "app").is_dir():
        raise AndroidError(f"{app}: not the android_demo project (no app/ module)")
    assets = app / "app" / "src" / "main" / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    model_dst, sidecar_dst = assets / ASSET_MODEL, assets / ASSET_SIDECAR
    _atomic_copy(tflite, model_dst)
    _atomic_copy(tflite.with_suffix(".json"), sidecar_dst)
    return model_dst, sidecar_dst


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


def _write_tensor(path: Path, tensor: np.ndarray) -> None:
    """Raw little-endian bytes, gzipped (deterministically: no name or time in the header)."""
    raw = np.ascontiguousarray(tensor).astype(tensor.dtype.newbyteorder("<")).tobytes()
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", filename="", mtime=0) as gz:
        gz.write(raw)


def _read_tensor(path: Path, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
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
    _write_tensor(out_dir / "logits_float32.f32.gz", logits)
    _write_tensor(out_dir / "logits_int8.i8.gz", q)
    # The int8 input quantization is what an export of a [-1, 1] model gets: scale 2/255, zp -1.
    q_in = {"scale": 0.007843137718737125, "zero_point": -1}
    for dtype, qi, qo in (("float32", None, None), ("int8", q_in, q_out)):
        text = json.dumps(_sidecar(dtype, qi, qo, w), indent=1)
        (out_dir / f"sidecar_{dtype}.json").write_text(text + "\n")


def write_steady_golden_inputs(out_dir: Path, mask: np.ndarray) -> None:
    """Golden inputs for the whole-head merge and the temporal smoothing, from the golden face's
    ground truth (GOLDEN_SIZE^2):

    * logits_wide_float32: the wide pass, the face's truth shrunk into its window of a wide box
      whose outside mirrors it (hair and skin run past the crop's edges), made noisy as above;
    * frames_float32: GOLDEN_FRAMES frames of SMOOTH_SIZE^2 logits of the same face, each with its
      own noise; frame 3 is the face upside down (a scene cut), frame 4 upright again (another).
    """
    import cv2

    from .predict.head import WIDE, window

    size = mask.shape[0]
    ox, oy = window(size)
    canvas = cv2.copyMakeBorder(mask, oy, WIDE * size - size - oy, ox, WIDE * size - size - ox, cv2.BORDER_REFLECT)
    wide = cv2.resize(canvas, (size, size), interpolation=cv2.INTER_NEAREST)
    _write_tensor(out_dir / "logits_wide_float32.f32.gz", _noisy_logits(wide, seed=1)[None])
    small = cv2.resize(mask, (SMOOTH_SIZE, SMOOTH_SIZE), interpolation=cv2.INTER_NEAREST)
    frames = [_noisy_logits(small[::-1] if t == 3 else small, seed=2 + t) for t in range(GOLDEN_FRAMES)]
    _write_tensor(out_dir / "frames_float32.f32.gz", np.stack(frames))


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
    from .tflite_runner import TFLiteModel

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
        _write_tensor(golden_dir / name, tensor)
        written.append(golden_dir / name)
        suffix = ".f32.gz" if dtype == "float32" else ".i8.gz"
        logits = _read_tensor(golden_dir / f"logits_{dtype}{suffix}", dtype, (1, h, w, len(CLASSES)))
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
    from .predict.head import merge_head
    from .tflite_runner import TFLiteModel
    from .predict.video import ScoreSmoother

    n = len(CLASSES)
    detail = _read_tensor(golden_dir / "logits_float32.f32.gz", "float32", (1, size, size, n))[0]
    wide = _read_tensor(golden_dir / "logits_wide_float32.f32.gz", "float32", (1, size, size, n))[0]
    merged = merge_head(detail, wide)
    write_pnm(golden_dir / "head_mask.pgm", merged.argmax(-1).astype(np.uint8))
    # Dequantized int8 output, the scores the phone smooths and merges.
    sidecar = json.loads((golden_dir / "sidecar_int8.json").read_text())
    q = sidecar["output"]["quantization"]
    q8 = _read_tensor(golden_dir / "logits_int8.i8.gz", "int8", (1, size, size, n))
    scores = TFLiteModel.dequantize(None, q8, {"quantization": (q["scale"], q["zero_point"])})  # type: ignore[arg-type]
    _write_tensor(golden_dir / "scores_int8.f32.gz", scores)
    frames = _read_tensor(golden_dir / "frames_float32.f32.gz", "float32", (GOLDEN_FRAMES, SMOOTH_SIZE, SMOOTH_SIZE, n))
    smoother = ScoreSmoother(GOLDEN_STRENGTH)
    smoothed, restarts = [], []
    for f in frames:
        state = smoother(f)
        smoothed.append(state.argmax(-1).astype(np.uint8))
        restarts.append(smoother.restarts)
    write_pnm(golden_dir / "smooth_masks.pgm", np.concatenate(smoothed, 0))
    _write_tensor(golden_dir / "smooth_last.f32.gz", state)
    cases["head"] = {"detail": "logits_float32.f32.gz", "wide": "logits_wide_float32.f32.gz", "mask": "head_mask.pgm"}
    # Class scores upsampled bilinearly before the argmax (predict.upsample): the model's grid to a
    # photo's size, and a coarse (1/4-like) grid to a non-integer multiple of it.
    from .predict.upsample import upsample_scores

    cases["upsample"] = []
    for name, scores, out_hw in (("upsampled_scores.pgm", detail, GOLDEN_UPSCALE),
                                 ("upsampled_coarse.pgm", frames[0], (4 * SMOOTH_SIZE + 3, 4 * SMOOTH_SIZE - 5))):
        write_pnm(golden_dir / name, upsample_scores(scores, *out_hw).argmax(-1).astype(np.uint8))
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
    from .predict.upsample import upsample_scores

    n, (h, w) = len(CLASSES), image.shape[:2]
    written: list[Path] = []

    def put_alphas(name: str, alphas: dict[str, np.ndarray]) -> str:
        _write_tensor(golden_dir / name, np.stack([alphas[c] for c in EFFECT_CLASSES], -1))
        written.append(golden_dir / name)
        return name

    def put_picture(name: str, pixels: np.ndarray) -> str:
        write_pnm(golden_dir / name, pixels)
        written.append(golden_dir / name)
        return name

    logits = _read_tensor(golden_dir / "logits_float32.f32.gz", "float32", (h, w, n))
    int8 = _read_tensor(golden_dir / "scores_int8.f32.gz", "float32", (h, w, n))
    frames = _read_tensor(golden_dir / "frames_float32.f32.gz", "float32", (GOLDEN_FRAMES, SMOOTH_SIZE, SMOOTH_SIZE, n))
    coarse = frames[SOFT_UP_FRAME]
    # Probabilities exact in any numpy: the coarse frame's integer softmax weights normalised (float64, then float32).
    weights = class_weights(coarse)
    probs = (weights / weights.sum(-1, keepdims=True)).astype(np.float32)
    _write_tensor(golden_dir / "probs_float32.f32.gz", probs)
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
    up = upsample_scores(coarse, h, w)
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

    from .labels import celebamask_lut

    root = data_dir or REPO_ROOT.parent / "shared" / "data" / "celebamask-mini"
    bgr = cv2.imread(str(root / "images" / f"{stem}.jpg"), cv2.IMREAD_COLOR)
    if bgr is None:
        raise AndroidError(f"cannot read {root / 'images' / (stem + '.jpg')}")
    ids = np.array(Image.open(root / "masks" / f"{stem}.png"))  # palette PNG: PIL keeps the indices
    image = cv2.cvtColor(cv2.resize(bgr, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    mask = cv2.resize(celebamask_lut()[ids], (size, size), interpolation=cv2.INTER_NEAREST)
    return image, mask
