"""Self-training data: a teacher model labels unlabelled faces, keeping only the pixels it is sure of.

The teacher runs on each face and on its mirror image (flip test-time augmentation; left/right
parts are merged classes here, so a mirrored face's mask is the mirrored mask) and the two
softmaxes are averaged. Pixels whose top probability is below `threshold` become IGNORE_INDEX
(255), which every loss here leaves out, so the student learns only from confident pixels.
The result is a prepared dataset (all items in "train") that `train --extra-train` mixes in.
The teacher never ships, so it may be any checkpoint (bigger, slower, trained at another size).
Several checkpoints make an ensemble teacher: each sees the face in its own input contract and
their (flip-averaged) softmaxes are averaged, which is usually more accurate and better
calibrated than any one of them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..atomic import check_apart, model_file
from ..imaging import IMAGE_SUFFIXES, image_files, read_rgb, square_crop, upsample_score_batch
from ..model_source import load_source
from ..labels import CLASSES, IGNORE_INDEX, NUM_CLASSES
from .dataset import to_input_tensor
from .prepare import check_replaceable, install_set, new_manifest
from .source import BadSampleError, DataError, DataSourceError


@dataclass
class PseudoLabelSummary:
    out: Path
    images: int
    skipped: list[dict]
    kept_fraction: float  # confident pixels / all pixels
    kept_by_class: dict[str, float]  # per predicted class: share of its pixels kept
    threshold: float = 0.9
    size: int = 256

    @property
    def warning(self) -> str | None:
        """Why the set may teach nothing (None when it looks usable)."""
        if self.kept_fraction == 0:
            return (f"{self.out}: no pixel reached --threshold {self.threshold:g}, so every mask is ignore and "
                    "training on it learns nothing; lower --threshold or use a stronger teacher")
        return None


@torch.no_grad()
def teacher_probabilities(model: torch.nn.Module, x: torch.Tensor, flip: bool = True, kind: str = "logits",
                          projection: torch.Tensor | None = None) -> torch.Tensor:
    """Probabilities over our classes for a batch N x 3 x H x W, averaged with the mirrored pass when flip.

    A teacher with its own labels: its scores are upsampled to the input, made probabilities (softmax unless
    it gives probabilities) and summed into our classes by `projection` (labels x our classes, 0/1); mass on
    labels mapped to "ignore" is dropped, so such pixels come out unconfident rather than falsely sure."""

    def probs(inp: torch.Tensor) -> torch.Tensor:
        out = upsample_score_batch(model(inp), tuple(inp.shape[-2:]))  # as predict and the app upsample
        p = out if kind == "probabilities" else F.softmax(out, dim=1)
        return p if projection is None else torch.einsum("nlhw,lc->nchw", p, projection)

    result = probs(x)
    if flip:
        result = 0.5 * (result + probs(x.flip(-1)).flip(-1))
    return result


def class_projection(lut: np.ndarray) -> torch.Tensor:
    """labels x our classes 0/1 matrix from a label -> class LUT (IGNORE_INDEX rows all zero)."""
    matrix = torch.zeros(len(lut), NUM_CLASSES)
    for label, target in enumerate(lut):
        if target != IGNORE_INDEX:
            matrix[label, int(target)] = 1.0
    return matrix


def confident_mask(probs: torch.Tensor, threshold: float) -> np.ndarray:
    """N x C x H x W probabilities -> N x H x W uint8 labels, IGNORE_INDEX where max prob < threshold."""
    confidence, labels = probs.max(dim=1)
    labels[confidence < threshold] = IGNORE_INDEX
    return labels.to(torch.uint8).numpy()


def pseudo_label(
    checkpoint: str | Path | Sequence[str | Path],
    image_dirs: Sequence[str | Path],
    out: str | Path,
    size: int | None = None,
    threshold: float = 0.9,
    flip: bool = True,
    batch_size: int = 8,
    limit: int | None = None,
    progress: bool = True,
    spec: str | Path | dict | None = None,
) -> PseudoLabelSummary:
    """Label every image in image_dirs with the teacher (or the mean of several); write a prepared set at out (atomically)."""
    if not 0.0 <= threshold < 1.0:
        raise DataError(f"--threshold must be in [0, 1), got {threshold}")
    checkpoints = [checkpoint] if isinstance(checkpoint, (str, Path)) else list(checkpoint)
    if not checkpoints:
        raise DataError("give at least one teacher (--model)")
    out = Path(out)
    if out.is_symlink() and out.exists():  # a link to a set: write the set, keep the link
        out = Path(os.path.realpath(out))
    check_apart({"--out": out}, {"--images": image_dirs, "--model": [model_file(c) for c in checkpoints],
                                 "--spec": spec if isinstance(spec, (str, Path)) else None})
    old = check_replaceable(out, pseudo_labels=True)  # a labelled set is never replaced by a teacher's guesses
    sources = [load_source(c, spec=spec) for c in checkpoints]
    for source in sources:
        if not source.spec.has_mapping:
            raise DataError(f"{source.path}: teacher labels {source.classes[:6]}... map onto none of our classes; "
                            "give the mapping in --spec")
    teachers = [(s.net, dict(s.contract), s.spec.output_kind, None if s.spec.is_ours else class_projection(s.spec.lut()))
                for s in sources]
    loaded = [(s.net, s.ckpt) for s in sources]
    size = int(size or teachers[0][1]["size"])
    if any(s.format != "checkpoint" and s.spec.size != size for s in sources):
        raise DataError(f"--size {size}: a teacher with a fixed input size runs at its own size; "
                        "give every teacher's size or leave --size out")
    files: list[Path] = []
    for folder in map(Path, image_dirs):
        if not folder.is_dir():
            raise DataSourceError(f"{folder}: not a folder of images")
        files += image_files(folder)
    files = files[:limit] if limit else files
    if not files:
        raise DataSourceError(f"no images ({'/'.join(IMAGE_SUFFIXES)}) in {', '.join(map(str, image_dirs))}")
    names = [f"{f.parent.name}-{f.stem}" for f in files]  # folder prefix: two sources may share a stem
    if len(set(names)) != len(names):
        raise DataSourceError("two input images would share one name; give folders with distinct names")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        items, skipped = [], []
        predicted = np.zeros(NUM_CLASSES, dtype=np.int64)
        kept = np.zeros(NUM_CLASSES, dtype=np.int64)
        bar = tqdm(total=len(files), desc="pseudo-label", unit="img", disable=not progress)
        for start in range(0, len(files), batch_size):
            batch, batch_names, batch_files = [], [], []
            for f, name in zip(files[start:start + batch_size], names[start:start + batch_size]):
                try:
                    batch.append(square_crop(read_rgb(f), size)[0])
                except BadSampleError as exc:
                    skipped.append({"file": str(f), "reason": str(exc)})
                    continue
                batch_names.append(name)
                batch_files.append(f)
            bar.update(len(files[start:start + batch_size]))
            if not batch:
                continue
            probs = sum(
                teacher_probabilities(model, torch.stack([to_input_tensor(rgb, contract) for rgb in batch]), flip,
                                      kind, projection)
                for model, contract, kind, projection in teachers
            ) / len(teachers)
            full = probs.argmax(dim=1).numpy()
            masks = confident_mask(probs, threshold)
            predicted += np.bincount(full.ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES]
            kept += np.bincount(full[masks != IGNORE_INDEX].ravel(), minlength=NUM_CLASSES)[:NUM_CLASSES]
            for rgb, mask, name, f in zip(batch, masks, batch_names, batch_files):
                cv2.imwrite(str(tmp / "images" / f"{name}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
                cv2.imwrite(str(tmp / "masks" / f"{name}.png"), mask)
                items.append({"name": name, "split": "train", "source": "pseudo-label", "file": str(f)})
        bar.close()
        if not items:
            raise DataSourceError(f"none of the {len(files)} images could be read (see their reasons: {skipped[:3]})")
        manifest = new_manifest(
            size, [{"kind": "pseudo-label", "roots": [str(d) for d in image_dirs], "samples": len(items)}], items,
            skipped, {"train": kept, "val": [0] * NUM_CLASSES}, {"train": int(predicted.sum() - kept.sum()), "val": 0},
            pseudo_label={"teachers": [str(c) for c in checkpoints],
                          "teacher_models": [ckpt["model"]["name"] for _, ckpt in loaded],
                          "threshold": threshold, "flip": flip, "kept_fraction": float(kept.sum() / predicted.sum())})
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        install_set(tmp, out, old)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    by_class = {c: float(kept[i] / predicted[i]) for i, c in enumerate(CLASSES) if predicted[i]}
    return PseudoLabelSummary(out, len(items), skipped, float(kept.sum() / predicted.sum()), by_class, threshold, size)
