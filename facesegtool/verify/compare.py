"""The comparison: PyTorch and every .tflite on the same faces, scored against the truth and each other.

Per model: macro IoU against the ground truth for PyTorch and TFLite and the drop (in IoU
points), the drop per class, how far the two masks agree, and how far the logits differ.
A gate fails the run when a drop exceeds max_drop (or a class's max_class_drop).
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from ..export.op_analysis import analyze_ops
from ..export.variants import file_rank
from ..metrics import ConfusionMeter, SegmentationScores
from ..model_spec import mask_in_our_classes
from ..segmenter import TFLiteSegmenter, TorchSegmenter

if TYPE_CHECKING:
    from ..model_source import LoadedModel
from ..tflite_runner import TFLiteModel
from ..data.faces import Face, FaceSet
from ..metrics import AGREEMENT_FLOOR, AGREEMENT_FLOORS
from ..data.faces import FaceSetError as VerifyError  # one error for bad faces and bad verify input
from .mediapipe_check import failure as mediapipe_failure


DEFAULT_EXPORT_DIR = Path("exports") / "default"  # where `facesegtool export` puts the shipped model
N_EXAMPLES = 4  # faces per model in the report's picture


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

    return sorted(paths, key=lambda p: (file_rank(p), p.name))


def check_contract(model: TFLiteModel, ckpt: dict, checkpoint: Path) -> None:
    """The .tflite must take what the checkpoint takes and give its classes, or the comparison is meaningless."""
    norm, contract = model.contract.normalization, ckpt["input"]
    problems = []
    if model.classes != list(ckpt["classes"]):
        problems.append(f"classes {len(model.classes)} {model.classes} vs {len(ckpt['classes'])} {list(ckpt['classes'])}")
    out_channels = model.output_details["shape"][-1 if model.contract.output.layout == "NHWC" else 1]
    if out_channels != len(ckpt["classes"]):
        problems.append(f"{out_channels} output channels vs {len(ckpt['classes'])} classes")
    if model.size != (contract["size"], contract["size"]):
        problems.append(f"input {model.size[0]}x{model.size[1]} vs {contract['size']}x{contract['size']}")
    # A baked graph flips a BGR model's channels itself, so the file takes RGB whatever the model's order.
    expected_order = "RGB" if norm.baked else contract.get("channel_order", "RGB").upper()
    if norm.channel_order != expected_order:
        problems.append(f"channel order {norm.channel_order} vs {expected_order}")
    for key in ("mean", "std"):
        if not np.allclose(getattr(norm, key), contract[key], atol=1e-6):
            problems.append(f"{key} {list(getattr(norm, key))} vs {contract[key]}")
    if not np.isclose(norm.scale, float(contract.get("scale", 255.0))):
        problems.append(f"scale {norm.scale} vs {contract.get('scale')}")
    if problems:
        raise VerifyError(
            f"{model.path.name} does not match checkpoint {checkpoint}: {'; '.join(problems)}. "
            "Verify it against the checkpoint it was exported from (--checkpoint)."
        )


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
    diagnosis: dict | None = None  # int8: where it leaves float (int8_diagnosis.py)
    remedies: list[dict] | None = None
    conversion: dict | None = None  # fp32: the first ONNX node that converts wrongly (conversion.py)
    graph: dict = field(default_factory=dict)  # op histogram and GPU-delegate refusals (export/op_analysis.py)
    nonfinite_faces: int = 0  # faces on which this model's scores hold NaN or Inf: no mask, whatever the IoU
    reference_nonfinite_faces: int = 0  # the same for the reference the model is compared with
    faces: int = 0
    mediapipe: dict | None = None  # the file in MediaPipe's stock ImageSegmenter (mediapipe_check.py)

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
        """Why this model fails the gate (empty when it passes; without ground truth only agreement counts)."""
        reasons = []
        if self.reference_nonfinite_faces:
            reasons.append(f"the reference model's scores are NaN or Inf on {self.reference_nonfinite_faces} of "
                           f"{self.faces} faces: it has no mask to compare with")
        if self.nonfinite_faces:
            reasons.append(f"its scores are NaN or Inf on {self.nonfinite_faces} of {self.faces} faces")
        floor = AGREEMENT_FLOORS.get(self.variant)
        if floor is not None and self.agreement.pixel_accuracy < floor:
            why = ("the conversion is wrong, not rounded" if self.variant == "fp32" else
                   "quantization changes the mask on too many pixels (`verify --try-remedies` measures fixes)")
            reasons.append(f"{self.variant} argmax agreement {100 * self.agreement.pixel_accuracy:.2f} % < "
                           f"{100 * floor:.1f} %: {why}")
        if (why := mediapipe_failure(self.mediapipe)) is not None:
            reasons.append(why)
        if self.tflite is None:
            return reasons
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
            "nonfinite_faces": self.nonfinite_faces,
            "reference_nonfinite_faces": self.reference_nonfinite_faces,
            "diagnosis": self.diagnosis,
            "conversion_check": self.conversion,
            "graph": self.graph,
            "remedies": self.remedies,
            "mediapipe": self.mediapipe,
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
    source: dict = field(default_factory=dict)  # model_source.LoadedModel.describe(): file, format, reference
    labels: list[str] = field(default_factory=list)  # the model's own classes (agreement is over these)
    palette: list[list[int]] = field(default_factory=list)  # RGB per label, for the pictures

    @property
    def gate_applied(self) -> bool:
        return self.faces.has_masks and self.torch is not None

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
            "source": self.source,
            "reference": self.source.get("reference", "pytorch"),
            "labels": self.labels,
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


def layout_verdicts(results: list[ModelResult], models: list[TFLiteModel]) -> list[str]:
    """Confirm or clear each possible layout fault export warned of (tensors onnx2tf lays out by shape alone),
    from the agreement measured here: fp32 decides; a quantized file alone clears it only above its floor."""
    notes = []
    has_fp32 = any(r.variant == "fp32" for r in results)
    for result, model in zip(results, models):
        places = (model.contract.raw.get("export") or {}).get("possible_layout_faults") or []
        if not places or (has_fp32 and result.variant != "fp32"):
            continue
        where = ", ".join(f"{p['node']} -> {'x'.join(map(str, p['shape']))}" for p in places[:3])
        agreement, floor = result.agreement.pixel_accuracy, AGREEMENT_FLOORS.get(result.variant, AGREEMENT_FLOOR)
        if agreement >= floor:
            notes.append(f"layout: {result.name}: the possible layout fault at {where} is cleared: it agrees with the "
                         f"reference on {100 * agreement:.2f} % of pixels")
        elif result.variant == "fp32":
            notes.append(f"layout: {result.name}: the possible layout fault at {where} is confirmed likely: fp32 "
                         f"agrees on only {100 * agreement:.2f} %; `verify --diagnose` names the node, another --size "
                         "avoids it")
        else:
            notes.append(f"layout: {result.name}: at {where} a layout fault is possible and agreement is "
                         f"{100 * agreement:.2f} %: export fp32 too and verify it to tell layout from quantization")
    return notes


# --- the comparison ---------------------------------------------------------------------------


class _ModelMeter:
    """Accumulates one TFLite model's scores over the faces, and keeps the faces it gets most wrong."""

    def __init__(self, model: TFLiteModel, n_examples: int, labels: list[str], lut: np.ndarray | None):
        self.model = model
        self.segmenter = TFLiteSegmenter(model)
        self.lut = lut  # model class -> our class, for scoring against our labelled faces (None: identity)
        self.truth = ConfusionMeter()
        self.agreement = ConfusionMeter(len(labels), class_names=labels)
        self.logit_max = 0.0
        self.logit_sum = 0.0
        self.logit_count = 0
        self.seconds = 0.0
        self.n_examples = n_examples
        self._heap: list[tuple[float, int, Example]] = []
        self._seen = 0
        self.faces = 0
        self.nonfinite = 0
        self.reference_nonfinite = 0

    def update(self, face: Face, reference: np.ndarray, reference_mask: np.ndarray) -> None:
        start = time.perf_counter()
        logits = self.segmenter.input_scores(face.image)
        self.seconds += time.perf_counter() - start
        self.faces += 1
        self.nonfinite += not np.isfinite(logits).all()
        self.reference_nonfinite += not np.isfinite(reference).all()
        mask = logits.argmax(-1).astype(np.uint8)
        diff = np.abs(np.nan_to_num(logits) - np.nan_to_num(reference))  # NaN scores fail the gate, not the report
        self.logit_max = max(self.logit_max, float(diff.max()))
        self.logit_sum += float(diff.sum(dtype=np.float64))
        self.logit_count += diff.size
        self.agreement.update(reference_mask, mask)
        if face.mask is not None:
            self.truth.update(face.mask, mask_in_our_classes(mask, self.lut))
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
            # What the export recorded; older sidecars lack it, and the analyzer takes milliseconds.
            graph=self.model.contract.raw.get("graph") or analyze_ops(self.model.path),
            nonfinite_faces=self.nonfinite,
            reference_nonfinite_faces=self.reference_nonfinite,
            faces=self.faces,
        )


def compare(
    source: "LoadedModel",
    models: list[TFLiteModel],
    faces: FaceSet,
    max_drop: float = 0.01,
    max_class_drop: float | None = None,
    n_examples: int = N_EXAMPLES,
    progress: bool = True,
) -> tuple[SegmentationScores | None, list[ModelResult]]:
    """Run the reference (PyTorch, or ONNX Runtime for an ONNX source) once per face and every TFLite model
    on the same face; score all of them: against each other over the model's own classes, and against the
    truth in our 11 classes (through the model's mapping)."""
    lut = None if source.spec.is_ours else source.spec.lut()
    torch_meter = ConfusionMeter()
    meters = [_ModelMeter(m, n_examples, source.classes, lut) for m in models]
    reference_model = TorchSegmenter(source=source)
    for face in tqdm(faces, total=len(faces), desc="verify", unit="face", disable=not progress, leave=False):
        reference = reference_model.input_scores(face.image)
        reference_mask = reference.argmax(-1).astype(np.uint8)
        if face.mask is not None:
            torch_meter.update(face.mask, mask_in_our_classes(reference_mask, lut))
        for meter in meters:
            meter.update(face, reference, reference_mask)
    has_truth = faces.has_masks and (lut is None or source.spec.has_mapping)
    torch_scores = torch_meter.scores() if has_truth else None
    return torch_scores, [m.result(torch_scores, max_drop, max_class_drop) for m in meters]
