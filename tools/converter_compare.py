"""onnx2tf vs litert-torch on one model: ops, exactness, size, conversion wall time, host ms at 1 thread.

    python tools/converter_compare.py default OUT.json [--converters onnx2tf,litert-torch] [--variants fp32,int8]
    python tools/converter_compare.py segformer-b0 OUT.json   # transformers' B0 layout, 19 labels, 256 px

Both converters get the same graph (normalisation baked: RGB 0..255 in), the same 32 calibration
faces (calibration/), and are judged on the same 8 real celebamask-mini val faces against torch
(export.litert_torch.candidate_figures). The SegFormer is built from its config (nothing
downloads), so its weights are random: its ops, sizes and latency are those of B0, its agreement
is of a random-weight net (stricter than a trained one: logits close together).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))


class Logits(torch.nn.Module):
    """A transformers segmenter as a plain net: pixel_values in, logits out."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=x, return_dict=False)[0]


def build(name: str) -> tuple[torch.nn.Module, dict, list[str], str]:
    """(graph as exported: NCHW RGB 0..255 in, its contract, labels, model name)."""
    from facesegtool.export.onnx import BakedNormalization

    if name == "default":
        from facesegtool.model_source import load_source

        source = load_source(None)
        net = BakedNormalization(source.net, source.contract).eval()
        return net, dict(source.contract), list(source.classes), source.name
    if name == "segformer-b0":
        from transformers import SegformerConfig, SegformerForSemanticSegmentation

        from hf_models import ID2LABEL

        torch.manual_seed(0)
        net = Logits(SegformerForSemanticSegmentation(SegformerConfig(id2label=ID2LABEL)).eval())  # defaults: B0
        contract = {"size": 256, "channel_order": "RGB", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                    "scale": 255.0}
        return BakedNormalization(net, contract).eval(), contract, list(ID2LABEL.values()), "segformer-b0"
    raise SystemExit(f"unknown model {name}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--converters", default="litert-torch,onnx2tf")
    parser.add_argument("--variants", default="fp32,fp16,int8")
    args = parser.parse_args()

    from conftest import val_faces

    from facesegtool.export import litert_torch
    from facesegtool.export import tflite as onnx2tf
    from facesegtool.export.calibration import calibration_array, load_calibration_images
    from facesegtool.export.onnx import export_onnx

    net, contract, labels, name = build(args.model)
    size = int(contract["size"])
    variants = args.variants.split(",")
    calib = calibration_array(None, contract, 32, baked_normalization=True)
    faces, _ = val_faces(8, size)
    inputs = faces.astype(np.float32)
    with torch.no_grad():
        reference = net(torch.from_numpy(inputs).permute(0, 3, 1, 2)).numpy()
    metadata = {"format": "facesegtool-tflite-metadata", "model": name}
    result = {"model": args.model, "size": size, "faces": len(faces), "calibration_faces": len(calib),
              "torch_classes_on_faces": int(len(np.unique(reference.argmax(1)))), "converters": {}}
    out = Path(args.out)
    for converter in args.converters.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"cmp-{converter}-"))
        t = time.time()
        if converter == "litert-torch":
            conv = litert_torch.convert(net, work, variants, size, calib, labels, metadata, stem=name)
        else:
            onnx = export_onnx(net, work / f"{name}.onnx", size)
            conv = onnx2tf.convert(onnx, work, variants, calib, load_calibration_images(None, size, 20),
                                   baked_normalization=True, io_dtype="uint8", labels=labels, metadata=metadata)
        wall = time.time() - t
        figs = {v: litert_torch.candidate_figures(c.path, inputs, reference) for v, c in conv.variants.items()}
        result["converters"][converter] = {"wall_seconds": round(wall, 1), "variants": figs}
        print(converter, json.dumps(result["converters"][converter]), flush=True)
        out.write_text(json.dumps(result, indent=1))  # after each converter: a slow second one loses nothing
    from facesegtool.metrics import AGREEMENT_FLOORS as floors
    if len(result["converters"]) > 1:
        try:
            result["auto"] = litert_torch.choose({n: c["variants"] for n, c in result["converters"].items()}, floors)
        except Exception as exc:
            result["auto"] = ["none", str(exc)]
    out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result.get("auto")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
