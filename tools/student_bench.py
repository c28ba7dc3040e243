"""Host latency of TFLite files from different models side by side, in one run (issue 33's students vs the default).

    python tools/student_bench.py exports/default/unet-mobilenetv2_256_int8.tflite exports/s3/..._int8.tflite \
        --threads 1,2 --json models/distill/bench.json

`facesegtool bench` times one model's exports beside its PyTorch source; this compares models. Rounds are
interleaved (each round times every file once per thread count), so a load that comes and goes on the host
hits every file alike; the table gives medians and each file's ratio to the first one.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from facesegtool.atomic import write_bytes_atomic
from facesegtool.bench.host import time_calls
from facesegtool.export.op_analysis import analyze_ops
from facesegtool.imaging import image_files, read_rgb, square_crop
from facesegtool.tflite_runner import TFLiteModel

FACE = sorted(image_files(Path(__file__).resolve().parents[1] / "calibration"))[0]


@click.command()
@click.argument("tflites", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--threads", default="1,2", show_default=True)
@click.option("--rounds", default=15, show_default=True, help="Interleaved rounds; each times every file 5 times.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def main(tflites: tuple[str, ...], threads: str, rounds: int, json_path: str | None) -> None:
    counts = [int(t) for t in threads.split(",")]
    models = {(p, t): TFLiteModel(p, num_threads=t) for p in tflites for t in counts}
    inputs = {key: m.preprocess(square_crop(read_rgb(FACE), m.size[0])[0]) for key, m in models.items()}
    samples: dict = {key: [] for key in models}
    for _ in range(rounds):
        for key, m in models.items():
            def call(m=m, x=inputs[key]) -> None:  # the interpreter alone, as `bench` times it
                m.interpreter.set_tensor(m.input_details["index"], x)
                m.interpreter.invoke()

            samples[key].append(time_calls(call, 5, 1)["median_ms"])
    rows = []
    for p in tflites:
        graph = analyze_ops(Path(p))
        row = {"file": p, "ops": sum(graph.get("ops", {}).values()), "gpu_incompatible": sorted(graph.get("gpu_incompatible") or []),
               "mb": round(Path(p).stat().st_size / 1e6, 2)}
        for t in counts:
            row[f"ms_{t}t"] = round(float(np.median(samples[(p, t)])), 2)
        rows.append(row)
    head = " | ".join(f"{t} thr ms (x first)" for t in counts)
    click.echo(f"| file | ops | GPU-incompatible ops | MB | {head} |")
    click.echo("|---|---|---|---|" + "---|" * len(counts))
    for row in rows:
        cells = " | ".join(f"{row[f'ms_{t}t']:.1f} ({row[f'ms_{t}t'] / rows[0][f'ms_{t}t']:.2f})" for t in counts)
        click.echo(f"| {Path(row['file']).name} | {row['ops']} | {', '.join(row['gpu_incompatible']) or 'none'} | "
                   f"{row['mb']} | {cells} |")
    if json_path:
        write_bytes_atomic(Path(json_path), json.dumps(rows, indent=1).encode())


if __name__ == "__main__":
    main()
