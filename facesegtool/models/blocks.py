"""Building blocks shared by every model in the zoo.

All models take an `activation` flag:
  "hardswish"  the MobileNetV3 paper's non-linearities: hard-swish, and hard-sigmoid gates in SE;
  "relu"       ReLU everywhere and a plain sigmoid gate. Hard-swish/hard-sigmoid lose accuracy under
               TFLite int8 (their wide, asymmetric ranges share one scale); ReLU fuses into the conv
               and the sigmoid (LOGISTIC) has an exact int8 kernel, so this is the quantization-friendly choice.

Only ops that export to ONNX and convert with onnx2tf are used: global pooling is a mean over H, W
(SE: measured exact, its mean feeds a conv) or adaptive_avg_pool2d(x, 1) (DDRNet: a BatchNorm after a
keepdim mean converts wrongly), no other adaptive pooling; upsampling is bilinear, align_corners=False.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

ACTIVATIONS = ("hardswish", "relu")


def check_activation(activation: str) -> str:
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, got {activation!r}")
    return activation


def make_act(kind: str | None, inplace: bool = True) -> nn.Module:
    """An activation by name: relu, relu6, hardswish, hardsigmoid, sigmoid, or None for identity.

    inplace=False where the input tensor is still needed elsewhere (e.g. branches that share it).
    """
    layers = {
        "relu": nn.ReLU,
        "relu6": nn.ReLU6,
        "hardswish": nn.Hardswish,
        "hardsigmoid": nn.Hardsigmoid,
        "sigmoid": nn.Sigmoid,
    }
    if kind is None:
        return nn.Identity()
    if kind not in layers:
        raise ValueError(f"unknown activation {kind!r}")
    return layers[kind](inplace=inplace) if kind != "sigmoid" else nn.Sigmoid()


def gate_for(activation: str) -> str:
    """The SE gate that goes with a model-level activation choice."""
    return "hardsigmoid" if check_activation(activation) == "hardswish" else "sigmoid"


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of divisor without losing more than 10% (as in MobileNet)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


class ConvBNAct(nn.Sequential):
    """Conv (no bias) -> BatchNorm -> activation; 'same' padding for odd kernels, any dilation."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel: int = 3,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        act: str | None = "relu",
    ) -> None:
        padding = dilation * (kernel - 1) // 2
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel, stride, padding, dilation=dilation, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
            make_act(act),
        )
        self.out_channels = out_ch


class SqueezeExcite(nn.Module):
    """Channel attention: global mean -> 1x1 conv -> ReLU -> 1x1 conv -> gate -> scale the input."""

    def __init__(self, channels: int, squeeze: int, gate: str = "sigmoid") -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.ReLU(inplace=True)
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = make_act(gate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # mean over H, W exports as ReduceMean, which onnx2tf maps to TFLite MEAN for any size.
        s = x.mean(dim=(2, 3), keepdim=True)
        s = self.gate(self.expand(self.act(self.reduce(s))))
        return x * s


def resize_to(x: torch.Tensor, ref: torch.Tensor | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of x to the spatial size of ref (a tensor or an (H, W) pair)."""
    size = tuple(ref.shape[-2:]) if isinstance(ref, torch.Tensor) else tuple(ref)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def default_input_contract() -> dict:
    """The input contract every model here is trained with (a fresh copy, safe to modify)."""
    from ..checkpoint import DEFAULT_INPUT  # late import: checkpoint imports the registry

    return {k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULT_INPUT.items()}


def init_weights(module: nn.Module) -> None:
    """He init for convs, unit BN: models here are trained from scratch."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
