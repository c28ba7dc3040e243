"""verify() itself: load the models and the checkpoint, compare on the faces, diagnose, report."""

from __future__ import annotations

from pathlib import Path

from ..atomic import check_writable_dir
from ..contract import exported_from
from ..model_source import LoadedModel, load_exported_source
from ..export.op_analysis import gpu_warning
from ..tflite_runner import TFLiteModel
from ..contract_check import check_contract_on_faces
from .compare import AGREEMENT_FLOOR, VerifyResult, check_contract, compare, find_models, layout_verdicts
from . import mediapipe_check
from .conversion import diagnose_conversions
from ..data.faces import open_faces
from .compare import VerifyError
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
    spec: str | Path | dict | None = None,
    weights: str | Path | None = None,
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
    source = load_reference(checkpoint, models, spec, weights, num_threads)
    checkpoint, net, ckpt = source.path, source.net, source.ckpt
    for model in models:
        check_contract(model, ckpt, checkpoint)
        check_source(model, source)
    faces = open_faces(data_dir, split, size=int(ckpt["input"]["size"]), limit=limit)
    torch_scores, results = compare(source, models, faces, max_drop, max_class_drop, progress=progress)
    result = VerifyResult(checkpoint, faces, torch_scores, results, max_drop, max_class_drop, source=source.describe(),
                          labels=source.classes, palette=source.spec.palette())
    result.notes += [f"assumed: {n}" for n in source.notes]
    result.notes += layout_verdicts(results, models)
    contract = None if source.is_registry else check_contract_on_faces(source, faces)
    if contract and contract["warning"]:
        result.notes.append(f"warning: {contract['warning']}")
    if not source.is_registry:
        result.notes.append(f"reference: {source.reference} running {source.path.name} ({source.format}); "
                            f"agreement is over the model's own {len(source.classes)} classes"
                            + ("; IoU against the truth after mapping its labels onto our 11 classes"
                               if source.spec.has_mapping else ""))
        try_remedies = False  # remedies re-export a registry checkpoint with other options
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
    # Last: the second runtime's verdicts, after everything about the conversion itself.
    verdicts, notes = mediapipe_check.check_models(models, faces, progress=progress)
    for model_result in results:
        model_result.mediapipe = verdicts.get(model_result.name)
    result.notes += notes
    if report_dir is not None:
        write_report(result, report_dir)
    return result


def load_reference(model: str | Path | None, tflites: list[TFLiteModel], spec: str | Path | dict | None,
                   weights: str | Path | None, num_threads: int | None) -> LoadedModel:
    """The model the .tflite files are checked against (see model_source.load_exported_source)."""
    return load_exported_source(model, [m.contract.raw for m in tflites], spec=spec, weights=weights,
                                num_threads=num_threads)


def check_source(model: TFLiteModel, source: LoadedModel) -> None:
    """A .tflite exported from another model file than the reference is refused: comparing them measures nothing."""
    recorded = model.contract.source
    if not exported_from(model.contract, source):
        raise VerifyError(
            f"{model.path.name} was exported from {recorded.described} (sha256 {str(recorded.sha256)[:12]}, "
            f"a {model.contract.model!r} model), not from {source.ref or source.path} (sha256 {source.sha256[:12]}): "
            "verify it with the model it was exported from (--model), or re-export this one"
        )
