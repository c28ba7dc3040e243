"""Size and cost of the registered models: parameter counts and multiply-accumulates (MACs)."""

from __future__ import annotations

import inspect

import torch
import torch.nn as nn

from . import _REGISTRY, count_parameters, create_model, list_models


def count_macs(model: nn.Module, size: int = 256) -> int:
    """MACs of one forward pass at batch 1, size x size, counted over convolutions and linear layers.

    Pooling, resizing, normalisation and element-wise ops are left out (small next to the convs).
    """
    total = 0

    def conv_hook(module: nn.Conv2d, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        k = module.kernel_size[0] * module.kernel_size[1]
        total += out.numel() * (module.in_channels // module.groups) * k

    def linear_hook(module: nn.Linear, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        total += out.numel() * module.in_features

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return total


def default_activation(name: str) -> str | None:
    """The `activation` a registered model uses when none is given."""
    list_models()  # make sure every model file is loaded
    param = inspect.signature(_REGISTRY[name]).parameters.get("activation")
    return None if param is None else param.default


def model_table(num_classes: int = 11, size: int | None = 256) -> list[dict]:
    """One row per registered model: name, parameters, default activation, MACs at `size` (None: skip)."""
    rows = []
    for name in list_models():
        model = create_model(name, num_classes=num_classes)
        row = {"name": name, "params": count_parameters(model), "activation": default_activation(name)}
        if size:
            row["macs"] = count_macs(model, size)
        rows.append(row)
    return rows
