"""facesegtool.contract, the one reader of the sidecar: real exports read into a typed contract, every tampered
field one ContractError naming the file and the field, the normaliser the model was trained, calibrated and
verified with (numpy and torch forms), dequantization, and "was this file exported from that model?"."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CELEBAMASK_MINI, REPO, SMALL_SIZE, require_shared, val_faces

from facesegtool.contract import (Contract, ContractError, Normalization, Quantization, contract_from_dict,
                                  exported_from, read_contract)
from facesegtool.hashing import sha256_file
from facesegtool.labels import CLASSES
from facesegtool.tflite_runner import TFLiteModel

GOLDEN = REPO / "android_demo" / "core" / "src" / "test" / "resources" / "golden"


def copy_pair(variant, folder: Path) -> tuple[Path, Path]:
    """One exported .tflite and its sidecar, copied into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    tflite = folder / variant.tflite.name
    shutil.copy(variant.tflite, tflite)
    shutil.copy(variant.sidecar, tflite.with_suffix(".json"))
    return tflite, tflite.with_suffix(".json")


def test_real_exports_read_into_what_the_model_itself_says(small_export, small_checkpoint):
    from ai_edge_litert.interpreter import Interpreter

    for name, variant in small_export.variants.items():
        contract = read_contract(variant.tflite)
        assert contract == read_contract(variant.sidecar)  # the .tflite or its .json
        assert isinstance(contract, Contract) and contract.variant == name and contract.tflite == variant.tflite
        assert contract.classes == CLASSES and contract.size == (SMALL_SIZE, SMALL_SIZE)
        assert contract.source.sha256 == sha256_file(small_checkpoint)
        assert contract.sha256 == sha256_file(variant.tflite)
        interpreter = Interpreter(model_content=variant.tflite.read_bytes())
        for tensor, detail in ((contract.input, interpreter.get_input_details()[0]),
                               (contract.output, interpreter.get_output_details()[0])):
            assert tensor.shape == tuple(int(v) for v in detail["shape"])
            assert tensor.dtype == np.dtype(detail["dtype"]).name
            scale, zero_point = detail["quantization"]
            assert tensor.quantization == (Quantization(scale, zero_point) if scale else None)
    int8 = read_contract(small_export.variants["int8"].tflite)
    # The standard I/O: the normalisation baked in, so the uint8 input is the pixels themselves.
    assert int8.is_integer and int8.normalization.baked and int8.input.quantization == Quantization(1.0, 0)
    assert not read_contract(small_export.variants["fp32"].tflite).is_integer


TAMPERS = {  # the field the error must name -> an edit of a real sidecar
    "model": lambda s: s.pop("model"),
    "variant": lambda s: s.update(variant=["int8"]),
    "tflite": lambda s: s.update(tflite=7),
    "classes": lambda s: s.update(classes=["hair", "hair"] + s["classes"][2:]),
    "input": lambda s: s.update(input=[1, 96, 96, 3]),
    "input.shape": lambda s: s["input"].update(shape=[1, 96, 96]),
    "input.dtype": lambda s: s["input"].update(dtype="float64"),
    "input.layout": lambda s: s["input"].update(layout="CHW"),
    "input.index": lambda s: s["input"].update(index=1),
    "input.mean": lambda s: s["input"].update(mean=[0.5, "x", 0.5]),
    "input.std": lambda s: s["input"].update(std=[0.5, 0.0, 0.5]),
    "input.scale": lambda s: s["input"].update(scale=-1),
    "input.channel_order": lambda s: s["input"].update(channel_order="GBR"),
    "input.normalization_baked": lambda s: s["input"].update(normalization_baked="yes"),
    "input.quantization": lambda s: s["input"].update(quantization={"scale": 0, "zero_point": 0}),
    "output.quantization": lambda s: s["output"].update(quantization={"scale": 0.1, "zero_point": 1.5}),
    "output.kind": lambda s: s["output"].update(kind="softmax"),
    "output.dtype": lambda s: s["output"].update(dtype=3),
    "output.resized_to_input": lambda s: s["output"].update(resized_to_input=1),
    "mapping": lambda s: s.update(mapping=dict(s["mapping"], hair="crown")),
    "spec.labels": lambda s: s["spec"].update(labels=s["spec"]["labels"][::-1]),
    "palette": lambda s: s.update(palette=[[0, 0, 256]] * len(s["classes"])),
    "source": lambda s: s.update(source="models/default/model.pt"),
    "source.sha256": lambda s: s["source"].update(sha256=12345),
    "sha256": lambda s: s.update(sha256=["abc"]),
    "graph": lambda s: s.update(graph=[]),
    "export": lambda s: s.update(export="int8"),
}


@pytest.mark.parametrize("field", list(TAMPERS))
def test_a_tampered_field_is_one_error_naming_the_file_and_the_field(small_export, tmp_path, field):
    tflite, sidecar = copy_pair(small_export.variants["int8"], tmp_path)
    data = json.loads(sidecar.read_text())
    TAMPERS[field](data)
    sidecar.write_text(json.dumps(data))
    for reader in (read_contract, TFLiteModel):
        with pytest.raises(ContractError) as err:
            reader(tflite)
        message = str(err.value)
        assert str(sidecar) in message and field in message.replace(str(sidecar), "") and "\n" not in message, message


@pytest.mark.parametrize("content", [b"\xff\xfe binary", b"{not json", b"[1, 2]", b"[" * 100000, b"{}"])
def test_an_unreadable_sidecar_is_one_error_naming_the_file(small_export, tmp_path, content):
    tflite, sidecar = copy_pair(small_export.variants["fp32"], tmp_path)
    sidecar.write_bytes(content)
    with pytest.raises(ContractError, match=re.escape(str(sidecar))):
        read_contract(tflite)
    sidecar.unlink()
    with pytest.raises(ContractError, match="sidecar not found"):
        read_contract(tflite)


def test_a_sidecar_that_does_not_describe_its_model_is_refused(small_export, tmp_path):
    """The contract's quantization is the one applied to the input, so it must be the model's own."""
    tflite, sidecar = copy_pair(small_export.variants["int8"], tmp_path)
    data = json.loads(sidecar.read_text())
    data["input"]["quantization"]["zero_point"] = 3
    sidecar.write_text(json.dumps(data))
    read_contract(tflite)  # well-formed ...
    with pytest.raises(ContractError, match="does not describe it.*input quantization"):
        TFLiteModel(tflite)  # ... but not this model's


def test_normalize_is_what_the_model_was_trained_calibrated_and_verified_with(small_export, small_checkpoint):
    require_shared(CELEBAMASK_MINI)
    from facesegtool.checkpoint import read_checkpoint
    from facesegtool.export.calibration import load_calibration_images
    from facesegtool.segmenter import torch_scores

    images, _ = val_faces(4)
    ckpt_input = read_checkpoint(small_checkpoint)["input"]
    # conftest trained small_checkpoint on exactly this (x / scale - mean) / std, NCHW.
    mean, std = torch.tensor(ckpt_input["mean"]).view(1, 3, 1, 1), torch.tensor(ckpt_input["std"]).view(1, 3, 1, 1)
    trained = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / ckpt_input["scale"] - mean) / std

    fp32 = read_contract(small_export.variants["fp32"].tflite)
    assert torch.equal(fp32.normalize(torch.from_numpy(images)), trained)  # torch form: always normalised
    assert np.array_equal(fp32.normalization.array(images), trained.permute(0, 2, 3, 1).numpy())  # numpy form
    # The export bakes the normalisation in: the float input is the pixels, the uint8 input the bytes.
    assert np.array_equal(fp32.normalize(images[0]), images[:1].astype(np.float32))
    int8 = read_contract(small_export.variants["int8"].tflite)
    assert int8.normalize(images[0]).dtype == np.uint8 and np.array_equal(int8.normalize(images[0]), images[:1])
    # Not baked, the .tflite takes the trained normalisation itself.
    unbaked = contract_from_dict(dict(fp32.raw, input=dict(fp32.raw["input"], normalization_baked=False)), fp32.path)
    assert np.array_equal(unbaked.normalize(images[0]), trained[:1].permute(0, 2, 3, 1).numpy())
    # The calibration faces int8 was calibrated on, normalised, are the training input too.
    calib = load_calibration_images(None, SMALL_SIZE, num=2)
    calib_trained = (torch.from_numpy(calib).permute(0, 3, 1, 2).float() / ckpt_input["scale"] - mean) / std
    assert np.array_equal(Normalization.of(ckpt_input).array(calib), calib_trained.permute(0, 2, 3, 1).numpy())

    # Verified with: the .tflite fed through the numpy form gives the PyTorch model's scores fed through the torch form.
    from facesegtool.model_source import load_source

    net = load_source(small_checkpoint).net
    model = TFLiteModel(small_export.variants["fp32"].tflite, num_threads=1)
    for image in images:
        want, got = torch_scores(net, image, ckpt_input), model.logits(image)
        assert np.abs(got - want).max() < 1e-3 * max(1.0, float(np.abs(want).max()))


def test_bgr_and_quantized_inputs_on_a_real_face():
    """The golden int8 sidecar (the Java core reads the same file): BGR models get their channels flipped and
    int8 inputs are rounded, offset and clipped; the output dequantizes as (q - zero point) * scale."""
    require_shared(CELEBAMASK_MINI)
    face = val_faces(1, 128)[0][0]
    golden = json.loads((GOLDEN / "sidecar_int8.json").read_text())
    contract = contract_from_dict(golden, GOLDEN / "sidecar_int8.json")
    q = contract.input.quantization
    x = (face.astype(np.float32) / 255 - 0.5) / 0.5
    expected = np.clip(np.round(x / q.scale + q.zero_point), -128, 127).astype(np.int8)[None]
    assert np.array_equal(contract.normalize(face), expected)
    bgr = contract_from_dict(dict(golden, input=dict(golden["input"], channel_order="BGR")), "bgr.json")
    assert np.array_equal(bgr.normalize(face), expected[..., ::-1])
    assert torch.equal(bgr.normalize(torch.from_numpy(face)), contract.normalize(torch.from_numpy(face[..., ::-1].copy())))
    raw = np.arange(-128, 128, dtype=np.int8).reshape(1, 16, 16, 1)
    out = contract.output.quantization
    np.testing.assert_array_equal(contract.dequantize(raw), (raw.astype(np.float32) - out.zero_point) * out.scale)
    assert contract.dequantize(raw.astype(np.float32)).dtype == np.float32


def test_tflite_runner_dequantizes_through_the_contract(small_export):
    require_shared(CELEBAMASK_MINI)
    model = TFLiteModel(small_export.variants["int8"].tflite, num_threads=1)
    face = val_faces(1)[0][0]
    model.run(face)
    raw = model.interpreter.get_tensor(model.output_details["index"])
    q = model.contract.output.quantization
    assert raw.dtype == np.uint8 and q is not None
    np.testing.assert_array_equal(model.logits(face), (raw[0].astype(np.float32) - q.zero_point) * q.scale)


def test_exported_from(small_export, small_checkpoint, tmp_path):
    from facesegtool.model_source import load_source

    ours, other = load_source(small_checkpoint), load_source(None)  # the shipped default: another file and model
    contract = read_contract(small_export.variants["fp32"].tflite)
    assert exported_from(contract, ours) and exported_from(contract, ours.sha256)
    assert not exported_from(contract, other) and not exported_from(contract, other.sha256)
    renamed = contract_from_dict(dict(contract.raw, model="ddrnet-slim"), contract.path)
    assert not exported_from(renamed, ours)  # one of our checkpoints: its name is its architecture
    unrecorded = contract_from_dict(dict(contract.raw, source={}), contract.path)
    assert exported_from(unrecorded, ours.sha256)  # nothing recorded: it cannot tell


def test_the_runtime_does_not_depend_on_the_writer():
    code = ("import sys, facesegtool.tflite_runner, facesegtool.segmenter, facesegtool.contract; "
            "print(sorted(m for m in sys.modules if m.split('.')[1:2] in (['export'], ['verify'], ['bench'], "
            "['predict'], ['cli'])))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]", out.stdout
