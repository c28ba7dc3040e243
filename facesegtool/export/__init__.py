"""`facesegtool export`: checkpoint -> ONNX -> TFLite fp32 / fp16 / dynamic / int8, with sidecars.

    from facesegtool.export import export
    report = export(quant="int8")          # the shipped default model -> exports/default/
    print(report.table())

Everything is built in a hidden temp dir inside the output folder and moved in only when
finished (sidecar first, then its .tflite), so a failed or interrupted export never leaves a
partial model there.
"""

from __future__ import annotations

import os
import shlex
import sys
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..atomic import OutputError, check_writable_dir, low_space_note
import warnings

import torch

from ..checkpoint import DEFAULT_EXPORT_DIR, CheckpointError
from ..labels import CLASSES
from ..model_source import ContractNet, LoadedModel, ModelSourceError, load_source
from ..model_spec import ModelSpecError
from . import tflite as tflite_convert
from .calibration import CALIBRATION_DIR, CalibrationError, calibration_array, load_calibration_images, normalize
from .finite import nonfinite_faces
from .replace import (check_float_layers, check_overwrites, files_to_replace, foreign_exports, lock_out_dir,
                      source_files, variant_file_name)
from .conversion_check import ambiguous_layouts, check_layouts_converted
from .onnx import OPSET, BakedNormalization, ExportError, adapt_onnx, export_onnx
from .op_analysis import LAYOUT_OPS, gpu_warning
from .sidecar import VARIANTS, make_sidecar, sidecar_path, write_sidecar
from .tflite import IO_DTYPES, ConversionError

__all__ = [
    "export",
    "ExportReport",
    "VariantResult",
    "ExportError",
    "ConversionError",
    "CalibrationError",
    "CheckpointError",
    "ModelSourceError",
    "ModelSpecError",
    "VARIANTS",
    "parse_quant",
]

DEFAULT_NUM_CALIB = 100  # all of a shipped set of a few dozen; more adds time, rarely accuracy


@dataclass
class VariantResult:
    variant: str
    tflite: Path
    sidecar: Path
    size_bytes: int
    seconds: float
    graph: dict = field(default_factory=dict)  # op_analysis.analyze_ops: op histogram, GPU-delegate refusals

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6

    @property
    def gpu_summary(self) -> str:
        refused = self.graph.get("gpu_incompatible")
        if refused is None:
            return "n/a"
        return "all ops" if not refused else "refuses " + ", ".join(f"{op} x{len(v)}" for op, v in refused.items())


@dataclass
class ExportReport:
    model: str
    checkpoint: Path
    out_dir: Path
    size: int
    onnx: Path
    onnx_seconds: float
    tf_seconds: float = 0.0  # ONNX -> TensorFlow (onnx2tf), shared by all variants
    variants: dict[str, VariantResult] = field(default_factory=dict)
    calibration: dict | None = None  # {"folder", "images"} when int8 was calibrated
    options: dict = field(default_factory=dict)
    total_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what the model's contract assumed (model_spec)
    model_args: list[str] = field(default_factory=list)  # --model ... naming it on the next commands
    ambiguous_layouts: list[dict] = field(default_factory=list)  # conversion_check.ambiguous_layouts of the ONNX
    layout_check: dict | None = None  # those tensors checked: fp32 TFLite vs ONNX Runtime on faces (None: no fp32)
    contract_check: dict | None = None  # contract_check.check_contract_on_faces: other input contracts scored

    def table(self) -> str:
        rows = [("ONNX", self.onnx.name, f"{self.onnx.stat().st_size / 1e6:.2f}", self.onnx_seconds)]
        rows.append(("TF", "(onnx2tf, shared by all below)", "", self.tf_seconds))
        rows += [(v.variant, v.tflite.name, f"{v.size_mb:.2f}", v.seconds) for v in self.variants.values()]
        width = max(len(r[1]) for r in rows)
        layout_header = "/".join(LAYOUT_OPS)
        lines = [f"{'format':<8} {'file':<{width}} {'size MB':>8} {'seconds':>8}  ops  {layout_header:<29} GPU delegate"]
        for fmt, name, size, sec in rows:
            line = f"{fmt:<8} {name:<{width}} {size:>8} {sec:>8.1f}"
            v = self.variants.get(fmt)
            if v is not None and v.graph:
                layout = "/".join(str(v.graph["layout_ops"].get(op, 0)) for op in LAYOUT_OPS)
                line += f" {sum(v.graph['ops'].values()):>4}  {layout:<29} {v.gpu_summary}"
            lines.append(line)
        lines.append(f"{self.model} at {self.size}x{self.size} -> {self.out_dir} in {self.total_seconds:.0f}s")
        if self.calibration:
            c = self.calibration
            lines.append(f"int8 calibrated on {c['images']} face crops from {c['folder']}")
        lines += [f"assumed: {n}" for n in self.notes]
        if self.ambiguous_layouts and self.layout_check and self.layout_check["agreement_ok"]:
            lines.append(f"layout: {_layout_places(self.ambiguous_layouts)} could read NCHW or NHWC by shape; checked: "
                         f"fp32 TFLite agrees with ONNX Runtime on {100 * self.layout_check['argmax_agreement']:.2f} % of "
                         f"pixels of {self.layout_check['faces']} faces, so onnx2tf laid them out right")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    @property
    def warnings(self) -> list[str]:
        """A float model that would not run whole on a phone's GPU delegate (fp16 is the GPU's variant)."""
        found = [w for v in self.variants.values() if v.variant == "fp16" and (w := gpu_warning(v.variant, v.graph))]
        warning = layout_warning(self.ambiguous_layouts, self.layout_check)
        if warning:
            found.append(warning)
        if self.contract_check and self.contract_check.get("warning"):
            found.append(self.contract_check["warning"])
        return found

    def next_commands(self) -> list[str]:
        """The commands to run next, shell-quoted: paths with spaces paste as they are."""
        ckpt = [] if self.options.get("default_checkpoint") else (self.model_args or ["--model", str(self.checkpoint)])
        return [
            shlex.join(["facesegtool", "verify", *ckpt, "--export-dir", str(self.out_dir)]),
            shlex.join(["facesegtool", "bench", "--device", "host", *ckpt, "--export-dir", str(self.out_dir)]),
        ]

    def as_dict(self) -> dict:
        return {
            "model": self.model,
            "checkpoint": str(self.checkpoint),
            "out_dir": str(self.out_dir),
            "size": self.size,
            "onnx": {"file": str(self.onnx), "size_bytes": self.onnx.stat().st_size, "seconds": self.onnx_seconds},
            "tf_seconds": self.tf_seconds,
            "variants": {
                k: {"file": str(v.tflite), "sidecar": str(v.sidecar), "size_bytes": v.size_bytes, "seconds": v.seconds,
                    "graph": v.graph}
                for k, v in self.variants.items()
            },
            "calibration": self.calibration,
            "warnings": self.warnings,
            "layout_check": self.layout_check,
            "contract_check": self.contract_check,
            "options": self.options,
            "total_seconds": self.total_seconds,
            "assumed": self.notes,
        }


# The hidden work folder of a running export, inside its --out (same file system: the final moves
# are renames). It holds the exporting process's pid, so a later export can tell a folder left by
# a killed run (kill -9, power loss) from one in use, and remove it.
WORK_PREFIX = ".export-"
WORK_OWNER = "owner.pid"


def _layout_places(found: list[dict]) -> str:
    where = ", ".join(f"{a['node']} ({a['op_type']}) -> {'x'.join(map(str, a['shape']))}" for a in found[:3])
    return where + (f" and {len(found) - 3} more" if len(found) > 3 else "")


def layout_warning(found: list[dict], check: dict | None) -> str | None:
    """The warning for tensors onnx2tf must lay out by shape alone: none when the fp32 file was checked
    and agrees; "wrong" when it was checked and does not; "possible" when there was no fp32 file to run."""
    if not found or (check is not None and check["agreement_ok"]):
        return None
    if check is None:
        return (f"possible wrong layout: {_layout_places(found)} has as many channels as rows or columns, so onnx2tf "
                "cannot tell NCHW from NHWC by shape there; not checked (no fp32 variant exported): verify measures "
                "it, --diagnose names the node if it bit, and another --size avoids it")
    return (f"wrong layout: {_layout_places(found)} has as many channels as rows or columns, so onnx2tf cannot tell "
            f"NCHW from NHWC by shape there, and the fp32 TFLite agrees with ONNX Runtime on only "
            f"{100 * check['argmax_agreement']:.2f} % of pixels of {check['faces']} faces: onnx2tf laid it out "
            "wrongly; export at another --size (verify --diagnose names the node)")


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


def parse_quant(quant: str | list[str] | tuple[str, ...]) -> list[str]:
    """"all" | one variant | a list (or comma-separated) -> variants in canonical order."""
    items = quant.split(",") if isinstance(quant, str) else list(quant)
    items = [q.strip() for q in items if q.strip()]
    if "all" in items:
        return list(VARIANTS)
    bad = [q for q in items if q not in VARIANTS]
    if bad or not items:
        raise ValueError(f"unknown quantization {', '.join(bad) or '(none)'}; choose from {', '.join(VARIANTS)}, all")
    return [v for v in VARIANTS if v in items]


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
) -> ExportReport:
    """Export a model (default: the shipped one) to ONNX and the requested TFLite variants.

    checkpoint: any model model_source.load_source reads (a facesegtool checkpoint, a torch.export
        .pt2, TorchScript, "code.py:function" with weights, an ONNX file); spec: its contract
        (model_spec); weights: the state_dict for the "code.py:function" form.
    quant: "fp32" | "fp16" | "dynamic" | "int8" | "all" | a list of them.
    out_dir: default exports/default for the shipped model, else exports/<model name>.
    calibration_dir: face crops for int8 (default: the repo's calibration/), up to num_calib used.
    size: input size (default: the model's). Registry nets are fully convolutional (multiples of 32).
    per_channel: int8 weights per output channel (default) or per tensor.
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
    Raises CheckpointError, ModelSourceError, ModelSpecError, CalibrationError, ExportError /
    ConversionError with a clear message.
    """
    started = time.time()
    variants = parse_quant(quant)
    if io_dtype is not None and io_dtype not in IO_DTYPES:
        raise ValueError(f"io_dtype must be one of {', '.join(IO_DTYPES)}, not {io_dtype!r}")
    float_layers = list(float_layers or [])
    if float_layers and int16_activations:
        raise ValueError("float_layers works with int8 activations only")
    is_default = checkpoint is None
    if out_dir is not None:
        check_writable_dir(out_dir, "--out")
    source = load_source(checkpoint, spec=spec, weights=weights, size=size)
    for note in source.notes:  # now, before minutes of conversion, so a wrong guess can be stopped
        _say(progress, f"assumed: {note}")
    if source.is_registry and size is not None and (size < 32 or size % 32):
        raise ValueError(f"size must be a multiple of 32 (the nets downsample 32x), not {size}")
    bake_normalization, io_dtype = standard_io(bake_normalization, io_dtype)
    name = source.name
    contract = dict(source.contract)
    # What the .tflite itself takes: a baked graph also flips a BGR model's channels, so it takes RGB.
    file_contract = dict(contract, channel_order="RGB") if bake_normalization else contract
    size = int(contract["size"])
    classes = source.classes
    out_dir = Path(out_dir) if out_dir is not None else (DEFAULT_EXPORT_DIR if is_default else Path("exports") / name)
    check_writable_dir(out_dir, "--out")

    contract_check = None if source.is_registry else check_contract(source, size)
    if contract_check and contract_check["warning"]:
        _say(progress, f"warning: {contract_check['warning']}")

    # Calibration faces: required for int8; otherwise used, when present, for onnx2tf's sample checks.
    calib_folder = Path(calibration_dir) if calibration_dir is not None else CALIBRATION_DIR
    try:
        calib = calibration_array(calib_folder, contract, num_calib, baked_normalization=bake_normalization)
        faces = load_calibration_images(calib_folder, size, min(num_calib, 20))
    except CalibrationError:
        if "int8" in variants:
            raise
        calib, faces = None, np.full((1, size, size, 3), 128, np.uint8)
    check_finite_scores(source, calib_folder if calib is not None else None,
                        calib if calib is not None and not bake_normalization else normalize(faces, contract))

    stem = f"{name}_{size}" + ("_full" if resize_output else "")
    finals = {v: out_dir / variant_file_name(stem, v, int16_activations) for v in variants}
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = lock_out_dir(out_dir)  # held to the end: the checks below must see what a concurrent export writes
    work = None
    try:
        others = foreign_exports(out_dir, source.sha256)
        if others and not replace:
            listing = ", ".join(p.name for p in others[:4]) + (f" and {len(others) - 4} more" if len(others) > 4 else "")
            raise ExportError(f"{out_dir} holds exports of another model ({listing}); export into another --out, "
                              "or pass --replace to remove them")
        planned = [out_dir / f"{stem}.onnx", *finals.values(), *(sidecar_path(f) for f in finals.values())]
        check_overwrites(out_dir, planned)
        stale_files = files_to_replace(out_dir, others, keep={*planned, *source_files(source)})
        if float_layers:
            check_float_layers(out_dir / f"{stem}_int8.tflite", float_layers, source.sha256)
        remove_stale_work_dirs(out_dir)
        work = Path(tempfile.mkdtemp(dir=out_dir, prefix=WORK_PREFIX, suffix=".tmp"))
        (work / WORK_OWNER).write_text(str(os.getpid()))
        t = time.time()
        _say(progress, f"export: {source.name} ({source.format}) -> ONNX")
        onnx_tmp = source_to_onnx(source, work / f"{stem}.onnx", size, bake_normalization, resize_output, opset)
        onnx_seconds = time.time() - t
        layouts = ambiguous_layouts(onnx_tmp)
        if layouts:
            _say(progress, f"warning: {layout_warning(layouts, None)}" if "fp32" not in variants else
                 f"layout: {_layout_places(layouts)} could read NCHW or NHWC by shape; checked once the fp32 file exists")
        _say(progress, f"export: ONNX ({_onnx_nodes(onnx_tmp)} nodes, {onnx_seconds:.0f}s) -> TFLite "
                       f"{'/'.join(variants)} with onnx2tf")
        palette = source.spec.palette()

        options = {
            "default_checkpoint": is_default,
            "opset": opset,
            "per_channel": per_channel,
            "int8_io_dtype": io_dtype,
            "normalization_baked": bake_normalization,
            "int16_activations": int16_activations,
            "float_layers": float_layers,
            "resize_output": resize_output,
        }
        calibration = None
        if "int8" in variants and calib is not None:
            calibration = {"folder": str(calib_folder), "images": int(len(calib))}
        metadata = {
            "format": "facesegtool-tflite-metadata",
            "model": name,
            "input": file_contract,
            "normalization_baked": bake_normalization,
            "palette": palette,
            "mapping": source.spec.mapping,
            "target_classes": list(CLASSES),
            "output_kind": source.spec.output_kind,
        }
        try:
            conversion = tflite_convert.convert(
                onnx_tmp,
                work,
                variants,
                calibration=calib,
                sample_faces=faces,
                per_channel=per_channel,
                io_dtype=io_dtype,
                baked_normalization=bake_normalization,
                int16_activations=int16_activations,
                float_layers=float_layers,
                labels=classes,
                metadata=metadata,
                standard_metadata=standard_metadata(name, classes, file_contract, bake_normalization,
                                                    source.spec.output_kind, source.is_registry),
                progress=progress,
            )
        except ConversionError as exc:
            if str(exc).startswith("float_layers:"):  # the user's names, not the converter: no log to keep
                raise ExportError(f"--float-layer: {str(exc).split(':', 1)[1].strip()}; give TFLite tensor names as "
                                  "`facesegtool verify` prints them for this model's int8 export") from None
            full = low_space_note(out_dir)
            if full:  # the converter's advice (ops, --per-tensor) would mislead: its disk filled up
                raise ExportError(f"cannot write the TFLite model in {out_dir}: the disk filled up during "
                                  f"conversion{full}") from None
            log, kept = work / "onnx2tf.log", out_dir / f"{stem}.onnx2tf-failed.log"
            if log.is_file():
                try:
                    shutil.copy(log, kept)
                except OSError:  # leave no empty log behind
                    kept.unlink(missing_ok=True)
                    raise exc from None
                raise ConversionError(f"{exc}\n  full log: {kept}") from exc
            raise

        report = ExportReport(
            name,
            source.path,
            out_dir,
            size,
            out_dir / f"{stem}.onnx",
            onnx_seconds,
            tf_seconds=conversion.tf_seconds,
            calibration=calibration,
            options=options,
            ambiguous_layouts=layouts,
            contract_check=contract_check,
        )
        if layouts and "fp32" in conversion.variants and calib is not None:
            report.layout_check = _check_layouts(onnx_tmp, conversion.variants["fp32"].path, calib)
            _say(progress, (f"layout: checked, fp32 agrees with ONNX Runtime on "
                            f"{100 * report.layout_check['argmax_agreement']:.2f} % of pixels: no layout fault")
                 if report.layout_check["agreement_ok"] else f"warning: {layout_warning(layouts, report.layout_check)}")
        staged: list[tuple[Path, Path, VariantResult]] = []
        for variant in variants:
            conv = conversion.variants[variant]
            final = finals[variant]
            tmp_tflite = work / final.name
            conv.path.replace(tmp_tflite)
            variant_options = {k: v for k, v in options.items() if k != "default_checkpoint"}
            if variant != "int8":
                for key in ("int8_io_dtype", "int16_activations", "float_layers"):
                    variant_options.pop(key)
            else:
                variant_options["calibration"] = calibration
            if layouts:  # verify confirms or clears a possible layout fault from these
                variant_options["possible_layout_faults"] = [dict(a) for a in layouts]
                variant_options["layout_check"] = report.layout_check
            sidecar = make_sidecar(
                tmp_tflite,
                name,
                variant,
                file_contract,
                classes,
                palette,
                bake_normalization,
                source.path,
                variant_options | {"onnx": report.onnx.name, "conversion_seconds": conv.seconds,
                                   "folded_transposes": conv.folded_transposes},
                spec=source.spec,
                source=source.describe(),
                output_resized=resize_output,
            )
            tmp_json = write_sidecar(sidecar, work / sidecar_path(final).name)
            result = VariantResult(variant, final, sidecar_path(final), tmp_tflite.stat().st_size, conv.seconds,
                                   sidecar["graph"])
            staged.append((tmp_json, tmp_tflite, result))
        # Only now touch out_dir: each sidecar lands before its model, so every .tflite there has one.
        for tmp_json, tmp_tflite, result in staged:
            tmp_json.replace(result.sidecar)
            tmp_tflite.replace(result.tflite)
            report.variants[result.variant] = result
        onnx_tmp.replace(report.onnx)
        for stale in stale_files:  # --replace: the other model's files go only once this one's are in
            stale.unlink(missing_ok=True)
    except OSError as exc:  # e.g. room for the ONNX but not the TFLite: one line, not a traceback
        if isinstance(exc, OutputError):
            raise
        raise ExportError(f"cannot write the export in {out_dir}: {exc.strerror or exc}{low_space_note(out_dir)}; "
                          "nothing was left there") from None
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        os.close(lock)
    report.total_seconds = time.time() - started
    report.notes = list(source.notes)
    report.model_args = source.cli_args()
    return report


LAYOUT_CHECK_FACES = 4


def _check_layouts(onnx_path: Path, fp32: Path, calib: np.ndarray) -> dict:
    check = check_layouts_converted(onnx_path, fp32, calib[:LAYOUT_CHECK_FACES])
    from ..verify.compare import AGREEMENT_FLOOR

    return dict(check, agreement_ok=bool(check["argmax_agreement"] >= AGREEMENT_FLOOR))


def _onnx_nodes(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path), load_external_data=False).graph.node)


def check_contract(source: LoadedModel, size: int) -> dict | None:
    """Other common input contracts scored on a few labelled faces (the default verify set, when present)."""
    from ..contract_check import FACES as CONTRACT_FACES
    from ..contract_check import check_contract_on_faces
    from ..verify.faces import DEFAULT_DATA, open_faces

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
    if source.is_registry:
        net = source.net
        if resize_output:
            net = ContractNet(net, None, "NCHW", resize_to)
    else:
        inner = source.net.inner
        net = ContractNet(inner, spec.select, spec.output_layout, resize_to, hide=source.format == "exported-program")
    if bake_normalization:
        net = BakedNormalization(net, source.contract)
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
