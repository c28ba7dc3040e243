"""The three Hugging Face `transformers` face-parser architectures, built from tiny configs (nothing downloads).

SegFormer (the hubs' most used face parser), MobileViT + DeepLabV3 and MobileNetV2 + DeepLabV3, each
with the 19 CelebAMask-HQ labels, small enough to train for a few dozen steps and convert in about a
minute. Each build_<name>() is what a user's code would be (`--model hf_models.py:build_segformer`).
Input contracts are those of their image processors: SegFormer RGB + ImageNet mean/std, MobileViT
BGR 0..1, MobileNetV2 mean/std 0.5.
"""

from __future__ import annotations

import torch.nn as nn

from facesegtool.model_spec import CELEBAMASK19

NUM_LABELS = 19
ID2LABEL = dict(enumerate(CELEBAMASK19))  # as a face-parsing checkpoint's config.json names its outputs
# name -> (input size for the tests, the input contract its image processor applies)
ARCHITECTURES = {
    "segformer": (96, {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "channel_order": "RGB"}),
    "mobilevit": (128, {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "channel_order": "BGR"}),
    "mobilenetv2": (128, {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "channel_order": "RGB"}),
}


def build_segformer() -> nn.Module:
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    # B0's layout (4 stages, overlapping patch embeddings, Mix-FFN with depthwise convs), 1/4 the width
    config = SegformerConfig(id2label=ID2LABEL, hidden_sizes=[16, 32, 64, 128], depths=[1, 1, 1, 1],
                             num_attention_heads=[1, 1, 2, 4], decoder_hidden_size=64)
    return SegformerForSemanticSegmentation(config).eval()


def build_mobilevit() -> nn.Module:
    from transformers import MobileViTConfig, MobileViTForSemanticSegmentation

    # xx-small's widths, output stride 16 as in the DeepLabV3 checkpoints
    config = MobileViTConfig(id2label=ID2LABEL, image_size=128, hidden_sizes=[32, 48, 64],
                             neck_hidden_sizes=[16, 16, 24, 48, 64, 80, 320], aspp_out_channels=64,
                             output_stride=16)
    return MobileViTForSemanticSegmentation(config).eval()


def build_mobilenetv2() -> nn.Module:
    from transformers import MobileNetV2Config, MobileNetV2ForSemanticSegmentation

    # output stride 8 as in deeplabv3_mobilenet_v2; depth multiplier 0.35 for a small net
    config = MobileNetV2Config(id2label=ID2LABEL, image_size=128, depth_multiplier=0.35, output_stride=8)
    return MobileNetV2ForSemanticSegmentation(config).eval()


def processor(name: str):
    """The model's image processor with its defaults (what the hub's preprocessor_config.json holds)."""
    import transformers

    cls = {"segformer": "SegformerImageProcessor", "mobilevit": "MobileViTImageProcessor",
           "mobilenetv2": "MobileNetV2ImageProcessor"}[name]
    return getattr(transformers, cls)()


BUILDERS = {"segformer": build_segformer, "mobilevit": build_mobilevit, "mobilenetv2": build_mobilenetv2}
