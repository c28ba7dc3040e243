"""Measure distillation teachers (issue 33) on the dev faces and the held-out beard renders.

    python tools/teacher_eval.py --dev prepared/celeba256-dev --held-out prepared/fs256-dev:val \
        --held-out prepared/sai256:train --json models/distill/teachers.json

Each candidate is a `facesegtool.training.distill.Teacher` (members averaged, flip-averaged or not, an optional
beard member splitting face / beard), scored like `python tools/beard_eval.py` scores a model:
dev fg IoU over the 9 CelebAMask parts with predicted beard counted as face, beard IoU on renders never trained on.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import torch

from facesegtool.atomic import write_bytes_atomic
from facesegtool.checkpoint import DEFAULT_INPUT
from beard_eval import beard_as_face, beard_figures, parts_iou, per_class_iou, prepared_confusion
from facesegtool.training.distill import Teacher

DEFAULT, BEARD = "models/default/model.pt", "models/beard/model.pt"
CANDIDATES = {
    "default": dict(members=[DEFAULT], flip=False),
    "default + flip": dict(members=[DEFAULT], flip=True),
    "mean(default, beard) + flip": dict(members=[DEFAULT, BEARD], flip=True),
    "default + flip, beard split by the beard model": dict(members=[DEFAULT], beard=BEARD, flip=True),
    "mean(default, beard) + flip, beard split by the beard model": dict(members=[DEFAULT, BEARD], beard=BEARD, flip=True),
}


@click.command()
@click.option("--dev", required=True)
@click.option("--held-out", "held_out", multiple=True, metavar="PREPARED:SPLIT")
@click.option("--threads", type=int, default=1, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def main(dev: str, held_out: tuple[str, ...], threads: int, json_path: str | None) -> None:
    torch.set_num_threads(threads)
    contract = dict(DEFAULT_INPUT, size=256)
    results = []
    for name, kwargs in CANDIDATES.items():
        teacher = Teacher(**kwargs)
        confusion = prepared_confusion(teacher, contract, dev, "val")
        row = {"teacher": name, **{k: v for k, v in kwargs.items()},
               "dev_parts_iou_beard_as_face": parts_iou(beard_as_face(confusion)),
               "dev_per_class_iou_beard_as_face": per_class_iou(beard_as_face(confusion))}
        line = f"{name}: dev parts IoU {row['dev_parts_iou_beard_as_face']:.4f}"
        for spec in held_out:
            data, _, split = spec.rpartition(":")
            figures = beard_figures(prepared_confusion(teacher, contract, data, split))
            row[f"held_out {spec}"] = figures
            line += f"; {spec} beard IoU {figures['beard_iou']:.3f}"
        click.echo(line)
        results.append(row)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(Path(json_path), json.dumps(results, indent=1).encode())


if __name__ == "__main__":
    main()
