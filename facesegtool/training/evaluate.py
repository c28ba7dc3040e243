"""Evaluate a checkpoint on a prepared split: scores, pictures, and PyTorch CPU latency.

Writes to OUT: scores.json (per-class IoU/F1, macro with and without background, latency),
table.txt (the same as text), confusion.png (row-normalised confusion matrix) and
overlays.png (image | truth | prediction for a few faces).
"""

from __future__ import annotations

import io
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..atomic import check_apart, model_file, write_bytes_atomic
from ..data.dataset import FaceParsingDataset
from ..errors import FacesegError
from ..imaging import upsample_score_batch
from ..labels import CLASSES, PALETTE, colorize
from ..metrics import ConfusionMeter, SegmentationScores
from ..model_source import load_source
from ..threads import check_threads


class EvalError(FacesegError, ValueError):
    """An eval option or model that cannot be scored (the message says what to give)."""


@dataclass
class EvalResult:
    scores: SegmentationScores
    latency_ms: dict  # {"median", "p90", "threads", "runs", "size"}
    out: Path
    files: dict  # name -> Path


def measure_latency(model: torch.nn.Module, size: int, threads: int = 1, warmup: int = 10, runs: int = 50) -> dict:
    """Batch-1 forward time in ms: warm-up runs first, no_grad, a fixed number of threads."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.randn(1, 3, size, size)
        times = []
        with torch.no_grad():
            for i in range(warmup + runs):
                t0 = time.perf_counter()
                model(x)
                if i >= warmup:
                    times.append((time.perf_counter() - t0) * 1000.0)
    finally:
        torch.set_num_threads(previous)
    times.sort()
    return {
        "median": round(statistics.median(times), 3),
        "p90": round(times[int(0.9 * (len(times) - 1))], 3),
        "min": round(times[0], 3),
        "threads": threads,
        "runs": runs,
        "warmup": warmup,
        "size": size,
    }


def evaluate(
    checkpoint: str | Path | None,
    data_dir: str | Path,
    split: str = "val",
    out: str | Path | None = None,
    batch_size: int = 8,
    overlays: int = 8,
    threads: int = 1,
    latency_runs: int = 50,
    progress: bool = True,
    spec: str | Path | dict | None = None,
    weights: str | Path | None = None,
) -> EvalResult:
    """Score a model (None: the shipped default; any form model_source reads) on data_dir's split and write
    the report files. A model with its own labels is scored in our 11 classes through its mapping, its
    scores upsampled bilinearly to the labels' size before the argmax."""
    check_threads(threads)  # before the evaluation, not after it (torch crashes on absurd counts)
    check_apart({"--out": out}, {"--model": model_file(checkpoint), "--weights": weights, "--data": data_dir,
                                 "--spec": spec if isinstance(spec, (str, Path)) else None})
    if latency_runs < 1:
        raise EvalError(f"--latency-runs {latency_runs}: give at least 1 timed run (e.g. 50)")
    if batch_size < 1:
        raise EvalError(f"--batch-size {batch_size}: give at least 1")
    shipped = checkpoint is None
    source = load_source(checkpoint, spec=spec, weights=weights)
    if not source.spec.has_mapping:
        raise EvalError(f"{source.path}: its labels ({', '.join(source.classes[:6])}...) map onto none of our "
                        "classes, so it cannot be scored on our labelled faces: give the mapping in --spec")
    checkpoint, model, ckpt = source.path, source.net, source.ckpt
    lut = torch.from_numpy(source.spec.display_lut().astype(np.int64))
    contract = ckpt["input"]
    size = int(contract["size"])
    ds = FaceParsingDataset(data_dir, split, None, size=size, contract=contract)
    if out is None:  # beside a user's checkpoint; the shipped one's folder is the package's, not the user's
        out = Path("eval") / f"default-{split}" if shipped else checkpoint.parent / f"eval-{split}"
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)

    meter = ConfusionMeter(len(CLASSES))
    shown: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False)
    index = 0
    with torch.no_grad():
        for x, y in tqdm(loader, desc=f"eval {split}", disable=not progress, leave=False):
            # a 1/4 or 1/8 output: scores upsampled as predict and the app do, then the argmax
            scores = upsample_score_batch(model(x), tuple(y.shape[-2:]))
            pred = lut[scores.argmax(1)].numpy()
            meter.update(y.numpy(), pred)
            for j in range(len(pred)):
                if len(shown) < overlays:
                    rgb, mask = ds.read(index + j)
                    shown.append((rgb, mask, pred[j].astype(np.uint8)))
            index += len(pred)
    scores = meter.scores()
    latency = measure_latency(model, size, threads=threads, runs=latency_runs)

    files = {
        "scores": out / "scores.json",
        "table": out / "table.txt",
        "confusion": out / "confusion.png",
        "overlays": out / "overlays.png",
    }
    report = {
        "checkpoint": str(checkpoint),
        "model": ckpt["model"],
        "source": source.describe(),
        "assumed": source.notes,
        "data": str(data_dir),
        "split": split,
        "images": len(ds),
        "scores": scores.as_dict(),
        "latency_ms": latency,
    }
    write_bytes_atomic(files["scores"], json.dumps(report, indent=1).encode())
    table = (
        f"{ckpt['model']['name']} on {data_dir} ({split}, {len(ds)} images, {size}px)\n{scores.table()}\n"
        f"PyTorch CPU latency, batch 1, {threads} thread(s): median {latency['median']:.1f} ms (p90 {latency['p90']:.1f})\n"
    )
    write_bytes_atomic(files["table"], table.encode())
    write_bytes_atomic(files["confusion"], plot_confusion(scores))
    write_bytes_atomic(files["overlays"], overlay_sheet(shown))
    return EvalResult(scores=scores, latency_ms=latency, out=out, files=files)


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def plot_confusion(scores: SegmentationScores) -> bytes:
    """Row-normalised confusion matrix (each true class's pixels sum to 1) as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = scores.confusion.astype(np.float64)
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    names = [n if scores.present[i] else f"{n} (absent)" for i, n in enumerate(scores.class_names)]
    fig, ax = plt.subplots(figsize=(9, 8))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="prediction", ylabel="truth", title="confusion (row-normalised)")
    for i in range(len(names)):
        for j in range(len(names)):
            if norm[i, j] >= 0.005:
                ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return _png(fig)


def overlay_sheet(samples: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> bytes:
    """One row per face: image | truth | prediction (class colours blended over the image)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    rows = max(1, len(samples))
    fig, axes = plt.subplots(rows, 3, figsize=(9, 3 * rows), squeeze=False)
    for r, (rgb, truth, pred) in enumerate(samples):
        for c, (picture, title) in enumerate(
            ((rgb, "image"), (_blend(rgb, truth), "truth"), (_blend(rgb, pred), "prediction"))
        ):
            axes[r, c].imshow(picture)
            axes[r, c].set_axis_off()
            if r == 0:
                axes[r, c].set_title(title)
    handles = [Patch(facecolor=PALETTE[i] / 255.0, edgecolor="grey", label=n) for i, n in enumerate(CLASSES)]
    fig.legend(handles=handles, loc="lower center", ncol=6, fontsize=8)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    return _png(fig)


def _blend(rgb: np.ndarray, mask: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    colour = colorize(mask).astype(np.float32)
    return (rgb.astype(np.float32) * (1 - alpha) + colour * alpha).clip(0, 255).astype(np.uint8)
