"""U-Net decoder over a pluggable multi-scale encoder, and the U-Net models of the registry.

The encoder gives feature maps at strides 2..32; the decoder walks back up: resize the deeper map
to the skip's size, concatenate, two 3x3 ConvBNReLU. Logits come out at stride 2 and are resized
bilinearly to the input size (a full-resolution stage costs a lot of MACs for little gain on faces).
The decoder always uses ReLU: it quantizes well and the `activation` flag concerns the encoder.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn

from . import register_model
from .blocks import ConvBNAct, default_input_contract, init_weights, resize_to
from .mbconv_encoders import MBConvEncoder
from .mobilenetv3 import MobileNetV3Encoder


class UpBlock(nn.Module):
    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, separable: bool = False) -> None:
        super().__init__()
        if separable:  # depthwise 3x3 + pointwise 1x1: ~9x fewer MACs where the merged input is wide
            cat = in_ch + skip_ch
            self.conv = nn.Sequential(ConvBNAct(cat, cat, 3, groups=cat), ConvBNAct(cat, out_ch, 1),
                                      ConvBNAct(out_ch, out_ch, 3, groups=out_ch), ConvBNAct(out_ch, out_ch, 1))
        else:
            self.conv = nn.Sequential(ConvBNAct(in_ch + skip_ch, out_ch, 3), ConvBNAct(out_ch, out_ch, 3))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([resize_to(x, skip), skip], dim=1))


class UNet(nn.Module):
    """encoder(x) -> list of features, shallow to deep, each with encoder.out_channels[i] channels.

    decoder_channels[i] is the width after merging the (i+1)-th deepest skip. Fewer widths than skips stop
    the decoder early: the shallowest skips go unused and the logits come out at a coarser stride (still
    resized to the input), which is where a cheap student saves most of its MACs.
    """

    def __init__(self, encoder: nn.Module, num_classes: int, decoder_channels: Sequence[int],
                 separable: bool = False) -> None:
        super().__init__()
        skips = list(encoder.out_channels)
        if not 1 <= len(decoder_channels) <= len(skips) - 1:
            raise ValueError(f"need 1 to {len(skips) - 1} decoder widths for {len(skips)} encoder features")
        self.encoder = encoder
        self.skip_count = len(decoder_channels)
        ups = []
        in_ch = skips[-1]
        for skip_ch, out_ch in zip(list(reversed(skips[:-1]))[: self.skip_count], decoder_channels):
            ups.append(UpBlock(in_ch, skip_ch, out_ch, separable))
            in_ch = out_ch
        self.decoder = nn.ModuleList(ups)
        self.head = nn.Conv2d(in_ch, num_classes, 1)
        self.input_contract = default_input_contract()
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.encoder(x)
        y = features[-1]
        for up, skip in zip(self.decoder, list(reversed(features[:-1]))[: self.skip_count]):
            y = up(y, skip)
        return resize_to(self.head(y), x)


# Decoder widths chosen so the totals match the design's table (3.6M / 6.7M parameters with 11 classes).
SMALL_DECODER = (256, 128, 64, 32)
LARGE_DECODER = (256, 128, 64, 32)


@register_model("unet-mobilenetv3-small")
def unet_mobilenetv3_small(
    num_classes: int = 11, activation: str = "hardswish", decoder_channels: Sequence[int] = SMALL_DECODER
) -> UNet:
    return UNet(MobileNetV3Encoder("small", activation), num_classes, decoder_channels)


@register_model("unet-mobilenetv3-large")
def unet_mobilenetv3_large(
    num_classes: int = 11, activation: str = "hardswish", decoder_channels: Sequence[int] = LARGE_DECODER
) -> UNet:
    return UNet(MobileNetV3Encoder("large", activation), num_classes, decoder_channels)


# ImageNet-pretrainable U-Nets. A lighter decoder than above (one stage of 16 channels at stride 2)
# keeps them under 1 GMAC at 256 px: EfficientNet-Lite0 0.95, MobileNetV2 0.83 GMACs.
LITE_DECODER = (96, 48, 32, 16)


@register_model("unet-efficientnet-lite0")
def unet_efficientnet_lite0(num_classes: int = 11, decoder_channels: Sequence[int] = LITE_DECODER) -> UNet:
    return UNet(MBConvEncoder("efficientnet-lite0"), num_classes, decoder_channels)


@register_model("unet-mobilenetv2")
def unet_mobilenetv2(num_classes: int = 11, decoder_channels: Sequence[int] = LITE_DECODER) -> UNet:
    return UNet(MBConvEncoder("mobilenetv2"), num_classes, decoder_channels)


# Students at about half the default's compute (issue 33): the same ImageNet MobileNetV2 encoder
# (0.37 GMACs at 256 px) with a cheaper decoder. -dw keeps the default's widths and stride-2 logits with
# depthwise-separable convolutions (0.43 GMACs); -s4 keeps plain convolutions, narrower, and stops at
# stride 4 (0.46 GMACs).
@register_model("unet-mobilenetv2-dw")
def unet_mobilenetv2_dw(num_classes: int = 11, decoder_channels: Sequence[int] = LITE_DECODER) -> UNet:
    return UNet(MBConvEncoder("mobilenetv2"), num_classes, decoder_channels, separable=True)


@register_model("unet-mobilenetv2-s4")
def unet_mobilenetv2_s4(num_classes: int = 11, decoder_channels: Sequence[int] = (32, 24, 16)) -> UNet:
    return UNet(MBConvEncoder("mobilenetv2"), num_classes, decoder_channels)
