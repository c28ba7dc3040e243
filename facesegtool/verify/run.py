"""verify() itself: load the models and the checkpoint, compare on the faces, diagnose, report."""

from __future__ import annotations

from pathlib import Path

from ..atomic import check_writable_dir
from ..checkpoint import load_model
from ..export.op_analysis import gpu_warning
from ..tflite_runner import TFLiteModel
from .compare import VerifyResult, check_contract, compare, find_models, resolve_checkpoint
from .conversion import AGREEMENT_FLOOR, diagnose_conversions
from .faces import VerifyError, open_faces
from .int8_diagnosis import diagnose_results
from .report import write_report


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

    max_drop / max_class_drop are IoU fractions (0.01 = 1 point). diagnose: None = int8 models that
    fail the gate, True = every int8 and every fp32 model, False = never. An fp32 diagnosis bisects
    the export's ONNX graph for the first node that converts wrongly (one conversion when all is
    well, ~log2(nodes) more when not; without diagnose an fp32 model below 99.9 % agreement gets a
    note). try_remedies re-exports each diagnosed int8 model with its remedies and measures them (slow).
    """
    if max_drop < 0 or (max_class_drop is not None and max_class_drop < 0):
        raise VerifyError("--max-drop and --max-class-drop are IoU fractions >= 0 (0.01 = 1 point)")
    if limit is not None and limit < 1:
        raise VerifyError("--limit must be at least 1")
    if report_dir is not None:
        check_writable_dir(report_dir, "--report")  # now, not after all the measuring
    models = [TFLiteModel(p, num_threads=num_threads) for p in find_models(tflite, export_dir)]
    checkpoint = resolve_checkpoint(checkpoint, models)
    net, ckpt = load_model(checkpoint)
    for model in models:
        check_contract(model, ckpt, checkpoint)
    faces = open_faces(data_dir, split, size=int(ckpt["input"]["size"]), limit=limit)
    torch_scores, results = compare(net, ckpt, models, faces, max_drop, max_class_drop, progress=progress)
    result = VerifyResult(checkpoint, faces, torch_scores, results, max_drop, max_class_drop)
    if faces.note:
        result.notes.append(faces.note)
    if not faces.has_masks:
        result.notes.append(
            f"{faces.root} has no masks: only PyTorch-vs-TFLite agreement is reported and the IoU gate is not applied"
        )

    result.notes += [w for m in results if m.variant == "fp16" and (w := gpu_warning(m.name, m.graph))]

    if diagnose is not False or try_remedies:
        diagnose_results(result, net, ckpt, models, force=bool(diagnose) or try_remedies, try_remedies=try_remedies,
                         num_threads=num_threads, progress=progress)
    if diagnose:
        diagnose_conversions(result, models, progress=progress)
    else:
        result.notes += [f"{m.name}: fp32 agrees with PyTorch on only {100 * m.agreement.pixel_accuracy:.2f} % of "
                         "pixels: the conversion broke somewhere; `verify --diagnose` names the ONNX node"
                         for m in results if m.variant == "fp32" and m.agreement.pixel_accuracy < AGREEMENT_FLOOR]
    if report_dir is not None:
        write_report(result, report_dir)
    return result
