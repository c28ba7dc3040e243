"""Face parsers that are not in the registry, written the way other people's code writes them.

Used by tests/test_own_model.py to check that any model goes through every format and command:
- BiSeNetStyle: spatial + context paths, attention refinement, feature fusion; 19 CelebAMask-HQ
  classes; returns (main, aux1, aux2), all at 1/8 of the input;
- SegFormerStyle: overlapping patch embeddings, efficient self-attention (spatial reduction,
  LayerNorm), Mix-FFN, all-MLP decoder; LaPa's 11 classes at 1/4 of the input;
- AlignCornersNet: encoder-decoder upsampling with F.interpolate(..., align_corners=True), full size;
- DictNet: returns {"aux": ..., "seg": ...} with "seg" channels-last (NHWC).

Each module file defines build_<name>() as a user's code would (`--model own_models.py:build_bisenet`).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn_relu(cin: int, cout: int, k: int = 3, s: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class AttentionRefinement(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = conv_bn_relu(cin, cout)
        self.attention = nn.Sequential(nn.Conv2d(cout, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x * self.attention(F.adaptive_avg_pool2d(x, 1))


class FeatureFusion(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = conv_bn_relu(cin, cout, 1)
        self.squeeze = nn.Conv2d(cout, cout // 4, 1)
        self.excite = nn.Conv2d(cout // 4, cout, 1)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        x = self.conv(torch.cat([spatial, context], 1))
        a = torch.sigmoid(self.excite(F.relu(self.squeeze(F.adaptive_avg_pool2d(x, 1)))))
        return x + x * a


class BiSeNetStyle(nn.Module):
    def __init__(self, num_classes: int = 19, width: int = 32):
        super().__init__()
        self.spatial = nn.Sequential(conv_bn_relu(3, width, 3, 2), conv_bn_relu(width, width, 3, 2),
                                     conv_bn_relu(width, width * 2, 3, 2))  # 1/8
        self.stem = nn.Sequential(conv_bn_relu(3, width, 3, 2), conv_bn_relu(width, width, 3, 2),
                                  conv_bn_relu(width, width * 2, 3, 2))  # 1/8
        self.down16 = conv_bn_relu(width * 2, width * 2, 3, 2)
        self.down32 = conv_bn_relu(width * 2, width * 4, 3, 2)
        self.arm16 = AttentionRefinement(width * 2, width * 2)
        self.arm32 = AttentionRefinement(width * 4, width * 2)
        self.global_conv = conv_bn_relu(width * 4, width * 2, 1)
        self.ffm = FeatureFusion(width * 4, width * 4)
        self.head = nn.Sequential(conv_bn_relu(width * 4, width * 2), nn.Conv2d(width * 2, num_classes, 1))
        self.aux16 = nn.Conv2d(width * 2, num_classes, 1)
        self.aux32 = nn.Conv2d(width * 2, num_classes, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        spatial = self.spatial(x)
        c8 = self.stem(x)
        c16 = self.down16(c8)
        c32 = self.down32(c16)
        g = self.global_conv(F.adaptive_avg_pool2d(c32, 1))
        up32 = F.interpolate(self.arm32(c32) + g, size=c16.shape[-2:], mode="nearest")
        up16 = F.interpolate(self.arm16(c16) + up32, size=c8.shape[-2:], mode="nearest")
        fused = self.ffm(spatial, up16)
        return self.head(fused), self.aux16(up16), self.aux32(F.interpolate(up32, size=c8.shape[-2:], mode="nearest"))


class OverlapPatchEmbed(nn.Module):
    def __init__(self, cin: int, dim: int, patch: int, stride: int):
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, patch, stride, patch // 2)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        x = self.proj(x)
        _, _, h, w = x.shape
        return self.norm(x.flatten(2).transpose(1, 2)), h, w


class EfficientSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, reduction: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)
        self.reduction = reduction
        if reduction > 1:
            self.sr = nn.Conv2d(dim, dim, reduction, reduction)
            self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, n, c = x.shape
        q = self.q(x).reshape(b, n, self.heads, c // self.heads).permute(0, 2, 1, 3)
        if self.reduction > 1:
            x = self.norm(self.sr(x.transpose(1, 2).reshape(b, c, h, w)).reshape(b, c, -1).transpose(1, 2))
        kv = self.kv(x).reshape(b, -1, 2, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q @ kv[0].transpose(-2, -1)) * self.scale
        out = (attn.softmax(-1) @ kv[1]).transpose(1, 2).reshape(b, n, c)
        return self.proj(out)


class MixFFN(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dw = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = self.fc1(x)
        b, n, c = x.shape
        x = self.dw(x.transpose(1, 2).reshape(b, c, h, w)).flatten(2).transpose(1, 2)
        return self.fc2(F.gelu(x))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, reduction: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = EfficientSelfAttention(dim, heads, reduction)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = MixFFN(dim, dim * 2)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), h, w)
        return x + self.ffn(self.norm2(x), h, w)


class SegFormerStyle(nn.Module):
    def __init__(self, num_classes: int = 11, dims: tuple[int, int] = (32, 64), decoder: int = 64):
        super().__init__()
        self.embed1 = OverlapPatchEmbed(3, dims[0], 7, 4)  # 1/4
        self.block1 = TransformerBlock(dims[0], 1, 4)
        self.norm1 = nn.LayerNorm(dims[0])
        self.embed2 = OverlapPatchEmbed(dims[0], dims[1], 3, 2)  # 1/8
        self.block2 = TransformerBlock(dims[1], 2, 2)
        self.norm2 = nn.LayerNorm(dims[1])
        self.mlp1 = nn.Linear(dims[0], decoder)
        self.mlp2 = nn.Linear(dims[1], decoder)
        self.fuse = conv_bn_relu(decoder * 2, decoder, 1)
        self.classify = nn.Conv2d(decoder, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        t1, h1, w1 = self.embed1(x)
        t1 = self.norm1(self.block1(t1, h1, w1))
        f1 = t1.transpose(1, 2).reshape(b, -1, h1, w1)
        t2, h2, w2 = self.embed2(f1)
        t2 = self.norm2(self.block2(t2, h2, w2))
        d1 = self.mlp1(t1).transpose(1, 2).reshape(b, -1, h1, w1)
        d2 = self.mlp2(t2).transpose(1, 2).reshape(b, -1, h2, w2)
        d2 = F.interpolate(d2, size=(h1, w1), mode="bilinear", align_corners=False)
        return self.classify(self.fuse(torch.cat([d1, d2], 1)))  # 1/4 of the input


class AlignCornersNet(nn.Module):
    def __init__(self, num_classes: int = 11, width: int = 24):
        super().__init__()
        self.enc1 = conv_bn_relu(3, width, 3, 2)
        self.enc2 = conv_bn_relu(width, width * 2, 3, 2)
        self.enc3 = conv_bn_relu(width * 2, width * 2, 3, 2)
        self.dec2 = conv_bn_relu(width * 4, width)
        self.dec1 = conv_bn_relu(width * 2, width)
        self.classify = nn.Conv2d(width, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        d2 = self.dec2(torch.cat([F.interpolate(e3, size=e2.shape[-2:], mode="bilinear", align_corners=True), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="bilinear", align_corners=True), e1], 1))
        return F.interpolate(self.classify(d1), size=x.shape[-2:], mode="bilinear", align_corners=True)


class DictNet(nn.Module):
    def __init__(self, num_classes: int = 11, width: int = 24):
        super().__init__()
        self.body = nn.Sequential(conv_bn_relu(3, width, 3, 2), conv_bn_relu(width, width * 2, 3, 2),
                                  conv_bn_relu(width * 2, width * 2))
        self.seg = nn.Conv2d(width * 2, num_classes, 1)
        self.edge = nn.Conv2d(width * 2, 1, 1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        f = self.body(x)
        seg = F.interpolate(self.seg(f), scale_factor=4.0, mode="bilinear", align_corners=False)
        return {"aux": self.edge(f), "seg": seg.permute(0, 2, 3, 1)}  # channels-last, as some TF-minded code does


def build_bisenet() -> nn.Module:
    return BiSeNetStyle()


def build_segformer() -> nn.Module:
    return SegFormerStyle()


def build_align_corners() -> nn.Module:
    return AlignCornersNet()


def build_dict_net() -> nn.Module:
    return DictNet()


# name -> (builder, spec the user would write, how our 19-id CelebAMask masks become its training labels)
ARCHITECTURES = {
    "bisenet": (build_bisenet, {"preset": "celebamask19", "output": {"select": 0}}, "celebamask19"),
    "segformer": (build_segformer, {"preset": "lapa11"}, "lapa11"),
    "aligncorners": (build_align_corners, {"preset": "facesegtool11"}, "facesegtool11"),
    "dictnet": (build_dict_net, {"preset": "facesegtool11", "output": {"select": "seg", "layout": "NHWC"}},
                "facesegtool11"),
}
