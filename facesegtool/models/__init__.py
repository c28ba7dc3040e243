"""Model registry: every segmentation net is registered under a name and built with one call.

    model = create_model("unet-mobilenetv3-small", num_classes=11)

Every model maps an N x 3 x H x W float tensor (normalised RGB, see INPUT_CONTRACT) to
N x num_classes x H x W logits at the input resolution.
"""

from __future__ import annotations

import importlib
from typing import Callable

import torch.nn as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}
# Model files register themselves on import; listed here so the registry is complete on first use.
_MODEL_MODULES = ("unet", "ddrnet", "regseg")


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return wrap


def _load_all() -> None:
    for mod in _MODEL_MODULES:
        importlib.import_module(f"{__name__}.{mod}")


def list_models() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int = 11, **kwargs) -> nn.Module:
    _load_all()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name](num_classes=num_classes, **kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
