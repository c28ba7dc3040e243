"""Is the input contract in use the one the model was trained with? Ask labelled faces, before the long work.

A model fed the wrong normalisation still converts and verifies exactly (the reference is fed the same
wrong input), so only the truth can tell. On a handful of labelled faces, the PyTorch (or ONNX Runtime)
reference is scored under the common contracts (ImageNet mean/std, mean/std 0.5, 0..1, each RGB or
BGR); when another scores far better than the one in use, that is said, with the spec line that fixes it.

    from facesegtool.contract_check import check_contract_on_faces
    check = check_contract_on_faces(source, faces)    # None without labels or a mapping
    check["warning"]                                   # None, or one sentence
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

import numpy as np

from .metrics import ConfusionMeter
from .model_spec import IMAGENET_MEAN, IMAGENET_STD, mask_in_our_classes

if TYPE_CHECKING:
    from .model_source import LoadedModel
    from .data.faces import Face

# What the common image processors do: torchvision / SegFormer (ImageNet), Hugging Face MobileNetV2
# DeepLabV3 (0.5 / 0.5), MobileViT (0..1, BGR).
NORMALISATIONS = {
    "ImageNet mean/std": (IMAGENET_MEAN, IMAGENET_STD),
    "mean/std 0.5": ([0.5] * 3, [0.5] * 3),
    "0..1": ([0.0] * 3, [1.0] * 3),
}
FACES = 6  # enough to tell a 0.2 from a 0.1 IoU; a few seconds of PyTorch even for a SegFormer-B0
MARGIN = 0.05  # fg mIoU: "far better" (a wrong normalisation cost 8 points on the model that showed it)


def candidate_contracts(current: dict) -> list[tuple[str, dict]]:
    """(name, input contract) for every common contract, at the current size and scale; the one in use first."""
    found = [("in use", dict(current))]
    for name, (mean, std) in NORMALISATIONS.items():
        for order in ("RGB", "BGR"):
            contract = dict(current, mean=list(mean), std=list(std), channel_order=order, scale=255.0)
            if not _same(contract, current):
                found.append((f"{name}, {order}", contract))
    return found


def _same(a: dict, b: dict) -> bool:
    return (np.allclose(a["mean"], b["mean"], atol=1e-4) and np.allclose(a["std"], b["std"], atol=1e-4)
            and str(a.get("channel_order", "RGB")).upper() == str(b.get("channel_order", "RGB")).upper()
            and float(a.get("scale", 255.0)) == float(b.get("scale", 255.0)))


def check_contract_on_faces(source: "LoadedModel", faces: Iterable["Face"], limit: int = FACES) -> dict | None:
    """Score the reference under each candidate contract on up to `limit` labelled faces (foreground mIoU
    in our classes). None when the faces have no masks or the model's labels map onto none of ours."""
    from .imaging import upsample_scores
    from .segmenter import torch_scores

    if not source.spec.has_mapping:
        return None
    picked = []
    for face in faces:
        if face.mask is None:
            return None
        picked.append(face)
        if len(picked) >= limit:
            break
    if not picked:
        return None
    lut = None if source.spec.is_ours else source.spec.lut()
    rows = []
    for name, contract in candidate_contracts(source.contract):
        meter = ConfusionMeter()
        for face in picked:
            scores = upsample_scores(torch_scores(source.net, face.image, contract), face.image.shape[:2])
            meter.update(face.mask, mask_in_our_classes(scores.argmax(-1).astype(np.uint8), lut))
        rows.append({"name": name, "input": contract, "fg_miou": round(float(meter.scores().macro_iou_no_bg), 4)})
    current, best = rows[0], max(rows[1:], key=lambda r: r["fg_miou"], default=rows[0])
    warning = None
    if best is not current and best["fg_miou"] >= current["fg_miou"] + MARGIN:
        inp = best["input"]
        fix = (f"input: {{mean: {_short(inp['mean'])}, std: {_short(inp['std'])}, "
               f"channel_order: {inp['channel_order']}}}")
        warning = (f"input contract: on {len(picked)} labelled faces the model scores fg mIoU {best['fg_miou']:.2f} "
                   f"with {best['name']} against {current['fg_miou']:.2f} with the contract in use (mean "
                   f"{_short(current['input']['mean'])}, std {_short(current['input']['std'])}, "
                   f"{current['input']['channel_order']}); if it was trained that way, put `{fix}` in --spec")
    return {"faces": len(picked), "contracts": rows, "best": best["name"], "warning": warning}


def _short(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"
