"""RegSeg (Gao 2021, "Rethink Dilated Convolution for Real-time Semantic Segmentation").

Backbone "exp52": stem 3x3/2 to 32 channels, then D blocks (group width 16, squeeze-excite):
  stride 4:  48 channels, 1 block
  stride 8:  128 channels, 3 blocks
  stride 16: 256 channels: a strided block, then dilations [1], [1,2], [1,4], 9 x [1,6],
             and a last 256->320 block with [1,6].
A D block splits its grouped 3x3 conv across the dilations of its list (wider context without
downsampling further). Decoder "decoder29": 1x1 heads to 256/256/16 channels at strides 16/8/4,
add 16 into 8, 3x3 to 128, resize to stride 4, concatenate, 3x3 to 128, classify, resize to input.
Input sides must be multiples of 16 (the strided shortcuts average-pool 2x2 without ceil mode,
which onnx2tf converts plainly); the exported sizes are multiples of 32 anyway.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from . import register_model
from .blocks import ConvBNAct, SqueezeExcite, check_activation, default_input_contract, gate_for, init_weights, make_act, resize_to

GROUP_WIDTH = 16
EXP52_DILATIONS: list[list[int]] = [[1], [1, 2], [1, 4]] + 10 * [[1, 6]]


class SplitDilatedConv(nn.Module):
    """Grouped 3x3 conv + BN whose channels are split evenly between several dilation rates.

    BN sits in each branch (the same per-channel BN as one after the concat) so that export folds it into the conv.
    """

    def __init__(self, channels: int, dilations: Sequence[int], group_width: int, stride: int) -> None:
        super().__init__()
        if channels % (len(dilations) * group_width):
            raise ValueError(f"{channels} channels do not split into {len(dilations)} x groups of {group_width}")
        self.part = channels // len(dilations)
        self.convs = nn.ModuleList(
            ConvBNAct(self.part, self.part, 3, stride, dilation=d, groups=self.part // group_width, act=None)
            for d in dilations
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.convs) == 1:
            return self.convs[0](x)
        parts = torch.split(x, self.part, dim=1)
        return torch.cat([conv(p) for conv, p in zip(self.convs, parts)], dim=1)


class DBlock(nn.Module):
    """1x1 -> split dilated grouped 3x3 -> SE -> 1x1, plus a shortcut (avg-pool + 1x1 when it downsamples)."""

    def __init__(
        self, in_ch: int, out_ch: int, dilations: Sequence[int], stride: int = 1, act: str = "relu", gate: str = "sigmoid"
    ) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_ch, out_ch, 1, act=act)
        self.conv2 = nn.Sequential(SplitDilatedConv(out_ch, dilations, GROUP_WIDTH, stride), make_act(act))
        self.se = SqueezeExcite(out_ch, in_ch // 4, gate)
        self.conv3 = ConvBNAct(out_ch, out_ch, 1, act=None)
        if stride != 1 or in_ch != out_ch:
            pool: list[nn.Module] = [nn.AvgPool2d(2, 2)] if stride == 2 else []
            self.shortcut = nn.Sequential(*pool, ConvBNAct(in_ch, out_ch, 1, act=None))
        else:
            self.shortcut = nn.Identity()
        self.act = make_act(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self.se(self.conv2(self.conv1(x))))
        return self.act(y + self.shortcut(x))


class RegSeg(nn.Module):
    def __init__(self, num_classes: int = 11, activation: str = "relu", dilations: list[list[int]] = EXP52_DILATIONS) -> None:
        super().__init__()
        act = "relu" if check_activation(activation) == "relu" else "hardswish"
        gate = gate_for(activation)

        def block(i: int, o: int, d: Sequence[int], s: int = 1) -> DBlock:
            return DBlock(i, o, d, s, act, gate)

        self.stem = ConvBNAct(3, 32, 3, 2, act=act)
        self.stage4 = block(32, 48, [1], 2)
        self.stage8 = nn.Sequential(block(48, 128, [1], 2), block(128, 128, [1]), block(128, 128, [1]))
        self.stage16 = nn.Sequential(
            block(128, 256, [1], 2),
            *(block(256, 256, d) for d in dilations[:-1]),
            block(256, 320, dilations[-1]),
        )
        # decoder29
        self.head16 = ConvBNAct(320, 256, 1, act=act)
        self.head8 = ConvBNAct(128, 256, 1, act=act)
        self.head4 = ConvBNAct(48, 16, 1, act=act)
        self.conv8 = ConvBNAct(256, 128, 3, act=act)
        self.conv4 = ConvBNAct(128 + 16, 128, 3, act=act)
        self.classifier = nn.Conv2d(128, num_classes, 1)
        self.input_contract = default_input_contract()
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x4 = self.stage4(self.stem(x))
        x8 = self.stage8(x4)
        x16 = self.stage16(x8)
        y8 = self.head8(x8) + resize_to(self.head16(x16), x8)
        y8 = self.conv8(y8)
        y4 = self.conv4(torch.cat([resize_to(y8, x4), self.head4(x4)], dim=1))
        return resize_to(self.classifier(y4), x)


@register_model("regseg")
def regseg(num_classes: int = 11, activation: str = "relu") -> RegSeg:
    return RegSeg(num_classes, activation)
