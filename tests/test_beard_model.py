"""The beard-aware model (models/beard/model.pt) against the default on beard renders it never saw.

Synthesis AI's 16 renders were all held out of its training (models/beard/MODEL_CARD.md); images
1, 3, 4 and 11 have beards or moustaches. The default model, trained on CelebAMask-HQ alone, never
predicts beard; the beard model must find most of a labelled beard and little beyond it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from facesegtool.data.synthesisai import SynthesisAI
from facesegtool.labels import CLASS_INDEX
from facesegtool.segmenter import load_segmenter

REPO = Path(__file__).resolve().parents[1]
SAI = REPO.parent / "shared" / "data" / "beard-labelled" / "synthesisai-16"
BEARDED = ("3", "4", "11")

pytestmark = pytest.mark.skipif(not SAI.is_dir(), reason=f"beard-labelled data not found: {SAI}")


def _beard_masks(checkpoint: Path) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and labelled beard pixels over the bearded renders, each cropped to its head."""
    import cv2

    segmenter = load_segmenter(checkpoint)
    source = SynthesisAI(SAI)
    samples = {s.name: s for s in source.samples()}
    predicted, labelled = [], []
    for name in BEARDED:
        rgb, mask, _ = source.load(samples[name])
        scores = segmenter.scores(segmenter.fit(rgb))
        pred = segmenter.to_mask(scores)
        pred = cv2.resize(pred, mask.shape[::-1], interpolation=cv2.INTER_NEAREST)
        predicted.append((pred == CLASS_INDEX["beard"]).ravel())
        labelled.append((mask == CLASS_INDEX["beard"]).ravel())
    return np.concatenate(predicted), np.concatenate(labelled)


def test_beard_model_finds_held_out_beards_the_default_cannot():
    pred, truth = _beard_masks(REPO / "models" / "beard" / "model.pt")
    assert truth.sum() > 1000
    iou = (pred & truth).sum() / (pred | truth).sum()
    precision = (pred & truth).sum() / max(pred.sum(), 1)
    assert iou > 0.25 and precision > 0.5, (iou, precision)
    default_pred, _ = _beard_masks(REPO / "models" / "default" / "model.pt")
    assert default_pred.sum() == 0
