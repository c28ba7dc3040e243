"""Optimizers by name: torch's Adam / AdamW / SGD, and AdamP / AdaBelief from pytorch-optimizer."""

from __future__ import annotations

from typing import Iterable

import torch

OPTIMIZERS = ("adam", "adamw", "adamp", "adabelief", "sgd")


def build_optimizer(
    name: str, params: Iterable[torch.nn.Parameter], lr: float = 1e-3, weight_decay: float | None = None
) -> torch.optim.Optimizer:
    """weight_decay None: 1e-2 for the decoupled-decay optimizers (AdamW, AdamP), 0 for the others."""
    name = name.lower()
    if weight_decay is None:
        weight_decay = 1e-2 if name in ("adamw", "adamp") else 0.0
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "adamp":
        from pytorch_optimizer import AdamP

        return AdamP(params, lr=lr, weight_decay=weight_decay)
    if name == "adabelief":
        from pytorch_optimizer import AdaBelief

        return AdaBelief(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; use one of {', '.join(OPTIMIZERS)}")
