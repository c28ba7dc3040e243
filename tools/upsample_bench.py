"""How class scores reach the labels' resolution, measured (a benchmark script, not a test):

    python tools/upsample_bench.py [--checkpoint models/default/model.pt] [--limit 100]

On the shared celebamask-mini val faces (512 px labels), from 256-px inference with the model,
prints fg mIoU and a boundary F-score (class boundaries within 2 px) for the three ways
(nearest: argmax then nearest; bilinear: scores upsampled, then argmax; refined: probabilities
upsampled, guided-filtered by the photo, then argmax), side by side from one run over the same
scores; then the milliseconds each step costs on a 1500-px photo.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facesegtool.imaging import read_index_mask, read_rgb  # noqa: E402
from facesegtool.labels import CLASSES, IGNORE_INDEX, celebamask_lut  # noqa: E402
from facesegtool.segmenter import TorchSegmenter  # noqa: E402
from facesegtool.predict.detect import load_detector  # noqa: E402
from facesegtool.predict.parse import UPSAMPLE_MODES, parse_image, scores_to_mask  # noqa: E402

DATA = REPO.parent / "shared" / "data"
BOUNDARY_PX = 2


def boundaries(mask: np.ndarray) -> np.ndarray:
    """H x W bool: pixels whose 4-neighbour right or below has another class (either side marked)."""
    b = np.zeros(mask.shape, bool)
    dy, dx = mask[1:] != mask[:-1], mask[:, 1:] != mask[:, :-1]
    b[1:] |= dy
    b[:-1] |= dy
    b[:, 1:] |= dx
    b[:, :-1] |= dx
    return b


def boundary_counts(pred: np.ndarray, truth: np.ndarray, valid: np.ndarray, tol: int = BOUNDARY_PX) -> np.ndarray:
    """[predicted boundary px near a true one, predicted boundary px, true px near a predicted one, true px]."""
    bp, bt = boundaries(pred) & valid, boundaries(truth) & valid
    dt = cv2.distanceTransform((~bt).astype(np.uint8), cv2.DIST_L2, 3)
    dp = cv2.distanceTransform((~bp).astype(np.uint8), cv2.DIST_L2, 3)
    return np.array([(dt[bp] <= tol).sum(), bp.sum(), (dp[bt] <= tol).sum(), bt.sum()], np.int64)


def fg_miou(confusion: np.ndarray) -> float:
    inter = np.diag(confusion).astype(np.float64)
    union = confusion.sum(0) + confusion.sum(1) - inter
    ious = [inter[c] / union[c] for c in range(1, len(confusion)) if union[c] > 0]
    return float(np.mean(ious))


def evaluate(segmenter: TorchSegmenter, data: Path, limit: int | None = None) -> dict[str, dict]:
    """Per mode: fg mIoU and boundary precision / recall / F over the val faces."""
    names = (data / "val.txt").read_text().split()[:limit]
    lut, n = celebamask_lut(), len(CLASSES)
    conf = {m: np.zeros((n, n), np.int64) for m in UPSAMPLE_MODES}
    bcount = {m: np.zeros(4, np.int64) for m in UPSAMPLE_MODES}
    for name in names:
        rgb = read_rgb(data / "images" / f"{name}.jpg")
        truth = lut[read_index_mask(data / "masks" / f"{name}.png")]
        h, w = truth.shape
        if rgb.shape[:2] != (h, w):
            rgb = cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA)
        scores = segmenter.scores(segmenter.fit(rgb))
        valid = truth != IGNORE_INDEX
        for m in UPSAMPLE_MODES:
            pred = scores_to_mask(scores, h, w, (0, h), (0, w), segmenter, m, rgb)
            conf[m] += np.bincount(truth[valid].astype(np.int64) * n + pred[valid], minlength=n * n).reshape(n, n)
            bcount[m] += boundary_counts(pred, truth, valid)
    out = {}
    for m in UPSAMPLE_MODES:
        tp_p, np_, tp_t, nt = bcount[m]
        p, r = tp_p / max(np_, 1), tp_t / max(nt, 1)
        out[m] = {"fg_miou": fg_miou(conf[m]), "boundary_precision": p, "boundary_recall": r,
                  "boundary_f": 2 * p * r / max(p + r, 1e-12), "faces": len(names)}
    return out


def time_steps(segmenter: TorchSegmenter, photo: Path, side: int = 1500, repeats: int = 3) -> dict[str, float]:
    """Milliseconds per step on a photo resized to `side` px on its long side (whole image, no detector)."""
    rgb = read_rgb(photo)
    s = side / max(rgb.shape[:2])
    rgb = cv2.resize(rgb, (round(rgb.shape[1] * s), round(rgb.shape[0] * s)), interpolation=cv2.INTER_AREA)
    h, w = rgb.shape[:2]

    def best(fn) -> float:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(1000 * (time.perf_counter() - t))
        return min(times)

    small = segmenter.fit(rgb)
    scores = segmenter.scores(small)
    ms = {"photo": f"{photo.name} at {w}x{h}", "resize_in": best(lambda: segmenter.fit(rgb)),
          "model": best(lambda: segmenter.scores(small))}
    for m in UPSAMPLE_MODES:
        ms[m] = best(lambda m=m: scores_to_mask(scores, h, w, (0, h), (0, w), segmenter, m, rgb))
    detector = load_detector()
    ms["detector"] = best(lambda: detector(rgb))
    ms["parse_image_bilinear (detector + whole head)"] = best(lambda: parse_image(rgb, segmenter, detector))
    return ms


@click.command()
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None,
              help="PyTorch checkpoint [default: the shipped models/default/model.pt].")
@click.option("--data", type=click.Path(file_okay=False), default=str(DATA / "celebamask-mini"), show_default=True)
@click.option("--photo", type=click.Path(dir_okay=False), default=str(DATA / "faces-in-the-wild" / "img47.jpg"),
              show_default=True, help="The photo the steps are timed on (resized to 1500 px).")
@click.option("--limit", type=int, default=None, help="Only the first N val faces.")
def main(checkpoint, data, photo, limit) -> None:
    """Print nearest / bilinear / refined masks' fg mIoU and boundary F (2 px), and ms per step."""
    segmenter = TorchSegmenter(checkpoint)
    res = evaluate(segmenter, Path(data), limit)
    faces = next(iter(res.values()))["faces"]
    click.echo(f"{segmenter.description}: {faces} val faces, 512-px labels from {segmenter.size[0]}-px inference")
    click.echo(f"{'':10s} {'fg mIoU':>8s} {'bF(2px)':>8s} {'bP':>6s} {'bR':>6s}")
    for m, r in res.items():
        click.echo(f"{m:10s} {r['fg_miou']:8.4f} {r['boundary_f']:8.4f} {r['boundary_precision']:6.3f} "
                   f"{r['boundary_recall']:6.3f}")
    ms = time_steps(segmenter, Path(photo))
    click.echo(f"ms per step on {ms.pop('photo')} (best of 3, {cv2.getNumThreads()} OpenCV threads):")
    for k, v in ms.items():
        click.echo(f"  {k:46s} {v:8.1f}")


if __name__ == "__main__":
    main()
