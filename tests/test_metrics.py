"""Metrics against a confusion matrix and scores worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from facesegtool.labels import CLASSES, IGNORE_INDEX, NUM_CLASSES
from facesegtool.metrics import ConfusionMeter, confusion_matrix, scores_from_confusion

X = IGNORE_INDEX
TARGET = np.array([[0, 0, 1, 1],
                   [2, 2, X, 1],
                   [0, 3, 3, X]])
PRED = np.array([[0, 1, 1, 1],
                 [2, 0, 2, 1],
                 [0, 3, 2, 4]])  # class 4 is predicted only on an ignored pixel: it must not count

# By hand, rows = ground truth, columns = prediction, the 10 labelled pixels:
#   gt 0: pred 0 at (0,0),(2,0); pred 1 at (0,1)   -> [2, 1, 0, 0]
#   gt 1: pred 1 at (0,2),(0,3),(1,3)              -> [0, 3, 0, 0]
#   gt 2: pred 2 at (1,0); pred 0 at (1,1)         -> [1, 0, 1, 0]
#   gt 3: pred 3 at (2,1); pred 2 at (2,2)         -> [0, 0, 1, 1]
HAND_CONFUSION = np.array([[2, 1, 0, 0],
                           [0, 3, 0, 0],
                           [1, 0, 1, 0],
                           [0, 0, 1, 1]])
# IoU = tp / (gt + pred - tp), F1 = 2 tp / (gt + pred); gt = row sums, pred = column sums
#   class 0: tp 2, gt 3, pred 3 -> IoU 2/4,  F1 4/6
#   class 1: tp 3, gt 3, pred 4 -> IoU 3/4,  F1 6/7
#   class 2: tp 1, gt 2, pred 2 -> IoU 1/3,  F1 2/4
#   class 3: tp 1, gt 2, pred 1 -> IoU 1/2,  F1 2/3
HAND_IOU = [2 / 4, 3 / 4, 1 / 3, 1 / 2]
HAND_F1 = [4 / 6, 6 / 7, 2 / 4, 2 / 3]


def test_confusion_matrix_matches_hand_count():
    confusion = confusion_matrix(TARGET, PRED)
    assert confusion.shape == (NUM_CLASSES, NUM_CLASSES)
    np.testing.assert_array_equal(confusion[:4, :4], HAND_CONFUSION)
    assert confusion.sum() == HAND_CONFUSION.sum() == 10  # the two ignored pixels are gone
    assert confusion[:, 4:].sum() == confusion[4:, :].sum() == 0


def test_scores_match_hand_computation_and_absent_classes_are_left_out():
    scores = scores_from_confusion(confusion_matrix(TARGET, PRED))
    np.testing.assert_allclose(scores.iou[:4], HAND_IOU)
    np.testing.assert_allclose(scores.f1[:4], HAND_F1)
    assert scores.present.tolist() == [True] * 4 + [False] * (NUM_CLASSES - 4)
    assert np.isnan(scores.iou[4:]).all()
    assert scores.macro_iou == pytest.approx(np.mean(HAND_IOU))  # 0.5208: over the 4 present classes only
    assert scores.macro_iou_no_bg == pytest.approx(np.mean(HAND_IOU[1:]))
    assert scores.macro_f1 == pytest.approx(np.mean(HAND_F1))
    assert scores.macro_f1_no_bg == pytest.approx(np.mean(HAND_F1[1:]))
    assert scores.pixel_accuracy == pytest.approx(7 / 10)
    report = scores.as_dict()
    assert report["absent_classes"] == list(CLASSES[4:])
    assert report["per_class"]["hair"] == {"iou": None, "f1": None, "present": False}
    assert report["per_class"]["lips"]["iou"] == pytest.approx(0.75)
    table = scores.table()
    assert "hair" in table and table.splitlines()[5].split()[1] == "absent"


def test_a_class_only_predicted_counts_as_zero():
    """Predicted but never in the ground truth: present, IoU 0, and it pulls the mean down."""
    scores = scores_from_confusion(confusion_matrix(np.array([0, 0]), np.array([0, 5])))
    # class 0: tp 1, gt 2, pred 1 -> IoU 1/2; class 5: tp 0, gt 0, pred 1 -> IoU 0
    assert scores.iou[0] == pytest.approx(0.5) and scores.iou[5] == 0
    assert scores.macro_iou == pytest.approx(0.25)
    assert scores.present.sum() == 2


def test_whole_set_not_per_image_mean():
    """Two images accumulated: the figures come from the summed matrix, not from averaging per image."""
    meter = ConfusionMeter()
    meter.update(np.array([1, 1, 1, 1]), np.array([1, 1, 1, 1]))  # image 1: lips IoU 1
    meter.update(np.array([1, 0, 0, 0]), np.array([0, 0, 0, 0]))  # image 2: lips IoU 0
    scores = meter.scores()
    # summed: lips tp 4, gt 5, pred 4 -> 4/5 (a per-image mean would say 1/2)
    assert scores.iou[1] == pytest.approx(4 / 5)
    # background tp 3, gt 3, pred 4 -> 3/4
    assert scores.iou[0] == pytest.approx(3 / 4)


def test_bad_shapes_and_labels_raise():
    with pytest.raises(ValueError, match="differ in size"):
        confusion_matrix(np.zeros(4), np.zeros(5))
    with pytest.raises(ValueError, match="out of range"):
        confusion_matrix(np.array([0, 11]), np.array([0, 0]))
