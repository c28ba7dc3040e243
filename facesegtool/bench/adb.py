"""Latency on an Android phone: TFLite's `benchmark_model` run through adb, per delegate and thread count.

    report = run_adb_bench(export_dir="exports/", benchmark_binary="android_aarch64_benchmark_model",
                           threads=(1, 4), delegates=("xnnpack", "gpu"), out_dir="bench/")

Steps: adb on PATH -> exactly one device, online and authorized -> its model/ABI/Android version
(getprop) -> push the binary and the .tflite files to /data/local/tmp/facesegtool -> for every
model x delegate x threads run benchmark_model and parse its output (benchmark_output.py).

Every command line that reaches `adb shell` is built with shlex.join, so file names with spaces
or shell characters arrive as one argument. The report JSON is rewritten after every run, so a
phone that disconnects half-way leaves the runs already measured on disk (AdbDisconnected says so).

What a row's status means (benchmark_model's real contract, see benchmark_output.py):
    ok        timings printed, exit 0, no "Benchmarking failed.", no ignored flag, and for gpu/nnapi
              the tool said it applied that delegate ("Explicitly applied GPU delegate ...")
    fallback  the timings are real but ran on the CPU: the delegate could not be created, or refused
              every op, or was never reported as applied (with --require-full-delegation: partially, too)
    failed    exit status non-zero, "Benchmarking failed.", no timings, or a flag the binary ignored
adb (AOSP commandline.cpp / transport.cpp): "authorizing" and "connecting" are waited out (bounded);
ANDROID_SERIAL is the default serial; `adb shell -n` (stdin not forwarded); the device command ends
in `; echo <mark>$?` because adb on Android < 7 (no shell protocol) exits 0 whatever the command did;
a run that times out is killed on the phone.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from ..atomic import check_writable_dir
from ..errors import FacesegError
from ..contract import ContractError, read_contract
from .benchmark_output import BenchmarkModelResult, parse_benchmark_output
from .host import BenchError, collect_models, default_export_dir, in_variant_order
from .report import new_report, plot_report, report_stem, save_report

REMOTE_DIR = "/data/local/tmp/facesegtool"
BINARY_ENV = "FACESEGTOOL_BENCHMARK_MODEL"  # the configured path when --benchmark-binary is not given
BINARY_URL = (
    "https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/release/lite/tools/nightly/"
    "latest/android_aarch64_benchmark_model"
)
MEASUREMENT_DOCS = "https://ai.google.dev/edge/litert/models/measurement"
# TFLite's benchmark_model. The GPU delegate's --gpu_precision_loss_allowed defaults to true (fp16 arithmetic).
DELEGATE_FLAGS = {
    "cpu": ["--use_xnnpack=false"],  # the builtin kernels only
    "xnnpack": ["--use_xnnpack=true"],
    "gpu": ["--use_gpu=true"],
    "gpu-fp32": ["--use_gpu=true", "--gpu_precision_loss_allowed=false"],
    "nnapi": ["--use_nnapi=true"],
}
# LiteRT's CompiledModel benchmark_model (litert/tools/benchmark_litert_model.h): accelerators, not delegates;
# its CPU accelerator is XNNPACK, allow_fp16 defaults to true.
LITERT_FLAGS = {
    "cpu": ["--use_cpu=true", "--use_gpu=false", "--use_npu=false"],
    "xnnpack": ["--use_cpu=true", "--use_gpu=false", "--use_npu=false"],
    "gpu": ["--use_gpu=true"],
    "gpu-fp32": ["--use_gpu=true", "--allow_fp16=false"],
    "npu": ["--use_npu=true"],
}
DELEGATES = ("cpu", "xnnpack", "gpu", "gpu-fp32", "nnapi", "npu")
# The name benchmark_tflite_model.cc logs for a delegate ("Explicitly applied GPU delegate ...").
DELEGATE_NAME = {"xnnpack": "XNNPACK", "gpu": "GPU", "gpu-fp32": "GPU", "nnapi": "NNAPI"}
PRECISION = {"gpu": "fp16 (gpu_precision_loss_allowed, the tool's default)", "gpu-fp32": "fp32"}
TRANSIENT_STATES = ("authorizing", "connecting")  # transport.cpp: the device is on its way; wait
TRANSIENT_WAIT_S = 30.0
EXIT_MARK = "__facesegtool_exit="
NNAPI_NOTE = (
    "NNAPI is deprecated from Android 15 (API 35): vendors stop shipping NNAPI drivers, so it often falls back to "
    "its CPU reference implementation; prefer the GPU delegate or XNNPACK"
)
# What adb prints when the device went away (the client's own errors, not the tool's).
_GONE = ("device offline", "not found", "no devices/emulators found", "error: closed", "device unauthorized",
         "protocol fault", "connection reset")


class AdbError(FacesegError, RuntimeError):
    """adb or the device cannot be used; the message says what to do."""


class AdbTimeout(AdbError):
    """An adb command did not finish in time."""


class AdbDisconnected(AdbError):
    """The device went away during the runs; `report` holds what was measured (also saved as JSON)."""

    def __init__(self, message: str, report: dict | None = None):
        super().__init__(message)
        self.report = report


# --- adb and the device -----------------------------------------------------------------------


def find_adb() -> str:
    adb = shutil.which("adb")
    if adb is None:
        raise AdbError(
            "adb not found on PATH: install Android's platform tools (Debian/Ubuntu: `sudo apt-get install adb`, "
            "or the SDK platform-tools zip) and check that `adb devices` lists the phone"
        )
    return adb


def list_devices(adb: str, wait_s: float | None = None) -> dict[str, str]:
    """{serial: state} from `adb devices`, polled while a device is "authorizing" or "connecting"
    (at most wait_s, default TRANSIENT_WAIT_S); AdbError when adb itself fails."""
    deadline = time.monotonic() + (TRANSIENT_WAIT_S if wait_s is None else wait_s)
    while True:
        devices = _list_devices_once(adb)
        if not any(st in TRANSIENT_STATES for st in devices.values()) or time.monotonic() >= deadline:
            return devices
        time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))


def _list_devices_once(adb: str) -> dict[str, str]:
    try:
        proc = subprocess.run([adb, "devices"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              stdin=subprocess.DEVNULL, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AdbError(f"`{adb} devices` did not run ({exc}); restart adb (`adb kill-server; adb start-server`)") from None
    said = " ".join(ln.strip() for ln in proc.stdout.splitlines() if ln.strip().startswith(("error:", "adb: ")))
    if "no devices/emulators found" in said:
        return {}  # check_device then says how to connect one
    if proc.returncode != 0:
        raise AdbError(f"`adb devices` failed (exit {proc.returncode}: {said or proc.stdout.strip()}); restart adb "
                       "(`adb kill-server; adb start-server`) and check that `adb devices` lists the phone")
    return parse_devices(proc.stdout)


def parse_devices(text: str) -> dict[str, str]:
    """`adb devices` -> {serial: state}; state is "device", "offline", "unauthorized", "no permissions ..."."""
    devices = {}
    for line in text.splitlines():
        line = line.strip()
        # adb's own messages (daemon start, "error: ...") are not devices
        if not line or line.startswith(("List of devices", "*", "adb server", "adb: ", "error:")):
            continue
        serial, _, state = line.partition("\t") if "\t" in line else line.partition(" ")
        devices[serial.strip()] = state.strip()
    return devices


def check_device(devices: dict[str, str], serial: str | None) -> str:
    """The serial to use, or AdbError saying why none can be used and what to do."""
    if not devices:
        raise AdbError(
            "no Android device connected: plug the phone in by USB, enable Developer options > USB debugging, "
            "accept the prompt on the phone, then check `adb devices`"
        )
    serial = serial or os.environ.get("ANDROID_SERIAL") or None  # adb's own default
    if serial is None:
        # Only usable devices compete: an offline emulator beside one phone is no ambiguity.
        usable = [s for s, st in devices.items() if st == "device"]
        if len(usable) > 1:
            listing = ", ".join(f"{s} ({st})" for s, st in devices.items())
            raise AdbError(f"{len(usable)} devices connected ({listing}): choose one with --serial or ANDROID_SERIAL")
        if not usable and len(devices) > 1:
            listing = ", ".join(f"{s} ({st})" for s, st in devices.items())
            raise AdbError(f"no usable device among {listing}: unlock and authorize one, or choose one with --serial")
        serial = usable[0] if usable else next(iter(devices))
    if serial not in devices:
        listing = ", ".join(f"{s} ({st})" for s, st in devices.items())
        raise AdbError(f"device {serial!r} is not connected; adb sees: {listing}")
    state = devices[serial]
    if state == "device":
        return serial
    if state == "unauthorized":
        raise AdbError(
            f"device {serial} is unauthorized: unlock the phone and accept the 'Allow USB debugging?' prompt "
            "(tick 'Always allow from this computer'); no prompt? revoke USB debugging authorizations in "
            "Developer options and replug"
        )
    if state == "offline":
        raise AdbError(
            f"device {serial} is offline: replug the cable or restart adb (`adb kill-server; adb start-server`), "
            "then check that `adb devices` says 'device'"
        )
    if state in TRANSIENT_STATES:
        raise AdbError(f"device {serial} is still {state} after {TRANSIENT_WAIT_S:.0f} s: unlock the phone, accept "
                       "the USB debugging prompt, replug, then check that `adb devices` says 'device'")
    if state.startswith("no permissions"):
        raise AdbError(f"device {serial}: no permissions to open it over USB ({state}); add a udev rule for the phone")
    raise AdbError(f"device {serial} is in state {state!r}, not 'device': boot it normally and unlock it")


class AdbDevice:
    """One device, addressed by serial; every shell command goes through shlex.join."""

    def __init__(self, serial: str, adb: str = "adb", timeout: float = 120.0):
        self.serial, self.adb, self.timeout = serial, adb, timeout

    def run(self, args: Sequence[str], timeout: float | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(
                [self.adb, "-s", self.serial, *args],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,  # never hand our stdin to the phone
                text=True,
                errors="replace",
                timeout=timeout or self.timeout,
            )
        except subprocess.TimeoutExpired as exc:
            raise AdbTimeout(f"`adb {' '.join(args[:2])}` on {self.serial} did not finish in {exc.timeout:.0f} s") from exc

    def shell(self, argv: Sequence[str], timeout: float | None = None) -> subprocess.CompletedProcess:
        """Runs argv on the phone; returncode is the device command's own exit status.

        adb joins its arguments with spaces and hands them to the device's sh: pass one quoted string.
        Without the shell protocol (Android < 7) adb exits 0 whatever the command did, so the command
        echoes its status last and that is what counts."""
        command = shlex.join([str(a) for a in argv]) + f"; echo {EXIT_MARK}$?"
        proc = self.run(["shell", "-n", command], timeout)
        lines = proc.stdout.splitlines()
        for i in range(len(lines) - 1, -1, -1):
            m = re.fullmatch(rf"\s*{EXIT_MARK}(\d+)\s*", lines[i])
            if m:
                proc.stdout = "\n".join(lines[:i] + lines[i + 1:]) + ("\n" if i else "")
                proc.returncode = int(m.group(1))
                break
        else:
            proc.returncode = proc.returncode or 255  # no status echoed: the shell never got to the end
        return proc

    def kill(self, remote_binary: str) -> None:
        """Stops a run left going on the phone (a timed-out adb client does not stop the device command)."""
        try:
            self.run(["shell", "-n", shlex.join(["pkill", "-f", remote_binary])], timeout=30)
        except AdbError:
            pass

    def check_shell(self, argv: Sequence[str]) -> str:
        proc = self.shell(argv)
        if proc.returncode != 0:
            self._raise_if_gone(proc.stdout)
            raise AdbError(f"`{shlex.join(argv)}` failed on {self.serial}: {proc.stdout.strip()[-300:]}")
        return proc.stdout

    def getprop(self, name: str) -> str:
        return self.check_shell(["getprop", name]).strip()

    def push(self, local: Path, remote: str) -> None:
        proc = self.run(["push", str(local), remote], timeout=max(self.timeout, 600))
        if proc.returncode != 0:
            self._raise_if_gone(proc.stdout)
            raise AdbError(f"adb push {local.name} -> {remote} failed: {proc.stdout.strip()[-300:]}")

    def state(self) -> str:
        """"device" when still usable; otherwise what adb said."""
        try:
            proc = self.run(["get-state"], timeout=30)
        except AdbError as exc:
            return str(exc)
        out = proc.stdout.strip()
        return out if proc.returncode == 0 else (out or f"get-state exit {proc.returncode}")

    def _raise_if_gone(self, output: str) -> None:
        state = self.state()
        if state != "device":
            raise AdbDisconnected(f"device {self.serial} disconnected ({state}; last output: {output.strip()[-200:]})")


def describe(device: AdbDevice) -> dict:
    props = {
        "manufacturer": "ro.product.manufacturer",
        "model": "ro.product.model",
        "abi": "ro.product.cpu.abi",
        "android": "ro.build.version.release",
        "sdk": "ro.build.version.sdk",
    }
    info = {"serial": device.serial}
    info.update({key: device.getprop(prop) for key, prop in props.items()})
    return info


def resolve_benchmark_binary(path: str | Path | None) -> Path:
    """--benchmark-binary, else $FACESEGTOOL_BENCHMARK_MODEL; a clear error saying where to get it."""
    chosen = path or os.environ.get(BINARY_ENV)
    if chosen and Path(chosen).is_file():
        return Path(chosen)
    where = f"{chosen} does not exist" if chosen else f"no --benchmark-binary given and ${BINARY_ENV} is not set"
    raise AdbError(
        f"benchmark_model binary: {where}. Get TFLite's prebuilt nightly benchmark_model for android_aarch64 "
        f"({BINARY_URL}; see 'Native benchmark binary' in {MEASUREMENT_DOCS}), then pass --benchmark-binary PATH "
        f"or set {BINARY_ENV}"
    )


# --- the runs ------------------------------------------------------------------------------------

_FLAG_NAME = re.compile(r"(?<![\w-])--([a-z][a-z0-9_]*)=")


def probe_binary(device: AdbDevice, remote_binary: str) -> dict:
    """Which benchmark_model this is, from its --help (Flags::Usage lists every flag it takes):
    {"kind": "tflite" | "litert", "flags": [...]}; AdbError when it lists none of either's flags."""
    proc = device.shell([remote_binary, "--help"], timeout=60)  # --help exits 1 by design
    flags = sorted(set(_FLAG_NAME.findall(proc.stdout)))
    if "use_cpu" in flags or "use_npu" in flags:
        return {"kind": "litert", "flags": flags}
    if "graph" in flags:
        return {"kind": "tflite", "flags": flags}
    last = next((ln.strip() for ln in reversed(proc.stdout.splitlines()) if ln.strip()), "no output")
    raise AdbError(
        f"{remote_binary} --help lists no benchmark_model flags (exit {proc.returncode}: {last[:200]}): it is not "
        f"TFLite's benchmark_model nor LiteRT's CompiledModel one; get {BINARY_URL} and pass --benchmark-binary"
    )


def benchmark_argv(binary: str, graph: str, delegate: str, threads: int, runs: int, warmup: int,
                   op_profiling: bool, kind: str = "tflite", known_flags: Sequence[str] = (),
                   require_full_delegation: bool = False) -> list[str]:
    """The device command line; flags the binary does not list in --help are left out, not sent to be ignored."""
    table = LITERT_FLAGS if kind == "litert" else DELEGATE_FLAGS
    argv = [binary, f"--graph={graph}", f"--num_threads={threads}", f"--warmup_runs={warmup}", f"--num_runs={runs}",
            *table[delegate]]
    known = set(known_flags)
    if "report_peak_memory_footprint" in known:
        argv.append("--report_peak_memory_footprint=true")  # the absolute peak, beside the RSS delta
    if require_full_delegation and delegate not in ("cpu", "xnnpack") and "require_full_delegation" in known:
        argv.append("--require_full_delegation=true")
    if op_profiling:
        argv.append("--enable_op_profiling=true")
    if kind == "litert" and known:
        argv = [a for a in argv if a == binary or a[2:].split("=", 1)[0] in known]
    return argv


def row_status(result: BenchmarkModelResult, delegate: str, exit_code: int, kind: str,
               require_full_delegation: bool = False) -> tuple[str, str | None, str]:
    """(status, error, delegation) of one run: see the module docstring for what each status means."""
    last_errors = [e for e in result.errors if "Benchmarking failed" not in e][-1:]
    if result.unconsumed_flags:
        return "failed", f"benchmark_model ignored {' '.join(result.unconsumed_flags)} (Unconsumed cmdline flags)", "-"
    if exit_code != 0 or result.benchmarking_failed or not result.has_timings:
        said = "; ".join(last_errors + (["Benchmarking failed."] if result.benchmarking_failed else []))
        why = f"exit {exit_code}" if exit_code != 0 else "no timings"
        return "failed", f"{why}: {said}" if said else why, "-"
    invoke = [e for e in result.errors if "failed to invoke" in e.lower()]
    if invoke:  # an invoke error with timings and exit 0 timed a run that did not compute the model
        return "failed", f"exit 0 but {invoke[-1]}", "-"
    if result.inference_avg_us <= 0 or result.runs == 0:  # no real run takes 0 us, nor a negative time
        return "failed", (f"implausible timings (avg {result.inference_avg_us:g} us over {result.runs} runs): "
                          "the binary's output is not a real measurement"), "-"
    name = DELEGATE_NAME.get(delegate)
    if delegate == "cpu" or kind == "litert" or name is None:
        # The CompiledModel binary does not log which accelerator took the graph.
        return "ok", None, "not reported" if kind == "litert" and delegate != "cpu" else "-"
    how = result.delegation(name)
    if how == "not" or (how == "unknown" and delegate != "xnnpack"):
        why = "could not be created" if name in result.unsupported_platform else (
            "took no ops" if how == "not" else "was never reported as applied")
        return "fallback", f"{name} delegate {why}: ran on the CPU", how
    if how == "partially" and require_full_delegation:
        return "failed", f"{name} delegate took only part of the graph (--require-full-delegation)", how
    return "ok", None, how


def _row(result: BenchmarkModelResult, label: str, variant: str, file: Path, delegate: str, threads: int,
         exit_code: int, output: str, kind: str = "tflite", require_full_delegation: bool = False,
         runs_asked: int | None = None) -> dict:
    ms = lambda us: None if us is None else round(us / 1e3, 3)  # noqa: E731
    status, error, delegation = row_status(result, delegate, exit_code, kind, require_full_delegation)
    row = {
        "label": label, "runtime": "benchmark_model" if kind == "tflite" else "benchmark_model (CompiledModel)",
        "variant": variant, "file": file.name, "delegate": delegate, "threads": threads, "status": status,
        "error": error, "delegation": delegation, "precision": PRECISION.get(delegate, "fp32" if delegate != "npu" else None),
        "runs": result.runs, "runs_asked": runs_asked,
        "mean_ms": ms(result.inference_avg_us), "median_ms": ms(result.inference_median_us),
        "p95_ms": ms(result.inference_p95_us), "std_ms": ms(result.inference_std_us),
        "first_ms": ms(result.first_inference_us), "warmup_ms": ms(result.warmup_avg_us), "init_ms": ms(result.init_us),
        "size_mb": round(file.stat().st_size / 1e6, 3),
        # benchmark_model's "MB" are MiB (KB / 1024) of max RSS: the delta from the tool's start, and the peak.
        "mem_delta_mib": result.memory_overall_mb, "peak_mem_mib": result.peak_memory_mb,
        "details": result.as_dict(), "exit_code": exit_code,
    }
    if status == "failed" and not result.errors and not result.unconsumed_flags:
        # nothing the tool flagged as an error: its last line says most (a shell error, a crash)
        last = next((line.strip() for line in reversed(output.splitlines()) if line.strip()), "no output")
        row["error"] = f"{error}: {last[:200]}"
    return row


def run_adb_bench(
    export_dir: str | Path | None = None,
    models: Sequence[str | Path] = (),
    serial: str | None = None,
    benchmark_binary: str | Path | None = None,
    threads: Sequence[int] = (1, 4),
    delegates: Sequence[str] = ("cpu", "xnnpack"),
    runs: int = 50,
    warmup: int = 5,
    op_profiling: bool = False,
    out_dir: str | Path = "bench",
    run_timeout: float = 600.0,
    progress: bool = True,
    require_full_delegation: bool = False,
) -> dict:
    """Bench every .tflite on the phone; returns the report, also written to out_dir (JSON after every run)."""
    threads = [int(t) for t in threads]
    delegates = [d.strip().lower() for d in delegates]
    unknown = [d for d in delegates if d not in DELEGATES]
    if unknown or not delegates:
        raise BenchError(f"--delegate: unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(DELEGATES)}")
    if not threads or min(threads) < 1 or runs < 1 or warmup < 0:
        raise BenchError("--threads must be positive, --runs >= 1, --warmup >= 0")
    check_writable_dir(out_dir, "--out")  # now, not after the runs on the phone
    export_dir, _ = default_export_dir(export_dir, models, None)
    tflites, onnxs = collect_models(export_dir, models)
    if not tflites:
        raise BenchError("no .tflite files to push: pass --export-dir DIR or --models FILE.tflite")
    binary = resolve_benchmark_binary(benchmark_binary)

    adb = find_adb()
    device = AdbDevice(check_device(list_devices(adb), serial), adb)
    info = describe(device)
    info["benchmark_binary"] = binary.name

    contracts = {}
    for p in tflites:
        try:
            contracts[p] = read_contract(p)
        except ContractError:
            contracts[p] = None  # benchmark_model needs no sidecar; the variant is then the file name
    tflites = in_variant_order({p: c.variant if c else None for p, c in contracts.items()})
    first = next((contracts[p] for p in tflites if contracts[p]), None)
    report = new_report(
        "adb", device=info,
        model={"name": first.model if first else tflites[0].stem, "input_size": list(first.size) if first else None,
               "files": [str(p) for p in tflites]},
        runs=runs, warmup=warmup, delegates=delegates, threads=threads, op_profiling=op_profiling,
        require_full_delegation=require_full_delegation, reference=None,
    )
    if onnxs:
        report["notes"].append(f"ONNX files skipped on the device: {', '.join(p.name for p in onnxs)}")
    if "nnapi" in delegates:
        report["notes"].append(NNAPI_NOTE)
    if info["abi"] and not info["abi"].startswith("arm64"):
        report["notes"].append(f"device ABI is {info['abi']}: an android_aarch64 benchmark_model will not run on it")

    variants = {p: contracts[p].variant if contracts[p] else p.stem for p in tflites}
    if len(set(variants.values())) < len(variants):  # two exports of one variant: tell them apart by file
        variants = {p: p.stem for p in tflites}
    ref_model = next((p for p in tflites if variants[p] == "fp32"), tflites[0])
    ref_delegate = "xnnpack" if "xnnpack" in delegates else delegates[0]
    report["reference"] = f"{variants[ref_model]} / {ref_delegate}"
    out_dir = Path(out_dir)
    raw_dir = out_dir / f"{report_stem(report)}_raw"
    raw_dir.mkdir(parents=True, exist_ok=True)
    save_report(report, out_dir)

    try:
        device.check_shell(["mkdir", "-p", REMOTE_DIR])
        remote_binary = f"{REMOTE_DIR}/benchmark_model"
        device.push(binary, remote_binary)
        device.check_shell(["chmod", "755", remote_binary])
        probe = probe_binary(device, remote_binary)
        kind = probe["kind"]
        info["benchmark_kind"] = "LiteRT CompiledModel" if kind == "litert" else "TFLite Interpreter"
        table = LITERT_FLAGS if kind == "litert" else DELEGATE_FLAGS
        missing = [d for d in delegates if d not in table]
        if missing:
            other = "TFLite's benchmark_model" if kind == "litert" else "LiteRT's CompiledModel benchmark_model"
            raise BenchError(f"--delegate {', '.join(missing)}: {binary.name} is {info['benchmark_kind']}'s "
                             f"benchmark_model, which has no such accelerator; use {other} for it")
        if kind == "litert":
            report["notes"].append("LiteRT CompiledModel benchmark_model: cpu and xnnpack are one accelerator "
                                   "(XNNPACK); it does not log which accelerator took the graph")
        if any(d in ("gpu", "gpu-fp32") for d in delegates):
            report["notes"].append("gpu runs with fp16 arithmetic (gpu_precision_loss_allowed / allow_fp16 default "
                                   "true); gpu-fp32 runs it in fp32")
        report["notes"].append("mem MiB: benchmark_model's peak-RSS delta from the tool's start (its 'MB' are MiB); "
                               "peak MiB: the absolute peak (--report_peak_memory_footprint)")
        remote = {}
        for p in tqdm(tflites, desc="push models", unit="file", disable=not progress):
            remote[p] = f"{REMOTE_DIR}/{p.name}"
            device.push(p, remote[p])

        tasks = [(p, d, t) for p in tflites for d in delegates for t in threads]
        bar = tqdm(tasks, desc=f"bench {info['model']}", unit="run", disable=not progress)
        for order, (p, delegate, t) in enumerate(bar):
            bar.set_postfix_str(f"{variants[p]} {delegate} x{t}")
            argv = benchmark_argv(remote_binary, remote[p], delegate, t, runs, warmup, op_profiling, kind,
                                  probe["flags"], require_full_delegation)
            try:
                proc = device.shell(argv, timeout=run_timeout)
                output, code = proc.stdout, proc.returncode
            except AdbTimeout as exc:  # the run hung past run_timeout: it still runs on the phone
                device.kill(remote_binary)
                output, code = f"{exc} (--run-timeout {run_timeout:g}); killed on the phone", -1
            (raw_dir / f"{_safe_name(p.stem)}_{delegate}_{t}t.txt").write_text(
                f"$ adb shell {shlex.join(argv)}\n{output}")
            result = parse_benchmark_output(output)
            if not result.ok and (code != 0 or any(g in output for g in _GONE)):
                state = device.state()
                if state != "device":
                    raise AdbDisconnected(
                        f"device {device.serial} disconnected during {variants[p]} / {delegate} / {t} threads "
                        f"({state})"
                    )
            row = _row(result, variants[p], variants[p], p, delegate, t, code, output, kind,
                       require_full_delegation, runs)
            row["order"] = order
            row["is_reference"] = p == ref_model and delegate == ref_delegate
            report["results"].append(row)
            save_report(report, out_dir)
        bar.close()
    except AdbDisconnected as exc:
        report["error"] = str(exc)
        path = save_report(report, out_dir)
        n = sum(r["status"] == "ok" for r in report["results"])
        raise AdbDisconnected(
            f"{exc}; the {n} run(s) measured before are kept in {path}; reconnect the phone and rerun", report
        ) from exc
    report["complete"] = True
    save_report(report, out_dir)
    if any(r["status"] != "failed" for r in report["results"]):
        plot_report(report, out_dir / f"{report_stem(report)}.png")
    return report


def _safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
