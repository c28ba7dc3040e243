"""Read what TFLite's `benchmark_model` (or LiteRT's CompiledModel `benchmark_model`) prints into numbers.

    result = parse_benchmark_output(stdout_and_stderr)
    result.inference_avg_us, result.init_us, result.memory_overall_mb, result.not_delegated

The tool's output changed over the years and reaches us in several wrappings: bare lines
(TF 2.4 on Android), "INFO: " prefixes (newer builds), logcat's "I tflite  : " (benchmark app).
So every pattern is searched anywhere in a line, and numbers may be printed by C++ iostreams
in scientific notation ("Inference (avg): 1.04176e+06" microseconds, i.e. about 1.04 s).

Lines this reads (any may be missing; a run that failed prints "Benchmarking failed."):
    The input model file size (MB): 16.9008
    Initialized session in 17.187ms.
    count=50 first=.. curr=.. min=.. max=.. avg=2.95034e+06 std=.. [p5=.. median=.. p95=..]
    Inference timings in us: Init: 17187, First inference: .., Warmup (avg): .., Inference (avg): ..
    Memory footprint delta from the start of the tool (MB): init=4.21 overall=46.08
    Peak memory footprint (MB): init=4.9 overall=138.8                          (TF <= 2.4)
    Overall peak memory footprint (MB) via periodic monitoring: 74.66
    Replacing 54 out of 559 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 3 partitions ..
    Following operations are not supported by GPU delegate:  (then one "OP: reason" line each)
    ... and with --enable_op_profiling, a "Run Order" table of the timed runs' nodes, from which
    the op types that ran outside every delegate are listed (`not_delegated`).

What tells a run's truth (tflite/tools/benchmark/benchmark_tflite_model.cc, tools/logging.h,
tools/delegates/*_provider.cc, tsl/util/stats_calculator.h):
    WARN: Unconsumed cmdline flags: --foo=1          a flag the binary ignored
    WARN: GPU acceleration is unsupported on this platform.   no delegate: the run goes on on CPU
    INFO: Explicitly applied GPU delegate, and the model graph will be completely|partially executed ...
    INFO: Though GPU delegate is explicitly applied, the model graph will not be executed by the delegate.
    No operations will run on the GPU, and all N operations will run on the CPU.
    count=50 curr=12000(all same)                     the stats line when every run took the same time
    Average inference timings in us: Warmup: .., Init: .., Inference: ..    (TF <= 2.1; "no stats:" in 1.x)
    ERROR: Benchmarking failed.                       exit 1, possibly after the timings were printed
The CompiledModel binary (litert/tools/benchmark_litert_model.h) logs through LITERT_LOG
("INFO: [file:line] ...") a block under "========== BENCHMARK RESULTS ==========":
    Model initialization: 12.34 ms / Warmup (first): .. ms / Inference (avg): 5.67 ms (50 runs) /
    Inference (min|max): .. ms / Inference (std): .. / Init footprint / Overall footprint / Peak memory: .. MB
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from ..errors import FacesegError

NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"

_TIMINGS = re.compile(
    rf"Inference timings in us: Init: ({NUMBER}), First inference: ({NUMBER}), "
    rf"Warmup \(avg\): ({NUMBER}), Inference \(avg\): ({NUMBER})"
)
_MEMORY_DELTA = re.compile(
    rf"(?:Memory footprint delta from the start of the tool|Peak memory footprint) \(MB\): "
    rf"init=({NUMBER}) overall=({NUMBER})"
)
_PEAK_MEMORY = re.compile(rf"Overall peak memory footprint \(MB\) via periodic monitoring: ({NUMBER})")
_MODEL_SIZE = re.compile(rf"The input model file size \(MB\): ({NUMBER})")
_SESSION = re.compile(rf"Initialized session in ({NUMBER}) ?ms")
# Statistics lines: "count=50 first=... avg=... std=..."; the last one with avg= is the timed run.
_STATS = re.compile(rf"(?<![\w(])count=(\d+)((?: \w+={NUMBER})+)")
_STAT_FIELD = re.compile(rf"(\w+)=({NUMBER})")
_REPLACING = re.compile(
    r"Replacing (\d+)(?: out of (\d+))? node\(s\) with delegate \((\w+)\) node, yielding (\d+) partitions"
)
_UNSUPPORTED_HEADER = re.compile(r"(?:Following|Next) operations are not supported by (\w+) delegate:")
_OPS_SPLIT = re.compile(r"(\d+) operations will run on the (\w+), and the remaining (\d+)")
_UNSUPPORTED_OP = re.compile(r"^\s*([A-Z][A-Z0-9_]+|CUSTOM \S+): (.+)$")
# "Explicitly applied XNNPACK delegate, and the model graph will be partially executed ..." /
# "Though NNAPI delegate is explicitly applied, the model graph will not be executed by the delegate."
_DELEGATE_NOTE = re.compile(r"delegate.*the model graph will", re.IGNORECASE)
# A "Run Order" row: node type (may hold spaces, e.g. XNNPACK's "Convolution (NHWC, F32) IGEMM"),
# start, first, avg ms, %, cdf%, mem KB, times called, name.
_RUN_ORDER_ROW = re.compile(
    rf"^\s*(.+?)\s+{NUMBER}\s+{NUMBER}\s+({NUMBER})\s+{NUMBER}%\s+{NUMBER}%\s+{NUMBER}\s+\d+\s+(.*?)\s*$"
)
_FAILURE = re.compile(
    r"Benchmarking failed|Failed to apply|failed to prepare|Segmentation fault|Aborted|CANNOT LINK|Run failed"
    r"|failed to invoke|Failed to (?:load|compile) model|Disallowed CPU fallback"
)
# TF <= 2.1: "Average inference timings in us: Warmup: 26016.2, Init: 24012, Inference: 25424.8" (1.x: "no stats:")
_OLD_TIMINGS = re.compile(
    rf"Average inference timings in us: Warmup: ({NUMBER}), Init: ({NUMBER}), (?:Inference|no stats): ({NUMBER})"
)
# tools/delegates/delegate_provider.cc + benchmark_tflite_model.cc: which delegate the graph really runs on.
_APPLIED = re.compile(r"Explicitly applied (\w+) delegate, and the model graph will be (completely|partially) executed")
_NOT_APPLIED = re.compile(r"Though (\w+) delegate is explicitly applied, the model graph will not be executed")
_UNSUPPORTED_PLATFORM = re.compile(r"(\w+) acceleration is unsupported on this platform")
_NO_OPS = re.compile(r"No operations will run on the (\w+)")
_UNCONSUMED = re.compile(r"Unconsumed cmdline flags:\s*(.*)$")
# The CompiledModel benchmark's results block (values in ms).
_LRT_VALUE = re.compile(
    rf"^\s*(Model initialization|Warmup \(first\)|Warmup \(avg\)|Inference \(avg\)|Inference \(min\)|"
    rf"Inference \(max\)|Inference \(std\)|Init footprint|Overall footprint|Peak memory):\s+({NUMBER})"
    rf"(?: (?:ms|MB))?(?: \((\d+) runs\))?"
)
# The tool's log prefixes (tools/logging.h: INFO/WARN/ERROR/FATAL; TFLite's minimal logger and LiteRT's:
# INFO/WARNING/ERROR/VERBOSE, LiteRT adding "[file:line] "), and logcat's "I tflite  : ".
_PREFIX = re.compile(r"^\s*(?:(?:INFO|WARN|WARNING|ERROR|FATAL|VERBOSE|DEBUG): (?:\[[\w.]+:\d+\] ?)?|[IWEFV]/?tflite\s*: )")
_SEVERITY = re.compile(r"^\s*(?:(INFO|WARN|WARNING|ERROR|FATAL|VERBOSE|DEBUG): |([IWEFV])/?tflite\s*: )")
# Where a delegate's own kernel names say that it took nodes (logcat excerpts lack the INFO lines).
_KERNEL_OF = {"GPU": "TfLiteGpuDelegate", "NNAPI": "TfLiteNnapiDelegate", "XNNPACK": "TfLiteXNNPackDelegate"}


class BenchmarkOutputError(FacesegError, ValueError):
    """The text holds no benchmark_model timing line (the run failed or this is not its output)."""


@dataclass
class OpTypeStat:
    """One node type of the timed runs' op profile: how many nodes, their summed average time."""

    node_type: str
    count: int
    avg_ms: float
    delegated: bool


@dataclass
class DelegatePartition:
    delegate: str
    replaced: int
    total: int | None
    partitions: int


@dataclass
class BenchmarkModelResult:
    """Everything found in one run's output; times in microseconds, memory in MB."""

    init_us: float | None = None
    first_inference_us: float | None = None
    warmup_avg_us: float | None = None
    inference_avg_us: float | None = None
    # From the timed run's "count=..." line (median/p5/p95 only in newer builds).
    runs: int | None = None
    inference_std_us: float | None = None
    inference_min_us: float | None = None
    inference_max_us: float | None = None
    inference_median_us: float | None = None
    inference_p95_us: float | None = None
    session_init_ms: float | None = None
    model_size_mb: float | None = None
    memory_init_mb: float | None = None
    memory_overall_mb: float | None = None
    peak_memory_mb: float | None = None
    delegations: list[DelegatePartition] = field(default_factory=list)
    unsupported_ops: list[str] = field(default_factory=list)  # "GATHER_ND: Operation is not supported."
    delegate_notes: list[str] = field(default_factory=list)  # e.g. NNAPI applied but graph not executed by it
    op_profile: list[OpTypeStat] = field(default_factory=list)  # timed runs, by node type (--enable_op_profiling)
    errors: list[str] = field(default_factory=list)  # ERROR:/FATAL: lines and known failure lines
    warnings: list[str] = field(default_factory=list)  # WARN:/WARNING: lines
    unconsumed_flags: list[str] = field(default_factory=list)  # flags the binary ignored
    applied: dict[str, str] = field(default_factory=dict)  # "GPU" -> "completely" | "partially" | "not"
    unsupported_platform: list[str] = field(default_factory=list)  # delegates that could not be created ("GPU")
    benchmarking_failed: bool = False  # "Benchmarking failed." seen (the tool exits 1)
    binary: str = "tflite"  # "litert" when the output is the CompiledModel benchmark's
    peak_memory_from_compiled_model: bool = False

    @property
    def ok(self) -> bool:
        """Timings were printed and the tool did not say it failed."""
        return self.has_timings and not self.benchmarking_failed

    @property
    def has_timings(self) -> bool:
        return self.inference_avg_us is not None

    def delegation(self, delegate: str) -> str:
        """How much of the graph ran on `delegate` ("GPU", "NNAPI", "XNNPACK"): completely | partially | not | unknown.

        "not" also when the delegate could not be created (the tool then ran on CPU, exit 0); the
        "Replacing N out of M node(s) with delegate (TfLite...Delegate)" line counts as evidence where
        the INFO line is missing (logcat excerpts keep only the tflite tag)."""
        name = delegate.upper()
        if name in self.unsupported_platform:
            return "not"
        if name in self.applied:
            return self.applied[name]
        kernel = _KERNEL_OF.get(name)
        for d in self.delegations:
            if kernel and d.delegate.startswith(kernel):
                return "completely" if d.total is not None and d.replaced == d.total else "partially"
        return "unknown"

    @property
    def not_delegated(self) -> list[OpTypeStat]:
        """Op types that ran as plain CPU kernels outside every delegate (needs --enable_op_profiling)."""
        return [s for s in self.op_profile if not s.delegated]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["ok"] = self.ok
        d["not_delegated"] = [asdict(s) for s in self.not_delegated]
        return d


def _strip_prefix(line: str) -> str:
    return _PREFIX.sub("", line.rstrip("\r"))


def _is_delegated(node_type: str, name: str) -> bool:
    # A delegate partition is one node of type "TfLite...Delegate..." (older builds); newer builds
    # profile XNNPACK's own ops, named "Delegate/<op>:<i>".
    return "delegate" in node_type.lower() or name.startswith("Delegate/")


def _summarise_ops(rows: list[tuple[str, float, bool]]) -> list[OpTypeStat]:
    by_type: dict[tuple[str, bool], OpTypeStat] = {}
    for node_type, avg_ms, delegated in rows:
        stat = by_type.setdefault((node_type, delegated), OpTypeStat(node_type, 0, 0.0, delegated))
        stat.count += 1
        stat.avg_ms += avg_ms
    return sorted(by_type.values(), key=lambda s: -s.avg_ms)


def parse_benchmark_output(text: str) -> BenchmarkModelResult:
    """Parse one run's combined stdout/stderr. Never raises: what is missing stays None/empty."""
    result = BenchmarkModelResult()
    timed_stats: dict[str, float] | None = None
    in_unsupported = False
    profile_phase = False  # inside "Operator-wise Profiling Info for Regular Benchmark Runs"
    in_run_order = False
    op_rows: list[tuple[str, float, bool]] = []
    for raw in text.splitlines():
        line = _strip_prefix(raw)
        sev = _SEVERITY.match(raw)
        level = (sev.group(1) or sev.group(2)) if sev else ""
        is_error = level in ("ERROR", "FATAL", "E", "F")
        if "Benchmarking failed" in line:
            result.benchmarking_failed = True
        if level in ("WARN", "WARNING", "W") and line.strip():
            result.warnings.append(line.strip())
        if "BENCHMARK RESULTS" in line:
            result.binary = "litert"
        if m := _TIMINGS.search(line):
            result.init_us, result.first_inference_us, result.warmup_avg_us, result.inference_avg_us = map(
                float, m.groups()
            )
        elif m := _OLD_TIMINGS.search(line):
            result.warmup_avg_us, result.init_us, result.inference_avg_us = map(float, m.groups())
        elif m := _LRT_VALUE.match(line):
            _read_compiled_model_value(result, m.group(1), float(m.group(2)), m.group(3))
        elif m := _UNCONSUMED.search(line):
            result.unconsumed_flags += m.group(1).split()
        elif m := _UNSUPPORTED_PLATFORM.search(line):
            result.unsupported_platform.append(m.group(1).upper())
        elif m := _APPLIED.search(line):
            result.applied[m.group(1).upper()] = m.group(2)
            result.delegate_notes.append(line.strip())
        elif m := _NOT_APPLIED.search(line):
            result.applied[m.group(1).upper()] = "not"
            result.delegate_notes.append(line.strip())
        elif m := _NO_OPS.search(line):  # the GPU delegate refused every op
            result.applied.setdefault(m.group(1).upper(), "not")
            result.delegate_notes.append(line.strip())
        elif m := _MEMORY_DELTA.search(line):
            result.memory_init_mb, result.memory_overall_mb = map(float, m.groups())
        elif m := _PEAK_MEMORY.search(line):
            result.peak_memory_mb = float(m.group(1))
        elif m := _MODEL_SIZE.search(line):
            result.model_size_mb = float(m.group(1))
        elif m := _SESSION.search(line):
            result.session_init_ms = float(m.group(1))
        elif m := _REPLACING.search(line):
            replaced, total, delegate, parts = m.groups()
            result.delegations.append(
                DelegatePartition(delegate, int(replaced), int(total) if total else None, int(parts))
            )
            in_unsupported = False
        elif _UNSUPPORTED_HEADER.search(line):
            in_unsupported = True
        elif _OPS_SPLIT.search(line) or _DELEGATE_NOTE.search(line):
            result.delegate_notes.append(line.strip())
            in_unsupported = False
        elif in_unsupported and (m := _UNSUPPORTED_OP.match(line)):
            result.unsupported_ops.append(f"{m.group(1)}: {m.group(2).strip()}")
        elif "Operator-wise Profiling Info for Regular Benchmark Runs" in line:
            profile_phase, in_unsupported = True, False
        elif profile_phase and "Run Order" in line:
            in_run_order = True
        elif in_run_order and (m := _RUN_ORDER_ROW.match(line)) and "[node type]" not in line:
            node_type, avg_ms, name = m.group(1).strip(), float(m.group(2)), m.group(3)
            op_rows.append((node_type, avg_ms, _is_delegated(node_type, name)))
        elif in_run_order and "[node type]" in line:
            pass
        elif line.lstrip().startswith(("Timings (microseconds):", "Memory (bytes):")):
            pass  # the op profiler's own statistics, not the benchmark's
        elif m := _STATS.search(line):
            # Stat::OutputToStream: warm-up first, then the timed runs; the last line is the timed one.
            # When every run took the same time it prints only "count=N curr=X(all same)": avg is curr.
            fields = {k: float(v) for k, v in _STAT_FIELD.findall(m.group(2))}
            if "avg" not in fields and "curr" in fields:
                fields.update(avg=fields["curr"], min=fields["curr"], max=fields["curr"], std=0.0)
            timed_stats = {"count": float(m.group(1)), **fields}
        elif line.strip() and (is_error or _FAILURE.search(line)):
            result.errors.append(line.strip())
        if in_run_order and not line.strip():
            in_run_order = profile_phase = False  # one Run Order table per phase; later tables repeat rows
        if in_unsupported and not line.strip():
            in_unsupported = False
    result.op_profile = _summarise_ops(op_rows)
    if timed_stats:  # the same Stat as the summary line, with the count the tool really made
        result.runs = int(timed_stats["count"])
        result.inference_std_us = timed_stats.get("std")
        result.inference_min_us = timed_stats.get("min")
        result.inference_max_us = timed_stats.get("max")
        result.inference_median_us = timed_stats.get("median")
        result.inference_p95_us = timed_stats.get("p95")
    return result


def _read_compiled_model_value(result: BenchmarkModelResult, name: str, value: float, runs: str | None) -> None:
    us = value * 1e3
    result.binary = "litert"
    if name == "Model initialization":
        result.init_us = us
    elif name == "Warmup (first)":
        result.first_inference_us = us
    elif name == "Warmup (avg)":
        result.warmup_avg_us = us
    elif name == "Inference (avg)":
        result.inference_avg_us, result.runs = us, int(runs) if runs else None
    elif name == "Inference (min)":
        result.inference_min_us = us
    elif name == "Inference (max)":
        result.inference_max_us = us
    elif name == "Inference (std)":
        result.inference_std_us = us
    elif name == "Init footprint":
        result.memory_init_mb = value
    elif name == "Overall footprint":
        result.memory_overall_mb = value
    elif name == "Peak memory":
        result.peak_memory_mb = value


def require_timings(result: BenchmarkModelResult, what: str = "benchmark_model") -> BenchmarkModelResult:
    """The result, or BenchmarkOutputError naming the tool's own error lines."""
    if not result.ok:
        detail = "; ".join(result.errors[-3:]) or "no 'Inference timings in us' line in its output"
        raise BenchmarkOutputError(f"{what} gave no timings: {detail}")
    return result
