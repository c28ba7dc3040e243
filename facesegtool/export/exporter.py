"""`facesegtool export`: checkpoint -> ONNX -> TFLite fp32 / fp16 / dynamic / int8, with sidecars.

    from facesegtool.export import export
    report = export(quant="int8")          # the shipped default model -> exports/default/
    print(report.table())

In four steps, the options checked once before the first:
- prepare: load the model, check what it gives on faces, load the calibration faces, plan the file names;
- convert: ONNX, then TFLite with the chosen converter, in a hidden work folder inside --out;
- stage: each variant's sidecar written beside its .tflite in that work folder;
- publish: sidecar first, then its .tflite, renamed into --out, so a failed or interrupted export
  never leaves a partial model there.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..atomic import OutputError, check_writable_dir, low_space_note
from ..checkpoint import DEFAULT_EXPORT_DIR
from ..labels import CLASSES
from ..model_source import ContractNet, LoadedModel, load_source
from . import litert_torch
from . import tflite as tflite_convert
from .calibration import CALIBRATION_DIR, CalibrationError, calibration_array, load_calibration_images, normalize
from .conversion_check import ambiguous_layouts, check_layouts_converted
from .finite import nonfinite_faces
from .onnx import OPSET, BakedNormalization, ExportError, adapt_onnx, export_onnx
from .replace import check_float_layers, check_overwrites, files_to_replace, foreign_exports, lock_out_dir, source_files
from .report import ExportReport, VariantResult, layout_places, layout_warning
from .sidecar import make_sidecar, sidecar_path, write_sidecar
from .tflite import ConversionError
from .variants import BY_NAME, ExportOptionError, check_options, parse_quant, sidecar_options

DEFAULT_NUM_CALIB = 100  # all of a shipped set of a few dozen; more adds time, rarely accuracy
# TFLite converters; the convert step picks one by ExportOptions.converter. onnx2tf takes the ONNX,
# litert-torch the torch model (its own venv, litert_torch.py); auto converts with both and keeps one
# by a measured rule (litert_torch.choose).
CONVERTERS = ("onnx2tf", "litert-torch", "auto")
AUTO_FACES = 8  # calibration faces each auto candidate is judged on against torch

# The hidden work folder of a running export, inside its --out (same file system: the final moves
# are renames). It holds the exporting process's pid, so a later export can tell a folder left by
# a killed run (kill -9, power loss) from one in use, and remove it.
WORK_PREFIX = ".export-"
WORK_OWNER = "owner.pid"
LAYOUT_CHECK_FACES = 4


@dataclass(frozen=True)
class ExportOptions:
    """How to export, checked once (`checked`) before any work; the defaults filled in."""

    variants: tuple[str, ...]
    calibration_dir: Path
    num_calib: int
    size: int | None
    per_channel: bool
    io_dtype: str  # the int8 variant's I/O type
    bake_normalization: bool
    int16_activations: bool
    float_layers: tuple[str, ...]
    opset: int
    resize_output: bool
    replace: bool
    progress: bool
    converter: str = "onnx2tf"

    @classmethod
    def checked(cls, quant: str | list[str], calibration_dir: str | Path | None, num_calib: int, size: int | None,
                per_channel: bool, io_dtype: str | None, bake_normalization: bool | None, int16_activations: bool,
                float_layers: list[str] | None, opset: int, resize_output: bool, replace: bool, progress: bool,
                converter: str = "onnx2tf") -> ExportOptions:
        """The options of one export, or ExportOptionError naming every combination that cannot work."""
        variants = parse_quant(quant)
        float_layers = tuple(float_layers or ())
        check_options(variants, per_channel=per_channel, io_dtype=io_dtype, int16_activations=int16_activations,
                      float_layers=float_layers)
        if converter not in CONVERTERS:
            raise ExportOptionError(f"--converter must be one of {', '.join(CONVERTERS)}, not {converter!r}")
        if converter == "litert-torch":
            litert_torch.check_options(variants, per_channel, io_dtype, int16_activations, float_layers)
            if not litert_torch.available():
                raise litert_torch.LitertUnavailableError(litert_torch.unavailable_reason())
        bake_normalization, io_dtype = standard_io(bake_normalization, io_dtype)
        return cls(tuple(variants), Path(calibration_dir) if calibration_dir is not None else CALIBRATION_DIR,
                   num_calib, size, per_channel, io_dtype, bake_normalization, int16_activations, float_layers, opset,
                   resize_output, replace, progress, converter)

    @property
    def calibrated(self) -> bool:
        """Whether a requested variant needs calibration faces (int8)."""
        return any(BY_NAME[v].calibrated for v in self.variants)

    def recorded(self, default_checkpoint: bool) -> dict:
        """The options as the report and (less default_checkpoint) the sidecars record them."""
        return {
            "default_checkpoint": default_checkpoint,
            "opset": self.opset,
            "per_channel": self.per_channel,
            "int8_io_dtype": self.io_dtype,
            "normalization_baked": self.bake_normalization,
            "int16_activations": self.int16_activations,
            "float_layers": list(self.float_layers),
            "resize_output": self.resize_output,
        }


@dataclass
class Prepared:
    """What prepare() found before anything is written: the model, its contract, its faces, the file names."""

    source: LoadedModel
    options: ExportOptions
    out_dir: Path
    is_default: bool
    contract: dict
    file_contract: dict  # what the .tflite itself takes: a baked graph also flips a BGR model's channels to RGB
    calib: np.ndarray | None
    faces: np.ndarray
    contract_check: dict | None
    stem: str
    finals: dict[str, Path]  # variant -> its .tflite in out_dir

    @property
    def size(self) -> int:
        return int(self.contract["size"])

    @property
    def onnx(self) -> Path:
        return self.out_dir / f"{self.stem}.onnx"

    @property
    def calibration(self) -> dict | None:
        """{"folder", "images"} when int8 is calibrated."""
        if self.options.calibrated and self.calib is not None:
            return {"folder": str(self.options.calibration_dir), "images": int(len(self.calib))}
        return None


@dataclass
class Converted:
    """What the convert step left in the work folder."""

    onnx: Path
    onnx_seconds: float
    layouts: list[dict]  # conversion_check.ambiguous_layouts of the ONNX
    conversion: tflite_convert.Conversion
    layout_check: dict | None = None  # those tensors checked on the fp32 file (None: nothing to check)
    converter: str = "onnx2tf"  # the one that made the files
    choice: dict | None = None  # --converter auto: {"chosen", "why", "candidates": {converter: {variant: figures}}}


@dataclass
class Staged:
    """One variant ready in the work folder: its sidecar and its .tflite, and where they go."""

    json: Path
    tflite: Path
    result: VariantResult


def export(
    checkpoint: str | Path | None = None,
    quant: str | list[str] = "int8",
    out_dir: str | Path | None = None,
    calibration_dir: str | Path | None = None,
    num_calib: int = DEFAULT_NUM_CALIB,
    size: int | None = None,
    per_channel: bool = True,
    io_dtype: str | None = None,
    bake_normalization: bool | None = None,
    int16_activations: bool = False,
    float_layers: list[str] | None = None,
    opset: int = OPSET,
    progress: bool = True,
    spec: str | Path | dict | None = None,
    weights: str | Path | None = None,
    resize_output: bool = False,
    replace: bool = False,
    converter: str = "onnx2tf",
) -> ExportReport:
    """Export a model (default: the shipped one) to ONNX and the requested TFLite variants.

    checkpoint: any model model_source.load_source reads (a facesegtool checkpoint, a torch.export
        .pt2, TorchScript, "code.py:function" with weights, an ONNX file); spec: its contract
        (model_spec); weights: the state_dict for the "code.py:function" form.
    quant: "fp32" | "fp16" | "dynamic" | "int8" | "all" | a list of them (variants.TABLE).
    out_dir: default exports/default for the shipped model, else exports/<model name>.
    calibration_dir: face crops for int8 (default: the repo's calibration/), up to num_calib used.
    size: input size (default: the model's). Registry nets are fully convolutional (multiples of 32).
    per_channel: int8 / dynamic weights per output channel (default) or per tensor.
    io_dtype: int8 model's input/output type: "int8", "uint8" or "float32" (float I/O around an
        integer body); None: see standard_io. Float variants always have float32 I/O.
    bake_normalization: the model takes raw RGB 0..255 (bytes for int8/uint8 I/O) and normalises
        inside, per the model's input contract; None: on for torch models (standard_io).
    int16_activations: int8 variant with 16-bit activations (int16x8): ~256x finer activation steps,
        slower, not on every delegate; its I/O is int16 (or float32). Ops without a 16x8 kernel
        (e.g. HARD_SWISH) run in float.
    float_layers: int8 variant keeps these layers in float: TFLite tensor names as an int8 export
        shows them (e.g. "model_18/tf.nn.convolution_3/convolution", as `facesegtool verify` names
        them). int8 or float32 I/O only.
    resize_output: bake a bilinear upsample of a lower-resolution output (1/4, 1/8) to the input size
        into the graph, for full-size masks on the phone.
    replace: remove another model's exports found in out_dir instead of refusing to mix them.
    converter: the ONNX -> TFLite converter (CONVERTERS).
    Raises ExportOptionError for options that cannot go together (before any work), CheckpointError,
    ModelSourceError, ModelSpecError, CalibrationError, ExportError / ConversionError with a clear message.
    """
    started = time.time()
    options = ExportOptions.checked(quant, calibration_dir, num_calib, size, per_channel, io_dtype, bake_normalization,
                                    int16_activations, float_layers, opset, resize_output, replace, progress, converter)
    job = prepare(checkpoint, out_dir, options, spec=spec, weights=weights)
    job.out_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_out_dir(job.out_dir)  # held to the end: the checks below must see what a concurrent export writes
    work = None
    try:
        stale_files = check_out_dir(job)
        remove_stale_work_dirs(job.out_dir)
        work = Path(tempfile.mkdtemp(dir=job.out_dir, prefix=WORK_PREFIX, suffix=".tmp"))
        (work / WORK_OWNER).write_text(str(os.getpid()))
        converted = convert(job, work)
        report = ExportReport(
            job.source.name,
            job.source.path,
            job.out_dir,
            job.size,
            job.onnx,
            converted.onnx_seconds,
            tf_seconds=converted.conversion.tf_seconds,
            calibration=job.calibration,
            options=options.recorded(job.is_default),
            ambiguous_layouts=converted.layouts,
            contract_check=job.contract_check,
            layout_check=converted.layout_check,
        )
        report.options["converter"] = converted.converter
        if converted.choice:
            report.options["converter_choice"] = converted.choice
        publish(stage(job, converted, work), converted, report, stale_files)
    except OSError as exc:  # e.g. room for the ONNX but not the TFLite: one line, not a traceback
        if isinstance(exc, OutputError):
            raise
        raise ExportError(f"cannot write the export in {job.out_dir}: {exc.strerror or exc}"
                          f"{low_space_note(job.out_dir)}; nothing was left there") from None
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        os.close(lock)
    report.total_seconds = time.time() - started
    report.notes = list(job.source.notes) + ([f"converter: {converted.choice['why']}"] if converted.choice else [])
    report.model_args = job.source.cli_args()
    return report


# --- the steps --------------------------------------------------------------------------------------------


def prepare(checkpoint: str | Path | None, out_dir: str | Path | None, options: ExportOptions,
            spec: str | Path | dict | None = None, weights: str | Path | None = None) -> Prepared:
    """Load the model and everything the conversion needs, and check what can be checked before writing."""
    is_default = checkpoint is None
    if out_dir is not None:
        check_writable_dir(out_dir, "--out")
    source = load_source(checkpoint, spec=spec, weights=weights, size=options.size)
    for note in source.notes:  # now, before minutes of conversion, so a wrong guess can be stopped
        _say(options.progress, f"assumed: {note}")
    if source.is_registry and options.size is not None and (options.size < 32 or options.size % 32):
        raise ExportOptionError(f"size must be a multiple of 32 (the nets downsample 32x), not {options.size}")
    contract = dict(source.contract)
    file_contract = dict(contract, channel_order="RGB") if options.bake_normalization else contract
    size = int(contract["size"])
    out_dir = Path(out_dir) if out_dir is not None else (DEFAULT_EXPORT_DIR if is_default else Path("exports") / source.name)
    check_writable_dir(out_dir, "--out")

    contract_check = None if source.is_registry else check_contract(source, size)
    if contract_check and contract_check["warning"]:
        _say(options.progress, f"warning: {contract_check['warning']}")

    # Calibration faces: required for int8; otherwise used, when present, for onnx2tf's sample checks.
    calib_folder = options.calibration_dir
    try:
        calib = calibration_array(calib_folder, contract, options.num_calib,
                                  baked_normalization=options.bake_normalization)
        faces = load_calibration_images(calib_folder, size, min(options.num_calib, 20))
    except CalibrationError:
        if options.calibrated:
            raise
        calib, faces = None, np.full((1, size, size, 3), 128, np.uint8)
    check_finite_scores(source, calib_folder if calib is not None else None,
                        calib if calib is not None and not options.bake_normalization else normalize(faces, contract))

    stem = f"{source.name}_{size}" + ("_full" if options.resize_output else "")
    finals = {v: out_dir / BY_NAME[v].file_name(stem, options.int16_activations) for v in options.variants}
    return Prepared(source, options, out_dir, is_default, contract, file_contract, calib, faces, contract_check, stem,
                    finals)


def check_out_dir(job: Prepared) -> list[Path]:
    """Under the folder's lock: refuse to mix models or overwrite a user's file; returns what --replace removes."""
    out_dir, source = job.out_dir, job.source
    others = foreign_exports(out_dir, source.sha256)
    if others and not job.options.replace:
        listing = ", ".join(p.name for p in others[:4]) + (f" and {len(others) - 4} more" if len(others) > 4 else "")
        raise ExportError(f"{out_dir} holds exports of another model ({listing}); export into another --out, "
                          "or pass --replace to remove them")
    planned = [job.onnx, *job.finals.values(), *(sidecar_path(f) for f in job.finals.values())]
    check_overwrites(out_dir, planned)
    stale_files = files_to_replace(out_dir, others, keep={*planned, *source_files(source)})
    if job.options.float_layers:
        check_float_layers(out_dir / BY_NAME["int8"].file_name(job.stem), list(job.options.float_layers),
                           source.sha256)
    return stale_files


def convert(job: Prepared, work: Path) -> Converted:
    """ONNX, then every requested variant as TFLite, in `work`; the fp32 file checked where layouts are ambiguous."""
    options, source, progress = job.options, job.source, job.options.progress
    t = time.time()
    _say(progress, f"export: {source.name} ({source.format}) -> ONNX")
    onnx_tmp = source_to_onnx(source, work / job.onnx.name, job.size, options.bake_normalization,
                              options.resize_output, options.opset)
    onnx_seconds = time.time() - t
    layouts = ambiguous_layouts(onnx_tmp)
    if layouts:
        _say(progress, f"warning: {layout_warning(layouts, None)}" if "fp32" not in options.variants else
             f"layout: {layout_places(layouts)} could read NCHW or NHWC by shape; checked once the fp32 file exists")
    _say(progress, f"export: ONNX ({_onnx_nodes(onnx_tmp)} nodes, {onnx_seconds:.0f}s) -> TFLite "
                   f"{'/'.join(options.variants)} with {options.converter}")
    # Here a converter is chosen; each takes the ONNX (or the source) and returns a tflite.Conversion.
    choice = None
    if options.converter == "litert-torch":
        conversion, name = _litert(job, work), "litert-torch"
    elif options.converter == "auto":
        conversion, name, choice = _auto(job, onnx_tmp, work)
    else:
        conversion, name = _onnx2tf(job, onnx_tmp, work), "onnx2tf"
    converted = Converted(onnx_tmp, onnx_seconds, layouts, conversion, converter=name, choice=choice)
    if layouts and "fp32" in conversion.variants and job.calib is not None:
        converted.layout_check = _check_layouts(onnx_tmp, conversion.variants["fp32"].path, job.calib)
        _say(progress, (f"layout: checked, fp32 agrees with ONNX Runtime on "
                        f"{100 * converted.layout_check['argmax_agreement']:.2f} % of pixels: no layout fault")
             if converted.layout_check["agreement_ok"] else f"warning: {layout_warning(layouts, converted.layout_check)}")
    return converted


def stage(job: Prepared, converted: Converted, work: Path) -> list[Staged]:
    """Each variant's .tflite under its final name in `work`, with its sidecar beside it."""
    source, options = job.source, job.options
    recorded = {k: v for k, v in options.recorded(job.is_default).items() if k != "default_checkpoint"}
    palette = source.spec.palette()
    staged = []
    for variant in options.variants:
        conv = converted.conversion.variants[variant]
        final = job.finals[variant]
        tmp_tflite = work / final.name
        conv.path.replace(tmp_tflite)
        variant_options = sidecar_options(variant, recorded, job.calibration)
        if converted.layouts:  # verify confirms or clears a possible layout fault from these
            variant_options["possible_layout_faults"] = [dict(a) for a in converted.layouts]
            variant_options["layout_check"] = converted.layout_check
        sidecar = make_sidecar(
            tmp_tflite,
            source.name,
            variant,
            job.file_contract,
            source.classes,
            palette,
            options.bake_normalization,
            source.path,
            variant_options | {"onnx": job.onnx.name, "conversion_seconds": conv.seconds,
                               "folded_transposes": conv.folded_transposes, "converter": converted.converter}
            | ({"converter_choice": converted.choice} if converted.choice else {}),
            spec=source.spec,
            source=source.describe(),
            output_resized=options.resize_output,
        )
        tmp_json = write_sidecar(sidecar, work / sidecar_path(final).name)
        result = VariantResult(variant, final, sidecar_path(final), tmp_tflite.stat().st_size, conv.seconds,
                               sidecar["graph"])
        staged.append(Staged(tmp_json, tmp_tflite, result))
    return staged


def publish(staged: list[Staged], converted: Converted, report: ExportReport, stale_files: list[Path]) -> None:
    """Only now touch out_dir: each sidecar lands before its model, so every .tflite there has one."""
    for item in staged:
        item.json.replace(item.result.sidecar)
        item.tflite.replace(item.result.tflite)
        report.variants[item.result.variant] = item.result
    converted.onnx.replace(report.onnx)
    for stale in stale_files:  # --replace: the other model's files go only once this one's are in
        stale.unlink(missing_ok=True)


# --- the converters ---------------------------------------------------------------------------------------


def _metadata(job: Prepared) -> tuple[dict, dict]:
    """(our metadata entry, the standard metadata fields) of every file, whichever converter makes it."""
    source, options = job.source, job.options
    metadata = {
        "format": "facesegtool-tflite-metadata",
        "model": source.name,
        "input": job.file_contract,
        "normalization_baked": options.bake_normalization,
        "palette": source.spec.palette(),
        "mapping": source.spec.mapping,
        "target_classes": list(CLASSES),
        "output_kind": source.spec.output_kind,
    }
    return metadata, standard_metadata(source.name, source.classes, job.file_contract, options.bake_normalization,
                                       source.spec.output_kind, source.is_registry)


def _onnx2tf(job: Prepared, onnx_tmp: Path, work: Path) -> tflite_convert.Conversion:
    """ONNX -> TFLite with onnx2tf in a child process; its failures explained, its log kept beside --out."""
    source, options = job.source, job.options
    metadata, standard = _metadata(job)
    try:
        return tflite_convert.convert(
            onnx_tmp,
            work,
            list(options.variants),
            calibration=job.calib,
            sample_faces=job.faces,
            per_channel=options.per_channel,
            io_dtype=options.io_dtype,
            baked_normalization=options.bake_normalization,
            int16_activations=options.int16_activations,
            float_layers=list(options.float_layers),
            labels=source.classes,
            metadata=metadata,
            standard_metadata=standard,
            progress=options.progress,
        )
    except ConversionError as exc:
        if str(exc).startswith("float_layers:"):  # the user's names, not the converter: no log to keep
            raise ExportError(f"--float-layer: {str(exc).split(':', 1)[1].strip()}; give TFLite tensor names as "
                              "`facesegtool verify` prints them for this model's int8 export") from None
        full = low_space_note(job.out_dir)
        if full:  # the converter's advice (ops, --per-tensor) would mislead: its disk filled up
            raise ExportError(f"cannot write the TFLite model in {job.out_dir}: the disk filled up during "
                              f"conversion{full}") from None
        log, kept = work / "onnx2tf.log", job.out_dir / f"{job.stem}.onnx2tf-failed.log"
        if log.is_file():
            try:
                shutil.copy(log, kept)
            except OSError:  # leave no empty log behind
                kept.unlink(missing_ok=True)
                raise exc from None
            raise ConversionError(f"{exc}\n  full log: {kept}") from exc
        raise


def _litert_unusable(job: Prepared) -> str | None:
    """Why litert-torch cannot convert this export (None: it can)."""
    options = job.options
    if job.source.format == "onnx":
        return f"{job.source.path} is an ONNX file; litert-torch converts torch models"
    if not litert_torch.available():
        return litert_torch.unavailable_reason()
    try:
        litert_torch.check_options(list(options.variants), options.per_channel, options.io_dtype,
                                   options.int16_activations, options.float_layers)
    except ExportOptionError as exc:
        return str(exc)
    return None


def _litert(job: Prepared, work: Path) -> tflite_convert.Conversion:
    """The torch model -> TFLite with litert-torch (its own venv, a child process), in work/litert-torch."""
    source, options = job.source, job.options
    reason = _litert_unusable(job)
    if reason:
        raise ExportError(f"--converter litert-torch: {reason}")
    metadata, standard = _metadata(job)
    net = source_net(source, job.size, options.bake_normalization, options.resize_output)
    try:
        return litert_torch.convert(net, work / "litert-torch", list(options.variants), job.size, job.calib,
                                    source.classes, metadata, standard, io_dtype=options.io_dtype,
                                    per_channel=options.per_channel, stem=job.stem, progress=options.progress)
    except ConversionError as exc:  # the work folder goes: its log is kept beside --out
        log, kept = work / "litert-torch" / litert_torch.LOG_NAME, job.out_dir / f"{job.stem}.litert-torch-failed.log"
        if not log.is_file():
            raise
        try:
            shutil.copy(log, kept)
        except OSError:
            kept.unlink(missing_ok=True)
            raise exc from None
        raise ConversionError(f"{str(exc).split('; full log:')[0]}; full log: {kept}") from exc


def _auto(job: Prepared, onnx_tmp: Path, work: Path) -> tuple[tflite_convert.Conversion, str, dict]:
    """Both converters, each file judged against torch on calibration faces; litert_torch.choose keeps one."""
    from ..metrics import AGREEMENT_FLOORS

    options = job.options
    reason = _litert_unusable(job)
    if reason:
        _say(options.progress, f"note: --converter auto uses onnx2tf: {reason}")
        return _onnx2tf(job, onnx_tmp, work), "onnx2tf", {"chosen": "onnx2tf", "why": f"onnx2tf: {reason}",
                                                          "candidates": {}}
    conversions = {"onnx2tf": _onnx2tf(job, onnx_tmp, work)}
    try:
        conversions["litert-torch"] = _litert(job, work)
    except (ConversionError, ExportError) as exc:
        why = " ".join(str(exc).split())[:300]
        _say(options.progress, f"note: --converter auto uses onnx2tf: litert-torch failed: {why}")
        return conversions["onnx2tf"], "onnx2tf", {"chosen": "onnx2tf", "why": f"onnx2tf: litert-torch failed: {why}",
                                                   "candidates": {}}
    net = source_net(job.source, job.size, options.bake_normalization, options.resize_output).eval()
    if job.calib is not None:
        inputs = job.calib[:AUTO_FACES]
    else:
        faces = job.faces[:AUTO_FACES]
        inputs = faces.astype(np.float32) if options.bake_normalization else normalize(faces, job.contract)
    with torch.no_grad():
        reference = net(torch.from_numpy(np.ascontiguousarray(inputs)).permute(0, 3, 1, 2)).numpy()
    figures = {name: {v: litert_torch.candidate_figures(c.path, inputs, reference) for v, c in conv.variants.items()}
               for name, conv in conversions.items()}
    chosen, why = litert_torch.choose(figures, AGREEMENT_FLOORS)
    _say(options.progress, f"export: --converter auto chose {why}")
    return conversions[chosen], chosen, {"chosen": chosen, "why": why, "candidates": figures}


# --- helpers of the steps ---------------------------------------------------------------------------------


def check_contract(source: LoadedModel, size: int) -> dict | None:
    """Other common input contracts scored on a few labelled faces (the default verify set, when present)."""
    from ..contract_check import FACES as CONTRACT_FACES
    from ..contract_check import check_contract_on_faces
    from ..data.faces import DEFAULT_DATA, open_faces

    if not DEFAULT_DATA.is_dir():
        return None
    try:
        return check_contract_on_faces(source, open_faces(DEFAULT_DATA, "val", size=size, limit=CONTRACT_FACES))
    except (ValueError, OSError):  # advice only: faces that cannot be read leave the export to go on unchecked
        return None


def standard_io(bake_normalization: bool | None, io_dtype: str | None) -> tuple[bool, str]:
    """(bake_normalization, int8 I/O type) with the defaults filled in: what standard runtimes take.

    MediaPipe's ImageSegmenter and the LiteRT support library feed a uint8 input the camera's bytes
    as they are, refuse int8 input, and normalise a float32 input with one mean/std for all
    channels: MediaPipe refuses per-channel normalisation ("Per-channel image normalization is not
    available"). A graph that normalises inside (and flips a BGR model's channels) takes RGB 0..255,
    so its uint8 input is the pixels exactly (scale 1, zero point 0) and its float input needs no
    normalisation: baked by default, torch models and ONNX files alike. Not baked, the int8 model
    takes float32 (the runtime normalises, as the metadata says).
    """
    if bake_normalization is None:
        bake_normalization = True
    if io_dtype is None:
        io_dtype = "uint8" if bake_normalization else "float32"
    return bake_normalization, io_dtype


def standard_metadata(name: str, labels: list[str], file_contract: dict, normalization_baked: bool,
                      output_kind: str, ours: bool = False) -> dict:
    """The tflite_metadata.StandardMetadata fields of an export (the worker adds the variant); ours: a
    facesegtool-trained model, whose data terms the license field states."""
    import facesegtool

    from .tflite_metadata import LICENSE, activation_for, pixel_normalization

    mean, std = pixel_normalization(file_contract, normalization_baked)
    return {"name": name, "labels": list(labels), "mean": mean, "std": std, "license": LICENSE if ours else "",
            "activation": activation_for(output_kind), "version": f"facesegtool {facesegtool.__version__}"}


def source_to_onnx(source: LoadedModel, path: Path, size: int, bake_normalization: bool = False,
                   resize_output: bool = False, opset: int = OPSET) -> Path:
    """The ONNX graph that is converted: one NCHW output (the selected one), optionally resized to the input."""
    spec = source.spec
    resize_to = size if resize_output else None
    if source.format == "onnx":
        return adapt_onnx(source.onnx_path, path, size, spec.select, spec.output_layout, resize_to, opset,
                          bake=source.contract if bake_normalization else None)
    net = source_net(source, size, bake_normalization, resize_output)
    if not source.is_registry:
        # Traced first: the ONNX exporter cannot call a loaded TorchScript module from inside a plain module,
        # and dict / tuple outputs of a user's net are resolved here, in Python.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                net = torch.jit.trace(net.eval(), torch.zeros(1, 3, size, size), strict=False, check_trace=False)
            except Exception as exc:
                raise ExportError(f"{source.path}: tracing the model for ONNX failed: "
                                  f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}") from exc
    return export_onnx(net, path, size, opset=opset)


def source_net(source: LoadedModel, size: int, bake_normalization: bool = False,
               resize_output: bool = False) -> torch.nn.Module:
    """The torch graph that is converted (a torch source): one NCHW output, optionally resized and normalising."""
    spec = source.spec
    resize_to = size if resize_output else None
    if source.is_registry:
        net = source.net
        if resize_output:
            net = ContractNet(net, None, "NCHW", resize_to)
    else:
        inner = source.net.inner
        net = ContractNet(inner, spec.select, spec.output_layout, resize_to, hide=source.format == "exported-program")
    if bake_normalization:
        net = BakedNormalization(net, source.contract)
    return net


def check_finite_scores(source: LoadedModel, calib_folder: Path | None, faces: np.ndarray) -> None:
    """NaN or Inf scores on a blank probe or on the calibration faces stop the export: such a model has no
    mask to give, and int8 would calibrate on the NaN."""
    size = int(source.contract["size"])
    probe = np.zeros((1, size, size, 3), np.float32)
    if nonfinite_faces(source.net, probe):
        raise ExportError(f"{source.path}: the model's scores are NaN or Inf on a blank {size}x{size} input; "
                          "fix the model (its weights or an unguarded division, log or sqrt) before exporting it")
    bad = nonfinite_faces(source.net, faces)
    if bad:
        where = f"calibration faces in {calib_folder}" if calib_folder is not None else "sample faces"
        raise ExportError(f"{source.path}: the model's scores are NaN or Inf on {len(bad)} of {len(faces)} {where}; "
                          "fix the model (its weights or an unguarded division, log or sqrt) before exporting it")


def _say(progress: bool, line: str) -> None:
    """A stage or a warning as it happens (stderr, above any progress bar); the summary repeats the warnings."""
    if progress:
        tqdm.write(line, file=sys.stderr)


def remove_stale_work_dirs(out_dir: Path) -> list[Path]:
    """Delete work folders in out_dir whose export process is gone; returns what was removed."""
    removed = []
    for work in out_dir.glob(f"{WORK_PREFIX}*.tmp"):
        try:
            pid = int((work / WORK_OWNER).read_text())
        except (OSError, ValueError):
            pid = None  # written by an older version, or killed before the pid file: gone if an hour old
            try:
                if time.time() - work.stat().st_mtime < 3600:
                    continue
            except OSError:
                continue
        if pid is not None and _process_alive(pid):
            continue
        shutil.rmtree(work, ignore_errors=True)
        removed.append(work)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _check_layouts(onnx_path: Path, fp32: Path, calib: np.ndarray) -> dict:
    check = check_layouts_converted(onnx_path, fp32, calib[:LAYOUT_CHECK_FACES])
    from ..metrics import AGREEMENT_FLOOR

    return dict(check, agreement_ok=bool(check["argmax_agreement"] >= AGREEMENT_FLOOR))


def _onnx_nodes(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path), load_external_data=False).graph.node)
