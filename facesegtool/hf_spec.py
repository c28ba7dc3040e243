"""The contract of a Hugging Face `transformers` segmentation model, read from its config and image processor.

A hub checkpoint says what it takes and gives in two places: `model.config.id2label` (its labels in
output order) and its image processor (rescale, normalise, flip to BGR). This writes both as a
facesegtool spec, so nothing is left to the ImageNet RGB default:

    from transformers import AutoImageProcessor, SegformerForSemanticSegmentation
    model = SegformerForSemanticSegmentation.from_pretrained(path).eval()
    spec = spec_from_transformers(model, AutoImageProcessor.from_pretrained(path), size=512)
    yaml.safe_dump(spec, open("parser.yaml", "w"))     # then: facesegtool export --spec parser.yaml

Labels named like CelebAMask-HQ's parts (skin, l_brow, u_lip, ...; what face parsers on the hubs use)
are mapped onto our classes as our own data maps them; others by name, else left to the spec's rules.
"""

from __future__ import annotations

from typing import Any

from .labels import CELEBAMASK_TO_CLASS, CLASS_INDEX


def spec_from_transformers(model: Any, processor: Any = None, size: int | None = None) -> dict:
    """A spec dict (model_spec format) from a transformers model's config and, if given, its image processor."""
    config = model.config
    labels = [str(config.id2label[i]) for i in range(config.num_labels)]
    mapping = {}
    for name in labels:
        key = name.strip().lower().replace(" ", "_")
        if key in CLASS_INDEX:
            mapping[name] = key
        elif key in CELEBAMASK_TO_CLASS:
            mapping[name] = CELEBAMASK_TO_CLASS[key]
    spec: dict = {"labels": labels, "mapping": mapping, "input": {}}
    if size is not None:
        spec["input"]["size"] = int(size)
    if processor is not None:
        spec["input"].update(processor_contract(processor))
    return spec


def processor_contract(processor: Any) -> dict:
    """mean, std, scale and channel order as the processor applies them (x = (pixel * factor - mean) / std)."""
    rescale = bool(getattr(processor, "do_rescale", False))
    factor = float(getattr(processor, "rescale_factor", 1 / 255)) if rescale else 1.0
    normalise = bool(getattr(processor, "do_normalize", False))  # MobileViT's sets a mean it never applies
    mean = [float(v) for v in processor.image_mean] if normalise else [0.0, 0.0, 0.0]
    std = [float(v) for v in processor.image_std] if normalise else [1.0, 1.0, 1.0]
    order = "BGR" if getattr(processor, "do_flip_channel_order", False) else "RGB"
    return {"mean": mean, "std": std, "scale": round(1.0 / factor, 6), "channel_order": order}
