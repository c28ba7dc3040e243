"""What an export made: one row per variant, the summary table, the warnings and the next commands."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from .op_analysis import LAYOUT_OPS, gpu_warning


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
        rows.append(("TF", f"({self.options.get('converter', 'onnx2tf')}, shared by all below)", "", self.tf_seconds))
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
            lines.append(f"layout: {layout_places(self.ambiguous_layouts)} could read NCHW or NHWC by shape; checked: "
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


def layout_places(found: list[dict]) -> str:
    """The tensors whose layout is ambiguous by shape, the first three named."""
    where = ", ".join(f"{a['node']} ({a['op_type']}) -> {'x'.join(map(str, a['shape']))}" for a in found[:3])
    return where + (f" and {len(found) - 3} more" if len(found) > 3 else "")


def layout_warning(found: list[dict], check: dict | None) -> str | None:
    """The warning for tensors onnx2tf must lay out by shape alone: none when the fp32 file was checked
    and agrees; "wrong" when it was checked and does not; "possible" when there was no fp32 file to run."""
    if not found or (check is not None and check["agreement_ok"]):
        return None
    if check is None:
        return (f"possible wrong layout: {layout_places(found)} has as many channels as rows or columns, so onnx2tf "
                "cannot tell NCHW from NHWC by shape there; not checked (no fp32 variant exported): verify measures "
                "it, --diagnose names the node if it bit, and another --size avoids it")
    return (f"wrong layout: {layout_places(found)} has as many channels as rows or columns, so onnx2tf cannot tell "
            f"NCHW from NHWC by shape there, and the fp32 TFLite agrees with ONNX Runtime on only "
            f"{100 * check['argmax_agreement']:.2f} % of pixels of {check['faces']} faces: onnx2tf laid it out "
            "wrongly; export at another --size (verify --diagnose names the node)")
