"""ImageNet-pretrainable mobile encoders: EfficientNet-Lite0 (Tan & Le 2019, lite variant) and
MobileNetV2 (Sandler et al. 2018), without their classifiers.

Both are stacks of inverted residuals with ReLU6 and no squeeze-excite, which is why they suit
int8 TFLite (the Lite family was designed by its authors for it). The layer layout mirrors the
public ImageNet files so that `pretrained.py` maps every tensor by an explicit key table.
forward(x) -> [f2, f4, f8, f16, f32]: the last map at each stride.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .blocks import ConvBNAct
from .mobilenetv3 import InvertedResidual

# (kernel, expansion ratio, out channels, repeats, first stride) per stage
EFFICIENTNET_LITE0 = [
    (3, 1, 16, 1, 1),
    (3, 6, 24, 2, 2),
    (5, 6, 40, 2, 2),
    (3, 6, 80, 3, 2),
    (5, 6, 112, 3, 1),
    (5, 6, 192, 4, 2),
    (3, 6, 320, 1, 1),
]
MOBILENETV2 = [
    (3, 1, 16, 1, 1),
    (3, 6, 24, 2, 2),
    (3, 6, 32, 3, 2),
    (3, 6, 64, 4, 2),
    (3, 6, 96, 3, 1),
    (3, 6, 160, 3, 2),
    (3, 6, 320, 1, 1),
]
CONFIGS = {"efficientnet-lite0": EFFICIENTNET_LITE0, "mobilenetv2": MOBILENETV2}
STEM_CHANNELS = 32
STRIDES = (2, 4, 8, 16, 32)


class MBConvEncoder(nn.Module):
    """stem (3x3 s2, ReLU6) -> inverted residual blocks; taps the last block at each stride."""

    def __init__(self, arch: str = "efficientnet-lite0") -> None:
        super().__init__()
        if arch not in CONFIGS:
            raise ValueError(f"encoder must be one of {sorted(CONFIGS)}, got {arch!r}")
        self.arch = arch
        self.stem = ConvBNAct(3, STEM_CHANNELS, 3, 2, act="relu6")
        blocks: list[nn.Module] = []
        strides, channels = [], []
        in_ch, stride_now = STEM_CHANNELS, 2
        for kernel, expand, out_ch, repeats, first_stride in CONFIGS[arch]:
            for i in range(repeats):
                stride = first_stride if i == 0 else 1
                blocks.append(
                    InvertedResidual(in_ch, kernel, in_ch * expand, out_ch, False, "relu6", stride, "sigmoid")
                )
                stride_now *= stride
                strides.append(stride_now)
                channels.append(out_ch)
                in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        self.taps = [max(i for i, s in enumerate(strides) if s == target) for target in STRIDES]
        self.out_channels = [channels[i] for i in self.taps]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        features = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                features.append(x)
        return features
