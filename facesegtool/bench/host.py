"""Latency on this machine: PyTorch eager, ONNX Runtime and every TFLite variant, same model, same input size.

    report = run_host_bench(checkpoint=None, export_dir="exports/", threads=(1, 2), runs=50, warmup=5,
                            out_dir="bench/")
    print(format_table(report))

For each thread count, each runtime is loaded (init time), called once (first call), warmed up,
then timed `runs` times: median, p90, mean. Each latency is also put against PyTorch at the same
thread count, and against the CPU's fp32 peak: the model's multiply-adds are counted once
(Conv/ConvTranspose/Linear, by forward hooks) and the peak is a large matmul timed on the same
threads. Segmentation nets are memory-bound, so a few % of peak is normal; the interesting part
is how the runtimes compare.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

from ..atomic import check_writable_dir
from ..checkpoint import DEFAULT_EXPORT_DIR
from ..contract import Contract, ContractError, Normalization, exported_from, read_contract
from ..errors import FacesegError
from ..export.variants import variant_rank
from ..model_source import LoadedModel, load_exported_source
from ..threads import check_threads
from ..tflite_runner import TFLiteModel
from .report import new_report, plot_report, report_stem, save_report


class BenchError(FacesegError, ValueError):
    """Bad bench input (missing files, models of different size or origin); the message says what to do."""


# --- measuring --------------------------------------------------------------------------------


def time_calls(call: Callable[[], object], runs: int, warmup: int) -> dict:
    """first_ms (the first call, part of the warm-up), then median/p90/mean/min over `runs` timed calls."""
    if runs < 1:
        raise BenchError("--runs must be at least 1")
    t0 = time.perf_counter()
    call()
    first = time.perf_counter() - t0
    for _ in range(max(0, warmup - 1)):
        call()
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        call()
        times[i] = time.perf_counter() - t0
    ms = times * 1e3
    return {
        "first_ms": round(first * 1e3, 3),
        "median_ms": round(float(np.median(ms)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "min_ms": round(float(ms.min()), 3),
    }


def count_macs(model: nn.Module, size: tuple[int, int]) -> int:
    """Multiply-accumulates of one 1 x 3 x H x W forward pass in Conv, ConvTranspose and Linear layers.

    The rest (BN folded at export, activations, resizes, adds) is a small share of the arithmetic
    and mostly memory traffic, so it is left out; the report says what was counted.
    """
    total = 0

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.modules.conv._ConvTransposeNd):
            # every input element meets out_channels/groups kernels
            total += inputs[0].numel() * (module.out_channels // module.groups) * int(np.prod(module.kernel_size))
        elif isinstance(module, nn.modules.conv._ConvNd):
            total += output.numel() * (module.in_channels // module.groups) * int(np.prod(module.kernel_size))
        elif isinstance(module, nn.Linear):
            total += output.numel() * module.in_features

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear))
    ]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, *size))
    finally:
        for h in handles:
            h.remove()
    return total


def _best_gflops(call: Callable[[], object], n: int, min_seconds: float) -> float:
    call()
    best, reps, start = 0.0, 0, time.perf_counter()
    while reps < 3 or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        call()
        best = max(best, 2 * n**3 / (time.perf_counter() - t0) / 1e9)
        reps += 1
    return best


def _onnx_matmul(n: int) -> bytes:
    from onnx import TensorProto, helper

    io = [helper.make_tensor_value_info(name, TensorProto.FLOAT, [n, n]) for name in ("a", "b", "c")]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul", io[:2], io[2:])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def cpu_peak_gflops(threads: int, sizes: Sequence[int] = (256, 512, 1024), min_seconds: float = 0.15) -> dict:
    """A rough fp32 peak: the best GFLOP/s of n x n matmuls on `threads` threads.

    Timed with PyTorch's BLAS and ONNX Runtime's MLAS (whichever is faster: on some CPUs one of
    them misses the widest vector units) at a few sizes, since the best one depends on the caches.
    Still a lower bound of the hardware's peak. Returns {"gflops", "by"}.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    best = {"gflops": 0.0, "by": None}
    try:
        gen = torch.Generator().manual_seed(0)
        for n in sizes:
            a, b = torch.randn(n, n, generator=gen), torch.randn(n, n, generator=gen)
            out = torch.empty(n, n)
            g = _best_gflops(lambda: torch.mm(a, b, out=out), n, min_seconds)
            if g > best["gflops"]:
                best = {"gflops": g, "by": f"torch.mm {n}x{n}"}
            try:
                import onnxruntime as ort

                opts = ort.SessionOptions()
                opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
                session = ort.InferenceSession(_onnx_matmul(n), opts, providers=["CPUExecutionProvider"])
                feed = {"a": a.numpy(), "b": b.numpy()}
                g = _best_gflops(lambda: session.run(None, feed), n, min_seconds)
                if g > best["gflops"]:
                    best = {"gflops": g, "by": f"onnxruntime MatMul {n}x{n}"}
            except ImportError:
                pass
        return best
    finally:
        torch.set_num_threads(previous)


def host_description() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("torch", "onnxruntime", "ai-edge-litert", "numpy"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "system": platform.platform(terse=True),
        "python": platform.python_version(),
        "versions": versions,
        # Other processes skew latency; the 1-minute load average at the start says how busy the machine was.
        "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


# --- which files ------------------------------------------------------------------------------


def collect_models(export_dir: str | Path | None, models: Sequence[str | Path] = ()) -> tuple[list[Path], list[Path]]:
    """(.tflite files, .onnx files) from an export folder and/or explicit files, in variant order."""
    files: list[Path] = []
    if export_dir is not None:
        export_dir = Path(export_dir)
        if not export_dir.is_dir():
            raise BenchError(f"--export-dir {export_dir}: no such folder (run `facesegtool export` first)")
        files += sorted(export_dir.glob("*.tflite")) + sorted(export_dir.glob("*.onnx"))
        if not files:
            raise BenchError(f"--export-dir {export_dir}: no .tflite or .onnx files in it")
    for f in models:
        f = Path(f)
        if not f.is_file():
            raise BenchError(f"--models {f}: no such file")
        if f.suffix not in (".tflite", ".onnx"):
            raise BenchError(f"--models {f}: expected a .tflite or .onnx file")
        files.append(f)
    files = list(dict.fromkeys(p.resolve() for p in files))
    tflites = [p for p in files if p.suffix == ".tflite"]
    onnxs = [p for p in files if p.suffix == ".onnx"]

    return tflites, onnxs


def in_variant_order(variants: dict[Path, str | None]) -> list[Path]:
    """The .tflite files (each with its recorded variant, None when unknown) in the canonical variant order."""
    return sorted(variants, key=lambda p: (variant_rank(variants[p]), p.name))


def default_export_dir(export_dir: str | Path | None, models: Sequence[str | Path],
                       checkpoint: str | Path | None) -> tuple[str | Path | None, bool]:
    """(the folder to bench, whether it is the default): with no models named and the shipped model,
    its exports in exports/default, where `facesegtool export` (and `make export`) put them."""
    if export_dir is None and not models and checkpoint is None and DEFAULT_EXPORT_DIR.is_dir() \
            and any(DEFAULT_EXPORT_DIR.glob("*.tflite")):
        return DEFAULT_EXPORT_DIR, True
    return export_dir, False


def _input_size(contracts: dict[Path, Contract], ckpt: dict) -> tuple[int, int]:
    """The one input size every model is measured at: the exports' (they must agree), else the checkpoint's."""
    sizes = {p.name: contract.size for p, contract in contracts.items()}
    if len(set(sizes.values())) > 1:
        listing = ", ".join(f"{n}: {h}x{w}" for n, (h, w) in sizes.items())
        raise BenchError(f"the .tflite files take different input sizes ({listing}); bench one export at a time")
    if sizes:
        return next(iter(sizes.values()))
    s = int(ckpt["input"]["size"])
    return s, s


def _check_same_model(contracts: dict[Path, Contract], source: LoadedModel) -> None:
    for p, contract in contracts.items():
        if not exported_from(contract, source):
            raise BenchError(
                f"{p.name} was exported from a {contract.model!r} model ({contract.source.ref or 'another file'}) "
                f"but {source.ref or source.path} is {source.name!r}: pass the model it was exported from with --model"
            )


def _onnx_macs(path: Path, size: tuple[int, int]) -> int:
    """Conv multiply-adds of an ONNX graph, from its weights and inferred output shapes (ONNX sources)."""
    import onnx
    from onnx import numpy_helper, shape_inference

    proto = onnx.load(str(path))
    graph_input = next(i for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer})
    for dim, value in zip(graph_input.type.tensor_type.shape.dim, (1, 3, *size)):
        dim.ClearField("dim_param")
        dim.dim_value = value
    inferred = shape_inference.infer_shapes(proto)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.graph.value_info, *inferred.graph.output]}
    weights = {t.name: numpy_helper.to_array(t).shape for t in proto.graph.initializer}
    total = 0
    for node in proto.graph.node:
        if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in weights and node.output[0] in shapes:
            w = weights[node.input[1]]
            total += int(np.prod(shapes[node.output[0]])) * int(np.prod(w[1:]))
    return total


# --- the run ------------------------------------------------------------------------------------


def run_host_bench(
    checkpoint: str | Path | None = None,
    export_dir: str | Path | None = None,
    models: Sequence[str | Path] = (),
    threads: Sequence[int] = (1, 2),
    runs: int = 30,
    warmup: int = 5,
    out_dir: str | Path | None = None,
    progress: bool = True,
    spec: str | Path | dict | None = None,
    weights: str | Path | None = None,
) -> dict:
    """Measure every runtime at every thread count; returns the report (see report.py).

    checkpoint: any model model_source reads (default: the one the exports record, else the shipped
    model); its reference runtime is PyTorch, or ONNX Runtime for an .onnx model.

    With out_dir, bench_host.json is rewritten after each row and bench_host.png drawn at the end.
    """
    threads = [int(t) for t in threads]
    if not threads or min(threads) < 1:
        raise BenchError("--threads must list positive thread counts, e.g. 1,2")
    try:  # torch segfaults on absurd counts: refuse them before measuring anything
        [check_threads(t) for t in threads]
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    if runs < 1 or warmup < 0:
        raise BenchError("--runs must be >= 1 and --warmup >= 0")
    if out_dir is not None:
        check_writable_dir(out_dir, "--out")  # now, not after all the measuring
    export_dir, found_default = default_export_dir(export_dir, models, checkpoint)
    found, onnxs = collect_models(export_dir, models)
    contracts = {p: read_contract(p) for p in found}  # each sidecar read once, here
    tflites = in_variant_order({p: c.variant for p, c in contracts.items()})

    t0 = time.perf_counter()
    source = load_exported_source(checkpoint, [contracts[p].raw for p in tflites], spec=spec, weights=weights)
    torch_init_ms = (time.perf_counter() - t0) * 1e3
    model, ckpt, ckpt_path = source.net, source.ckpt, source.path
    _check_same_model(contracts, source)
    size = _input_size(contracts, ckpt)
    if source.format == "onnx" and not onnxs:
        onnxs = [source.path]  # the reference itself: its ONNX Runtime row is the one to compare against

    macs = count_macs(model, size) if source.format != "onnx" else _onnx_macs(source.path, size)
    params = sum(p.numel() for p in model.parameters()) if source.format != "onnx" else None
    report = new_report(
        "host",
        device=host_description(),
        model={
            "name": source.name,
            "checkpoint": str(ckpt_path),
            "source": source.describe(),
            "input_size": list(size),
            "params": params,
            "macs": macs,
            "macs_counted": "Conv/ConvTranspose/Linear multiply-adds, batch 1",
            "files": [str(p) for p in [*tflites, *onnxs]],
        },
        runs=runs,
        warmup=warmup,
        cpu_peak_gflops={},
        cpu_peak_by={},
        reference=source.reference,
    )
    usable = report["device"]["usable_cpus"] or 1
    if max(threads) > usable:
        report["notes"].append(f"{max(threads)} threads asked but only {usable} CPUs usable: those rows oversubscribe")
    if found_default:
        report["notes"].append(f"models from {export_dir} (the shipped model's exports; --export-dir or --models for others)")
    if not tflites and not onnxs:
        report["notes"].append(f"no exported models given (--export-dir/--models) nor found in {DEFAULT_EXPORT_DIR}: "
                               "PyTorch only; run `facesegtool export --quant all` first")
    report["notes"].append(
        "x pytorch = median / PyTorch median at the same threads (< 1 is faster); % peak = 2*MACs/median over "
        "the best fp32 matmul (PyTorch or ONNX Runtime) measured on as many threads: a rough bound; int8 "
        "kernels have a higher peak, so their % can exceed 100"
    )

    # Latency does not depend on the pixels (no data-dependent control flow), so a fixed random image will do;
    # it goes through each runtime's real input path (the sidecar's normalisation/quantization for TFLite).
    rgb = np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8)
    x = Normalization.of(ckpt["input"]).array(rgb)  # the reference's input (PyTorch, ONNX Runtime)
    x_nchw = np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    labels = {ckpt_path: "pytorch"}
    labels.update({p: "onnxruntime" if len(onnxs) == 1 else f"onnxruntime {p.stem}" for p in onnxs})
    variants = {p: contracts[p].variant for p in tflites}
    unique = len(set(variants.values())) == len(variants)
    labels.update({p: f"tflite {variants[p] if unique else p.stem}" for p in tflites})
    torch_rows = [] if source.format == "onnx" else [("pytorch", ckpt_path)]
    tasks = [(t, kind, path) for t in threads for kind, path in
             [*torch_rows, *[("onnxruntime", p) for p in onnxs], *[("tflite", p) for p in tflites]]]
    previous_threads = torch.get_num_threads()
    try:
        peaks: dict[int, float] = {}
        for t in threads:
            peak = cpu_peak_gflops(t)
            peaks[t] = peak["gflops"]
            report["cpu_peak_gflops"][str(t)] = round(peak["gflops"], 1)
            report["cpu_peak_by"][str(t)] = peak["by"]
        bar = tqdm(tasks, desc="bench host", unit="run", disable=not progress)
        for order, (t, kind, path) in enumerate(bar):
            bar.set_postfix_str(f"{path.name} x{t}")
            row = _measure(kind, path, labels[path], t, runs, warmup, model, torch_init_ms, x_nchw, rgb)
            if source.format == "onnx":  # no PyTorch here: ONNX Runtime on the model is the reference row
                row["is_reference"] = kind == "onnxruntime"
            row["order"] = order
            if row["status"] == "ok" and row["median_ms"]:
                row["gflops"] = round(2 * macs / (row["median_ms"] / 1e3) / 1e9, 2)
                row["peak_fraction"] = round(row["gflops"] / peaks[t], 4)
            report["results"].append(row)
            if out_dir is not None:
                save_report(report, out_dir)
        bar.close()
    finally:
        torch.set_num_threads(previous_threads)
    report["complete"] = True
    if out_dir is not None:
        save_report(report, out_dir)
        plot_report(report, Path(out_dir) / f"{report_stem(report)}.png")
    return report


def _measure(kind: str, path: Path, label: str, threads: int, runs: int, warmup: int, model: nn.Module,
             torch_init_ms: float, x_nchw: np.ndarray, rgb: np.ndarray) -> dict:
    row = {"label": label, "runtime": kind, "file": path.name, "threads": threads, "delegate": "cpu", "status": "ok", "error": None,
           "size_mb": round(path.stat().st_size / 1e6, 3), "is_reference": kind == "pytorch"}
    try:
        if kind == "pytorch":
            row["variant"] = "eager"
            torch.set_num_threads(threads)
            xt = torch.from_numpy(x_nchw)

            def call() -> object:
                with torch.no_grad():
                    return model(xt)

            row["init_ms"] = round(torch_init_ms, 2)  # checkpoint read + model build, once
        elif kind == "onnxruntime":
            import onnxruntime as ort

            row["variant"] = "fp32"
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            t0 = time.perf_counter()
            session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            row["init_ms"] = round((time.perf_counter() - t0) * 1e3, 2)
            inp = session.get_inputs()[0]
            if list(inp.shape) != list(x_nchw.shape):
                raise BenchError(f"ONNX input is {inp.shape}, the other models take {list(x_nchw.shape)}")
            feed = {inp.name: x_nchw}

            def call() -> object:
                return session.run(None, feed)

        else:
            t0 = time.perf_counter()
            tfl = TFLiteModel(path, num_threads=threads, check_sha256=False)
            row["init_ms"] = round((time.perf_counter() - t0) * 1e3, 2)
            row.update(variant=tfl.variant, delegate="xnnpack")
            tensor = tfl.preprocess(rgb)
            index = tfl.input_details["index"]
            interpreter = tfl.interpreter

            def call() -> object:
                interpreter.set_tensor(index, tensor)
                interpreter.invoke()
                return None

        row.update(time_calls(call, runs, warmup))
    except (BenchError, ContractError, RuntimeError, ValueError, OSError) as exc:
        row.update(status="failed", error=f"{type(exc).__name__}: {exc}".splitlines()[0][:300])
    return row
