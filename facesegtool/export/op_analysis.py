"""What a .tflite is made of: its op histogram, and the ops a phone's GPU delegate would refuse.

    info = analyze_ops("exports/default/unet-mobilenetv3-large_256_fp16.tflite")
    info["ops"]               {"CONV_2D": 56, "HARD_SWISH": 20, ...}, most frequent first
    info["layout_ops"]        {"TRANSPOSE": 0, "GATHER": 0, "CAST": 0, "RESHAPE": 0}: pure data movement
    info["gpu_incompatible"]  {"GATHER": ["Op#12: <the delegate's reason>"], ...}; {} = all ops GPU-compatible

Both come from TFLite's model analyzer, the C++ behind `tf.lite.experimental.Analyzer.analyze(...,
gpu_compatibility=True)`, called through the LiteRT runtime's copy of it so that no TensorFlow
import is needed (TensorFlow's public API is the fallback). The check is static: an op it passes
can still fail on a particular phone's GPU, but an op it refuses falls back to the CPU there,
splitting the graph (two copies per split, and the CPU does that part).
"""

from __future__ import annotations

import contextlib
import io
import re
from collections import Counter
from pathlib import Path

# Ops that only move or re-type data: on a phone each is a memory pass, on the GPU a layout change.
LAYOUT_OPS = ("TRANSPOSE", "GATHER", "CAST", "RESHAPE")
_OP_LINE = re.compile(r"^\s*Op#(\d+) (\w+)\(")
_GPU_WARNING = "GPU COMPATIBILITY WARNING: "


def analyzer_text(tflite: str | Path | bytes) -> str:
    """TFLite's model analyzer report with the GPU-delegate check."""
    content = tflite if isinstance(tflite, bytes) else Path(tflite).read_bytes()
    try:
        from ai_edge_litert import _pywrap_analyzer_wrapper as wrapper

        return wrapper.ModelAnalyzer(content, False, True)
    except ImportError:
        import tensorflow as tf

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            tf.lite.experimental.Analyzer.analyze(model_content=content, gpu_compatibility=True)
        return out.getvalue()


def parse_analyzer(text: str) -> dict:
    """Op histogram and GPU-delegate refusals from an analyzer report (main subgraph and any others)."""
    ops: Counter[str] = Counter()
    refused: dict[str, list[str]] = {}
    last: tuple[str, str] | None = None
    for line in text.splitlines():
        match = _OP_LINE.match(line)
        if match:
            last = (match.group(1), match.group(2))
            ops[last[1]] += 1
        elif line.startswith(_GPU_WARNING) and last and not line[len(_GPU_WARNING):].startswith("Subgraph#"):
            refused.setdefault(last[1], []).append(f"Op#{last[0]}: {line[len(_GPU_WARNING):].strip()}")
    return {
        "ops": dict(ops.most_common()),
        "layout_ops": {name: ops.get(name, 0) for name in LAYOUT_OPS},
        "gpu_incompatible": refused,
    }


def analyze_ops(tflite: str | Path | bytes) -> dict:
    """{"ops", "layout_ops", "gpu_incompatible"} of a .tflite (see the module doc)."""
    return parse_analyzer(analyzer_text(tflite))


def gpu_warning(variant: str, analysis: dict) -> str | None:
    """A one-line warning when a float model would not run whole on the GPU delegate (None when it would)."""
    refused = analysis.get("gpu_incompatible") or {}
    if not refused:
        return None
    counts = ", ".join(f"{op} x{len(v)}" for op, v in refused.items())
    return (f"{variant}: the GPU delegate would refuse {counts}; those ops fall back to the CPU on the phone "
            f"(e.g. {next(iter(refused.values()))[0]})")
