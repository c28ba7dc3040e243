"""benchmark_model output parser, on real outputs recorded from public docs and reports.

Each fixture in tests/fixtures/benchmark_model/ starts with a comment naming where it was
published; the expected numbers below are read off those texts.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from facesegtool.bench.benchmark_output import BenchmarkOutputError, parse_benchmark_output, require_timings

FIXTURES = Path(__file__).parent / "fixtures" / "benchmark_model"


def recorded(name: str) -> str:
    text = (FIXTURES / name).read_text()
    header, sep, body = text.partition("\n# ---\n")
    assert sep and header.startswith("# source:"), f"{name}: needs its origin in a '# source:' header"
    return body


def test_every_fixture_names_its_origin() -> None:
    names = sorted(p.name for p in FIXTURES.glob("*.txt"))
    assert len(names) >= 8
    for name in names:
        recorded(name)


def test_scientific_notation_and_percentiles_ti_am62x() -> None:
    r = parse_benchmark_output(recorded("ti_am62x_cpu.txt"))
    assert r.ok
    assert r.init_us == 5579
    assert r.first_inference_us == 1357602
    assert r.warmup_avg_us == pytest.approx(1.3576e6)
    assert r.inference_avg_us == pytest.approx(1.24027e6)  # printed "1.24027e+06"
    # the timed run's statistics line, not the one-iteration warm-up line above it
    assert r.runs == 50 and r.inference_std_us == 2565
    assert (r.inference_min_us, r.inference_median_us, r.inference_p95_us, r.inference_max_us) == (
        1238588, 1239807, 1247415, 1252566)
    assert (r.memory_init_mb, r.memory_overall_mb) == (pytest.approx(6.36328), pytest.approx(109.832))
    assert r.model_size_mb == pytest.approx(67.3128) and r.session_init_ms == pytest.approx(5.579)
    assert r.errors == [] and r.delegations == []


def test_xnnpack_partially_applied() -> None:
    r = parse_benchmark_output(recorded("ti_am62x_xnnpack.txt"))
    assert r.inference_avg_us == 899641 and r.init_us == 614333
    assert r.memory_overall_mb == pytest.approx(150.141)
    assert any("partially executed" in n for n in r.delegate_notes)


def test_gpu_delegate_refusals_and_partitions() -> None:
    r = parse_benchmark_output(recorded("sm6115_gpu_partial.txt"))
    assert r.ok and r.inference_avg_us == 306869 and r.init_us == 2227672
    assert len(r.unsupported_ops) == 14
    assert r.unsupported_ops[0] == "ADD: Max version supported: 2. Requested version 4."
    assert "GATHER_ND: Operation is not supported." in r.unsupported_ops
    gpu, xnn = r.delegations
    assert (gpu.delegate, gpu.replaced, gpu.total, gpu.partitions) == ("TfLiteGpuDelegateV2", 54, 559, 3)
    assert (xnn.delegate, xnn.replaced, xnn.total, xnn.partitions) == ("TfLiteXNNPackDelegate", 456, 506, 13)
    assert r.inference_median_us == 305582 and r.runs == 25


def test_peak_memory_by_periodic_monitoring_chromeos() -> None:
    r = parse_benchmark_output(recorded("chromeos_gpu_peak_memory.txt"))
    assert r.peak_memory_mb == pytest.approx(74.6641)
    assert r.memory_overall_mb is None
    assert r.inference_avg_us == pytest.approx(35134.9)
    assert r.runs == 1694 and r.inference_std_us == 1733  # the second (timed) count= line
    assert r.delegations[0].replaced == r.delegations[0].total == 58
    assert any("completely executed" in n for n in r.delegate_notes)


def test_tf24_peak_memory_line() -> None:
    r = parse_benchmark_output(recorded("mi11_cpu_peak_memory_old.txt"))
    assert r.inference_avg_us == 249684 and r.first_inference_us == 360262
    assert (r.memory_init_mb, r.memory_overall_mb) == (pytest.approx(4.92969), pytest.approx(138.809))


def test_logcat_prefix_of_the_benchmark_app() -> None:
    r = parse_benchmark_output(recorded("logcat_benchmark_app.txt"))
    assert r.inference_avg_us == 145528 and r.init_us == 92318
    assert r.inference_median_us == 141253 and r.inference_p95_us == 187533
    assert r.memory_overall_mb == pytest.approx(73.4102)


def test_failed_nnapi_run_has_no_timings_and_keeps_the_tools_errors() -> None:
    r = parse_benchmark_output(recorded("mi11_nnapi_failed.txt"))
    assert not r.ok and r.inference_avg_us is None
    assert r.errors[-1] == "Benchmarking failed."
    assert any("ANEURALNETWORKS_OP_FAILED" in e for e in r.errors)
    with pytest.raises(BenchmarkOutputError, match="Benchmarking failed"):
        require_timings(r)


def test_op_profile_without_delegate_lists_every_op_as_cpu() -> None:
    r = parse_benchmark_output(recorded("riscv_op_profiling.txt"))
    assert r.inference_avg_us == pytest.approx(2.95034e6) and r.warmup_avg_us == pytest.approx(3.51239e6)
    # the profiler's own "Timings (microseconds): count=50 ... avg=2.9499e+06" must not replace the benchmark's
    assert r.inference_std_us == 109798
    by_type = {s.node_type: s for s in r.op_profile}
    assert by_type["CONV_2D"].count == 15 and by_type["DEPTHWISE_CONV_2D"].count == 13
    assert sum(s.count for s in r.op_profile) == 31  # "Number of nodes executed: 31"
    assert "AllocateTensors" not in by_type  # from the initialization profile, not the timed runs
    assert {s.node_type for s in r.not_delegated} == set(by_type)


def test_op_profile_names_the_ops_left_outside_the_delegate() -> None:
    r = parse_benchmark_output(recorded("mi11_nnapi_op_profiling.txt"))
    assert not r.ok  # this excerpt is the profile only
    delegated = [s for s in r.op_profile if s.delegated]
    assert [(s.node_type, s.count) for s in delegated] == [("TfLiteNnapiDelegate", 3)]
    assert [(s.node_type, s.count) for s in r.not_delegated] == [("STRIDED_SLICE", 6), ("RESIZE_NEAREST_NEIGHBOR", 2)]
    assert r.not_delegated[0].avg_ms == pytest.approx(8.35, abs=0.01)  # summary table: 8.347


def test_garbage_is_not_a_result() -> None:
    r = parse_benchmark_output("/system/bin/sh: /data/local/tmp/benchmark_model: not executable: 32-bit ELF file\n")
    assert not r.ok
    assert parse_benchmark_output("").as_dict()["ok"] is False


def test_warn_and_fatal_lines_are_kept_and_unconsumed_flags_named() -> None:
    r = parse_benchmark_output(recorded("cpu_only_build_unconsumed_gpu.txt"))
    assert r.unconsumed_flags == ["--use_gpu=true"]
    assert r.warnings == ["Unconsumed cmdline flags: --use_gpu=true"]
    r = parse_benchmark_output("FATAL: Check failed: status == kTfLiteOk\n")
    assert r.errors == ["Check failed: status == kTfLiteOk"]


def test_failed_run_with_timings_is_not_ok() -> None:
    r = parse_benchmark_output(recorded("failed_invoke_after_timings.txt"))
    assert r.has_timings and r.benchmarking_failed and not r.ok
    assert r.runs == 17 and r.errors[-1] == "Benchmarking failed."
    assert r.delegation("GPU") == "completely"


def test_delegation_evidence() -> None:
    assert parse_benchmark_output(recorded("gpu_unsupported_fallback.txt")).delegation("GPU") == "not"
    assert parse_benchmark_output(recorded("gpu_no_ops.txt")).delegation("GPU") == "not"
    assert parse_benchmark_output(recorded("ti_am62x_xnnpack.txt")).delegation("XNNPACK") == "partially"
    assert parse_benchmark_output(recorded("chromeos_gpu_peak_memory.txt")).delegation("GPU") == "completely"
    assert parse_benchmark_output(recorded("sm6115_gpu_partial.txt")).delegation("GPU") == "partially"
    assert parse_benchmark_output(recorded("ti_am62x_cpu.txt")).delegation("GPU") == "unknown"


def test_all_same_stats_line_is_the_timed_one() -> None:
    r = parse_benchmark_output(recorded("all_same_stats.txt"))
    assert r.runs == 63 and r.inference_std_us == 0 and r.inference_min_us == r.inference_max_us == 16000


def test_old_average_timings_format() -> None:
    r = parse_benchmark_output(recorded("old_average_timings.txt"))
    assert r.ok and (r.warmup_avg_us, r.init_us, r.inference_avg_us) == (14357.1, 4460, 13912.8) and r.runs == 72


def test_compiled_model_results_block() -> None:
    r = parse_benchmark_output(recorded("litert_compiled_model_gpu.txt"))
    assert r.ok and r.binary == "litert"
    assert r.inference_avg_us == pytest.approx(8050) and r.runs == 124 and r.init_us == pytest.approx(412600)
    assert r.first_inference_us == pytest.approx(28410) and r.inference_median_us == 7952  # from its count= line
    assert (r.memory_init_mb, r.memory_overall_mb, r.peak_memory_mb) == (38.27, 41.02, 57.93)


def test_help_output_is_a_failure_not_a_result() -> None:
    r = parse_benchmark_output(recorded("tflite_help.txt"))
    assert not r.ok and r.benchmarking_failed
