"""What did export cost? Run PyTorch and each exported .tflite on the same real faces and compare.

Per model: macro IoU against the ground truth for PyTorch and TFLite and the drop (in IoU
points), the drop per class, how far the two masks agree, and how far the logits differ.
A gate fails the run when a drop exceeds --max-drop (or a class's --max-class-drop).
When an int8 model fails, int8_diagnosis names the layers where it leaves float, and can
re-export with remedies and measure each.

Both sides see the same pixels: each face is resized once to the model size, then the
PyTorch side is fed per the checkpoint's input contract (NCHW) and TFLite per its sidecar.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import torch
from tqdm import tqdm

from .checkpoint import REPO_ROOT, default_checkpoint, load_model
from .data.celebamask import CelebAMaskIndex
from .data.dataset import FaceParsingDataset, to_input_tensor
from .data.source import DataError, images_in, read_rgb
from .metrics import ConfusionMeter, SegmentationScores
from .tflite_runner import TFLiteModel

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "celebamask-mini"
DEFAULT_EXPORT_DIR = Path("exports") / "default"  # where `facesegtool export` puts the shipped model
VARIANT_ORDER = ("fp32", "fp16", "dynamic", "int8")
N_EXAMPLES = 4  # faces per model in the report's picture


class VerifyError(ValueError):
    """Bad input to verify (the message names the file and what to do)."""


# --- faces ------------------------------------------------------------------------------------


@dataclass
class Face:
    name: str
    image: np.ndarray  # size x size x 3 uint8 RGB
    mask: np.ndarray | None  # size x size uint8 class index, 255 = ignore; None without labels


@dataclass
class FaceSet:
    """Faces of one data folder, read lazily and resized to the model size."""

    root: Path
    kind: str  # "prepared" | "celebamask" | "images"
    split: str | None  # None: every image of the folder
    names: list[str]
    size: int
    _read: Callable[[int], tuple[np.ndarray, np.ndarray | None]]  # i -> (RGB, class mask or None), any size

    @property
    def has_masks(self) -> bool:
        return self.kind != "images"

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[Face]:
        for i, name in enumerate(self.names):
            try:
                image, mask = self._read(i)
            except DataError as exc:
                raise VerifyError(str(exc)) from exc
            image, mask = _square_resize(image, mask, self.size)
            yield Face(name, image, mask)


def _square_resize(image: np.ndarray, mask: np.ndarray | None, size: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Centre square crop, then resize as training does (area when shrinking, nearest for masks)."""
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    image = image[top : top + side, left : left + side]
    if side != size:
        image = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
    if mask is not None:
        mask = mask[top : top + side, left : left + side]
        if side != size:
            mask = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(image), mask


def open_faces(data_dir: str | Path | None, split: str = "val", size: int = 256, limit: int | None = None) -> FaceSet:
    """The faces to verify on: a prepared dir, a CelebAMask-style images/ + masks/ folder, or plain images.

    data_dir None: the shared CelebAMask val split (../shared/data/celebamask-mini), if present.
    A folder's own SPLIT.txt selects its images; without one, every image is used.
    """
    if data_dir is None:
        if not DEFAULT_DATA.is_dir():
            raise VerifyError(f"no faces to verify on: {DEFAULT_DATA} is absent; pass --data DIR")
        data_dir = DEFAULT_DATA
    root = Path(data_dir)
    if not root.is_dir():
        raise VerifyError(f"{root}: no such data folder")
    try:
        if (root / "manifest.json").is_file():
            dataset = FaceParsingDataset(root, split, size=size)
            kind, names, used_split = "prepared", dataset.names, split
            read = dataset.read
        elif (root / "images").is_dir() and (root / "masks").is_dir():
            source = CelebAMaskIndex(root)
            samples = source.samples()
            used_split = split if any(s.split for s in samples) else None
            samples = [s for s in samples if used_split is None or s.split == used_split]
            unlabelled = [s for s in samples if s.problem]
            if unlabelled:
                raise VerifyError(
                    f"{root / 'masks'}: no mask for {len(unlabelled)} of {len(samples)} images, "
                    f"e.g. {unlabelled[0].problem[1]}"
                )
            kind, names = "celebamask", [s.name for s in samples]
            read = lambda i: source.load(samples[i])[:2]  # noqa: E731
        else:
            paths = images_in(root / "images" if (root / "images").is_dir() else root)
            listed = root / f"{split}.txt"
            used_split = split if listed.is_file() else None
            if used_split:
                wanted = {Path(n).stem for n in listed.read_text().split()}
                paths = [p for p in paths if p.stem in wanted]
            kind, names = "images", [p.stem for p in paths]
            read = lambda i: (read_rgb(paths[i]), None)  # noqa: E731
    except VerifyError:
        raise
    except ValueError as exc:  # PreparedDataError, DataError: the message already names file and problem
        raise VerifyError(str(exc)) from exc
    if limit is not None:
        names = names[:limit]
    if not names:
        raise VerifyError(f"{root}: no images to verify on" + (f" in split '{used_split}'" if used_split else ""))
    return FaceSet(root, kind, used_split, names, size, read)


# --- models -----------------------------------------------------------------------------------


def find_models(tflite: list[str | Path] | None = None, export_dir: str | Path | None = None) -> list[Path]:
    """The .tflite files to verify, fp32 / fp16 / dynamic / int8 first."""
    if tflite:
        paths = [Path(p) for p in tflite]
        for p in paths:
            if not p.is_file():
                raise VerifyError(f"{p}: no such .tflite file")
        return paths
    folder = Path(export_dir) if export_dir is not None else DEFAULT_EXPORT_DIR
    if not folder.is_dir():
        raise VerifyError(f"{folder}: no export folder; run `facesegtool export --quant all` or pass --tflite FILE")
    paths = sorted(folder.glob("*.tflite"))
    if not paths:
        raise VerifyError(f"{folder}: no .tflite files; run `facesegtool export --quant all --out {folder}`")

    def order(p: Path) -> tuple[int, str]:
        hits = [i for i, v in enumerate(VARIANT_ORDER) if p.stem.endswith(v)]
        return (hits[0] if hits else len(VARIANT_ORDER), p.name)

    return sorted(paths, key=order)


def check_contract(model: TFLiteModel, ckpt: dict, checkpoint: Path) -> None:
    """The .tflite must take what the checkpoint takes and give its classes, or the comparison is meaningless."""
    inp, contract = model.sidecar["input"], ckpt["input"]
    problems = []
    if model.classes != list(ckpt["classes"]):
        problems.append(f"classes {len(model.classes)} {model.classes} vs {len(ckpt['classes'])} {list(ckpt['classes'])}")
    out_channels = model.output_details["shape"][-1 if model.sidecar["output"].get("layout", "NHWC") == "NHWC" else 1]
    if out_channels != len(ckpt["classes"]):
        problems.append(f"{out_channels} output channels vs {len(ckpt['classes'])} classes")
    if model.size != (contract["size"], contract["size"]):
        problems.append(f"input {model.size[0]}x{model.size[1]} vs {contract['size']}x{contract['size']}")
    if inp.get("channel_order", "RGB").upper() != contract.get("channel_order", "RGB").upper():
        problems.append(f"channel order {inp.get('channel_order')} vs {contract.get('channel_order')}")
    for key in ("mean", "std"):
        if not np.allclose(inp[key], contract[key], atol=1e-6):
            problems.append(f"{key} {inp[key]} vs {contract[key]}")
    if not np.isclose(float(inp.get("scale", 255.0)), float(contract.get("scale", 255.0))):
        problems.append(f"scale {inp.get('scale')} vs {contract.get('scale')}")
    if problems:
        raise VerifyError(
            f"{model.path.name} does not match checkpoint {checkpoint}: {'; '.join(problems)}. "
            "Verify it against the checkpoint it was exported from (--checkpoint)."
        )


def resolve_checkpoint(checkpoint: str | Path | None, models: list[TFLiteModel]) -> Path:
    """--checkpoint, else the one the models were exported from (sidecar), else the shipped default."""
    if checkpoint is not None:
        return Path(checkpoint)
    sources = {m.sidecar.get("source_checkpoint") for m in models}
    if len(sources) == 1:
        source = sources.pop()
        if source and Path(source).is_file():
            return Path(source)
    return default_checkpoint()


def torch_logits(model: torch.nn.Module, rgb: np.ndarray, contract: dict) -> np.ndarray:
    """H x W x C float32 logits of the PyTorch model for one RGB uint8 image."""
    with torch.inference_mode():
        return model(to_input_tensor(rgb, contract)[None])[0].permute(1, 2, 0).numpy()


# --- results ----------------------------------------------------------------------------------


@dataclass
class Example:
    """One face for the report's picture."""

    name: str
    image: np.ndarray
    truth: np.ndarray | None
    torch_mask: np.ndarray
    tflite_mask: np.ndarray
    disagreement: float  # fraction of pixels where the masks differ


def _points(x: float) -> float:
    return round(100.0 * x, 4)


@dataclass
class ModelResult:
    path: Path
    variant: str
    torch: SegmentationScores | None  # PyTorch vs truth (same for every model; kept for the drop)
    tflite: SegmentationScores | None  # TFLite vs truth
    agreement: SegmentationScores  # TFLite mask scored against the PyTorch mask
    logit_max_abs: float
    logit_mean_abs: float
    seconds: float
    max_drop: float
    max_class_drop: float | None
    examples: list[Example] = field(default_factory=list)
    diagnosis: dict | None = None
    remedies: list[dict] | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def drop(self) -> float | None:
        """Macro IoU (background included) lost by TFLite, in IoU points (1 point = 0.01)."""
        return _points(self.torch.macro_iou - self.tflite.macro_iou) if self.tflite is not None else None

    @property
    def drop_no_bg(self) -> float | None:
        return _points(self.torch.macro_iou_no_bg - self.tflite.macro_iou_no_bg) if self.tflite is not None else None

    @property
    def class_drops(self) -> dict[str, float | None]:
        """IoU points lost per class; None where the class is in neither side's masks nor the truth."""
        if self.tflite is None:
            return {}
        drops = self.torch.iou - self.tflite.iou
        return {name: (None if np.isnan(d) else _points(d)) for name, d in zip(self.torch.class_names, drops)}

    @property
    def class_threshold(self) -> float:
        return self.max_class_drop if self.max_class_drop is not None else self.max_drop

    @property
    def flagged_classes(self) -> dict[str, float]:
        """Classes whose drop exceeds the class gate (or the macro gate, when no class gate is set)."""
        limit = _points(self.class_threshold)
        return {n: d for n, d in self.class_drops.items() if d is not None and d > limit}

    @property
    def failures(self) -> list[str]:
        """Why this model fails the gate (empty when it passes or there is no ground truth)."""
        if self.tflite is None:
            return []
        reasons = []
        if self.drop > _points(self.max_drop):
            reasons.append(f"macro IoU drop {self.drop:.2f} points > {_points(self.max_drop):.2f}")
        if self.max_class_drop is not None and self.flagged_classes:
            listed = ", ".join(f"{n} {d:.2f}" for n, d in self.flagged_classes.items())
            reasons.append(f"class IoU drop > {_points(self.max_class_drop):.2f} points: {listed}")
        return reasons

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {
            "model": self.name,
            "path": str(self.path),
            "variant": self.variant,
            "passed": self.passed,
            "failures": self.failures,
            "macro_iou_torch": None if self.tflite is None else round(self.torch.macro_iou, 6),
            "macro_iou_tflite": None if self.tflite is None else round(self.tflite.macro_iou, 6),
            "macro_iou_drop_points": self.drop,
            "macro_iou_no_bg_torch": None if self.tflite is None else round(self.torch.macro_iou_no_bg, 6),
            "macro_iou_no_bg_tflite": None if self.tflite is None else round(self.tflite.macro_iou_no_bg, 6),
            "macro_iou_no_bg_drop_points": self.drop_no_bg,
            "class_iou_drop_points": self.class_drops,
            "flagged_classes": self.flagged_classes,
            "pixel_agreement": round(self.agreement.pixel_accuracy, 6),
            "agreement_mean_iou": round(self.agreement.macro_iou, 6),
            "logits_max_abs_diff": round(self.logit_max_abs, 6),
            "logits_mean_abs_diff": round(self.logit_mean_abs, 6),
            "tflite_scores": None if self.tflite is None else self.tflite.as_dict(),
            "seconds": round(self.seconds, 2),
            "diagnosis": self.diagnosis,
            "remedies": self.remedies,
        }


@dataclass
class VerifyResult:
    checkpoint: Path
    faces: FaceSet
    torch: SegmentationScores | None
    models: list[ModelResult]
    max_drop: float
    max_class_drop: float | None
    notes: list[str] = field(default_factory=list)

    @property
    def gate_applied(self) -> bool:
        return self.faces.has_masks

    @property
    def failures(self) -> list[str]:
        return [f"{m.name} ({m.variant}): {'; '.join(m.failures)}" for m in self.models if m.failures]

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {
            "format": "facesegtool-verify",
            "version": 1,
            "passed": self.passed,
            "gate_applied": self.gate_applied,
            "failures": self.failures,
            "max_drop_points": _points(self.max_drop),
            "max_class_drop_points": None if self.max_class_drop is None else _points(self.max_class_drop),
            "checkpoint": str(self.checkpoint),
            "data": {
                "root": str(self.faces.root),
                "kind": self.faces.kind,
                "split": self.faces.split,
                "faces": len(self.faces),
                "size": self.faces.size,
                "ground_truth": self.faces.has_masks,
            },
            "torch_scores": None if self.torch is None else self.torch.as_dict(),
            "models": [m.to_dict() for m in self.models],
            "notes": self.notes,
        }

    def summary(self) -> str:
        from .verify_report import summary_text

        return summary_text(self)


# --- the comparison ---------------------------------------------------------------------------


class _ModelMeter:
    """Accumulates one TFLite model's scores over the faces, and keeps the faces it gets most wrong."""

    def __init__(self, model: TFLiteModel, n_examples: int):
        self.model = model
        self.truth = ConfusionMeter()
        self.agreement = ConfusionMeter()
        self.logit_max = 0.0
        self.logit_sum = 0.0
        self.logit_count = 0
        self.seconds = 0.0
        self.n_examples = n_examples
        self._heap: list[tuple[float, int, Example]] = []
        self._seen = 0

    def update(self, face: Face, reference: np.ndarray, reference_mask: np.ndarray) -> None:
        start = time.perf_counter()
        logits = self.model.logits(face.image)
        self.seconds += time.perf_counter() - start
        mask = logits.argmax(-1).astype(np.uint8)
        diff = np.abs(logits - reference)
        self.logit_max = max(self.logit_max, float(diff.max()))
        self.logit_sum += float(diff.sum(dtype=np.float64))
        self.logit_count += diff.size
        self.agreement.update(reference_mask, mask)
        if face.mask is not None:
            self.truth.update(face.mask, mask)
        if not self.n_examples:
            return
        # Keep the faces where the two masks differ most: that is where a reader should look.
        disagreement = float((mask != reference_mask).mean())
        example = Example(face.name, face.image, face.mask, reference_mask, mask, disagreement)
        item = (disagreement, -self._seen, example)
        self._seen += 1
        if len(self._heap) < self.n_examples:
            heapq.heappush(self._heap, item)
        elif item[:2] > self._heap[0][:2]:
            heapq.heapreplace(self._heap, item)

    def result(self, torch_scores: SegmentationScores | None, max_drop: float, max_class_drop: float | None) -> ModelResult:
        return ModelResult(
            path=self.model.path,
            variant=self.model.variant,
            torch=torch_scores,
            tflite=self.truth.scores() if torch_scores is not None else None,
            agreement=self.agreement.scores(),
            logit_max_abs=self.logit_max,
            logit_mean_abs=self.logit_sum / max(self.logit_count, 1),
            seconds=self.seconds,
            max_drop=max_drop,
            max_class_drop=max_class_drop,
            examples=[e for _, _, e in sorted(self._heap, key=lambda t: t[:2], reverse=True)],
        )


def compare(
    net: torch.nn.Module,
    ckpt: dict,
    models: list[TFLiteModel],
    faces: FaceSet,
    max_drop: float = 0.01,
    max_class_drop: float | None = None,
    n_examples: int = N_EXAMPLES,
    progress: bool = True,
) -> tuple[SegmentationScores | None, list[ModelResult]]:
    """Run PyTorch once per face and every TFLite model on the same face; score all of them."""
    torch_meter = ConfusionMeter()
    meters = [_ModelMeter(m, n_examples) for m in models]
    for face in tqdm(faces, total=len(faces), desc="verify", unit="face", disable=not progress, leave=False):
        reference = torch_logits(net, face.image, ckpt["input"])
        reference_mask = reference.argmax(-1).astype(np.uint8)
        if face.mask is not None:
            torch_meter.update(face.mask, reference_mask)
        for meter in meters:
            meter.update(face, reference, reference_mask)
    torch_scores = torch_meter.scores() if faces.has_masks else None
    return torch_scores, [m.result(torch_scores, max_drop, max_class_drop) for m in meters]


def verify(
    checkpoint: str | Path | None = None,
    tflite: list[str | Path] | None = None,
    export_dir: str | Path | None = None,
    data_dir: str | Path | None = None,
    split: str = "val",
    max_drop: float = 0.01,
    max_class_drop: float | None = None,
    report_dir: str | Path | None = None,
    limit: int | None = None,
    num_threads: int | None = None,
    diagnose: bool | None = None,
    try_remedies: bool = False,
    progress: bool = True,
) -> VerifyResult:
    """Compare every exported model with its PyTorch checkpoint on real faces; see the module doc.

    max_drop / max_class_drop are IoU fractions (0.01 = 1 point). diagnose: None = only for int8
    models that fail the gate, True = for every int8 model, False = never. try_remedies re-exports
    each diagnosed model with the exporter's remedies and measures them (slow: one export each).
    """
    if max_drop < 0 or (max_class_drop is not None and max_class_drop < 0):
        raise VerifyError("--max-drop and --max-class-drop are IoU fractions >= 0 (0.01 = 1 point)")
    if limit is not None and limit < 1:
        raise VerifyError("--limit must be at least 1")
    models = [TFLiteModel(p, num_threads=num_threads) for p in find_models(tflite, export_dir)]
    checkpoint = resolve_checkpoint(checkpoint, models)
    net, ckpt = load_model(checkpoint)
    for model in models:
        check_contract(model, ckpt, checkpoint)
    faces = open_faces(data_dir, split, size=int(ckpt["input"]["size"]), limit=limit)
    torch_scores, results = compare(net, ckpt, models, faces, max_drop, max_class_drop, progress=progress)
    result = VerifyResult(checkpoint, faces, torch_scores, results, max_drop, max_class_drop)
    if not faces.has_masks:
        result.notes.append(
            f"{faces.root} has no masks: only PyTorch-vs-TFLite agreement is reported and the IoU gate is not applied"
        )

    if diagnose is not False or try_remedies:
        from .int8_diagnosis import diagnose_results

        diagnose_results(result, net, ckpt, models, force=bool(diagnose) or try_remedies, try_remedies=try_remedies,
                         num_threads=num_threads, progress=progress)
    if report_dir is not None:
        from .verify_report import write_report

        write_report(result, report_dir)
    return result
