"""Knowledge distillation: a small student learns a stronger teacher's soft scores as well as the labels.

    train(TrainConfig(..., teacher=["models/default/model.pt"], teacher_beard="models/beard/model.pt",
                      unlabelled=["../shared/data/faces-unlabelled/celebahq-2"]))

The teacher runs on every training batch as the student sees it (after augmentation), so its scores
always match the pixels; nothing is cached. Its members' softmaxes (each flip-averaged when `flip`) are
averaged; a `beard` member then decides face against beard inside the ensemble's face + beard mass:
CelebAMask-trained members call every beard skin, and averaging them with a beard-aware model would halve
its beard probability, while the split keeps the ensemble's other parts untouched.

The loss per batch: weight * T^2 * KL(teacher_T || student_T) over every pixel, plus (1 - weight) * the
run's own loss on the labelled pixels (partial labels and ignore as without a teacher). Unlabelled faces
(`unlabelled` image folders) carry no labels at all, so they teach only through the teacher: this is how
the student sees far more faces than the labelled ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import Dataset

from ..checkpoint import DEFAULT_INPUT
from ..data.dataset import to_input_tensor
from ..data.pseudo_label import class_projection, teacher_probabilities
from ..data.source import BadSampleError
from ..hashing import sha256_file
from ..imaging import image_files, read_rgb, square_crop
from ..labels import CLASS_INDEX, IGNORE_INDEX, NUM_CLASSES
from ..model_source import load_source

BEARD, FACE = CLASS_INDEX["beard"], CLASS_INDEX["face"]


class Teacher(nn.Module):
    """Soft scores over our classes for a batch normalised in the student's input contract."""

    def __init__(self, members: Sequence[str | Path], beard: str | Path | None = None, flip: bool = True,
                 student_contract: dict = DEFAULT_INPUT):
        super().__init__()
        if not members:
            raise ValueError("a teacher needs at least one model")
        self.flip = flip
        self.student_contract = dict(student_contract)
        self.member_paths = [str(m) for m in members]
        self.beard_path = str(beard) if beard is not None else None
        self.members = [self._load(m) for m in members]
        self.beard = self._load(beard) if beard is not None else None
        self.sha256 = {p: sha256_file(Path(p)) for p in [*self.member_paths, *([self.beard_path] if beard else [])]}

    @staticmethod
    def _load(path: str | Path) -> tuple:
        source = load_source(path)
        if not source.spec.has_mapping:
            raise ValueError(f"{path}: its labels map onto none of our classes, so it cannot teach them")
        projection = None if source.spec.is_ours else class_projection(source.spec.lut())
        net = source.net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        return net, dict(source.contract), source.spec.output_kind, projection

    def _rgb(self, x: torch.Tensor) -> torch.Tensor:
        """Undo the student's normalisation: N x 3 x H x W float RGB in 0..255 (the camera's values)."""
        c = self.student_contract
        mean = torch.tensor(c["mean"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(c["std"], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        rgb = (x * std + mean) * c["scale"]
        return rgb.flip(1) if str(c.get("channel_order", "RGB")).upper() == "BGR" else rgb

    def _probs(self, member: tuple, x: torch.Tensor, rgb: torch.Tensor) -> torch.Tensor:
        net, contract, kind, projection = member
        if _same_normalisation(contract, self.student_contract):
            inp = x
        else:  # each member sees the face in its own contract, as pseudo-label feeds it
            inp = torch.stack([to_input_tensor(np.clip(im.permute(1, 2, 0).cpu().numpy(), 0, 255).round().astype(np.uint8),
                                               contract) for im in rgb]).to(x.device)
        return teacher_probabilities(net, inp, self.flip, kind, projection.to(x.device) if projection is not None else None)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rgb = self._rgb(x)
        p = sum(self._probs(m, x, rgb) for m in self.members) / len(self.members)
        if self.beard is not None:
            q = self._probs(self.beard, x, rgb)
            mass = p[:, FACE] + p[:, BEARD]
            share = q[:, BEARD] / (q[:, FACE] + q[:, BEARD]).clamp_min(1e-8)
            p = p.clone()
            p[:, BEARD], p[:, FACE] = mass * share, mass * (1 - share)
        return p


def _same_normalisation(a: dict, b: dict) -> bool:
    keys = ("mean", "std", "scale")
    same = all(np.allclose(np.asarray(a[k], dtype=float), np.asarray(b[k], dtype=float)) for k in keys)
    return same and str(a.get("channel_order", "RGB")).upper() == str(b.get("channel_order", "RGB")).upper()


class DistillLoss(nn.Module):
    """weight * T^2 * KL(teacher_T || student_T) + (1 - weight) * hard(logits, target) on labelled pixels."""

    def __init__(self, hard: nn.Module, temperature: float = 2.0, weight: float = 0.7):
        super().__init__()
        if not temperature > 0:
            raise ValueError(f"distillation temperature must be > 0, not {temperature}")
        if not 0 <= weight <= 1:
            raise ValueError(f"distillation weight must be in [0, 1], not {weight}")
        self.hard, self.temperature, self.weight = hard, float(temperature), float(weight)

    def soft(self, logits: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        t = self.temperature
        # the teacher's probabilities at temperature T: p^(1/T), renormalised (= softmax(teacher logits / T))
        target = teacher.clamp_min(1e-8).log().div(t).log_softmax(dim=1)
        student = logits.float().div(t).log_softmax(dim=1)
        kl = (target.exp() * (target - student)).sum(dim=1)
        return kl.mean() * t * t

    def forward(self, logits: torch.Tensor, target: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        loss = self.weight * self.soft(logits, teacher)
        labelled = (target != IGNORE_INDEX).flatten(1).any(dim=1)
        if self.weight < 1 and bool(labelled.any()):  # an unlabelled face has no hard term (not a NaN)
            loss = loss + (1 - self.weight) * self.hard(logits[labelled], target[labelled])
        return loss


class UnlabelledFaces(Dataset):
    """Face crops without labels (every pixel ignore), for distillation: (image tensor, all-ignore mask)."""

    def __init__(self, folders: Sequence[str | Path], size: int, transform: Callable | None = None,
                 contract: dict = DEFAULT_INPUT):
        self.files: list[Path] = []
        for folder in map(Path, folders):
            if not folder.is_dir():
                raise ValueError(f"--unlabelled {folder}: not a folder of face images")
            found = image_files(folder)
            if not found:
                raise ValueError(f"--unlabelled {folder}: no images in it")
            self.files += found
        self.size, self.transform, self.contract = int(size), transform, contract

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        try:
            rgb, _ = square_crop(read_rgb(self.files[index]), self.size)
        except BadSampleError as exc:
            raise ValueError(f"{self.files[index]}: unreadable face image ({exc.reason})") from None
        mask = np.full(rgb.shape[:2], IGNORE_INDEX, np.uint8)
        if self.transform is not None:
            out = self.transform(image=rgb, mask=mask)
            # fill pixels a shrink or rotation uncovers are background (black), as in the labelled sets
            rgb, mask = out["image"], out["mask"]
        return to_input_tensor(rgb, self.contract), torch.from_numpy(np.ascontiguousarray(mask)).long()


def recipe(teacher: Teacher, loss: DistillLoss, unlabelled: Sequence[str | Path], unlabelled_count: int) -> dict:
    """What a checkpoint records of its distillation (the model card's recipe line comes from this)."""
    return {"teachers": teacher.member_paths, "teacher_beard": teacher.beard_path, "teacher_sha256": teacher.sha256, "flip": teacher.flip, "temperature": loss.temperature,
            "weight": loss.weight, "unlabelled": [str(u) for u in unlabelled], "unlabelled_images": unlabelled_count,
            "num_classes": NUM_CLASSES}
