"""The int8 model's I/O choices side by side, in one run: which one standard runtimes take, and what it costs.

    python tools/int8_io_bench.py [--model CKPT] [--faces N] [--out models/default/bench]

Exports the model's int8 variant four ways (int8 in/out, the previous default; uint8 in/out with the
normalisation baked in, the default now; float32 in/out baked; float32 in/out normalised outside) and
measures, on the val faces: argmax agreement with the previous int8 file and with PyTorch, ops (and
the QUANTIZE/DEQUANTIZE among them), GPU-delegate coverage, host ms at 1 and 2 threads (median), and
whether MediaPipe's stock ImageSegmenter loads the file from its path and gives the interpreter's mask.
Writes int8_io.md and int8_io.json into --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facesegtool import mediapipe_runtime  # noqa: E402
from facesegtool.bench.host import host_description, time_calls  # noqa: E402
from facesegtool.export import export  # noqa: E402
from facesegtool.tflite_runner import TFLiteModel  # noqa: E402
from facesegtool.data.faces import open_faces  # noqa: E402
from facesegtool.verify.mediapipe_check import mediapipe_agreement  # noqa: E402

CHOICES = [  # (label, export options)
    ("int8 in / int8 out (previous default)", {"io_dtype": "int8", "bake_normalization": False}),
    ("uint8 in / uint8 out, baked (default)", {"io_dtype": "uint8", "bake_normalization": True}),
    ("float32 in / float32 out, baked", {"io_dtype": "float32", "bake_normalization": True}),
    ("float32 in / float32 out, normalised outside", {"io_dtype": "float32", "bake_normalization": False}),
]


def measure(model: str | None, n_faces: int, runs: int) -> dict:
    from facesegtool.model_source import load_source
    from facesegtool.segmenter import TorchSegmenter

    source = load_source(model)
    faces = list(open_faces(None, "val", size=int(source.contract["size"]), limit=n_faces))
    images = [f.image for f in faces]
    reference = TorchSegmenter(source=source)
    torch_masks = [reference.input_scores(img).argmax(-1) for img in images]
    rows, before = [], None
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, options) in enumerate(CHOICES):
            report = export(model, quant="int8", out_dir=Path(tmp) / str(i), progress=False, **options)
            path = report.variants["int8"].tflite
            graph = report.variants["int8"].graph
            tfl = TFLiteModel(path)
            masks = [tfl.predict(img) for img in images]
            before = masks if before is None else before
            ms = {}
            for threads in (1, 2):
                timed = TFLiteModel(path, num_threads=threads)
                x = timed.preprocess(images[0])
                interp = timed.interpreter
                interp.set_tensor(timed.input_details["index"], x)
                ms[threads] = time_calls(interp.invoke, runs=runs, warmup=5)["median_ms"]
            mp = mediapipe_agreement(tfl, images) if mediapipe_runtime.available() else None
            if mp and mp["error"]:
                mp["error"] = mp["error"].split(": ", 1)[-1]
            ops = graph["ops"]
            rows.append({
                "choice": label, **options,
                "input": f"{tfl.sidecar['input']['dtype']} {tfl.sidecar['input']['quantization']}",
                "output": tfl.sidecar["output"]["dtype"],
                "ops": sum(ops.values()), "quantize_ops": ops.get("QUANTIZE", 0) + ops.get("DEQUANTIZE", 0),
                "gpu_refused": graph["gpu_incompatible"], "size_mb": round(report.variants["int8"].size_mb, 3),
                "ms_1_thread": ms[1], "ms_2_threads": ms[2],
                "agreement_with_previous_int8": float(np.mean([np.mean(a == b) for a, b in zip(masks, before)])),
                "agreement_with_pytorch": float(np.mean([np.mean(a == b) for a, b in zip(masks, torch_masks)])),
                "mediapipe": mp,
            })
            print(f"{label}: {rows[-1]['ms_1_thread']} / {rows[-1]['ms_2_threads']} ms", file=sys.stderr)
    return {"model": str(source.path), "faces": len(images), "runs": runs, "host": host_description(), "rows": rows}


def to_markdown(result: dict) -> str:
    lines = [
        f"# int8 I/O choices: {Path(result['model']).name}, {result['faces']} val faces, median of {result['runs']} "
        "runs on this host",
        "",
        "| choice | input | output | ops (Q/DQ) | GPU delegate | MB | ms 1 thr | ms 2 thr | = previous int8 | "
        "= PyTorch | MediaPipe (path only) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        mp = r["mediapipe"]
        mp_text = ("not installed" if mp is None else
                   f"loads, {100 * mp['agreement']:.3f} % = interpreter" if mp["loaded"] else f"refuses: {mp['error']}")
        gpu = "all ops" if not r["gpu_refused"] else "refuses " + ", ".join(r["gpu_refused"])
        lines.append(f"| {r['choice']} | {r['input']} | {r['output']} | {r['ops']} ({r['quantize_ops']}) | {gpu} | "
                     f"{r['size_mb']:.2f} | {r['ms_1_thread']:.2f} | {r['ms_2_threads']:.2f} | "
                     f"{100 * r['agreement_with_previous_int8']:.3f} % | {100 * r['agreement_with_pytorch']:.3f} % | "
                     f"{mp_text} |")
    cpu = result["host"].get("cpu", "")
    lines += ["", f"Host: {cpu}. Re-run: `python tools/int8_io_bench.py`."]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="any model facesegtool reads [default: the shipped one]")
    parser.add_argument("--faces", type=int, default=100)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--out", type=Path, default=REPO / "models" / "default" / "bench")
    args = parser.parse_args()
    result = measure(args.model, args.faces, args.runs)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "int8_io.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.out / "int8_io.md").write_text(to_markdown(result))
    print(to_markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
