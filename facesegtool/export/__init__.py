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
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import OutputError, check_writable_dir, low_space_note
import warnings

import torch

from ..checkpoint import DEFAULT_EXPORT_DIR, CheckpointError
from ..labels import CLASSES
from ..model_source import ContractNet, LoadedModel, ModelSourceError, load_source
from ..model_spec import ModelSpecError
from . import tflite as tflite_convert
from .calibration import CALIBRATION_DIR, CalibrationError, calibration_array, load_calibration_images
from .conversion_check import ambiguous_layouts
from .onnx import OPSET, BakedNormalization, ExportError, adapt_onnx, export_onnx
from .op_analysis import LAYOUT_OPS, gpu_warning
from .sidecar import VARIANTS, SidecarError, make_sidecar, read_sidecar, sidecar_path, write_sidecar
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
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    @property
    def warnings(self) -> list[str]:
        """A float model that would not run whole on a phone's GPU delegate (fp16 is the GPU's variant)."""
        found = [w for v in self.variants.values() if v.variant == "fp16" and (w := gpu_warning(v.variant, v.graph))]
        if self.ambiguous_layouts:
            where = ", ".join(f"{a['node']} ({a['op_type']}) -> {'x'.join(map(str, a['shape']))}"
                              for a in self.ambiguous_layouts[:3])
            more = f" and {len(self.ambiguous_layouts) - 3} more" if len(self.ambiguous_layouts) > 3 else ""
            found.append(f"{where}{more}: as many channels as rows or columns, so onnx2tf cannot tell NCHW from NHWC "
                         "by shape there and may lay the tensor out wrongly; verify measures it (--diagnose names "
                         "the node), and another --size avoids it")
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
            "options": self.options,
            "total_seconds": self.total_seconds,
            "assumed": self.notes,
        }


# The hidden work folder of a running export, inside its --out (same file system: the final moves
# are renames). It holds the exporting process's pid, so a later export can tell a folder left by
# a killed run (kill -9, power loss) from one in use, and remove it.
WORK_PREFIX = ".export-"
WORK_OWNER = "owner.pid"


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
    io_dtype: str = "int8",
    bake_normalization: bool = False,
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
        integer body). Float variants always have float32 I/O.
    bake_normalization: the model takes raw RGB 0..255 (bytes for int8/uint8 I/O) and normalises
        inside, per the model's input contract.
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
    if io_dtype not in IO_DTYPES:
        raise ValueError(f"io_dtype must be one of {', '.join(IO_DTYPES)}, not {io_dtype!r}")
    float_layers = list(float_layers or [])
    if float_layers and (int16_activations or io_dtype == "uint8"):
        raise ValueError("float_layers works with int8 activations and int8 or float32 I/O only")
    is_default = checkpoint is None
    if out_dir is not None:
        check_writable_dir(out_dir, "--out")
    source = load_source(checkpoint, spec=spec, weights=weights, size=size)
    if source.is_registry and size is not None and (size < 32 or size % 32):
        raise ValueError(f"size must be a multiple of 32 (the nets downsample 32x), not {size}")
    if bake_normalization and source.format == "onnx":
        raise ExportError(f"{source.path}: --bake-normalization is for torch models; an ONNX file is converted as it is")
    name = source.name
    contract = dict(source.contract)
    size = int(contract["size"])
    classes = source.classes
    out_dir = Path(out_dir) if out_dir is not None else (DEFAULT_EXPORT_DIR if is_default else Path("exports") / name)
    check_writable_dir(out_dir, "--out")
    others = foreign_exports(out_dir, source.sha256)
    if others and not replace:
        listing = ", ".join(p.name for p in others[:4]) + (f" and {len(others) - 4} more" if len(others) > 4 else "")
        raise ExportError(f"{out_dir} holds exports of another model ({listing}); export into another --out, "
                          "or pass --replace to remove them")

    # Calibration faces: required for int8; otherwise used, when present, for onnx2tf's sample checks.
    calib_folder = Path(calibration_dir) if calibration_dir is not None else CALIBRATION_DIR
    try:
        calib = calibration_array(calib_folder, contract, num_calib, baked_normalization=bake_normalization)
        faces = load_calibration_images(calib_folder, size, min(num_calib, 20))
    except CalibrationError:
        if "int8" in variants:
            raise
        calib, faces = None, np.full((1, size, size, 3), 128, np.uint8)

    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_work_dirs(out_dir)
    stem = f"{name}_{size}" + ("_rawrgb" if bake_normalization else "") + ("_full" if resize_output else "")
    work = Path(tempfile.mkdtemp(dir=out_dir, prefix=WORK_PREFIX, suffix=".tmp"))
    (work / WORK_OWNER).write_text(str(os.getpid()))
    try:
        t = time.time()
        onnx_tmp = source_to_onnx(source, work / f"{stem}.onnx", size, bake_normalization, resize_output, opset)
        onnx_seconds = time.time() - t
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
            "input": contract,
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
                progress=progress,
            )
        except ConversionError as exc:
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
            ambiguous_layouts=ambiguous_layouts(onnx_tmp),
        )
        staged: list[tuple[Path, Path, VariantResult]] = []
        for variant in variants:
            conv = conversion.variants[variant]
            final = out_dir / f"{stem}_{variant}.tflite"
            tmp_tflite = work / final.name
            conv.path.replace(tmp_tflite)
            variant_options = {k: v for k, v in options.items() if k != "default_checkpoint"}
            if variant != "int8":
                for key in ("int8_io_dtype", "int16_activations", "float_layers"):
                    variant_options.pop(key)
            else:
                variant_options["calibration"] = calibration
            sidecar = make_sidecar(
                tmp_tflite,
                name,
                variant,
                contract,
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
        for stale in others:  # --replace: the other model's files go only once this one's are in
            stale.unlink(missing_ok=True)
            if stale.suffix == ".tflite":
                sidecar_path(stale).unlink(missing_ok=True)
    except OSError as exc:  # e.g. room for the ONNX but not the TFLite: one line, not a traceback
        if isinstance(exc, OutputError):
            raise
        raise ExportError(f"cannot write the export in {out_dir}: {exc.strerror or exc}{low_space_note(out_dir)}; "
                          "nothing was left there") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.total_seconds = time.time() - started
    report.notes = list(source.notes)
    report.model_args = source.cli_args()
    return report


def source_to_onnx(source: LoadedModel, path: Path, size: int, bake_normalization: bool = False,
                   resize_output: bool = False, opset: int = OPSET) -> Path:
    """The ONNX graph that is converted: one NCHW output (the selected one), optionally resized to the input."""
    spec = source.spec
    resize_to = size if resize_output else None
    if source.format == "onnx":
        return adapt_onnx(source.onnx_path, path, size, spec.select, spec.output_layout, resize_to, opset)
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


def foreign_exports(out_dir: Path, sha256: str) -> list[Path]:
    """Files in out_dir exported from another model than the one with this sha256 (by their sidecars)."""
    found: list[Path] = []
    if not out_dir.is_dir():
        return found
    for tflite in sorted(out_dir.glob("*.tflite")):
        try:
            sidecar = read_sidecar(tflite)
        except SidecarError:
            continue
        recorded = (sidecar.get("source") or {}).get("sha256")
        if recorded and recorded != sha256:
            found.append(tflite)
            onnx_file = out_dir / str(sidecar.get("export", {}).get("onnx", ""))
            if onnx_file.suffix == ".onnx" and onnx_file.is_file() and onnx_file not in found:
                found.append(onnx_file)
    return found
