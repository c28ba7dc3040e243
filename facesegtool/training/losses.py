"""Segmentation losses over N x C x H x W logits and N x H x W targets (IGNORE_INDEX skipped).

Every loss takes per-class weights (the manifest's equal / empirical / proportional schemes),
so rare classes (teeth, glasses, eyes) can count for more than background and face.
"""

from __future__ import annotations

import inspect
import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..labels import IGNORE_INDEX, NUM_CLASSES

WEIGHT_SCHEMES = ("equal", "empirical", "proportional")


def loss_weights(manifest: dict, scheme: str = "equal") -> list[float]:
    """Per-class weights of a scheme, as the prepared manifest lists them.

    equal: all ones; empirical: the design's hand-tuned table; proportional: inverse class
    frequency on the training split, normalised by its geometric mean (see data/prepare.py).
    """
    if scheme not in WEIGHT_SCHEMES:
        raise ValueError(f"unknown weight scheme {scheme!r}; use one of {', '.join(WEIGHT_SCHEMES)}")
    listed = (manifest.get("weights") or {}).get(scheme)
    if listed is None:  # an older manifest: compute the scheme as `data prepare` does
        from ..data.prepare import weight_schemes

        listed = weight_schemes(manifest["class_pixels"]["train"])[scheme]
    weights = [float(w) for w in listed]
    if len(weights) != NUM_CLASSES or not all(math.isfinite(w) and w >= 0 for w in weights):
        raise ValueError(f"class weights {scheme!r} must be {NUM_CLASSES} finite non-negative numbers: {weights}")
    return weights


def _valid(target: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(mask of labelled pixels, target with ignored pixels set to class 0 so it can index)."""
    valid = target != ignore_index
    return valid, torch.where(valid, target, torch.zeros_like(target))


class WeightedCrossEntropy(nn.Module):
    """Softmax cross-entropy with class weights (torch's weighted mean over labelled pixels)."""

    def __init__(self, weight: Sequence[float] | None = None, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.register_buffer("weight", None if weight is None else torch.tensor(weight, dtype=torch.float32))
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target, weight=self.weight, ignore_index=self.ignore_index)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017) per pixel: -alpha_t * (1 - p_t)^gamma * log p_t.

    p_t is the softmax probability of the true class. Class weights play the role of alpha;
    the sum is normalised by the summed alpha of labelled pixels, so gamma=0 is exactly the
    weighted cross-entropy above, and gamma>0 shrinks the share of pixels already right.
    """

    def __init__(self, weight: Sequence[float] | None = None, gamma: float = 2.0, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.register_buffer("weight", None if weight is None else torch.tensor(weight, dtype=torch.float32))
        self.gamma = gamma
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid, safe = _valid(target, self.ignore_index)
        logp_t = F.log_softmax(logits.float(), dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)
        p_t = logp_t.exp()
        alpha = self.weight[safe] if self.weight is not None else torch.ones_like(logp_t)
        alpha = alpha * valid
        loss = -alpha * (1.0 - p_t).clamp_min(0).pow(self.gamma) * logp_t
        return loss.sum() / alpha.sum().clamp_min(1e-8)


class WeightedBCE(nn.Module):
    """The design's weighted BCE: one sigmoid per class against the one-hot target.

    Each class is an independent yes/no question per pixel; the class weight scales that class's
    term. Averaged over labelled pixels and normalised by the weight sum.
    """

    def __init__(self, weight: Sequence[float] | None = None, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        self.register_buffer("weight", None if weight is None else torch.tensor(weight, dtype=torch.float32))
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        n, c = logits.shape[:2]
        valid, safe = _valid(target, self.ignore_index)
        onehot = F.one_hot(safe, c).permute(0, 3, 1, 2).to(logits.dtype)
        per = F.binary_cross_entropy_with_logits(logits, onehot, reduction="none")  # N C H W
        w = self.weight if self.weight is not None else torch.ones(c, device=logits.device)
        per = per * w.view(1, c, 1, 1) * valid.unsqueeze(1)
        return per.sum() / (valid.sum().clamp_min(1) * w.sum())


def _soft_counts(logits: torch.Tensor, target: torch.Tensor, ignore_index: int):
    """Per-class soft true positives, false positives and false negatives over labelled pixels."""
    c = logits.shape[1]
    valid, safe = _valid(target, ignore_index)
    prob = F.softmax(logits.float(), dim=1) * valid.unsqueeze(1)
    onehot = F.one_hot(safe, c).permute(0, 3, 1, 2).float() * valid.unsqueeze(1)
    dims = (0, 2, 3)
    tp = (prob * onehot).sum(dims)
    fp = (prob * (1 - onehot)).sum(dims)
    fn = ((1 - prob) * onehot).sum(dims)
    return tp, fp, fn


class TverskyLoss(nn.Module):
    """Tversky loss (Salehi et al. 2017): 1 - TP / (TP + alpha FP + beta FN), per class, weighted mean.

    alpha = beta = 0.5 is the soft Dice loss; beta > alpha punishes missed pixels more than false
    alarms, which helps thin, rare parts. Computed over the batch (soft counts). Classes absent from
    the batch's labels are left out of the mean: their index would be ~0 whatever the prediction
    and would only add a constant (their false alarms still cost the present classes' FN/FP).
    """

    def __init__(
        self,
        weight: Sequence[float] | None = None,
        alpha: float = 0.3,
        beta: float = 0.7,
        smooth: float = 1.0,
        ignore_index: int = IGNORE_INDEX,
    ):
        super().__init__()
        self.register_buffer("weight", None if weight is None else torch.tensor(weight, dtype=torch.float32))
        self.alpha, self.beta, self.smooth = alpha, beta, smooth
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        tp, fp, fn = _soft_counts(logits, target, self.ignore_index)
        index = (tp + self.smooth) / (tp + self.alpha * fp + self.beta * fn + self.smooth)
        w = self.weight if self.weight is not None else torch.ones_like(index)
        w = w * ((tp + fn) > 0)  # tp + fn = labelled pixels of the class
        return ((1 - index) * w).sum() / w.sum().clamp_min(1e-8)


class DiceLoss(TverskyLoss):
    """Soft Dice loss per class, weighted mean: 1 - 2TP / (2TP + FP + FN)."""

    def __init__(self, weight: Sequence[float] | None = None, smooth: float = 1.0, ignore_index: int = IGNORE_INDEX):
        super().__init__(weight, alpha=0.5, beta=0.5, smooth=smooth, ignore_index=ignore_index)


class BiasLoss(nn.Module):
    """Bias loss (Abrahamyan et al., ICCV 2021, "Bias Loss for Mobile Neural Networks"), per pixel.

    The paper scales each sample's cross-entropy by z(v) = exp(alpha * v) - beta, where v is the
    variance of the sample's feature maps from the last convolutional layer, min-max normalised
    over the batch (no gradient through v); alpha = beta = 0.3. Low-variance samples ("random
    predictions" made from few distinct features) weigh less, diverse ones more.

    For segmentation every pixel is a sample: v is the variance over channels of the last
    convolutional layer's output at that pixel. Every model here ends in a 1x1 conv classifier,
    whose output is the logits, so v = var over classes of the logits (detached), normalised to
    [0, 1] over the labelled pixels of the batch. The loss is the class-weighted mean of
    z(v) * CE over labelled pixels.
    """

    def __init__(
        self,
        weight: Sequence[float] | None = None,
        alpha: float = 0.3,
        beta: float = 0.3,
        ignore_index: int = IGNORE_INDEX,
    ):
        super().__init__()
        self.register_buffer("weight", None if weight is None else torch.tensor(weight, dtype=torch.float32))
        self.alpha, self.beta = alpha, beta
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid, safe = _valid(target, self.ignore_index)
        ce = F.cross_entropy(logits.float(), safe, reduction="none")  # N H W
        with torch.no_grad():
            var = logits.float().var(dim=1)
            lo = var[valid].min() if valid.any() else var.min()
            hi = var[valid].max() if valid.any() else var.max()
            v = (var - lo) / (hi - lo).clamp_min(1e-8)
            z = torch.exp(self.alpha * v) - self.beta
        w = self.weight[safe] if self.weight is not None else torch.ones_like(ce)
        w = w * valid
        return (z * ce * w).sum() / w.sum().clamp_min(1e-8)


_FACTORIES = {
    "ce": WeightedCrossEntropy,
    "bce": WeightedBCE,
    "dice": DiceLoss,
    "focal": FocalLoss,
    "tversky": TverskyLoss,
    "bias": BiasLoss,
}
LOSSES = tuple(_FACTORIES)


class SumLoss(nn.Module):
    """The sum of several losses, e.g. "ce+dice": a per-pixel term for calibrated scores plus a
    per-class overlap term that counts a thin part's errors as much as a big part's."""

    def __init__(self, terms: Sequence[nn.Module]):
        super().__init__()
        self.terms = nn.ModuleList(terms)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(term(logits, target) for term in self.terms)


def build_loss(name: str, class_weights: Sequence[float] | None = None, **options) -> nn.Module:
    """A loss by name, or a sum of losses joined by "+" ("ce+dice").

    Options are the loss's own (gamma for focal, alpha/beta for tversky and bias); for a sum they
    go to every term that accepts them.
    """
    parts = [p.strip() for p in name.split("+")]
    unknown = [p for p in parts if p not in _FACTORIES]
    if unknown:
        raise ValueError(f"unknown loss {name!r}; use one of {', '.join(LOSSES)}, or a sum such as ce+dice")
    if len(parts) == 1:
        return _FACTORIES[parts[0]](class_weights, **options)
    terms = []
    for part in parts:
        accepted = inspect.signature(_FACTORIES[part].__init__).parameters
        terms.append(_FACTORIES[part](class_weights, **{k: v for k, v in options.items() if k in accepted}))
    return SumLoss(terms)
