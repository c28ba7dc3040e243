"""MobileNetV3 small and large encoders (Howard et al. 2019, Tables 1 and 2), without the classifier.

The encoder returns five feature maps, at strides 2, 4, 8, 16 and 32, for a U-Net decoder.
With activation="relu" every hard-swish becomes ReLU and every hard-sigmoid gate a sigmoid
(see blocks.py for why).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .blocks import ConvBNAct, SqueezeExcite, check_activation, gate_for, make_divisible

# (kernel, expansion channels, out channels, squeeze-excite, non-linearity, stride); RE = ReLU, HS = hard-swish
LARGE = [
    (3, 16, 16, False, "RE", 1),
    (3, 64, 24, False, "RE", 2),
    (3, 72, 24, False, "RE", 1),
    (5, 72, 40, True, "RE", 2),
    (5, 120, 40, True, "RE", 1),
    (5, 120, 40, True, "RE", 1),
    (3, 240, 80, False, "HS", 2),
    (3, 200, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 184, 80, False, "HS", 1),
    (3, 480, 112, True, "HS", 1),
    (3, 672, 112, True, "HS", 1),
    (5, 672, 160, True, "HS", 2),
    (5, 960, 160, True, "HS", 1),
    (5, 960, 160, True, "HS", 1),
]
LARGE_LAST = 960

SMALL = [
    (3, 16, 16, True, "RE", 2),
    (3, 72, 24, False, "RE", 2),
    (3, 88, 24, False, "RE", 1),
    (5, 96, 40, True, "HS", 2),
    (5, 240, 40, True, "HS", 1),
    (5, 240, 40, True, "HS", 1),
    (5, 120, 48, True, "HS", 1),
    (5, 144, 48, True, "HS", 1),
    (5, 288, 96, True, "HS", 2),
    (5, 576, 96, True, "HS", 1),
    (5, 576, 96, True, "HS", 1),
]
SMALL_LAST = 576

CONFIGS = {"small": (SMALL, SMALL_LAST), "large": (LARGE, LARGE_LAST)}
STRIDES = (2, 4, 8, 16, 32)


class InvertedResidual(nn.Module):
    """Expand 1x1 -> depthwise kxk -> (SE) -> project 1x1, with a residual when shapes allow."""

    def __init__(
        self, in_ch: int, kernel: int, exp_ch: int, out_ch: int, se: bool, act: str, stride: int, gate: str
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        if exp_ch != in_ch:
            layers.append(ConvBNAct(in_ch, exp_ch, 1, act=act))
        layers.append(ConvBNAct(exp_ch, exp_ch, kernel, stride, groups=exp_ch, act=act))
        if se:
            layers.append(SqueezeExcite(exp_ch, make_divisible(exp_ch / 4, 8), gate))
        layers.append(ConvBNAct(exp_ch, out_ch, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.block(x)
        return x + y if self.residual else y


class MobileNetV3Encoder(nn.Module):
    """MobileNetV3 feature extractor: forward(x) -> [f2, f4, f8, f16, f32] (the last map at each stride)."""

    def __init__(self, variant: str = "small", activation: str = "hardswish") -> None:
        super().__init__()
        if variant not in CONFIGS:
            raise ValueError(f"MobileNetV3 variant must be one of {sorted(CONFIGS)}, got {variant!r}")
        check_activation(activation)
        hs = "hardswish" if activation == "hardswish" else "relu"
        gate = gate_for(activation)
        config, last_ch = CONFIGS[variant]

        layers: list[nn.Module] = [ConvBNAct(3, 16, 3, 2, act=hs)]
        strides = [2]  # output stride after each layer
        in_ch = 16
        for kernel, exp_ch, out_ch, se, nl, stride in config:
            layers.append(InvertedResidual(in_ch, kernel, exp_ch, out_ch, se, hs if nl == "HS" else "relu", stride, gate))
            strides.append(strides[-1] * stride)
            in_ch = out_ch
        layers.append(ConvBNAct(in_ch, last_ch, 1, act=hs))
        strides.append(strides[-1])
        self.layers = nn.ModuleList(layers)

        # Index of the last layer at each stride: its output is that stride's feature map.
        self.taps = [max(i for i, s in enumerate(strides) if s == target) for target in STRIDES]
        channels = [16] + [c[2] for c in config] + [last_ch]
        self.out_channels = [channels[i] for i in self.taps]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in self.taps:
                features.append(x)
        return features
