"""DDRNet-23 and DDRNet-23-slim (Hong et al. 2021, "Deep Dual-resolution Networks").

Two branches from stride 8: a high-resolution one kept at stride 8 and a low-resolution one going
down to stride 64, exchanging information twice (bilateral fusion: strided convs down, 1x1 + bilinear
up). The low branch ends in DAPPM (Deep Aggregation Pyramid Pooling: average pools with kernels
5/9/17 and a global mean, each upsampled and fused hierarchically). The head sits on the sum of both
branches at stride 8; its logits are resized to the input size.

With aux_head=True a second head on the high branch after the first fusion (the paper's deep
supervision) is built; in training mode forward then returns (main, aux), both at input size. In eval
mode, and always without aux_head, forward returns the main logits only.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import register_model
from .blocks import ConvBNAct, check_activation, default_input_contract, init_weights, make_act, resize_to


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, act: str = "relu", last_act: bool = True) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_ch, planes, 3, stride, act=act)
        self.conv2 = ConvBNAct(planes, planes, 3, act=None)
        out = planes * self.expansion
        self.shortcut = ConvBNAct(in_ch, out, 1, stride, act=None) if stride != 1 or in_ch != out else nn.Identity()
        # The last block of a stage leaves out its activation: the fusions that follow add first, then activate.
        self.act = make_act(act) if last_act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 2

    def __init__(self, in_ch: int, planes: int, stride: int = 1, act: str = "relu", last_act: bool = True) -> None:
        super().__init__()
        out = planes * self.expansion
        self.body = nn.Sequential(
            ConvBNAct(in_ch, planes, 1, act=act),
            ConvBNAct(planes, planes, 3, stride, act=act),
            ConvBNAct(planes, out, 1, act=None),
        )
        self.shortcut = ConvBNAct(in_ch, out, 1, stride, act=None) if stride != 1 or in_ch != out else nn.Identity()
        self.act = make_act(act) if last_act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def make_stage(block: type, in_ch: int, planes: int, blocks: int, stride: int = 1, act: str = "relu") -> nn.Sequential:
    layers = []
    for i in range(blocks):
        last = i == blocks - 1 and blocks > 1
        layers.append(block(in_ch, planes, stride if i == 0 else 1, act, last_act=not last))
        in_ch = planes * block.expansion
    return nn.Sequential(*layers)


def bn_act_conv(in_ch: int, out_ch: int, kernel: int, act: str) -> nn.Sequential:
    """Pre-activation unit (BN -> act -> conv) used by DAPPM and the heads."""
    return nn.Sequential(
        nn.BatchNorm2d(in_ch), make_act(act), nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=False)
    )


class DAPPM(nn.Module):
    def __init__(self, in_ch: int, branch_ch: int, out_ch: int, act: str = "relu") -> None:
        super().__init__()
        # Fixed-kernel average pools export to plain AveragePool for any input size; the global branch
        # (forward) is adaptive only to 1 x 1, which exports as GlobalAveragePool, also any size.
        self.pools = nn.ModuleList(
            nn.AvgPool2d(k, s, p) for k, s, p in ((5, 2, 2), (9, 4, 4), (17, 8, 8))
        )
        self.scale0 = bn_act_conv(in_ch, branch_ch, 1, act)
        self.scales = nn.ModuleList(bn_act_conv(in_ch, branch_ch, 1, act) for _ in range(4))  # 3 pools + global
        self.process = nn.ModuleList(bn_act_conv(branch_ch, branch_ch, 3, act) for _ in range(4))
        self.compression = bn_act_conv(branch_ch * 5, out_ch, 1, act)
        self.shortcut = bn_act_conv(in_ch, out_ch, 1, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Global branch as a global average pool (ONNX GlobalAveragePool), not x.mean(keepdim=True): onnx2tf
        # mis-lays-out the BatchNormalization after a keepdim ReduceMean, (1, C, 1, C) instead of (1, C, 1, 1),
        # and the whole fp32 TFLite goes wrong (~56 % argmax agreement); found by export/conversion_check.py.
        pooled = [pool(x) for pool in self.pools] + [F.adaptive_avg_pool2d(x, 1)]
        outs = [self.scale0(x)]
        for p, scale, process in zip(pooled, self.scales, self.process):
            outs.append(process(resize_to(scale(p), x) + outs[-1]))
        return self.compression(torch.cat(outs, dim=1)) + self.shortcut(x)


class SegHead(nn.Module):
    def __init__(self, in_ch: int, mid_ch: int, num_classes: int, act: str = "relu") -> None:
        super().__init__()
        self.body = nn.Sequential(bn_act_conv(in_ch, mid_ch, 3, act), nn.BatchNorm2d(mid_ch), make_act(act))
        self.classifier = nn.Conv2d(mid_ch, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))


class DDRNet(nn.Module):
    def __init__(
        self,
        num_classes: int = 11,
        planes: int = 64,
        spp_planes: int = 128,
        head_planes: int = 128,
        layers: tuple[int, int, int, int] = (2, 2, 2, 2),
        activation: str = "relu",
        aux_head: bool = False,
    ) -> None:
        super().__init__()
        act = "relu" if check_activation(activation) == "relu" else "hardswish"
        high = planes * 2
        self.stem = nn.Sequential(ConvBNAct(3, planes, 3, 2, act=act), ConvBNAct(planes, planes, 3, 2, act=act))
        self.layer1 = make_stage(BasicBlock, planes, planes, layers[0], act=act)
        self.layer2 = make_stage(BasicBlock, planes, planes * 2, layers[1], 2, act)  # stride 8
        # low-resolution branch
        self.layer3 = make_stage(BasicBlock, planes * 2, planes * 4, layers[2], 2, act)  # stride 16
        self.layer4 = make_stage(BasicBlock, planes * 4, planes * 8, layers[3], 2, act)  # stride 32
        self.layer5 = make_stage(Bottleneck, planes * 8, planes * 8, 1, 2, act)  # stride 64
        # high-resolution branch (stride 8 throughout)
        self.layer3_ = make_stage(BasicBlock, planes * 2, high, 2, act=act)
        self.layer4_ = make_stage(BasicBlock, high, high, 2, act=act)
        self.layer5_ = make_stage(Bottleneck, high, high, 1, act=act)
        # bilateral fusion
        self.compression3 = ConvBNAct(planes * 4, high, 1, act=None)
        self.compression4 = ConvBNAct(planes * 8, high, 1, act=None)
        self.down3 = ConvBNAct(high, planes * 4, 3, 2, act=None)
        self.down4 = nn.Sequential(ConvBNAct(high, planes * 4, 3, 2, act=act), ConvBNAct(planes * 4, planes * 8, 3, 2, act=None))
        self.spp = DAPPM(planes * 16, spp_planes, planes * 4, act)
        self.act = make_act(act, inplace=False)  # applied to tensors that both branches still use
        self.head = SegHead(planes * 4, head_planes, num_classes, act)
        self.aux = SegHead(high, head_planes, num_classes, act) if aux_head else None
        self.input_contract = default_input_contract()
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        act = self.act
        x8 = self.layer2(act(self.layer1(self.stem(x))))
        low = self.layer3(act(x8))
        high = self.layer3_(act(x8))
        low, high = low + self.down3(act(high)), high + resize_to(self.compression3(act(low)), high)
        aux_in = high
        low = self.layer4(act(low))
        high = self.layer4_(act(high))
        low, high = low + self.down4(act(high)), high + resize_to(self.compression4(act(low)), high)
        high = self.layer5_(act(high))
        low = resize_to(self.spp(self.layer5(act(low))), high)
        out = resize_to(self.head(low + high), x)
        if self.aux is not None and self.training:
            return out, resize_to(self.aux(aux_in), x)
        return out


@register_model("ddrnet23-slim")
def ddrnet23_slim(num_classes: int = 11, activation: str = "relu", aux_head: bool = False) -> DDRNet:
    return DDRNet(num_classes, planes=32, spp_planes=128, head_planes=64, activation=activation, aux_head=aux_head)


@register_model("ddrnet23")
def ddrnet23(num_classes: int = 11, activation: str = "relu", aux_head: bool = False) -> DDRNet:
    return DDRNet(num_classes, planes=64, spp_planes=128, head_planes=128, activation=activation, aux_head=aux_head)
