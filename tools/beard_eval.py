"""Beard figures of one or more models, for choosing a beard-trained model (a measurement script):

    python tools/beard_eval.py --model models/default/model.pt --model runs/beard-ft/last.pt \\
        --dev prepared/celeba256-dev --held-out prepared/fs256-dev:val --held-out prepared/sai256:train \\
        --photos ../shared/data/beard-labelled/facesynthetics-100:prepared/fs256-dev:val \\
        --photos ../shared/data/beard-labelled/synthesisai-16 --json reports/beard-ft.json

dev (CelebAMask faces; their beards are labelled face): fg IoU over the 9 parts (no background, no
beard), as scored (`plain`) and with predicted beard counted as face (`beard_as_face`: a model that
finds a beard CelebAMask drew as skin is not wrong there). Held-out beard-labelled prepared sets:
per-class IoU and beard precision / recall / IoU at the prepared size. Photos: each render parsed
as `predict` parses a photo (BlazeFace, whole head, bilinear) with and without the beard rule,
beard precision / recall / IoU at the photo's pixels; FOLDER:PREPARED:SPLIT keeps to the names of
that split (the faces held out of training).
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import torch

from facesegtool.atomic import write_bytes_atomic
from facesegtool.data.dataset import FaceParsingDataset, load_prepared, split_names
from facesegtool.imaging import upsample_score_batch
from facesegtool.labels import CLASS_INDEX, CLASSES, NUM_CLASSES
from facesegtool.metrics import confusion_matrix, scores_from_confusion

BEARD, FACE = CLASS_INDEX["beard"], CLASS_INDEX["face"]
PARTS = [i for i, c in enumerate(CLASSES) if c not in ("background", "beard")]  # the 9 parts CelebAMask labels


def beard_figures(confusion: np.ndarray) -> dict:
    """Beard precision, recall and IoU from a confusion matrix (rows truth, columns prediction)."""
    tp, truth, pred = confusion[BEARD, BEARD], confusion[BEARD].sum(), confusion[:, BEARD].sum()
    return {"beard_precision": float(tp / max(pred, 1)), "beard_recall": float(tp / max(truth, 1)),
            "beard_iou": float(tp / max(truth + pred - tp, 1)), "beard_px": int(truth), "predicted_beard_px": int(pred)}


def parts_iou(confusion: np.ndarray) -> float:
    """fg IoU over those of the 9 parts (no background, no beard) that the labels hold: a render set that
    never labels teeth (FaceSynthetics) or eyebrows (Synthesis AI) would score any such prediction 0."""
    iou = scores_from_confusion(confusion).iou
    labelled = [i for i in PARTS if confusion[i].sum() > 0]
    return float(np.nanmean(iou[labelled])) if labelled else float("nan")


@torch.no_grad()
def prepared_confusion(net: torch.nn.Module, contract: dict, data: str, split: str) -> np.ndarray:
    """Whole-set confusion of argmax masks on a prepared split at the model's size."""
    ds = FaceParsingDataset(data, split, None, size=int(contract["size"]), contract=contract)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
    for start in range(0, len(ds), 8):
        xs, ys = zip(*(ds[i] for i in range(start, min(start + 8, len(ds)))))
        logits = upsample_score_batch(net(torch.stack(xs)), tuple(ys[0].shape))  # as predict upsamples
        confusion += confusion_matrix(torch.stack(ys).numpy(), logits.argmax(1).numpy())
    return confusion


def beard_as_face(confusion: np.ndarray) -> np.ndarray:
    """The confusion with every predicted beard pixel moved to predicted face."""
    out = confusion.copy()
    out[:, FACE] += out[:, BEARD]
    out[:, BEARD] = 0
    return out


def photo_pairs(spec: str):
    """(name, RGB, 11-class mask) of a beard-labelled render folder, optionally one prepared split's names."""
    from facesegtool.data.facesynthetics import FaceSynthetics
    from facesegtool.data.synthesisai import SynthesisAI

    folder, _, keep = spec.partition(":")
    names = None
    if keep:
        prepared, _, split = keep.rpartition(":")
        names = set(split_names(load_prepared(prepared), split))
    root = Path(folder)
    source = SynthesisAI(root, crop_to_head=False) if any(root.glob("*.info.json")) else FaceSynthetics(root)
    for sample in source.samples():
        if names is None or sample.name in names:
            rgb, mask, _ = source.load(sample)
            yield sample.name, rgb, mask


def photo_figures(checkpoint: str, spec: str) -> dict:
    """Beard figures of predict's parse of each render, with and without the rule."""
    from facesegtool.segmenter import TorchSegmenter
    from facesegtool.predict.detect import load_detector
    from facesegtool.predict.parse import parse_image

    segmenter, detector = TorchSegmenter(checkpoint), load_detector()
    out = {}
    for rule in (False, True):
        confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), np.int64)
        images = 0
        for _, rgb, mask in photo_pairs(spec):
            confusion += confusion_matrix(mask, parse_image(rgb, segmenter, detector, beard=rule).mask)
            images += 1
        out["with_rule" if rule else "model_alone"] = {"images": images, **beard_figures(confusion)}
    return out


def measure(checkpoint: str, dev: str | None, held_out: list[str], photos: list[str]) -> dict:
    from facesegtool.model_source import load_source

    source = load_source(checkpoint)
    net, contract = source.net.eval(), dict(source.contract)
    result: dict = {"model": checkpoint}
    if dev:
        confusion = prepared_confusion(net, contract, dev, "val")
        result["dev"] = {"parts_iou_plain": parts_iou(confusion), "parts_iou_beard_as_face": parts_iou(beard_as_face(confusion)),
                         "per_class_iou": per_class_iou(confusion), "per_class_iou_beard_as_face": per_class_iou(beard_as_face(confusion)),
                         "predicted_beard_px": int(confusion[:, BEARD].sum())}
    for spec in held_out:
        data, _, split = spec.rpartition(":")
        confusion = prepared_confusion(net, contract, data, split)
        result[f"held_out {spec}"] = {**beard_figures(confusion), "parts_iou": parts_iou(confusion),
                                      "per_class_iou": per_class_iou(confusion)}
    for spec in photos:
        result[f"photos {spec}"] = photo_figures(checkpoint, spec)
    return result


def per_class_iou(confusion: np.ndarray) -> dict:
    iou = scores_from_confusion(confusion).iou
    return {c: (None if np.isnan(v) else round(float(v), 4)) for c, v in zip(CLASSES, iou)}


@click.command()
@click.option("--model", "models", multiple=True, required=True, type=click.Path(dir_okay=False))
@click.option("--dev", default=None, help="Carved CelebAMask set whose val split is the dev faces.")
@click.option("--held-out", "held_out", multiple=True, metavar="PREPARED:SPLIT")
@click.option("--photos", multiple=True, metavar="FOLDER[:PREPARED:SPLIT]")
@click.option("--threads", type=int, default=2, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def main(models, dev, held_out, photos, threads, json_path) -> None:
    """Print (and write as JSON) dev parts IoU and held-out beard figures for each model."""
    torch.set_num_threads(threads)
    results = [measure(m, dev, list(held_out), list(photos)) for m in models]
    for r in results:
        click.echo(f"== {r['model']}")
        if "dev" in r:
            click.echo(f"dev parts IoU {r['dev']['parts_iou_plain']:.4f} (beard as face {r['dev']['parts_iou_beard_as_face']:.4f}), "
                       f"predicted beard px {r['dev']['predicted_beard_px']}")
        for key, v in r.items():
            if key.startswith("held_out"):
                click.echo(f"{key}: beard IoU {v['beard_iou']:.3f} P {v['beard_precision']:.3f} R {v['beard_recall']:.3f}; "
                           f"parts IoU {v['parts_iou']:.4f}; {v['per_class_iou']}")
            elif key.startswith("photos"):
                for mode, f in v.items():
                    click.echo(f"{key} {mode}: beard IoU {f['beard_iou']:.3f} P {f['beard_precision']:.3f} "
                               f"R {f['beard_recall']:.3f} ({f['images']} images)")
    if json_path:
        write_bytes_atomic(Path(json_path), json.dumps(results, indent=1).encode())


if __name__ == "__main__":
    main()
