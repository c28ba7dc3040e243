"""Hugging Face `transformers` face parsers as they come: SegFormer, MobileViT, MobileNetV2-DeepLabV3.

Built from tiny configs (tests/hf_models.py; nothing downloads), trained for a few dozen steps on real
celebamask-mini faces in the 19 CelebAMask-HQ labels under their image processors' input contracts,
then handed over the ways the README's "From Hugging Face" recipe shows: the raw model's .pt2
(a ModelOutput), a .pt2 exported with `pixel_values=` as a keyword, TorchScript traced with
strict=False (a dict), and code + weights. Needs the `transformers` extra (pip install -e '.[transformers]').
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

transformers = pytest.importorskip("transformers")

from conftest import CELEBAMASK_MINI, FACES_UNLABELLED, require_shared  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import hf_models  # noqa: E402
from own_model_training import faces, training_labels  # noqa: E402

TRAIN_IMAGES = 32
TRAIN_STEPS = 30
HF = Path(hf_models.__file__)


def _train(name: str) -> torch.nn.Module:
    """A few dozen Adam steps on real faces, the input normalised as the model's image processor does."""
    size, contract = hf_models.ARCHITECTURES[name]
    torch.manual_seed(0)
    net = hf_models.BUILDERS[name]()
    images, ids = faces((CELEBAMASK_MINI / "train.txt").read_text().split()[:TRAIN_IMAGES], size)
    labels = torch.from_numpy(training_labels("celebamask19")[ids])
    if contract["channel_order"] == "BGR":
        images = images[..., ::-1]
    x_all = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
    x_all = (x_all - torch.tensor(contract["mean"]).view(1, 3, 1, 1)) / torch.tensor(contract["std"]).view(1, 3, 1, 1)
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    gen = torch.Generator().manual_seed(0)
    net.train()
    for _ in range(TRAIN_STEPS):
        idx = torch.randint(0, len(x_all), (8,), generator=gen)
        out = F.interpolate(net(pixel_values=x_all[idx]).logits, size=(size, size), mode="bilinear",
                            align_corners=False)
        loss = F.cross_entropy(out, labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


class _Trained(dict):
    """name -> the trained net and the files of the README's recipe, made on first use (tests pick architectures)."""

    def __init__(self, root: Path):
        super().__init__()
        self.root = root

    def __missing__(self, name: str) -> dict:
        import yaml

        from facesegtool.hf_spec import spec_from_transformers

        size, _ = hf_models.ARCHITECTURES[name]
        net, folder = _train(name), self.root / name
        folder.mkdir()
        x = torch.rand(1, 3, size, size)
        torch.export.save(torch.export.export(net, (x,)), folder / f"{name}.pt2")  # as the README says
        torch.export.save(torch.export.export(net, (), kwargs={"pixel_values": x}), folder / f"{name}_kw.pt2")
        torch.jit.save(torch.jit.trace(net, x, strict=False), folder / f"{name}.ts")
        torch.save(net.state_dict(), folder / "weights.pt")
        # the README's recipe: the contract from the model's config and its image processor
        spec = spec_from_transformers(net, hf_models.processor(name), size=size)
        (folder / "spec.yaml").write_text(yaml.safe_dump(spec))
        self[name] = {"net": net, "size": size, "pt2": folder / f"{name}.pt2", "pt2_kw": folder / f"{name}_kw.pt2",
                      "ts": folder / f"{name}.ts", "weights": folder / "weights.pt", "spec": folder / "spec.yaml",
                      "module": f"{HF}:build_{name}"}
        return self[name]


@pytest.fixture(scope="session")
def hf_saved(tmp_path_factory: pytest.TempPathFactory) -> _Trained:
    require_shared(CELEBAMASK_MINI)
    return _Trained(tmp_path_factory.mktemp("hf-models"))


def test_spec_from_config_and_processor_is_the_training_contract(hf_saved):
    """id2label and the image processor give the labels, their mapping and the input contract each was trained on."""
    from facesegtool.model_source import load_source
    from facesegtool.model_spec import PRESETS

    for name, (size, contract) in hf_models.ARCHITECTURES.items():
        source = load_source(hf_saved[name]["pt2"], spec=hf_saved[name]["spec"])
        assert {k: source.contract[k] for k in contract} == contract, name
        assert source.contract["scale"] == 255.0 and source.contract["size"] == size
        assert source.spec.mapping == PRESETS["celebamask19"][1] and not source.notes, (name, source.notes)


@pytest.mark.parametrize("name", list(hf_models.ARCHITECTURES))
def test_every_form_loads_and_gives_the_logits(hf_saved, name):
    """ModelOutput (.pt2), keyword-only input (.pt2), dict (TorchScript), the module itself (code): the logits."""
    from facesegtool.model_source import load_source

    saved = hf_saved[name]
    x = torch.rand(1, 3, saved["size"], saved["size"])
    with torch.no_grad():
        want = saved["net"](pixel_values=x).logits
    for form in ("pt2", "pt2_kw", "ts", "module"):
        source = load_source(saved[form], spec=saved["spec"], weights=saved["weights"] if form == "module" else None)
        got = source.scores(x)
        assert got.shape == want.shape and torch.allclose(got, want, atol=1e-4), (name, form)
        assert source.classes[17] == "hair" and source.spec.size == saved["size"]


def test_without_transformers_a_pt2_is_refused_with_the_remedy(hf_saved, tmp_path):
    """Where transformers cannot be imported, one error line naming the package and its pin, exit 2."""
    code = ("import sys; sys.modules['transformers'] = None\n"
            "from facesegtool.cli import main\n"
            f"main(['export', '--model', {str(hf_saved['segformer']['pt2'])!r}, '--quant', 'fp32', "
            f"'--out', {str(tmp_path / 'out')!r}])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-2000:]
    assert "SemanticSegmenterOutput" in errors[0] and "pip install 'transformers==" in errors[0]
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


# SegFormer (the hubs' most used face parser) in the fast form; the other two convert only in the full suite.
@pytest.mark.parametrize("name", [n if n == "segformer" else pytest.param(n, marks=pytest.mark.slow)
                                  for n in hf_models.ARCHITECTURES])
def test_every_architecture_exports_and_verifies(hf_saved, name, tmp_path, capsys):
    """The README recipe end to end: .pt2 + spec -> fp32 and int8 TFLite -> verify on real val faces.

    fp32 must give PyTorch's masks (>= 99.9 %); the progress says where it is as it goes, assumptions
    first; tensors onnx2tf lays out by shape alone are checked on the fp32 file, not warned of blindly."""
    from facesegtool.export import export
    from facesegtool.verify import verify

    saved = hf_saved[name]
    out = tmp_path / "exports"
    size, contract = hf_models.ARCHITECTURES[name]
    spec = {"preset": "celebamask19", "input": dict(contract, size=size)}  # scale left out: assumed, and said
    report = export(saved["pt2"], spec=spec, quant="fp32,int8", out_dir=out, num_calib=16, progress=True)
    said = capsys.readouterr().err
    assert said.index("assumed: input scale 255.0") < said.index("-> ONNX") < said.index("fp32 written:")
    assert report.contract_check and report.contract_check["warning"] is None, report.contract_check
    assert f"fp32 written: {sum(report.variants['fp32'].graph['ops'].values())} TFLite ops" in said
    assert re.search(r"op \d+ / \d+", said)  # onnx2tf's progress through the graph, while it converts
    if report.ambiguous_layouts:  # possible, so checked: exact here, so no warning
        assert report.layout_check and report.layout_check["agreement_ok"], report.layout_check
        assert not any("layout" in w for w in report.warnings) and "laid them out right" in report.table()
    result = verify(saved["pt2"], export_dir=out, data_dir=CELEBAMASK_MINI, limit=6, diagnose=False, progress=False)
    by = {m.variant: m for m in result.models}
    assert by["fp32"].agreement.pixel_accuracy >= 0.999, by["fp32"].agreement.pixel_accuracy
    int8 = by["int8"]
    assert int8.drop is not None
    assert int8.passed == (int8.agreement.pixel_accuracy >= 0.97 and int8.drop <= 1.0), int8.failures
    fp32_ops, int8_ops = (sum(report.variants[v].graph["ops"].values()) for v in ("fp32", "int8"))
    with capsys.disabled():  # the figures, for the README's table
        print(f"\n{name} {saved['size']}px: export {report.total_seconds:.0f}s, fp32 ops {fp32_ops}, int8 ops {int8_ops}, "
              f"fp32 {report.variants['fp32'].size_mb:.2f} MB, int8 {report.variants['int8'].size_mb:.2f} MB, "
              f"fp32 agreement {100 * by['fp32'].agreement.pixel_accuracy:.3f} %, int8 agreement "
              f"{100 * int8.agreement.pixel_accuracy:.2f} %, int8 drop {int8.drop:.2f} pt, torch fg mIoU "
              f"{result.torch.macro_iou_no_bg:.3f}, possible layout faults {len(report.ambiguous_layouts)}, "
              f"gate {'pass' if int8.passed else 'FAIL: ' + '; '.join(int8.failures)}")
    if report.ambiguous_layouts:
        assert any("is cleared" in n for n in result.notes), result.notes


def test_wrong_contract_is_caught_on_faces_before_export(hf_saved):
    """A SegFormer trained on ImageNet-normalised RGB, declared as MobileViT's BGR 0..1: it still converts and
    verifies exactly (the reference gets the same wrong input), but a handful of labelled faces show a
    common contract that scores far better, named with the spec line that fixes it."""
    from facesegtool.contract_check import check_contract_on_faces
    from facesegtool.model_source import load_source
    from facesegtool.data.faces import open_faces

    saved = hf_saved["segformer"]
    faces = open_faces(CELEBAMASK_MINI, "val", size=saved["size"], limit=6)
    wrong = load_source(saved["pt2"], spec={"input": {"size": saved["size"], "mean": [0, 0, 0], "std": [1, 1, 1],
                                                      "channel_order": "BGR"}})
    check = check_contract_on_faces(wrong, faces)
    # ImageNet's mean/std and 0.5/0.5 are near each other; what a short training tells apart is RGB from BGR
    assert check["faces"] == 6 and check["best"].endswith(", RGB"), check["contracts"]
    assert check["warning"] and "channel_order: RGB" in check["warning"] and "BGR)" in check["warning"]
    right = load_source(saved["pt2"], spec=saved["spec"])
    assert check_contract_on_faces(right, faces)["warning"] is None
    require_shared(FACES_UNLABELLED)  # no labels: nothing to score, nothing said
    assert check_contract_on_faces(right, open_faces(FACES_UNLABELLED, size=saved["size"], limit=6)) is None
