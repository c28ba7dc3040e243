"""Distillation (training/distill.py): the teacher's scores, the loss, and a student that learns from them.

Real faces throughout: held-out Synthesis AI beard renders for the face/beard split, CelebAMask faces and
unlabelled CelebA-HQ crops for a short distillation run at 64 px."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facesegtool.checkpoint import read_checkpoint
from facesegtool.data.dataset import to_input_tensor
from facesegtool.data.synthesisai import SynthesisAI
from facesegtool.imaging import image_files, read_rgb, square_crop
from facesegtool.labels import CLASS_INDEX, IGNORE_INDEX, NUM_CLASSES
from facesegtool.models import create_model
from facesegtool.training.distill import DistillLoss, Teacher
from facesegtool.training.loop import TrainConfig, TrainingError, train
from conftest import write_tiny_prepared

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SAI = SHARED / "beard-labelled" / "synthesisai-16"
UNLABELLED = SHARED / "faces-unlabelled" / "celebahq-2"
DEFAULT, BEARD_MODEL = REPO / "models" / "default" / "model.pt", REPO / "models" / "beard" / "model.pt"
BEARD, FACE = CLASS_INDEX["beard"], CLASS_INDEX["face"]

pytestmark = [pytest.mark.skipif(not (SAI.is_dir() and UNLABELLED.is_dir()), reason=f"shared face data not found: {SHARED}"), pytest.mark.usefixtures("one_thread")]


def _bearded_renders(size: int = 256) -> tuple[torch.Tensor, np.ndarray]:
    source = SynthesisAI(SAI)
    samples = {s.name: s for s in source.samples()}
    xs, masks = [], []
    for name in ("3", "4", "11"):  # held out of the beard model's training; bearded
        rgb, mask, _ = source.load(samples[name])
        rgb, mask = square_crop(rgb, size, mask)
        xs.append(to_input_tensor(rgb))
        masks.append(mask)
    return torch.stack(xs), np.stack(masks)


def test_beard_split_keeps_the_ensembles_parts_and_takes_the_beard_models_beards():
    x, masks = _bearded_renders()
    plain = Teacher([DEFAULT], flip=False)(x)
    split = Teacher([DEFAULT], beard=BEARD_MODEL, flip=False)(x)
    others = [c for c in range(NUM_CLASSES) if c not in (FACE, BEARD)]
    assert torch.equal(split[:, others], plain[:, others])  # the other parts are the default's, exactly
    torch.testing.assert_close(split[:, FACE] + split[:, BEARD], plain[:, FACE] + plain[:, BEARD])
    torch.testing.assert_close(split.sum(1), torch.ones_like(split[:, 0]))
    assert (plain.argmax(1) == BEARD).sum() == 0  # the default alone never says beard
    pred, truth = split.argmax(1).numpy() == BEARD, masks == BEARD
    iou = (pred & truth).sum() / (pred | truth).sum()
    assert truth.sum() > 1000 and iou > 0.3, iou


def test_distill_loss_is_zero_at_the_teacher_and_pulls_towards_it():
    torch.manual_seed(0)
    teacher = torch.softmax(torch.randn(2, NUM_CLASSES, 8, 8) * 3, dim=1)
    hard = torch.nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
    for t in (1.0, 2.0, 4.0):
        loss = DistillLoss(hard, temperature=t, weight=1.0)
        assert loss.soft(teacher.log(), teacher).abs() < 1e-5
        student = torch.randn(2, NUM_CLASSES, 8, 8, requires_grad=True)
        before = loss.soft(student, teacher)
        before.backward()
        with torch.no_grad():
            after = loss.soft(student - 0.5 * student.grad, teacher)
        assert before > 0.01 and after < before
    # a batch of unlabelled faces only: the soft term alone, finite (cross-entropy over no pixel would be NaN)
    unlabelled = torch.full((2, 8, 8), IGNORE_INDEX)
    logits = torch.randn(2, NUM_CLASSES, 8, 8)
    mixed = DistillLoss(hard, 2.0, 0.7)
    torch.testing.assert_close(mixed(logits, unlabelled, teacher), 0.7 * mixed.soft(logits, teacher))
    with pytest.raises(ValueError, match="temperature"):
        DistillLoss(hard, temperature=0)


def _agreement(model: torch.nn.Module, teacher: Teacher, x: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(x).argmax(1) == teacher(x).argmax(1)).float().mean())


def test_a_student_learns_the_teacher_from_unlabelled_faces(tmp_path):
    """Soft term only, 12 labelled + 24 unlabelled faces at 64 px: the student's masks move towards the
    teacher's on faces it never trained on, and the checkpoint records what taught it."""
    data = write_tiny_prepared(tmp_path / "prepared", n_train=12, n_val=4, size=64)
    unlabelled = tmp_path / "unlabelled"
    unlabelled.mkdir()
    files = image_files(UNLABELLED)
    for f in files[:24]:
        (unlabelled / f.name).symlink_to(f)
    held = torch.stack([to_input_tensor(square_crop(read_rgb(f), 64)[0]) for f in files[-8:]])
    teacher = Teacher([DEFAULT], flip=False)
    torch.manual_seed(0)
    start = _agreement(create_model("unet-mobilenetv2-s4").eval(), teacher, held)
    config = TrainConfig(data=str(data), out=str(tmp_path / "run"), model="unet-mobilenetv2-s4", pretrained="none",
                         loss="ce", epochs=3, batch_size=4, scheduler="none", lr=3e-3, optimizer="adamw", patience=0,
                         augment="none", workers=0, progress=False, teacher=[str(DEFAULT)], teacher_flip=False,
                         distill_weight=1.0, unlabelled=[str(unlabelled)])
    result = train(config)
    ckpt = read_checkpoint(result.last_path)
    student = create_model("unet-mobilenetv2-s4")
    student.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()})
    end = _agreement(student, teacher, held)
    print(f"\nagreement with the teacher on 8 unseen faces: {start:.3f} -> {end:.3f}")
    assert end > start + 0.2, (start, end)
    recipe = ckpt["distillation"]
    assert recipe["teachers"] == [str(DEFAULT)] and recipe["unlabelled_images"] == 24 and recipe["weight"] == 1.0
    assert len(recipe["teacher_sha256"][str(DEFAULT)]) == 64


def test_unlabelled_faces_without_a_teacher_are_refused_before_any_work(tmp_path):
    data = tmp_path / "nothing-read"
    with pytest.raises(TrainingError, match="--unlabelled .* need --teacher"):
        train(TrainConfig(data=str(data), out=str(tmp_path / "run"), unlabelled=[str(UNLABELLED)]))
    assert not (tmp_path / "run").exists()


def test_init_encoder_takes_the_teachers_face_trained_encoder_and_only_it(tmp_path):
    """A student over the default's encoder starts from its face-trained weights; its decoder starts fresh."""
    data = write_tiny_prepared(tmp_path / "prepared", n_train=8, n_val=4, size=64)
    config = TrainConfig(data=str(data), out=str(tmp_path / "run"), model="unet-mobilenetv2-s4", loss="ce", epochs=1,
                         batch_size=4, scheduler="none", lr=1e-12, optimizer="adamw", patience=0, augment="none",
                         workers=0, progress=False, init_encoder=str(DEFAULT))
    student = read_checkpoint(train(config).last_path)["state_dict"]
    teacher = read_checkpoint(DEFAULT)["state_dict"]
    convs = [k for k, v in teacher.items() if k.startswith("encoder.") and v.ndim == 4]
    assert len(convs) > 50
    for k in convs:  # lr 1e-12: one epoch cannot move a weight measurably
        torch.testing.assert_close(student[k].float(), teacher[k].float(), atol=1e-6, rtol=0)
    with pytest.raises(TrainingError, match="has no `encoder`"):
        train(TrainConfig(data=str(data), out=str(tmp_path / "run2"), model="regseg", epochs=1, workers=0,
                          progress=False, init_encoder=str(DEFAULT)))
