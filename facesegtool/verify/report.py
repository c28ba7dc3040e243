"""The verify report: tables for the terminal and Markdown, pictures (matplotlib PNG), JSON for CI.

report_dir/
  report.md          the tables and the pictures below
  verify.json        VerifyResult.to_dict()
  faces_<model>.png  per model, the faces where TFLite and PyTorch disagree most:
                     image | truth | PyTorch | TFLite | difference
  drops.png          per-class IoU drop of every model, with the gate
  diagnosis_<model>.png  int8 only, when diagnosed: relative error layer by layer
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from ..atomic import write_bytes_atomic
from ..labels import CLASSES, PALETTE, colorize
from ..export.conversion_check import describe_fault
from ..export.op_analysis import LAYOUT_OPS
from .compare import AGREEMENT_FLOORS, ModelResult, VerifyResult


def _fmt(x: float | None, spec: str = ".2f") -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "n/a"
    text = format(x, spec)
    return text.replace("-", "", 1) if text.startswith("-") and float(text) == 0 else text  # no "-0.00"


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown pipe table, padded so that it also reads well in a terminal."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def reference_name(result: VerifyResult) -> str:
    """What the TFLite models were compared with: PyTorch, or ONNX Runtime for an ONNX source."""
    return "ONNX Runtime" if result.source.get("reference") == "onnxruntime" else "PyTorch"


def _class_names(result: VerifyResult) -> list[str]:
    """Rows of the per-class tables: our classes against the truth, else the model's own labels."""
    return list(CLASSES) if result.gate_applied or not result.labels else list(result.labels)


def _labels(result: VerifyResult) -> list[str]:
    """Column label per model: its variant, or the file name when variants repeat."""
    variants = [m.variant for m in result.models]
    return variants if len(set(variants)) == len(variants) else [m.name for m in result.models]


def models_table(result: VerifyResult) -> str:
    rows = []
    for m in result.models:
        gt = m.tflite is not None
        rows.append([
            m.name,
            m.variant,
            _fmt(m.torch.macro_iou, ".4f") if gt else "n/a",
            _fmt(m.tflite.macro_iou, ".4f") if gt else "n/a",
            _fmt(m.drop),
            _fmt(m.drop_no_bg),
            f"{100 * m.agreement.pixel_accuracy:.3f} %",
            _fmt(m.agreement.macro_iou, ".4f"),
            _fmt(m.logit_max_abs, ".3g"),
            _fmt(m.logit_mean_abs, ".3g"),
            f"{1000 * m.seconds / max(len(result.faces), 1):.1f}",
            ("FAIL" if m.failures else "pass") if gt else "no truth",
        ])
    header = ["model", "variant", f"{reference_name(result)} mIoU", "TFLite mIoU", "drop (pt)", "drop no-bg (pt)",
              "pixel agreement", "agreement mIoU", "max abs dlogit", "mean abs dlogit", "ms/face", "gate"]
    return _table(header, rows)


def class_table(result: VerifyResult) -> str:
    """Per-class IoU drop in points (a * marks classes over the gate); without truth, per-class disagreement."""
    labels = _labels(result)
    rows = []
    for i, name in enumerate(_class_names(result)):
        row = [name]
        for m in result.models:
            if m.tflite is None:
                row.append(_fmt(100 * (1 - m.agreement.iou[i])) if m.agreement.present[i] else "absent")
            else:
                d = m.class_drops.get(name)
                row.append("absent" if d is None else _fmt(d) + (" *" if name in m.flagged_classes else ""))
        rows.append(row)
    return _table(["class", *labels], rows)


def class_table_title(result: VerifyResult) -> str:
    if not result.gate_applied:
        return (f"Per-class disagreement (100 x (1 - IoU of the TFLite mask against the {reference_name(result)} "
                "mask)):")
    limit = result.max_class_drop if result.max_class_drop is not None else result.max_drop
    return f"Per-class IoU drop, {reference_name(result)} minus TFLite, in points (* = over {100 * limit:.2f}):"


def diagnosis_text(m: ModelResult) -> str:
    d = m.diagnosis
    if not d:
        return ""
    if d.get("error"):
        return f"int8 diagnosis of {m.name}: {d['error']}"
    lines = [f"int8 diagnosis of {m.name} (against {d['reference']}, {d['faces']} faces, "
             f"{d['matched_tensors']} tensors matched by name):"]
    points = d["first_divergence"]
    if points and points[0]["jump"]:
        lines.append("  where int8 first leaves float (relative error ||int8 - fp32|| / ||fp32||, layer inputs -> output):")
    else:
        lines.append("  no layer jumps (output error >= 2x its inputs' and +0.05); the largest increases:")
    for layer in points:
        lines.append(f"    op {layer['op_index']:>3} {layer['op']:<18} {layer['short_name']:<40} "
                     f"{layer['input_rel_error']:.3f} -> {layer['rel_error']:.3f}")
    if points and points[0]["jump"]:
        lines.append("  largest single-layer increases anywhere:")
        for layer in d["largest_increases"]:
            lines.append(f"    op {layer['op_index']:>3} {layer['op']:<18} {layer['short_name']:<40} "
                         f"{layer['input_rel_error']:.3f} -> {layer['rel_error']:.3f}")
    lines.append(f"  final output relative error {d['output_rel_error']:.3f}")
    lines.append("  remedies the exporter can apply:")
    for r in d["remedies"]:
        lines.append(f"    - {r['name']}: {r['why']}")
    return "\n".join(lines)


def remedies_table(m: ModelResult) -> str:
    """Each tried remedy against the model as exported; "better" is drop saved (points) on the same faces."""
    if not m.remedies:
        return ""
    rows = [[f"as exported ({m.name})", _fmt(m.drop), "", f"{100 * m.agreement.pixel_accuracy:.3f} %",
             _fmt(m.agreement.macro_iou, ".4f"), _fmt(m.path.stat().st_size / 1e6 if m.path.is_file() else None),
             "FAIL" if m.failures else "pass"]]
    for r in m.remedies:
        if r.get("error"):
            rows.append([r["name"], "", "", "", "", "", r["error"]])
            continue
        rows.append([r["name"], _fmt(r["macro_iou_drop_points"]), _fmt(r["change_points"], "+.2f"),
                     f"{100 * r['pixel_agreement']:.3f} %", _fmt(r["agreement_mean_iou"], ".4f"),
                     _fmt(r["size_bytes"] / 1e6), "pass" if r["passed"] else "FAIL"])
    return _table(["remedy", "drop (pt)", "better by (pt)", "pixel agreement", "agreement mIoU", "MB", "gate"], rows)


def graph_table(result: VerifyResult) -> str:
    """Per model: ops in all, the pure data-movement ops, and what a phone's GPU delegate would refuse."""
    rows = []
    for m in result.models:
        g = m.graph or {}
        refused = g.get("gpu_incompatible")
        gpu = "n/a" if refused is None else "all ops" if not refused else \
            "refuses " + ", ".join(f"{op} x{len(v)}" for op, v in refused.items())
        layout = g.get("layout_ops") or {}
        rows.append([m.name, str(sum((g.get("ops") or {}).values())),
                     *[str(layout.get(op, "n/a")) for op in LAYOUT_OPS], gpu])
    return _table(["model", "ops", *LAYOUT_OPS, "GPU delegate"], rows)


def conversion_text(m: ModelResult) -> str:
    return f"{m.name}: {describe_fault(m.conversion)}" if m.conversion else ""


def summary_text(result: VerifyResult) -> str:
    f = result.faces
    parts = [
        f"Verified on {len(f)} faces of {f.root}" + (f" (split {f.split})" if f.split else "")
        + f", {f.size} px, against {result.checkpoint}",
    ]
    if result.torch is not None:
        parts.append(f"{reference_name(result)}: macro IoU {result.torch.macro_iou:.4f} (without background {result.torch.macro_iou_no_bg:.4f})")
    parts += ["", models_table(result), "", class_table_title(result), class_table(result)]
    parts += ["", "Graph (ops in each .tflite; the four middle columns only move data):", graph_table(result)]
    for m in result.models:
        if m.conversion:
            parts += ["", conversion_text(m)]
        if m.diagnosis:
            parts += ["", diagnosis_text(m)]
        if m.remedies:
            parts += ["", f"Remedies tried for {m.name} (each re-exported and verified on the same faces):", remedies_table(m)]
    parts += [""] + [f"note: {n}" for n in result.notes]
    if not result.passed:
        parts += ["gate: FAILED"] + [f"  {line}" for line in result.failures]
    elif not result.gate_applied:
        floors = ", ".join(f"{v} {100 * f:g} %" for v, f in AGREEMENT_FLOORS.items())
        parts.append(f"gate: IoU gate not applied (no ground truth); agreement floors ({floors}): PASS")
    else:
        parts.append(f"gate: PASS (macro IoU drop <= {100 * result.max_drop:.2f} points"
                     + (f", class drop <= {100 * result.max_class_drop:.2f}" if result.max_class_drop is not None else "") + ")")
    return "\n".join(parts).rstrip() + "\n"


# --- files ------------------------------------------------------------------------------------


def _save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def difference_picture(image: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The face dimmed to grey, with the pixels where the two masks differ in red."""
    grey = (image.mean(-1, keepdims=True) * 0.5).astype(np.uint8).repeat(3, -1)
    grey[a != b] = (255, 0, 0)
    return grey


def faces_figure(m: ModelResult, path: Path, reference: str = "PyTorch", labels: list[str] | None = None,
                 palette: np.ndarray | None = None) -> None:
    """The faces where the masks differ most; masks in the model's own labels, drawn in its palette."""
    plt = _pyplot()
    examples = m.examples
    labels = list(labels or CLASSES)
    palette = np.asarray(palette if palette is not None else PALETTE[: len(labels)], np.uint8)
    with_truth = any(e.truth is not None for e in examples)
    titles = ["image"] + (["ground truth"] if with_truth else []) + [reference, f"TFLite {m.variant}", "difference"]
    fig, axes = plt.subplots(len(examples), len(titles), figsize=(2.2 * len(titles), 2.5 * len(examples) + 0.6),
                             squeeze=False)
    for row, e in zip(axes, examples):
        pictures = [e.image] + ([colorize(e.truth) if e.truth is not None else np.zeros_like(e.image)] if with_truth else [])
        pictures += [palette[e.torch_mask], palette[e.tflite_mask], difference_picture(e.image, e.torch_mask, e.tflite_mask)]
        for ax, pic in zip(row, pictures):
            ax.imshow(pic)
            ax.set_xticks([])
            ax.set_yticks([])
        row[0].set_ylabel(e.name[:12], fontsize=7)
        row[-1].set_xlabel(f"{100 * e.disagreement:.2f} % differ", fontsize=8)
    for ax, title in zip(axes[0], titles):
        ax.set_title(title, fontsize=9)
    handles = [plt.Rectangle((0, 0), 1, 1, facecolor=palette[i] / 255, edgecolor="grey") for i in range(len(labels))]
    fig.legend(handles, labels, loc="lower center", ncol=6 if len(labels) <= 12 else 10, fontsize=7, frameon=False)
    fig.suptitle(f"{m.name}: the {len(examples)} faces where TFLite and {reference} disagree most", fontsize=10)
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    _save_figure(fig, path)


def drops_figure(result: VerifyResult, path: Path) -> None:
    plt = _pyplot()
    labels = _labels(result)
    n = len(result.models)
    names = _class_names(result)
    y = np.arange(len(names))
    height = 0.8 / max(n, 1)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(names) + 1.5))
    for k, (m, label) in enumerate(zip(result.models, labels)):
        if m.tflite is not None:
            values = [m.class_drops.get(c) for c in names]
        else:
            values = [100 * (1 - m.agreement.iou[i]) if m.agreement.present[i] else None for i in range(len(names))]
        ax.barh(y + (k - (n - 1) / 2) * height, [0 if v is None else v for v in values], height, label=label)
    if result.gate_applied:
        limit = 100 * (result.max_class_drop if result.max_class_drop is not None else result.max_drop)
        ax.axvline(limit, color="red", linestyle="--", linewidth=1, label=f"gate {limit:.2f} pt")
        ax.set_xlabel(f"IoU drop, {reference_name(result)} minus TFLite (points)")
    else:
        ax.set_xlabel(f"100 x (1 - IoU of TFLite mask vs {reference_name(result)} mask)")
    ax.axvline(0, color="black", linewidth=0.6)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.legend(fontsize=8)
    ax.set_title("What export cost, per class", fontsize=10)
    fig.tight_layout()
    _save_figure(fig, path)


def diagnosis_figure(m: ModelResult, path: Path) -> None:
    plt = _pyplot()
    layers = m.diagnosis["layers"]
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot(range(len(layers)), [layer["rel_error"] for layer in layers], marker=".", linewidth=1)
    for layer in m.diagnosis["first_divergence"]:
        k = next(i for i, x in enumerate(layers) if x["op_index"] == layer["op_index"])
        ax.annotate(layer["short_name"], (k, layer["rel_error"]), fontsize=7, rotation=20,
                    xytext=(4, 6), textcoords="offset points", color="red")
        ax.plot(k, layer["rel_error"], "o", color="red")
    ax.set_xlabel("layer (execution order)")
    ax.set_ylabel("relative error int8 vs fp32")
    ax.set_title(f"{m.name}: where int8 leaves float", fontsize=10)
    fig.tight_layout()
    _save_figure(fig, path)


def write_report(result: VerifyResult, report_dir: str | Path) -> Path:
    """Write report.md, verify.json and the pictures; returns the report.md path."""
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    pictures: dict[str, list[str]] = {}
    for m in result.models:
        if m.examples:
            name = f"faces_{m.path.stem}.png"
            faces_figure(m, out / name, reference_name(result), result.labels or None,
                         np.asarray(result.palette, np.uint8) if result.palette else None)
            pictures.setdefault(m.name, []).append(name)
        if m.diagnosis and m.diagnosis.get("layers"):
            name = f"diagnosis_{m.path.stem}.png"
            diagnosis_figure(m, out / name)
            pictures.setdefault(m.name, []).append(name)
    drops_figure(result, out / "drops.png")
    write_bytes_atomic(out / "verify.json", (json.dumps(result.to_dict(), indent=2) + "\n").encode())

    f = result.faces
    md = [
        "# Export verification",
        "",
        f"Checkpoint `{result.checkpoint}`; {len(f)} faces of `{f.root}`" + (f" (split {f.split})" if f.split else "")
        + f" at {f.size} px; gate: macro IoU drop <= {100 * result.max_drop:.2f} points"
        + (f", class drop <= {100 * result.max_class_drop:.2f}" if result.max_class_drop is not None else "") + ".",
        "",
    ]
    if result.torch is not None:
        md += [f"{reference_name(result)} macro IoU {result.torch.macro_iou:.4f} (without background {result.torch.macro_iou_no_bg:.4f}).", ""]
    md += [
        "**Gate: " + ("FAILED" if not result.passed else "PASS" if result.gate_applied
                      else "IoU gate not applied (no ground truth); fp32 agreement PASS") + "**",
        "",
        *[f"- {line}" for line in result.failures],
        "",
        "## Models",
        "",
        models_table(result),
        "",
        "Drops are in IoU points (1 point = 0.01 IoU); positive means TFLite is worse. Agreement scores the TFLite "
        f"mask against the {reference_name(result)} mask (over the model's own {len(result.labels or CLASSES)} classes); "
        "logit differences are on dequantized outputs.",
        "",
        "## Per class",
        "",
        class_table_title(result),
        "",
        class_table(result),
        "",
        "![per-class drops](drops.png)",
        "",
        "## Graph",
        "",
        "Ops in each .tflite (TFLite's model analyzer); TRANSPOSE, GATHER, CAST and RESHAPE only move data, and "
        "an op the GPU delegate refuses runs on the phone's CPU instead.",
        "",
        graph_table(result),
        "",
    ]
    for m in result.models:
        md += [f"## {m.name}", ""]
        if m.conversion:
            md += [conversion_text(m), ""]
        if m.diagnosis:
            md += ["```", diagnosis_text(m), "```", ""]
        if m.remedies:
            md += ["Remedies, each re-exported and verified on the same faces:", "", remedies_table(m), ""]
        md += [f"![{name}]({name})" for name in pictures.get(m.name, [])] + [""]
    if result.notes:
        md += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    md += ["Machine-readable: [verify.json](verify.json)", ""]
    report = out / "report.md"
    write_bytes_atomic(report, "\n".join(md).encode())
    return report
