"""The "bring your own model" matrix: four architectures x four ways to hand them over, measured.

    .venv/bin/python tests/own_model_matrix.py --out reports/own-models [--faces 50]

Each architecture of tests/own_models.py is trained as tests/test_own_model.py trains it (50 Adam
steps on 64 real faces), saved as a torch.export program, TorchScript, code + weights and ONNX, then
each form goes through `export --quant fp32,int8`, `verify` on real val faces and `bench --device host`
(1 thread). Prints one markdown table (also written to matrix.md, rows to matrix.json): converted?,
fp32 argmax agreement, int8 drop and agreement, ops, GPU-delegate refusals, host ms of int8 TFLite
beside the reference (PyTorch, or ONNX Runtime for an .onnx) and ONNX Runtime on the exported graph.
A benchmark to run by hand (about 30 minutes on 2 cores), not a test; `--bench-only` re-times an
earlier run's exports, for figures from a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import own_models  # noqa: E402
from conftest import CELEBAMASK_MINI  # noqa: E402
from own_model_training import FORMATS, model_args, save_forms, saved_forms, train  # noqa: E402

FORM_NAMES = {"pt2": "ExportedProgram", "ts": "TorchScript", "module": "code + weights", "onnx": "ONNX"}


def measure(args: dict, out: Path, faces: int) -> dict:
    """args: export's model keywords (checkpoint, spec, weights) for one form."""
    from facesegtool.export import export
    from facesegtool.verify import verify

    row: dict = {}
    started = time.time()
    report = export(quant="fp32,int8", out_dir=out, progress=False, replace=True, **args)
    row["converted"] = sorted(report.variants)
    row["ops"] = {v: sum(r.graph["ops"].values()) for v, r in report.variants.items()}
    row["gpu"] = report.variants["fp32"].gpu_summary
    row["warnings"] = report.warnings
    result = verify(export_dir=out, data_dir=CELEBAMASK_MINI, limit=faces, diagnose=False, progress=False, **args)
    by = {m.variant: m for m in result.models}
    row["fp32_agreement"] = by["fp32"].agreement.pixel_accuracy
    row["fp32_drop"] = by["fp32"].drop
    row["int8_agreement"] = by["int8"].agreement.pixel_accuracy
    row["int8_drop"] = by["int8"].drop
    row["int8_drop_no_bg"] = by["int8"].drop_no_bg
    row["reference"] = result.source["reference"]
    row["ms"] = host_ms(args, out)
    row["seconds"] = round(time.time() - started, 1)
    return row


def host_ms(args: dict, out: Path) -> dict[str, float]:
    """Median ms, 1 thread, of the reference, ONNX Runtime on the exported graph and each TFLite variant."""
    from facesegtool.bench.host import run_host_bench

    bench = run_host_bench(export_dir=out, threads=[1], runs=30, warmup=5, progress=False, **args)
    return {(r["runtime"] if r["runtime"] != "tflite" else f"tflite {r.get('variant')}"): r["median_ms"]
            for r in bench["results"] if r["status"] == "ok"}


def table(rows: dict) -> str:
    lines = ["| architecture | form | converted | fp32 agreement | int8 drop (pt) | int8 agreement | ops fp32/int8 "
             "| GPU delegate (fp32) | ms int8 TFLite | ms ONNX Runtime | ms PyTorch |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (name, fmt), r in rows.items():
        if "error" in r:
            lines.append(f"| {name} | {FORM_NAMES[fmt]} | no: {r['error'][:80]} | | | | | | | | |")
            continue
        ms = {k: f"{v:.2f}" for k, v in r["ms"].items()}
        lines.append(
            f"| {name} | {FORM_NAMES[fmt]} | {'+'.join(r['converted'])} | {100 * r['fp32_agreement']:.2f} % "
            f"| {r['int8_drop']:.2f} | {100 * r['int8_agreement']:.2f} % | {r['ops']['fp32']}/{r['ops']['int8']} "
            f"| {r['gpu']} | {ms.get('tflite int8', '-')} | {ms.get('onnxruntime', '-')} | {ms.get('pytorch', '-')} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/own-models"))
    parser.add_argument("--faces", type=int, default=50, help="val faces verify scores on")
    parser.add_argument("--only", nargs="*", default=list(own_models.ARCHITECTURES))
    parser.add_argument("--bench-only", action="store_true",
                        help="re-measure only the host ms of an earlier run's exports (on a quiet machine)")
    opts = parser.parse_args()
    torch.set_num_threads(2)
    rows: dict = {}
    if opts.bench_only:
        done = json.loads((opts.out / "matrix.json").read_text())
        for key, row in done.items():
            name, fmt = key.split("/")
            if "error" not in row:
                saved = saved_forms(name, opts.out / name / "model")
                row["ms"] = host_ms(model_args(saved, fmt), opts.out / name / fmt)
            rows[(name, fmt)] = row
            print(key, row.get("ms"), flush=True)
        (opts.out / "matrix.json").write_text(json.dumps(done, indent=1))
        text = table(rows)
        (opts.out / "matrix.md").write_text(text + "\n")
        print(text)
        return 0
    for name in opts.only:
        net = train(name)
        saved = save_forms(name, net, opts.out / name / "model")
        for fmt in FORMATS:
            print(f"{name} / {FORM_NAMES[fmt]} ...", flush=True)
            try:
                rows[(name, fmt)] = measure(model_args(saved, fmt), opts.out / name / fmt, opts.faces)
            except Exception as exc:  # a form that fails is a row of the table, not the end of the run
                traceback.print_exc()
                rows[(name, fmt)] = {"error": f"{type(exc).__name__}: {exc}"}
            (opts.out / "matrix.json").write_text(json.dumps({f"{n}/{f}": r for (n, f), r in rows.items()}, indent=1))
    text = table(rows)
    (opts.out / "matrix.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
