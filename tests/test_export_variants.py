"""The variant table (export/variants.py): --quant parsing, option combinations refused before any work,
file names, the sidecar's recorded options, and the order verify and bench list models in."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from facesegtool.cli import main as cli
from facesegtool.errors import FacesegError
from facesegtool.export import ExportOptionError, export, parse_quant
from facesegtool.export.variants import (BY_NAME, FILE_SUFFIXES, TABLE, VARIANTS, check_options, file_rank,
                                         sidecar_options, variant_rank)
from facesegtool.verify.compare import find_models


def test_table_order_names_and_calibration():
    assert VARIANTS == ("fp32", "fp16", "dynamic", "int8") == tuple(v.name for v in TABLE)
    assert [v.name for v in TABLE if v.calibrated] == ["int8"]
    assert [v.name for v in TABLE if "per_channel" in v.options] == ["dynamic", "int8"]
    assert [v.name for v in TABLE if "io_dtype" in v.options] == ["int8"]
    assert BY_NAME["fp16"].file_name("m_256") == "m_256_fp16.tflite"
    assert BY_NAME["fp16"].file_name("m_256", int16_activations=True) == "m_256_fp16.tflite"
    assert BY_NAME["int8"].file_name("m_256", int16_activations=True) == "m_256_int16x8.tflite"
    assert "int16x8" in FILE_SUFFIXES


@pytest.mark.parametrize("quant, expected", [
    ("all", ["fp32", "fp16", "dynamic", "int8"]),
    ("int8", ["int8"]),
    ("int8,fp32", ["fp32", "int8"]),
    (" dynamic , fp16,", ["fp16", "dynamic"]),
    ("int8,int8", ["int8"]),
    (["int8", "fp16"], ["fp16", "int8"]),
    ("fp16,all", ["fp32", "fp16", "dynamic", "int8"]),
])
def test_parse_quant_gives_canonical_order(quant, expected):
    assert parse_quant(quant) == expected


@pytest.mark.parametrize("quant, named", [("int4", "int4"), ("fp32,int4", "int4"), ("", "(none)"), (" , ", "(none)"),
                                          ("FP32", "FP32")])
def test_parse_quant_refuses_unknown_names(quant, named):
    with pytest.raises(ExportOptionError) as err:
        parse_quant(quant)
    assert str(err.value) == f"unknown quantization {named}; choose from fp32, fp16, dynamic, int8, all"
    assert isinstance(err.value, FacesegError) and isinstance(err.value, ValueError)


def test_option_combinations_are_checked_against_the_table():
    check_options(["int8"], per_channel=False, io_dtype="int8", float_layers=["a/b"])
    check_options(["dynamic"], per_channel=False)
    check_options(["fp32"])  # the defaults never refuse
    with pytest.raises(ExportOptionError, match=r"^--io-dtype applies to int8 only, not to --quant fp32,fp16$"):
        check_options(["fp32", "fp16"], io_dtype="uint8")
    with pytest.raises(ExportOptionError, match=r"^--per-tensor applies to dynamic and int8 only"):
        check_options(["fp16"], per_channel=False)
    with pytest.raises(ExportOptionError, match=r"^--io-dtype must be one of float32, int8, uint8, not 'int4'$"):
        check_options(["int8"], io_dtype="int4")
    # Every problem in one message, so one run shows all that must change.
    with pytest.raises(ExportOptionError) as err:
        check_options(["fp32"], int16_activations=True, float_layers=["x"])
    message = str(err.value)
    assert "--float-layer works with int8 activations only" in message
    assert "--int16-activations applies to int8 only" in message and "--float-layer applies to int8 only" in message


def test_invalid_combination_is_refused_before_any_work(tmp_path):
    """The model file does not exist: reaching it would raise CheckpointError, and --out would be checked."""
    out = tmp_path / "out"
    with pytest.raises(ExportOptionError, match="--int16-activations applies to int8 only"):
        export(checkpoint=tmp_path / "nope.pt", quant="fp32", int16_activations=True, out_dir=out, progress=False)
    with pytest.raises(ExportOptionError, match="unknown quantization int4"):
        export(checkpoint=tmp_path / "nope.pt", quant="int4", out_dir=out, progress=False)
    with pytest.raises(ExportOptionError, match="converter must be one of onnx2tf"):
        export(checkpoint=tmp_path / "nope.pt", quant="fp32", converter="magic", out_dir=out, progress=False)
    assert not out.exists()


def test_cli_refuses_a_combination_with_one_error_line(tmp_path):
    result = CliRunner().invoke(cli, ["export", "--checkpoint", str(tmp_path / "nope.pt"), "--quant", "fp32,fp16",
                                      "--io-dtype", "int8", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip()]
    assert lines == ["error: --io-dtype applies to int8 only, not to --quant fp32,fp16"]
    assert not (tmp_path / "out").exists()


def test_export_help_still_works():
    result = CliRunner().invoke(cli, ["export", "--help"])
    assert result.exit_code == 0 and "--quant" in result.output and "--float-layer" in result.output


def test_sidecar_records_only_the_options_its_variant_takes():
    options = {"opset": 17, "per_channel": True, "int8_io_dtype": "uint8", "normalization_baked": True,
               "int16_activations": False, "float_layers": [], "resize_output": False}
    calibration = {"folder": "calibration", "images": 8}
    for variant in ("fp32", "fp16", "dynamic"):
        assert sidecar_options(variant, options, calibration) == {
            "opset": 17, "per_channel": True, "normalization_baked": True, "resize_output": False}
    int8 = sidecar_options("int8", options, calibration)
    assert list(int8) == [*options, "calibration"] and int8["calibration"] == calibration


def test_verify_and_bench_order_follows_the_table(tmp_path):
    names = ["m_64_int8.tflite", "m_64_dynamic.tflite", "a_other.tflite", "m_64_fp32.tflite", "m_64_fp16.tflite"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in find_models(export_dir=tmp_path)] == [
        "m_64_fp32.tflite", "m_64_fp16.tflite", "m_64_dynamic.tflite", "m_64_int8.tflite", "a_other.tflite"]
    assert [file_rank(n) for n in ("x_fp32.tflite", "x_int8.tflite", "x.tflite")] == [0, 3, 4]
    assert [variant_rank(v) for v in ("fp32", "fp16", "dynamic", "int8", None, "weird")] == [0, 1, 2, 3, 4, 4]


@pytest.mark.parametrize("name", ["m_64_int8.json", "m_64_int16x8.json", "m_64_fp16.json"])
def test_summary_json_may_not_take_a_sidecars_name(tmp_path, name):
    result = CliRunner().invoke(cli, ["export", "--checkpoint", str(tmp_path / "nope.pt"), "--json", str(tmp_path / name)])
    assert result.exit_code == 2 and "name it SUMMARY.json" in result.output, result.output
