"""The beard rule's errors on real beard labels (a measurement script, not a test):

    python tools/beard_measure.py [--checkpoint models/default/model.pt]

On beard-labelled/facesynthetics-100 (FaceSynthetics renders, labels 13 hair, 14 beard), each
image is parsed as predict parses a photo (BlazeFace, whole head, bilinear) with and without the
rule, and prints: beard pixel precision and recall (derived beard vs labelled beard), the share of
labelled hair pixels the rule moved to beard, and where the labelled beard went without the rule.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from facesegtool.imaging import read_index_mask, read_rgb  # noqa: E402
from facesegtool.labels import CLASS_INDEX  # noqa: E402
from facesegtool.segmenter import TorchSegmenter  # noqa: E402
from facesegtool.predict.detect import load_detector  # noqa: E402
from facesegtool.predict.parse import parse_image  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "beard-labelled" / "facesynthetics-100"
HAIR, BEARD = 13, 14  # FaceSynthetics label ids


def measure(segmenter: TorchSegmenter, data: Path = DATA) -> dict:
    detector = load_detector()
    tp = pred = truth = hair = hair_moved = as_hair = images = 0
    for img in sorted(data.glob("[0-9]*[0-9].png")):
        labels = read_index_mask(img.with_name(img.stem + "_seg.png"))
        rgb = read_rgb(img)
        without = parse_image(rgb, segmenter, detector, beard=False).mask
        mask = parse_image(rgb, segmenter, detector, beard=True).mask
        got, want = mask == CLASS_INDEX["beard"], labels == BEARD
        tp, pred, truth = tp + int((got & want).sum()), pred + int(got.sum()), truth + int(want.sum())
        hair += int((labels == HAIR).sum())
        hair_moved += int((got & (labels == HAIR)).sum())
        as_hair += int((want & (without == CLASS_INDEX["hair"])).sum())
        images += 1
    return {"images": images, "beard_precision": tp / max(pred, 1), "beard_recall": tp / max(truth, 1),
            "hair_moved_share": hair_moved / max(hair, 1), "beard_parsed_as_hair_without_rule": as_hair / max(truth, 1),
            "beard_px": truth, "derived_px": pred}


@click.command()
@click.option("--checkpoint", type=click.Path(dir_okay=False), default=None)
@click.option("--data", type=click.Path(file_okay=False), default=str(DATA), show_default=True)
def main(checkpoint, data) -> None:
    """Print the beard rule's precision / recall and the hair it wrongly moves."""
    r = measure(TorchSegmenter(checkpoint), Path(data))
    click.echo(f"{r['images']} images, {r['beard_px']} labelled beard px, {r['derived_px']} derived beard px")
    click.echo(f"beard precision {r['beard_precision']:.3f}, recall {r['beard_recall']:.3f}; labelled hair moved to "
               f"beard {100 * r['hair_moved_share']:.2f} %; labelled beard parsed as hair without the rule "
               f"{100 * r['beard_parsed_as_hair_without_rule']:.1f} %")


if __name__ == "__main__":
    main()
