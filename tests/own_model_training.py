"""The own-model test architectures trained and saved as a user hands them over.

Shared by test_own_model.py, test_huggingface.py (faces, training_labels) and the hand-run benchmark
own_model_matrix.py: the architectures of own_models.py trained briefly on real celebamask-mini faces
in their own label sets, then saved as torch.export, TorchScript, code + weights and ONNX.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from conftest import CELEBAMASK_MINI

sys.path.insert(0, str(Path(__file__).parent))
import own_models  # noqa: E402

SIZE = 128
# SegFormer's first stage has 32 channels at 1/4 of the input: at 128 px a 1x32x32x32 tensor, whose layout
# onnx2tf cannot tell by shape (test_ambiguous_layout_is_named_by_diagnose). Users' sizes (512) are fine.
SIZES = {"segformer": 160}
TRAIN_IMAGES = 64
TRAIN_STEPS = 50
OWN = Path(own_models.__file__)


def training_labels(preset: str) -> np.ndarray:
    """LUT: CelebAMask-HQ part id (as in the shared index masks) -> index in the preset's labels."""
    from facesegtool.labels import CELEBAMASK_PARTS
    from facesegtool.model_spec import PRESETS

    labels, mapping = PRESETS[preset]
    lut = np.zeros(256, np.int64)
    for part_id, part in enumerate(CELEBAMASK_PARTS):
        if part in labels:
            lut[part_id] = labels.index(part)
        else:  # LaPa / ours: the part's class by the preset's mapping (skin -> skin / face, ...)
            target = {"celebamask19": part}.get(preset) or lapa_or_ours(part, preset)
            lut[part_id] = labels.index(target) if target in labels else 0
    return lut


def lapa_or_ours(part: str, preset: str) -> str:
    from facesegtool.labels import CELEBAMASK_TO_CLASS

    if preset == "facesegtool11":
        return CELEBAMASK_TO_CLASS[part]
    lapa = {"skin": "skin", "neck": "skin", "l_brow": "left_eyebrow", "r_brow": "right_eyebrow", "l_eye": "left_eye",
            "r_eye": "right_eye", "nose": "nose", "u_lip": "upper_lip", "l_lip": "lower_lip", "mouth": "inner_mouth",
            "hair": "hair"}
    return lapa.get(part, "background")


def faces(names: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    images, ids = [], []
    for stem in names:
        rgb = Image.open(CELEBAMASK_MINI / "images" / f"{stem}.jpg").convert("RGB").resize((size, size), Image.BILINEAR)
        mask = Image.open(CELEBAMASK_MINI / "masks" / f"{stem}.png").resize((size, size), Image.NEAREST)
        images.append(np.asarray(rgb))
        ids.append(np.asarray(mask))
    return np.stack(images), np.stack(ids)


def train(name: str) -> torch.nn.Module:
    """A few dozen Adam steps on real faces: enough for masks with face, hair, eyes and brows."""
    from facesegtool.model_source import ContractNet

    build, spec, preset = own_models.ARCHITECTURES[name]
    torch.manual_seed(0)
    net = build()
    images, ids = faces((CELEBAMASK_MINI / "train.txt").read_text().split()[:TRAIN_IMAGES], SIZE)
    labels = torch.from_numpy(training_labels(preset)[ids])
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    x_all = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std
    head = ContractNet(net, spec.get("output", {}).get("select"), spec.get("output", {}).get("layout", "NCHW"))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    gen = torch.Generator().manual_seed(0)
    net.train()
    for _ in range(TRAIN_STEPS):
        idx = torch.randint(0, len(x_all), (16,), generator=gen)
        out = head(x_all[idx])
        out = F.interpolate(out, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        loss = F.cross_entropy(out, labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def save_forms(name: str, net: torch.nn.Module, folder: Path) -> dict[str, Path | str]:
    """The files a user hands over (torch.export, TorchScript, weights for code.py:function, ONNX) and the spec."""
    import yaml

    _, spec, _ = own_models.ARCHITECTURES[name]
    size = SIZES.get(name, SIZE)
    x = torch.rand(1, 3, size, size)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.yaml").write_text(yaml.safe_dump(dict(spec, input={"size": size})))
    torch.save(net.state_dict(), folder / "weights.pt")
    torch.export.save(torch.export.export(net, (x,)), folder / f"{name}.pt2")
    torch.jit.save(torch.jit.trace(net, x, strict=False), folder / f"{name}.ts")
    torch.onnx.export(net, (x,), str(folder / f"{name}.onnx"), dynamo=False, opset_version=17,
                      input_names=["image"], output_names=_output_names(name))
    return saved_forms(name, folder)


def saved_forms(name: str, folder: Path) -> dict[str, Path | str]:
    return {"spec": folder / "spec.yaml", "pt2": folder / f"{name}.pt2", "ts": folder / f"{name}.ts",
            "module": f"{OWN}:build_{_builder(name)}", "weights": folder / "weights.pt", "onnx": folder / f"{name}.onnx"}


def _builder(name: str) -> str:
    return {"bisenet": "bisenet", "segformer": "segformer", "aligncorners": "align_corners", "dictnet": "dict_net"}[name]


def _output_names(name: str) -> list[str]:
    return {"bisenet": ["main", "aux16", "aux32"], "dictnet": ["aux", "seg"]}.get(name, ["logits"])


FORMATS = ("pt2", "ts", "module", "onnx")


def model_args(saved: dict, fmt: str) -> dict:
    args = {"checkpoint": saved[fmt] if fmt != "module" else saved["module"], "spec": saved["spec"]}
    if fmt == "module":
        args["weights"] = saved["weights"]
    return args
