"""One trial: train -> eval -> export -> verify -> host bench, each step the library call the CLI makes.

    python -m facesegtool.sweep TRIAL_DIR      # what the launchers run, one process per trial

TRIAL_DIR/config.json says what to run (written by the sweep). Each finished step leaves
steps/<step>.json with its figures, so a killed trial continues at the step it was in (training
itself resumes from its last epoch). The trial ends with result.json: status "ok", or "failed" with
the step and the error (the traceback in error.txt), never an exception to the sweep.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from ..atomic import write_bytes_atomic
from ..labels import CLASSES

RESULT = "result.json"


def write_json(path: Path, data: dict) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=1) + "\n").encode())


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def _round(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(float(x), digits)


# --- the steps: each returns flat figures for the results row ------------------------------------


def _train(cfg: dict, d: Path, threads: int | None):
    from ..training.loop import TrainConfig, train

    return train(TrainConfig(**cfg["train"], data=cfg["data"], out=str(d / "train"), resume=True, progress=False,
                             threads=threads))


def step_train(cfg: dict, d: Path) -> dict:
    nproc = cfg.get("torchrun")
    if nproc:
        # DistributedDataParallel over nproc processes; then the in-process call below only reads the finished run.
        import subprocess

        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
                   "-m", "facesegtool.sweep", "--train", str(d)]
        subprocess.run(command, check=True)
    result = _train(cfg, d, cfg["threads"])
    return {"epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
            "train_seconds": round(sum(r["seconds"] for r in result.history), 1)}


def step_eval(cfg: dict, d: Path) -> dict:
    from ..checkpoint import load_model
    from ..models import count_parameters
    from ..models.summary import count_macs
    from ..training.evaluate import evaluate

    checkpoint = d / "train" / "best.pt"
    result = evaluate(checkpoint, cfg["data"], out=d / "eval", overlays=4, threads=cfg["bench"]["threads"],
                      latency_runs=cfg["bench"]["runs"], progress=False)
    s = result.scores
    model, ckpt = load_model(checkpoint)
    row = {
        "iou": _round(s.macro_iou), "f1": _round(s.macro_f1),
        "iou_fg": _round(s.macro_iou_no_bg), "f1_fg": _round(s.macro_f1_no_bg),
        "params": count_parameters(model),
        "modules": sum(1 for m in model.modules() if not any(m.children())),  # layers: modules with no children
        "gmacs": round(count_macs(model, int(ckpt["input"]["size"])) / 1e9, 4),
        "torch_ms": result.latency_ms["median"],
    }
    row.update({f"iou_{name}": (None if not s.present[i] else _round(s.iou[i])) for i, name in enumerate(CLASSES)})
    return row


def step_export(cfg: dict, d: Path) -> dict:
    from ..export import export

    report = export(checkpoint=d / "train" / "best.pt", out_dir=d / "export", progress=False, **cfg["export"])
    row = {f"{v}_mb": round(r.size_mb, 3) for v, r in report.variants.items()}
    row["export_seconds"] = round(report.total_seconds, 1)
    row["tflite"] = {v: str(r.tflite) for v, r in report.variants.items()}
    if "fp32" in report.variants:  # the GPU delegate runs float models
        from ..export.op_analysis import analyze_ops

        fp32 = report.variants["fp32"]
        row["gpu_delegate"] = gpu_delegate(fp32.graph or analyze_ops(fp32.tflite))
    for v, r in report.variants.items():
        if r.graph:
            row[f"{v}_ops"] = sum(r.graph["ops"].values())
            row[f"{v}_layout_ops"] = sum(r.graph["layout_ops"].values())  # TRANSPOSE/GATHER/CAST/RESHAPE
    return row


def step_verify(cfg: dict, d: Path, tflite: dict) -> dict:
    from ..verify import verify

    result = verify(checkpoint=d / "train" / "best.pt", tflite=list(tflite.values()), data_dir=cfg["data"],
                    split="val", limit=cfg["verify"].get("limit"), num_threads=cfg["threads"], diagnose=False,
                    report_dir=d / "verify", progress=False)
    row = {}
    for m in result.models:
        v = m.variant
        row.update({f"{v}_iou": _round(m.tflite.macro_iou), f"{v}_iou_fg": _round(m.tflite.macro_iou_no_bg),
                    f"{v}_drop": m.drop, f"{v}_drop_fg": m.drop_no_bg,
                    f"{v}_agreement": round(m.agreement.pixel_accuracy, 6)})
    return row


def step_bench(cfg: dict, d: Path, tflite: dict) -> dict:
    from ..bench.host import run_host_bench

    b = cfg["bench"]
    report = run_host_bench(checkpoint=d / "train" / "best.pt", models=list(tflite.values()), threads=[b["threads"]],
                            runs=b["runs"], warmup=b["warmup"], out_dir=d / "bench", progress=False)
    row = {"bench_threads": b["threads"], "load_average": report["device"].get("load_average_1min")}
    for r in report["results"]:
        key = "torch_ms" if r["runtime"] == "pytorch" else f"{r['variant']}_ms"
        row[key] = r["median_ms"] if r["status"] == "ok" else None
    return row


def gpu_delegate(graph: dict) -> str:
    """"yes" when LiteRT's GPU-delegate check passes every op of the model, else "no: " and the ops it refuses.

    A static check (export's op analysis): a phone's GPU may still refuse the model at run time.
    """
    refused = graph.get("gpu_incompatible") or {}
    return "yes" if not refused else "no: " + ", ".join(f"{op} x{len(v)}" for op, v in refused.items())


# --- the trial ---------------------------------------------------------------------------------------


def run_trial(trial_dir: str | Path) -> dict:
    """Run (or continue) the trial in trial_dir; returns and writes its result row. Never raises for a failed step."""
    d = Path(trial_dir)
    cfg = read_json(d / "config.json")
    if cfg["threads"]:
        import torch

        torch.set_num_threads(cfg["threads"])
    figures: dict = {}
    seconds: dict = {}
    failure = None
    started = time.time()
    for step in cfg["steps"]:
        done = d / "steps" / f"{step}.json"
        if done.is_file():
            cached = read_json(done)
            figures.update(cached["figures"])
            seconds[step] = cached["seconds"]
            continue
        print(f"[sweep] step {step}", flush=True)
        t0 = time.time()
        try:
            if step in ("verify", "bench"):
                out = {"verify": step_verify, "bench": step_bench}[step](cfg, d, figures["tflite"])
            else:
                out = {"train": step_train, "eval": step_eval, "export": step_export}[step](cfg, d)
        except Exception as exc:  # one trial's failure is a row of the results, not the end of the sweep
            (d / "error.txt").write_text(traceback.format_exc())
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            failure = {"step": step, "error": f"{type(exc).__name__}: {message}"[:500]}
            print(f"[sweep] step {step} failed: {failure['error']}", flush=True)
            break
        seconds[step] = round(time.time() - t0, 1)
        figures.update(out)
        write_json(done, {"figures": out, "seconds": seconds[step]})
    result = {
        "name": cfg["name"],
        "status": "failed" if failure else "ok",
        "failed_step": failure and failure["step"],
        "error": failure and failure["error"],
        "labels": cfg["labels"],
        "figures": {k: v for k, v in figures.items() if k != "tflite"},
        "seconds": seconds,
        "config": {k: cfg[k] for k in ("train", "export", "verify", "bench", "steps", "data")},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_seconds": round(time.time() - started, 1),
    }
    write_json(d / RESULT, result)
    print(f"[sweep] {cfg['name']}: {result['status']}" + (f" at {failure['step']}: {failure['error']}" if failure else ""),
          flush=True)
    return result


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main() -> None:
    args = sys.argv[1:]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # SIGTERM (the sweep stopping) unwinds like Ctrl-C: the export stops its converter, no result is written,
    # and the next run of the sweep continues this trial.
    signal.signal(signal.SIGTERM, _interrupt)
    if len(args) == 2 and args[0] == "--train":  # one torchrun process of a trial's training
        cfg = read_json(Path(args[1]) / "config.json")
        _train(cfg, Path(args[1]), max(1, (cfg["threads"] or 1) // int(cfg["torchrun"])))
    elif len(args) == 1:
        run_trial(args[0])
    else:
        sys.exit("usage: python -m facesegtool.sweep [--train] TRIAL_DIR")

