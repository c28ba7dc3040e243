"""`facesegtool bench`: the host path on the small exported model, the adb path against a fake phone.

The fake `adb` (fixtures/fake_adb.py, put on PATH) lists devices, takes pushes, answers getprop,
and answers benchmark_model runs with real recorded benchmark_model output. No timing is asserted
on the host, only that every runtime was measured and the report holds together.
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
import torch.nn as nn
from click.testing import CliRunner

from facesegtool.bench.adb import AdbDisconnected, AdbError, check_device, parse_devices, run_adb_bench
from facesegtool.bench.host import BenchError, count_macs, run_host_bench
from facesegtool.bench.report import format_table, load_report
from facesegtool.cli import main


# --- host -------------------------------------------------------------------------------------


def test_count_macs_of_conv_transpose_and_linear() -> None:
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1, groups=8),
                        nn.ConvTranspose2d(8, 4, 2, stride=2), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
    # 4x4 input: conv 16 px * 8 out * 27; depthwise 16 * 8 * 9; transpose: 16*8 inputs * 4 out * 4 taps; linear 256*5
    assert count_macs(net, (4, 4)) == 16 * 8 * 27 + 16 * 8 * 9 + 16 * 8 * 4 * 4 + 256 * 5


@pytest.fixture(scope="module")
def host_report(small_checkpoint: Path, small_export, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bench_host")
    report = run_host_bench(checkpoint=small_checkpoint, export_dir=small_export.out_dir, threads=[1, 2],
                            runs=3, warmup=1, out_dir=out, progress=False)
    print("\n" + format_table(report))
    return report, out


def test_host_bench_measures_every_runtime_at_every_thread_count(host_report, small_export) -> None:
    report, out = host_report
    labels = {(r["label"], r["threads"]) for r in report["results"]}
    expected = ["pytorch", "onnxruntime", "tflite fp32", "tflite fp16", "tflite dynamic", "tflite int8"]
    assert labels == {(label, t) for label in expected for t in (1, 2)}
    for r in report["results"]:
        assert r["status"] == "ok", r["error"]
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"]
        assert r["first_ms"] > 0 and r["init_ms"] > 0 and r["size_mb"] > 0
        assert r["vs_reference"] > 0 and 0 < r["peak_fraction"]
    for t in (1, 2):
        torch_row = next(r for r in report["results"] if r["label"] == "pytorch" and r["threads"] == t)
        assert torch_row["vs_reference"] == 1.0
        fp32 = next(r for r in report["results"] if r["label"] == "tflite fp32" and r["threads"] == t)
        assert fp32["vs_reference"] == pytest.approx(fp32["median_ms"] / torch_row["median_ms"], rel=1e-2)
    int8 = next(r for r in report["results"] if r["label"] == "tflite int8")
    fp32 = next(r for r in report["results"] if r["label"] == "tflite fp32")
    assert int8["size_mb"] < fp32["size_mb"]
    assert report["model"]["input_size"] == [small_export.size, small_export.size]
    assert report["model"]["macs"] > 0 and set(report["cpu_peak_gflops"]) == {"1", "2"}
    assert report["complete"] and report["error"] is None


def test_host_bench_writes_json_and_chart(host_report) -> None:
    report, out = host_report
    on_disk = load_report(out / "bench_host.json")
    assert on_disk["results"] == json.loads(json.dumps(report["results"]))
    png = out / "bench_host.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    table = format_table(report)
    assert "tflite int8" in table and "x pytorch" in table and "GFLOP/s" in table


def test_host_bench_rejects_exports_of_another_model(small_checkpoint: Path, small_export, tmp_path: Path) -> None:
    fp32 = small_export.variants["fp32"]
    shutil.copy(fp32.tflite, tmp_path / fp32.tflite.name)
    sidecar = json.loads(fp32.sidecar.read_text())
    sidecar["model"] = "ddrnet-slim"
    (tmp_path / fp32.sidecar.name).write_text(json.dumps(sidecar))
    with pytest.raises(BenchError, match="exported from a 'ddrnet-slim' model"):
        run_host_bench(checkpoint=small_checkpoint, export_dir=tmp_path, threads=[1], runs=1, progress=False)
    with pytest.raises(BenchError, match="no such folder"):
        run_host_bench(checkpoint=small_checkpoint, export_dir=tmp_path / "missing", progress=False)


def test_cli_host_json(small_checkpoint: Path, small_export, tmp_path: Path) -> None:
    fp32 = small_export.variants["fp32"].tflite
    result = CliRunner().invoke(main, ["bench", "--device", "host", "--checkpoint", str(small_checkpoint),
                                       "--models", str(fp32), "--threads", "1", "--runs", "2", "--warmup", "1",
                                       "--json", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["label"] for r in report["results"]] == ["pytorch", "tflite fp32"]
    assert (tmp_path / "bench_host.json").is_file()
    bad = CliRunner().invoke(main, ["bench", "--threads", "0,x", "--checkpoint", str(small_checkpoint)])
    assert bad.exit_code == 2 and "--threads expects positive integers" in bad.output


# --- adb against a fake phone ------------------------------------------------------------------------


@pytest.fixture
def phone_models(small_export, tmp_path: Path) -> list[Path]:
    """The fp32 and int8 exports, one renamed with a space, quotes and shell syntax to test quoting."""
    out = tmp_path / "models"
    out.mkdir()
    files = []
    for variant, name in (("fp32", "face seg fp32.tflite"), ("int8", "face'$(reboot);int8.tflite")):
        v = small_export.variants[variant]
        shutil.copy(v.tflite, out / name)
        shutil.copy(v.sidecar, (out / name).with_suffix(".json"))
        files.append(out / name)
    return files


@pytest.fixture
def binary(tmp_path: Path) -> Path:
    # The fake phone never executes it; it only has to exist, be pushed and made executable.
    path = tmp_path / "android_aarch64_benchmark_model"
    path.write_bytes(b"\x7fELF placeholder for the pushed binary")
    return path


def test_parse_adb_devices_states() -> None:
    text = ("* daemon not running; starting now at tcp:5037\n* daemon started successfully\n"
            "List of devices attached\n0A1B2C3D\tdevice\nemulator-5554\toffline\nR58M\tunauthorized\n"
            "3100abcd\tno permissions (user in plugdev group; are your udev rules wrong?); see [http://developer.android.com/tools/device.html]\n\n")
    devices = parse_devices(text)
    assert devices == {"0A1B2C3D": "device", "emulator-5554": "offline", "R58M": "unauthorized",
                       "3100abcd": devices["3100abcd"]}
    assert devices["3100abcd"].startswith("no permissions")
    assert check_device(devices, "0A1B2C3D") == "0A1B2C3D"
    assert check_device(devices, None) == "0A1B2C3D"  # the only usable one; offline/unauthorized do not compete
    with pytest.raises(AdbError, match="choose one with --serial"):
        check_device({**devices, "R59N": "device"}, None)
    with pytest.raises(AdbError, match="udev"):
        check_device(devices, "3100abcd")
    with pytest.raises(AdbError, match="not connected"):
        check_device(devices, "XYZ")


def test_adb_bench_end_to_end(fake_adb, phone_models, binary, tmp_path: Path) -> None:
    fake_adb.scenario("success")
    out = tmp_path / "out"
    report = run_adb_bench(models=phone_models, benchmark_binary=binary, threads=[1, 4],
                           delegates=["cpu", "xnnpack", "gpu", "nnapi"], runs=20, warmup=3, out_dir=out,
                           progress=False)
    print("\n" + format_table(report))
    expected = {"serial": "FAKE0123", "model": "Pixel 7", "abi": "arm64-v8a", "android": "15", "sdk": "35"}
    assert {k: report["device"][k] for k in expected} == expected
    assert len(report["results"]) == 2 * 4 * 2 and report["complete"]
    by = {(r["variant"], r["delegate"], r["threads"]): r for r in report["results"]}
    cpu = by[("fp32", "cpu", 1)]  # answered with the TI AM62x recording
    assert cpu["mean_ms"] == pytest.approx(1240.27) and cpu["median_ms"] == pytest.approx(1239.807)
    assert cpu["init_ms"] == pytest.approx(5.579) and cpu["mem_delta_mib"] == pytest.approx(109.832)
    assert cpu["runs"] == 50 and cpu["runs_asked"] == 20  # the count the tool made, not the one asked
    assert by[("fp32", "xnnpack", 4)]["is_reference"] and by[("fp32", "xnnpack", 4)]["vs_reference"] == 1.0
    assert by[("int8", "cpu", 4)]["vs_reference"] == pytest.approx(1240.27 / 899.641, rel=1e-3)
    gpu = by[("int8", "gpu", 1)]  # a logcat excerpt: the Replacing line is the delegate's evidence
    assert gpu["status"] == "ok" and gpu["delegation"] == "partially"
    assert "GATHER_ND: Operation is not supported." in gpu["details"]["unsupported_ops"]
    assert gpu["precision"].startswith("fp16")
    nnapi = by[("fp32", "nnapi", 4)]
    assert nnapi["status"] == "failed" and "Benchmarking failed" in nnapi["error"]
    assert any("NNAPI is deprecated from Android 15" in n for n in report["notes"])

    state = fake_adb.state()
    remote_dir = "/data/local/tmp/facesegtool"
    assert set(state["pushed"]) == {f"{remote_dir}/benchmark_model", f"{remote_dir}/face seg fp32.tflite",
                                    f"{remote_dir}/face'$(reboot);int8.tflite"}
    assert state["executable"] == [f"{remote_dir}/benchmark_model"]
    assert state["stdin_forwarded"] == 0  # every shell call has -n
    shells = [shlex.split(c[4].rsplit("; echo ", 1)[0]) for c in state["calls"] if c[2:3] == ["shell"]]
    runs = [argv for argv in shells if argv[0] == f"{remote_dir}/benchmark_model"]
    runs = [r for r in runs if r[1:] != ["--help"]]
    assert len(runs) == 16
    assert all(len(c) == 5 for c in state["calls"] if c[2:3] == ["shell"])  # -n and one quoted string per call
    assert all("--report_peak_memory_footprint=true" in r for r in runs)  # listed in its --help
    first = runs[0]
    assert first[1] == f"--graph={remote_dir}/face seg fp32.tflite"
    assert {"--num_threads=1", "--warmup_runs=3", "--num_runs=20", "--use_xnnpack=false"} <= set(first)
    assert any("--use_gpu=true" in r for r in runs) and any("--use_nnapi=true" in r for r in runs)

    stem = out / "bench_adb_FAKE0123"
    assert load_report(f"{stem}.json")["results"][0]["mean_ms"] == pytest.approx(1240.27)
    assert Path(f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
    assert len(list(Path(f"{stem}_raw").glob("*.txt"))) == 16
    table = format_table(report)
    assert "Pixel 7 (FAKE0123), Android 15 (SDK 35), arm64-v8a" in table and "FAILED" in table
    assert "RSS delta MiB" in table and "peak MiB" in table


def test_adb_op_profiling_lists_ops_not_delegated(fake_adb, phone_models, binary, tmp_path: Path) -> None:
    fake_adb.scenario("success")
    report = run_adb_bench(models=phone_models[:1], benchmark_binary=binary, threads=[4], delegates=["xnnpack"],
                           op_profiling=True, out_dir=tmp_path / "out", progress=False)
    (row,) = report["results"]
    assert [o["node_type"] for o in row["details"]["not_delegated"]][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"]
    assert "--enable_op_profiling=true" in fake_adb.state()["calls"][-1][4]
    assert "ops not delegated: CONV_2D x15" in format_table(report)


@pytest.mark.parametrize("scenario, message", [
    ("offline", "is offline: replug the cable"),
    ("unauthorized", r"is unauthorized: unlock the phone and accept the 'Allow USB debugging\?' prompt"),
    ("none", "no Android device connected"),
    ("two", "2 devices connected .*choose one with --serial"),
    ("server-error", "`adb devices` failed .*protocol fault"),
])
def test_adb_device_not_usable(fake_adb, phone_models, binary, tmp_path: Path, scenario: str, message: str) -> None:
    fake_adb.scenario(scenario)
    with pytest.raises(AdbError, match=message):
        run_adb_bench(models=phone_models, benchmark_binary=binary, out_dir=tmp_path, progress=False)


def test_adb_missing_and_binary_missing(phone_models, binary, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(AdbError, match=r"adb not found on PATH.*sudo apt-get install adb"):
        run_adb_bench(models=phone_models, benchmark_binary=binary, out_dir=tmp_path, progress=False)
    monkeypatch.delenv("FACESEGTOOL_BENCHMARK_MODEL", raising=False)
    with pytest.raises(AdbError, match=r"prebuilt nightly benchmark_model for android_aarch64.*android_aarch64_benchmark_model"):
        run_adb_bench(models=phone_models, out_dir=tmp_path, progress=False)
    monkeypatch.setenv("FACESEGTOOL_BENCHMARK_MODEL", str(binary))  # the configured path is enough
    with pytest.raises(AdbError, match="adb not found"):
        run_adb_bench(models=phone_models, out_dir=tmp_path, progress=False)


def test_adb_disconnect_mid_run_keeps_what_was_measured(fake_adb, phone_models, binary, tmp_path: Path) -> None:
    fake_adb.scenario("midrun", FAKE_ADB_FAIL_AFTER="3")
    with pytest.raises(AdbDisconnected, match=r"disconnected during fp32 / xnnpack / 1 threads.*2 run\(s\) measured") as err:
        run_adb_bench(models=phone_models, benchmark_binary=binary, threads=[1, 4], delegates=["cpu", "xnnpack"],
                      out_dir=tmp_path / "out", progress=False)
    saved = load_report(tmp_path / "out" / "bench_adb_FAKE0123.json")
    assert [(r["delegate"], r["threads"]) for r in saved["results"]] == [("cpu", 1), ("cpu", 4)]
    assert all(r["status"] == "ok" for r in saved["results"])
    assert not saved["complete"] and "disconnected" in saved["error"]
    assert err.value.report["results"] == saved["results"]


def test_cli_adb(fake_adb, phone_models, binary, tmp_path: Path) -> None:
    fake_adb.scenario("success")
    args = ["bench", "--device", "adb", "--benchmark-binary", str(binary), "--threads", "1,4",
            "--delegate", "xnnpack,gpu", "--runs", "10", "--out", str(tmp_path / "out")]
    for m in phone_models:
        args += ["--models", str(m)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "Pixel 7 (FAKE0123)" in result.stdout and "| fp32" in result.stdout
    assert "TfLiteGpuDelegateV2 took 54/559 nodes (3 partitions); TfLiteXNNPackDelegate took 456/506 nodes (13 partitions); refused ADD, CAST" in result.stdout
    fake_adb.scenario("unauthorized")
    bad = CliRunner().invoke(main, args)
    assert bad.exit_code == 2 and "error: device FAKE0123 is unauthorized" in bad.output
    bad = CliRunner().invoke(main, args[:-2] + ["--delegate", "tpu", "--out", str(tmp_path)])
    assert bad.exit_code == 2 and "--delegate: unknown tpu" in bad.output


# --- the nine cases of issue 23, each on a recorded scenario ----------------------------------------


def _one_run(fake_adb, phone_models, binary, tmp_path, delegate="gpu", threads=(4,), **kw) -> dict:
    report = run_adb_bench(models=phone_models[:1], benchmark_binary=binary, threads=list(threads),
                           delegates=[delegate], runs=50, warmup=1, out_dir=tmp_path / "out", progress=False, **kw)
    print("\n" + format_table(report))
    return report


def test_case1_failed_invoke_after_timings_is_failed_with_its_error(fake_adb, phone_models, binary, tmp_path) -> None:
    fake_adb.scenario("success", FAKE_ADB_REPLAY="failed_invoke_after_timings.txt:1")
    report = _one_run(fake_adb, phone_models, binary, tmp_path)
    (row,) = report["results"]
    assert row["status"] == "failed" and row["mean_ms"] == pytest.approx(9.611)  # timings were printed
    assert "Node number 31 (TfLiteGpuDelegateV2) failed to invoke" in row["error"]
    assert "exit 1" in row["error"] and "Benchmarking failed." in row["error"]
    table = format_table(report)
    assert "FAILED" in table and "failed to invoke" in table


def test_case2_gpu_fallback_is_shown_as_fallback(fake_adb, phone_models, binary, tmp_path) -> None:
    fake_adb.scenario("success", FAKE_ADB_REPLAY="gpu_unsupported_fallback.txt:0")
    report = _one_run(fake_adb, phone_models, binary, tmp_path)
    (row,) = report["results"]
    assert row["status"] == "fallback" and row["mean_ms"] == pytest.approx(25.754)
    assert "GPU delegate could not be created: ran on the CPU" in row["error"]
    assert row["vs_reference"] is None
    table = format_table(report)
    assert "FALLBACK: ran on CPU" in table
    png = tmp_path / "out" / "bench_adb_FAKE0123.png"
    assert png.read_bytes()[:4] == b"\x89PNG"  # the fallback is drawn (hatched), labelled [FALLBACK: CPU]


def test_case2_partial_delegation_with_require_full_delegation_fails(fake_adb, phone_models, binary, tmp_path) -> None:
    fake_adb.scenario("success")  # the SM6115 recording: the GPU took 54 of 559 nodes
    report = _one_run(fake_adb, phone_models, binary, tmp_path, require_full_delegation=True)
    (row,) = report["results"]
    assert row["status"] == "failed" and "only part of the graph" in row["error"]
    assert "--require_full_delegation=true" in fake_adb.state()["calls"][-1][4]


def test_case3_unconsumed_flag_fails_the_row_naming_it(fake_adb, phone_models, binary, tmp_path) -> None:
    fake_adb.scenario("success", FAKE_ADB_REPLAY="cpu_only_build_unconsumed_gpu.txt:0")
    (row,) = _one_run(fake_adb, phone_models, binary, tmp_path)["results"]
    assert row["status"] == "failed" and "ignored --use_gpu=true" in row["error"]
    assert "WARN" not in row["error"] and row["details"]["warnings"][0].startswith("Unconsumed cmdline flags")


def test_case4_compiled_model_binary_is_detected_driven_and_parsed(fake_adb, phone_models, binary, tmp_path) -> None:
    fake_adb.scenario("success", FAKE_ADB_BINARY="litert")
    report = _one_run(fake_adb, phone_models, binary, tmp_path, delegate="gpu")
    (row,) = report["results"]
    assert report["device"]["benchmark_kind"] == "LiteRT CompiledModel"
    assert row["status"] == "ok" and row["mean_ms"] == pytest.approx(8.05) and row["runs"] == 124
    assert row["init_ms"] == pytest.approx(412.6) and row["peak_mem_mib"] == pytest.approx(57.93)
    argv = shlex.split(fake_adb.state()["calls"][-1][4].rsplit("; echo ", 1)[0])
    assert "--use_gpu=true" in argv and not any(a.startswith("--use_xnnpack") for a in argv)
    with pytest.raises(BenchError, match="nnapi: .*CompiledModel.*use TFLite's benchmark_model"):
        _one_run(fake_adb, phone_models, binary, tmp_path, delegate="nnapi")


def test_case4_cli_against_the_compiled_model_binary(fake_adb, phone_models, binary, tmp_path) -> None:
    fake_adb.scenario("success", FAKE_ADB_BINARY="litert")
    result = CliRunner().invoke(main, ["bench", "--device", "adb", "--benchmark-binary", str(binary),
                                       "--models", str(phone_models[0]), "--threads", "4", "--delegate", "cpu,gpu",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "LiteRT CompiledModel benchmark_model" in result.stdout and "| 8.05 " in result.stdout
    assert "| 124 " in result.stdout


def test_case5_memory_columns_and_peak_flag(fake_adb, phone_models, binary, tmp_path) -> None:
    fake_adb.scenario("success", FAKE_ADB_REPLAY="min_secs_more_runs.txt:0")
    report = _one_run(fake_adb, phone_models, binary, tmp_path, delegate="xnnpack")
    (row,) = report["results"]
    assert row["mem_delta_mib"] == pytest.approx(9.6) and row["peak_mem_mib"] == pytest.approx(31.4)
    assert "--report_peak_memory_footprint=true" in fake_adb.state()["calls"][-1][4]
    assert any("peak-RSS delta" in n for n in report["notes"])


def test_case6_the_run_count_is_the_one_made(fake_adb, phone_models, binary, tmp_path) -> None:
    fake_adb.scenario("success", FAKE_ADB_REPLAY="min_secs_more_runs.txt:0")
    report = _one_run(fake_adb, phone_models, binary, tmp_path, delegate="xnnpack")
    (row,) = report["results"]
    assert (row["runs"], row["runs_asked"]) == (178, 50)
    assert "178 timed runs made (50 asked" in format_table(report)


def test_case7_gpu_precision_is_said_and_fp32_is_offered(fake_adb, phone_models, binary, tmp_path) -> None:
    fake_adb.scenario("success")
    report = _one_run(fake_adb, phone_models, binary, tmp_path, delegate="gpu-fp32")
    (row,) = report["results"]
    assert row["precision"] == "fp32"
    argv = fake_adb.state()["calls"][-1][4]
    assert "--use_gpu=true" in argv and "--gpu_precision_loss_allowed=false" in argv
    assert any("fp16 arithmetic" in n for n in report["notes"])
    assert "gpu (fp16)" in format_table(_one_run(fake_adb, phone_models, binary, tmp_path, delegate="gpu"))


@pytest.mark.parametrize("replay, status, mean_ms, runs", [
    ("all_same_stats.txt:0", "ok", 16.0, 63),          # count=63 curr=16000(all same): not the warm-up's 31
    ("gpu_no_ops.txt:0", "fallback", 88.413, 50),      # "No operations will run on the GPU": a refusal
    ("old_average_timings.txt:0", "ok", 13.913, 72),   # TF 2.1's "Average inference timings in us"
])
def test_case8_lines_that_were_missed(fake_adb, phone_models, binary, tmp_path, replay, status, mean_ms, runs) -> None:
    fake_adb.scenario("success", FAKE_ADB_REPLAY=replay)
    delegate = "gpu" if "gpu" in replay else "cpu"
    (row,) = _one_run(fake_adb, phone_models, binary, tmp_path, delegate=delegate)["results"]
    assert (row["status"], row["runs"]) == (status, runs)
    assert row["mean_ms"] == pytest.approx(mean_ms)
    if replay.startswith("all_same"):
        assert row["std_ms"] == 0 and row["warmup_ms"] == pytest.approx(16.258)  # warm-up kept apart


@pytest.mark.parametrize("scenario", ["authorizing", "connecting"])
def test_case9_transient_states_are_waited_out(fake_adb, phone_models, binary, tmp_path, scenario) -> None:
    fake_adb.scenario(scenario, FAKE_ADB_TRANSIENT="2")
    (row,) = _one_run(fake_adb, phone_models, binary, tmp_path, delegate="cpu")["results"]
    assert row["status"] == "ok" and fake_adb.state()["devices_calls"] == 3


def test_case9_transient_state_that_stays_is_an_error(fake_adb, phone_models, binary, tmp_path, monkeypatch) -> None:
    import facesegtool.bench.adb as adb_mod

    monkeypatch.setattr(adb_mod, "TRANSIENT_WAIT_S", 0.3)
    fake_adb.scenario("authorizing", FAKE_ADB_TRANSIENT="1000")
    with pytest.raises(AdbError, match="still authorizing"):
        _one_run(fake_adb, phone_models, binary, tmp_path, delegate="cpu")


def test_case9_offline_entry_and_android_serial(fake_adb, phone_models, binary, tmp_path, monkeypatch) -> None:
    fake_adb.scenario("two-one-offline")  # an offline emulator beside the phone: no ambiguity
    (row,) = _one_run(fake_adb, phone_models, binary, tmp_path, delegate="cpu")["results"]
    assert row["status"] == "ok"
    fake_adb.scenario("two")
    monkeypatch.setenv("ANDROID_SERIAL", "FAKE0123")  # adb's own default serial
    assert _one_run(fake_adb, phone_models, binary, tmp_path, delegate="cpu")["device"]["serial"] == "FAKE0123"


def test_case9_old_android_exit_status_is_read_from_the_echo(fake_adb, phone_models, binary, tmp_path) -> None:
    fake_adb.scenario("old-android")  # adb exits 0 whatever the command did
    (row,) = _one_run(fake_adb, phone_models, binary, tmp_path, delegate="nnapi")["results"]
    assert row["status"] == "failed" and row["exit_code"] == 1 and "exit 1" in row["error"]
    assert "__facesegtool_exit" not in row["error"]


def test_case9_timed_out_run_is_killed_on_the_phone(fake_adb, phone_models, binary, tmp_path) -> None:
    fake_adb.scenario("hang")
    report = run_adb_bench(models=phone_models[:1], benchmark_binary=binary, threads=[1], delegates=["cpu"],
                           runs=5, warmup=1, out_dir=tmp_path / "out", progress=False, run_timeout=1.5)
    (row,) = report["results"]
    assert row["status"] == "failed" and "did not finish" in row["error"]
    assert fake_adb.state()["killed"] == [["-f", "/data/local/tmp/facesegtool/benchmark_model"]]


def test_missing_model_replays_the_real_errors(fake_adb, phone_models, binary, tmp_path, monkeypatch) -> None:
    import facesegtool.bench.adb as adb_mod

    fake_adb.scenario("success")
    real_push = adb_mod.AdbDevice.push
    monkeypatch.setattr(adb_mod.AdbDevice, "push", lambda self, local, remote: real_push(self, local, remote)
                        if remote.endswith("benchmark_model") else None)  # the model never reaches the phone
    (row,) = _one_run(fake_adb, phone_models, binary, tmp_path, delegate="cpu")["results"]
    assert row["status"] == "failed" and "Failed to load model /data/local/tmp/facesegtool/face seg fp32.tflite" in row["error"]


def test_cli_adb_exits_nonzero_when_nothing_was_timed(fake_adb, phone_models, binary, tmp_path) -> None:
    fake_adb.scenario("success", FAKE_ADB_REPLAY="mi11_nnapi_failed.txt:1")
    result = CliRunner().invoke(main, ["bench", "--device", "adb", "--benchmark-binary", str(binary),
                                       "--models", str(phone_models[0]), "--threads", "1", "--delegate", "nnapi",
                                       "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "error: no benchmark_model run produced timings" in result.output and "Benchmarking failed" in result.output


def test_not_a_benchmark_binary_is_named(fake_adb) -> None:
    import facesegtool.bench.adb as adb_mod

    fake_adb.scenario("success")
    dev = adb_mod.AdbDevice("FAKE0123", "adb")
    with pytest.raises(AdbError, match="lists no benchmark_model flags"):
        adb_mod.probe_binary(dev, "/data/local/tmp/facesegtool/nothing")
