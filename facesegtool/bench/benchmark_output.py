"""Read what TFLite's `benchmark_model` prints into numbers.

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
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

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
_FAILURE = re.compile(r"Benchmarking failed|Failed to apply|failed to prepare|Segmentation fault|Aborted|CANNOT LINK")
# Log prefixes seen in the wild, stripped before matching line starts.
_PREFIX = re.compile(r"^\s*(?:(?:INFO|WARNING|ERROR|VERBOSE): |[IWEV]/?tflite\s*: )")


class BenchmarkOutputError(ValueError):
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
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.inference_avg_us is not None

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
        is_error = raw.lstrip().startswith(("ERROR", "E tflite", "E/tflite"))
        if m := _TIMINGS.search(line):
            result.init_us, result.first_inference_us, result.warmup_avg_us, result.inference_avg_us = map(
                float, m.groups()
            )
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
            fields = {k: float(v) for k, v in _STAT_FIELD.findall(m.group(2))}
            if "avg" in fields:  # the warm-up line may hold only curr=; the last line with avg= is the timed run
                timed_stats = {"count": float(m.group(1)), **fields}
        elif line.strip() and (is_error or _FAILURE.search(line)):
            result.errors.append(line.strip())
        if in_run_order and not line.strip():
            in_run_order = profile_phase = False  # one Run Order table per phase; later tables repeat rows
        if in_unsupported and not line.strip():
            in_unsupported = False
    result.op_profile = _summarise_ops(op_rows)
    if timed_stats:
        result.runs = int(timed_stats["count"])
        result.inference_std_us = timed_stats.get("std")
        result.inference_min_us = timed_stats.get("min")
        result.inference_max_us = timed_stats.get("max")
        result.inference_median_us = timed_stats.get("median")
        result.inference_p95_us = timed_stats.get("p95")
    return result


def require_timings(result: BenchmarkModelResult, what: str = "benchmark_model") -> BenchmarkModelResult:
    """The result, or BenchmarkOutputError naming the tool's own error lines."""
    if not result.ok:
        detail = "; ".join(result.errors[-3:]) or "no 'Inference timings in us' line in its output"
        raise BenchmarkOutputError(f"{what} gave no timings: {detail}")
    return result
