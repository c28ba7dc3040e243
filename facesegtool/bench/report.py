"""The bench report, shared by the host and the adb path: one JSON, one table, one bar chart.

    report = new_report("host", device={...}, model={...}, runs=50, warmup=5)
    report["results"].append(row)          # one row per runtime/variant x delegate x threads
    save_report(report, out_dir)           # bench_<kind>.json (atomic), rewritten after every row
    print(format_table(report)); plot_report(report, out_dir / "bench_host.png")

A row (every time in ms; None where a runtime does not tell):
    {"label": "tflite int8", "runtime": "tflite", "variant": "int8", "delegate": "xnnpack",
     "file": "model_int8.tflite", "threads": 2, "status": "ok" | "failed", "error": None,
     "median_ms", "p90_ms", "mean_ms", "min_ms", "first_ms", "init_ms", "size_mb", "memory_mb",
     "is_reference": bool, "vs_reference": median / the reference's median at the same threads,
     "gflops": achieved GFLOP/s, "peak_fraction": gflops / the CPU's measured fp32 peak, "details": {...}}
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from ..atomic import atomic_path, write_bytes_atomic

FORMAT = "facesegtool-bench"
VERSION = 1


def new_report(kind: str, device: dict, model: dict, runs: int, warmup: int, **extra) -> dict:
    return {
        "format": FORMAT,
        "version": VERSION,
        "kind": kind,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "device": device,
        "model": model,
        "runs": runs,
        "warmup": warmup,
        **extra,
        "results": [],
        "notes": [],
        "complete": False,
        "error": None,
    }


def row_time(row: dict) -> float | None:
    """The headline latency of a row: the median when known, else the mean (benchmark_model's avg)."""
    return row.get("median_ms") if row.get("median_ms") is not None else row.get("mean_ms")


def add_ratios(report: dict) -> None:
    """vs_reference for every row: its latency over the reference row's at the same thread count."""
    refs = {r["threads"]: row_time(r) for r in report["results"] if r.get("is_reference") and r["status"] == "ok"}
    for r in report["results"]:
        ref, t = refs.get(r["threads"]), row_time(r)
        r["vs_reference"] = float(f"{t / ref:.4g}") if ref and t is not None and r["status"] == "ok" else None


def report_stem(report: dict) -> str:
    serial = report["device"].get("serial")
    return f"bench_{report['kind']}" + (f"_{_safe(serial)}" if serial else "")


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def save_report(report: dict, out_dir: str | Path) -> Path:
    """Write <out_dir>/bench_<kind>[_<serial>].json atomically; called after every measured row."""
    add_ratios(report)
    path = Path(out_dir) / f"{report_stem(report)}.json"
    write_bytes_atomic(path, (json.dumps(report, indent=2) + "\n").encode())
    return path


def failures(report: dict, out_dir: str | Path) -> list[str]:
    """What makes a finished bench fail (exit status 2), one message each; none when it passed.

    On the host every model must run; on a phone a delegate may refuse a model, so only a bench
    where no benchmark_model run produced timings fails.
    """
    if report["kind"] == "host":
        failed = {r["file"]: r["error"] for r in report["results"] if r["status"] != "ok"}  # one line per file
        return [f"{file} could not be measured ({error}); re-export it with `facesegtool export`"
                for file, error in failed.items()]
    if any(r["status"] != "failed" for r in report["results"]):
        return []
    first = next(iter(report["results"]), None)
    why = f"{first['file']} / {first['delegate']}: {first['error']}" if first else "no runs"
    raw = Path(out_dir) / f"{report_stem(report)}_raw"
    return [f"no benchmark_model run produced timings ({why}); read the raw outputs in {raw}/ "
            "and check the binary (--benchmark-binary) and the models"]


def load_report(path: str | Path) -> dict:
    report = json.loads(Path(path).read_text())
    if report.get("format") != FORMAT:
        raise ValueError(f"{path}: not a facesegtool bench report")
    return report


def describe_device(report: dict) -> str:
    d = report["device"]
    if report["kind"] == "adb":
        return (
            f"{d.get('model', '?')} ({d.get('serial', '?')}), Android {d.get('android', '?')} "
            f"(SDK {d.get('sdk', '?')}), {d.get('abi', '?')}, "
            + (f"{d['benchmark_kind']} benchmark_model" if d.get("benchmark_kind") else "benchmark_model")
        )
    load = d.get("load_average_1min")
    return (f"{d.get('cpu', '?')}, {d.get('usable_cpus', '?')} usable CPUs, {d.get('system', '?')}"
            + (f", load avg {load} at start" if load is not None else ""))


def describe_model(report: dict) -> str:
    m = report["model"]
    size = m.get("input_size")
    parts = [str(m.get("name", "?"))]
    if size:
        parts.append(f"{size[0]}x{size[1]} input")
    if m.get("macs"):
        parts.append(f"{m['macs'] / 1e9:.3f} GMACs ({m.get('macs_counted', 'conv/linear')})")
    return ", ".join(parts)


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


def _table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown pipe table, padded so that it also reads well in a terminal."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"

    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def format_table(report: dict) -> str:
    """The results as a table, with the device and model above it and the notes below."""
    add_ratios(report)
    host = report["kind"] == "host"
    ref = report.get("reference") or next((r["label"] for r in report["results"] if r.get("is_reference")), "ref")
    if host:
        header = ["runtime", "threads", "median ms", "p90 ms", "first ms", "init ms", "size MB",
                  f"x {ref}", "GFLOP/s", "% peak"]
    else:
        # benchmark_model's memory "MB" are MiB of max RSS: the delta from the tool's start, and the peak.
        header = ["model", "delegate", "threads", "runs", "avg ms", "median ms", "p95 ms", "first ms", "init ms",
                  "RSS delta MiB", "peak MiB", f"x {ref}", "status"]
    rows = []
    for r in sorted(report["results"], key=lambda r: (r["threads"], r.get("order", 0))):
        if host:
            rows.append([
                r["label"], r["threads"], _fmt(r.get("median_ms")), _fmt(r.get("p90_ms")), _fmt(r.get("first_ms")),
                _fmt(r.get("init_ms"), ".1f"), _fmt(r.get("size_mb")), _fmt(r.get("vs_reference")),
                _fmt(r.get("gflops"), ".1f"),
                _fmt(None if r.get("peak_fraction") is None else 100 * r["peak_fraction"], ".1f"),
            ] if r["status"] == "ok" else [r["label"], r["threads"], "failed: " + str(r.get("error"))] + [""] * 7)
        else:
            rows.append([
                r["label"], adb_delegate_label(r), r["threads"], r.get("runs") if r.get("runs") is not None else "-",
                _fmt(r.get("mean_ms")), _fmt(r.get("median_ms")), _fmt(r.get("p95_ms")), _fmt(r.get("first_ms")),
                _fmt(r.get("init_ms"), ".1f"), _fmt(r.get("mem_delta_mib", r.get("memory_mb")), ".1f"),
                _fmt(r.get("peak_mem_mib"), ".1f"), _fmt(r.get("vs_reference")), adb_status_label(r),
            ])
    lines = [f"device: {describe_device(report)}", f"model:  {describe_model(report)}"]
    peaks = report.get("cpu_peak_gflops")
    if peaks:
        by = report.get("cpu_peak_by", {})
        lines.append("CPU fp32 matmul peak (measured): " + ", ".join(
            f"{t} thr {g:.1f} GFLOP/s" + (f" ({by[t]})" if by.get(t) else "") for t, g in peaks.items()))
    lines += ["", _table(header, rows)]
    # Per-run findings, one line per model/delegate when they repeat over thread counts.
    findings: dict[tuple[str, str], list[int]] = {}
    for r in report["results"]:
        for message in _findings(r):
            findings.setdefault((f"{r['label']} / {r.get('delegate', '')}", message), []).append(r["threads"])
    for (where, message), threads in findings.items():
        lines.append(f"{message[0]} {where} ({','.join(map(str, threads))} thr): {message[1:]}")
    lines += [f"- {n}" for n in report.get("notes", [])]
    if report.get("error"):
        lines.append(f"! stopped early: {report['error']}")
    return "\n".join(lines)


def adb_delegate_label(row: dict) -> str:
    """The delegate as asked, with the GPU's arithmetic (fp16 by the tool's default)."""
    d = row.get("delegate", "-")
    if d == "gpu":
        return "gpu (fp16)"
    return d


def adb_status_label(row: dict) -> str:
    if row["status"] == "ok":
        return "ok"
    if row["status"] == "fallback":
        return "FALLBACK: ran on CPU"
    return "FAILED"


def _findings(row: dict) -> list[str]:
    """Lines worth reading under the table; the first character is the bullet ("!" for a failure)."""
    details = row.get("details") or {}
    out = []
    if row["status"] == "failed":
        out.append(f"!failed: {row.get('error')}")
    elif row["status"] == "fallback":
        out.append(f"!fallback: {row.get('error')}")
    if row.get("runs") and row.get("runs_asked") and row["runs"] != row["runs_asked"]:
        out.append(f"-{row['runs']} timed runs made ({row['runs_asked']} asked; --min_secs/--max_secs decide)")
    parts = [f"{d['delegate']} took {d['replaced']}" + (f"/{d['total']}" if d["total"] else "")
             + f" nodes ({d['partitions']} partitions)" for d in details.get("delegations", [])]
    refused = list(dict.fromkeys(op.split(":")[0] for op in details.get("unsupported_ops", [])))
    if refused:
        parts.append("refused " + ", ".join(refused))
    if details.get("not_delegated"):
        parts.append("ops not delegated: " + ", ".join(f"{o['node_type']} x{o['count']}" for o in details["not_delegated"]))
    if parts and (refused or details.get("not_delegated") or any(
            d["total"] and d["replaced"] < d["total"] for d in details.get("delegations", []))):
        out.append("-" + "; ".join(parts))
    return out


def plot_report(report: dict, path: str | Path) -> Path:
    """Horizontal bars: latency per runtime/variant, one bar per thread count; written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    add_ratios(report)
    path = Path(path)
    adb = report["kind"] == "adb"

    def name(r: dict) -> str:
        if not adb:
            return r["label"]
        tag = {"fallback": " [FALLBACK: CPU]", "failed": " [FAILED]"}.get(r["status"], "")
        return f"{r['label']} / {adb_delegate_label(r)}{tag}"

    # On the phone a fallback is drawn (hatched: it measured the CPU) and a failed run named (no bar).
    ok = [r for r in report["results"] if (r["status"] == "ok" or (adb and r["status"] == "fallback"))
          and row_time(r) is not None]
    failed = [r for r in report["results"] if adb and r["status"] == "failed"]
    labels = list(dict.fromkeys(name(r) for r in ok + failed))
    threads = sorted({r["threads"] for r in ok})
    fig, ax = plt.subplots(figsize=(9, 1.0 + 0.55 * max(1, len(labels)) * max(1, len(threads)) ** 0.5))
    height = 0.8 / max(1, len(threads))
    y = np.arange(len(labels))
    for i, t in enumerate(threads):
        values, errs = np.full(len(labels), np.nan), np.zeros((2, len(labels)))
        ratios = [None] * len(labels)
        for r in ok:
            if r["threads"] != t:
                continue
            j = labels.index(name(r))
            values[j] = row_time(r)
            ratios[j] = r.get("vs_reference")
            upper = r.get("p90_ms") or r.get("p95_ms")
            if upper is not None:
                errs[1, j] = max(0.0, upper - values[j])
        bars = ax.barh(y + (i - (len(threads) - 1) / 2) * height, values, height, xerr=errs.tolist(),
                       label=f"{t} thread{'s' if t > 1 else ''}", capsize=2)
        for bar, label in zip(bars, labels):
            if "[FALLBACK" in label:
                bar.set_hatch("///")
                bar.set_alpha(0.5)
        for bar, v, ratio in zip(bars, values, ratios):
            if np.isfinite(v):
                text = f" {v:.1f}" + (f"  ({ratio:.2f}x)" if ratio is not None else "")
                ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, text, va="center", fontsize=7,
                        bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 0.5})
    for r in failed:
        ax.text(0, labels.index(name(r)), " failed: " + str(r.get("error"))[:70], va="center", fontsize=7, color="red")
    # Scale to the bars, not to a stray slow run's whisker (those are clipped at the edge).
    top = max((row_time(r) for r in ok), default=1.0)
    ax.set_xlim(0, top * 1.45)
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    what = "median (whisker: p90)" if report["kind"] == "host" else "median, else average (whisker: p95, when printed)"
    ax.set_xlabel(f"latency per image, ms — {what}; (N x) = vs {report.get('reference') or 'reference'}")
    ax.set_title(f"{describe_model(report)}\n{describe_device(report)}", fontsize=9)
    if threads:
        ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=120)
    finally:
        plt.close(fig)
    return path
