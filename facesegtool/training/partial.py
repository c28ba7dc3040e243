"""Set-valued ("partial") labels: a source that never labels a class gives its pixels another class.

CelebAMask-HQ has no beard label, so its annotators' "face" may be beard. Trained on as it stands,
every CelebAMask beard teaches "beard is skin", against the sources that do label beard. Here such a
pixel means "face or beard": its loss is taken on p(face) + p(beard), so the net may call it either,
while a background pixel of the same face still counts beard as wrong.

How: the training dataset marks those pixels with a code (PartialCodes), and PartialLabelLoss
replaces, at coded pixels only, the stand-in class's logit by logsumexp over the set and the hidden
classes' logits by a very low one. Softmax then gives the stand-in p(face) + p(beard) and beard 0,
so every softmax loss here (ce, focal, dice, tversky) works unchanged: cross-entropy becomes
-log(p_face + p_beard) and Dice merges the two probabilities at those pixels. bce (independent
sigmoids) and bias (variance of the logits) have no such reading and are refused.

Partial labels switch on only for a class that some training set holds pixels of: trained on
CelebAMask alone, beard stays "never" (as before), since nothing would say what a beard looks like.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
import torch.nn as nn
from torch.utils.data import Dataset

from ..labels import CELEBAMASK_UNLABELLED, CLASS_INDEX, CLASSES, IGNORE_INDEX

CODE_BASE = 128  # coded target values: CODE_BASE + k (never a class, never IGNORE_INDEX)
REFUSED_LOSSES = ("bce", "bias")
# Manifests written before items recorded "unlabelled_classes": what their source kinds never label.
LEGACY_UNLABELLED: dict[str, dict[str, str]] = {
    "celebamask-index": CELEBAMASK_UNLABELLED,
    "celebamask-parts": CELEBAMASK_UNLABELLED,
}
_VERY_LOW = -1e4  # a logit whose softmax share is 0 in float32 and float16


def item_unlabelled(item: dict) -> dict[str, str]:
    """hidden class -> stand-in class for one manifest item."""
    listed = item.get("unlabelled_classes")
    if listed is None:
        listed = LEGACY_UNLABELLED.get(item.get("source", ""), {})
    for hidden, stand_in in listed.items():
        if hidden not in CLASS_INDEX or stand_in not in CLASS_INDEX:
            raise ValueError(f"item {item.get('name')!r}: unlabelled_classes {listed} names a class not in "
                             f"{', '.join(CLASSES)}")
    return dict(listed)


def labelled_classes(manifests: Iterable[dict]) -> set[str]:
    """Classes with training pixels in any of the sets (where a partial label can learn them)."""
    out = set()
    for manifest in manifests:
        pixels = (manifest.get("class_pixels") or {}).get("train") or []
        out |= {name for name, n in zip(CLASSES, pixels) if n > 0}
    return out


class PartialCodes:
    """The coded target values: code -> (stand-in class index, the class indices it may be)."""

    def __init__(self, active: set[str]):
        self.active = active  # hidden classes that get partial labels
        self.sets: dict[int, tuple[int, tuple[int, ...]]] = {}
        self._by_key: dict[tuple[int, tuple[int, ...]], int] = {}

    def code(self, stand_in: str, hidden: Sequence[str]) -> int:
        key = (CLASS_INDEX[stand_in], tuple(sorted(CLASS_INDEX[h] for h in hidden)))
        if key not in self._by_key:
            value = CODE_BASE + len(self._by_key)
            if value >= IGNORE_INDEX:
                raise ValueError("too many distinct partial labels")
            self._by_key[key] = value
            self.sets[value] = (key[0], (key[0],) + key[1])
        return self._by_key[key]

    def for_item(self, item: dict) -> dict[int, int]:
        """stand-in class index -> its code, for one item (empty: a plain label)."""
        by_stand_in: dict[str, list[str]] = {}
        for hidden, stand_in in item_unlabelled(item).items():
            if hidden in self.active:
                by_stand_in.setdefault(stand_in, []).append(hidden)
        return {CLASS_INDEX[s]: self.code(s, h) for s, h in by_stand_in.items()}


class PartialLabels(Dataset):
    """A FaceParsingDataset whose samples carry their set's partial labels as coded target values."""

    def __init__(self, dataset, codes: PartialCodes):
        self.dataset = dataset
        items = {it["name"]: it for it in dataset.manifest["items"]}
        self.recode = [codes.for_item(items[name]) for name in dataset.names]

    @property
    def transform(self):  # seed_worker reseeds each part's augmentation through this
        return self.dataset.transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.dataset[index]
        recode = self.recode[index]
        if recode:  # after augmentation, so geometry never sees a code
            out = y.clone()
            for stand_in, code in recode.items():
                out[y == stand_in] = code
            y = out
        return x, y

    @property
    def partial_samples(self) -> int:
        return sum(bool(r) for r in self.recode)


def merge_partial(logits: torch.Tensor, target: torch.Tensor, sets: dict[int, tuple[int, tuple[int, ...]]]
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, target) with every coded pixel turned into a plain label of its stand-in class whose
    softmax probability is the sum over the set (the other members' probability 0)."""
    for code, (stand_in, members) in sets.items():
        where = target == code
        if not where.any():
            continue
        w = where.unsqueeze(1)
        merged = torch.logsumexp(logits[:, list(members)], dim=1, keepdim=True)
        hidden = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
        hidden[[m for m in members if m != stand_in]] = True
        channel = torch.arange(logits.shape[1], device=logits.device).view(1, -1, 1, 1)
        logits = torch.where(w & (channel == stand_in), merged,
                             torch.where(w & hidden.view(1, -1, 1, 1), torch.full_like(logits, _VERY_LOW), logits))
        target = torch.where(where, torch.full_like(target, stand_in), target)
    return logits, target


class PartialLabelLoss(nn.Module):
    """Any softmax loss, taking coded (set-valued) pixels as merge_partial says; plain targets pass through."""

    def __init__(self, inner: nn.Module, sets: dict[int, tuple[int, tuple[int, ...]]]):
        super().__init__()
        self.inner = inner
        self.sets = dict(sets)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.sets:
            logits, target = merge_partial(logits, target, self.sets)
        return self.inner(logits, target)


def check_loss(name: str) -> None:
    """Refuse a loss with no set-valued reading (see the module docstring)."""
    refused = [p.strip() for p in name.split("+") if p.strip() in REFUSED_LOSSES]
    if refused:
        raise ValueError(f"--loss {name}: {', '.join(refused)} cannot take partial labels (this data's CelebAMask "
                         "faces may hide a beard under 'face'); use ce, dice, focal or tversky")

