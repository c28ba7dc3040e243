"""Run a sweep: prepare the data once, run the trials that are not done, write the results.

    report = run_sweep("models/sweeps/weights.yaml", "runs/sweep-weights", jobs=1)

OUT/spec.yaml is the spec as run, OUT/data the prepared set (unless the spec names one), OUT/dev
its carved dev split when the spec asks for `holdout`,
OUT/trials/NN-NAME/ one folder per trial (see trial.py), and OUT/results.* the tables.
A trial whose result.json exists is done and is not run again (a failed one only with
retry_failed); so a killed sweep, run again with the same command, continues where it stopped.
Each trial runs in its own process (`python -m facesegtool.sweep DIR`): locally, up to
`jobs` at a time, or as Ray Tune trials (launcher="ray"), which schedules the same command.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from ..atomic import OutputError, check_apart, check_writable_dir
from ..data.registry import SOURCE_KEYS, prepare_from_dirs
from ..errors import FacesegError
from ..processes import dies_with_this_process
from .results import write_results
from .spec import SweepSpec, load_spec
from .trial import RESULT, read_json, write_json

LAUNCHERS = ("local", "ray")


class SweepError(FacesegError, ValueError):
    """A sweep that cannot start (bad spec, data, or an --out holding another sweep); the message says what to do."""


@dataclass
class SweepReport:
    out: Path
    spec: SweepSpec
    rows: list[dict]  # one result per trial that has finished, in spec order
    ran: list[str]  # trials run by this call
    files: list[Path]


# --- data and trial folders -------------------------------------------------------------------------


def prepare_data(spec: SweepSpec, out: Path, progress: bool = True) -> Path:
    """The prepared set every trial reads: the spec's `prepared` dir, or OUT/data prepared once.

    With `holdout: N` the trials read OUT/dev instead: train minus N faces, scored on those N
    (data.carve), so a sweep that picks recipes never looks at the val faces we report.
    """
    from ..data.dataset import PreparedDataError, load_prepared

    data = spec.data
    if data.get("prepared"):
        path = Path(data["prepared"]).resolve()
        try:
            load_prepared(path)
        except PreparedDataError as exc:
            raise SweepError(f"{spec.path}: data.prepared: {exc}") from exc
    else:
        path = _prepare_sources(spec, out, progress)
    holdout = data.get("holdout")
    if not holdout:
        return path
    dev = (out / "dev").resolve()
    if not (dev / "manifest.json").is_file():
        from ..data.carve import carve_dev_split

        try:
            carve_dev_split(path, dev, int(holdout))
        except (PreparedDataError, OSError) as exc:
            raise SweepError(f"{spec.path}: data.holdout: {exc}") from exc
    return dev


def _prepare_sources(spec: SweepSpec, out: Path, progress: bool) -> Path:
    """The spec's raw sources (the keys of data/registry.py, as data prepare takes them) prepared once into OUT/data."""
    data = spec.data
    path = (out / "data").resolve()
    if (path / "manifest.json").is_file():
        return path
    try:
        prepare_from_dirs({k: data.get(k) for k in SOURCE_KEYS}, path, mapping=data.get("mapping"),
                          tolerance=data.get("tolerance"), size=int(data.get("size", 256)),
                          val_fraction=float(data.get("val_fraction", 0.1)), progress=progress)
    except (FacesegError, OSError) as exc:
        raise SweepError(f"{spec.path}: data: {exc}") from exc
    return path


def _setup_trials(spec: SweepSpec, out: Path, data: Path, threads: int, retry_failed: bool) -> list[Path]:
    """Write each trial's config.json (checking a rerun's against it); returns the folders still to run."""
    todo = []
    for trial in spec.trials:
        d = out / "trials" / trial.dirname
        config = {**trial.config(), "data": str(data), "steps": spec.steps, "torchrun": spec.torchrun}
        saved = d / "config.json"
        if saved.is_file():
            old = read_json(saved)
            # threads may change between runs (--jobs), the table's labels with the spec's `table:`
            if {k: v for k, v in old.items() if k not in ("threads", "labels")} != \
                    {k: v for k, v in config.items() if k != "labels"}:
                raise SweepError(
                    f"{saved} was run with another config than trial {trial.index} of {spec.path} now asks for: "
                    f"use a new --out for the changed spec, or remove {d} to run it again"
                )
        d.mkdir(parents=True, exist_ok=True)
        write_json(saved, {**config, "threads": threads})
        result = d / RESULT
        if result.is_file():
            if not (retry_failed and read_json(result)["status"] != "ok"):
                continue
            result.unlink()
        todo.append(d)
    return todo


# --- running one trial process ---------------------------------------------------------------------


def trial_command(trial_dir: Path) -> list[str]:
    return [sys.executable, "-m", "facesegtool.sweep", str(trial_dir)]


def start_trial(trial_dir: Path, threads: int, log) -> subprocess.Popen:
    """One trial process, output to `log`; on Linux it dies with the sweep."""
    # SIGTERM, not SIGKILL: the trial stops in order, and a rerun never runs the same trial twice at once.
    die = dies_with_this_process(signal.SIGTERM)
    return subprocess.Popen(trial_command(trial_dir), stdout=log, stderr=subprocess.STDOUT, env=trial_env(threads),
                            preexec_fn=die)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # `kill` of the sweep: stop its trials in order, as Ctrl-C does


def trial_env(threads: int) -> dict:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONUNBUFFERED="1")
    # onnx2tf runs `onnxsim` as a subprocess: this interpreter's bin first on PATH.
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def trial_status(trial_dir: Path) -> str:
    """What a running trial is doing, from its log: its step, and the epoch for training."""
    try:
        with open(trial_dir / "log.txt", "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 8192))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return "starting"
    step, epoch = "starting", ""
    for line in lines:
        if line.startswith("[sweep] step "):
            step, epoch = line.split()[2], ""
        elif line.startswith("epoch ") and ":" in line:
            epoch = " " + line.split(":")[0].split()[1]
    return step + (epoch if step == "train" else "")


STOPPED = (-signal.SIGINT, -signal.SIGTERM)  # a trial process stopped (Ctrl-C, kill), not crashed


def finish_trial(trial_dir: Path, returncode: int) -> dict:
    """The trial's result; when its process died without one (crashed, killed -9), a failed row saying so.

    Raises KeyboardInterrupt when it was stopped (SIGINT/SIGTERM): the sweep is being stopped, and the
    trial continues on the next run rather than counting as failed.
    """
    result = trial_dir / RESULT
    if result.is_file():
        return read_json(result)
    if returncode in STOPPED:
        raise KeyboardInterrupt
    config = read_json(trial_dir / "config.json")
    log = (trial_dir / "log.txt").read_text(errors="replace").splitlines() if (trial_dir / "log.txt").is_file() else []
    tail = " | ".join(line.strip() for line in log[-3:])
    row = {
        "name": config["name"], "status": "failed", "failed_step": trial_status(trial_dir).split()[0],
        "error": f"trial process exited with code {returncode} without a result; log: {tail}"[:500],
        "labels": config["labels"], "figures": {}, "seconds": {},
        "config": {k: config[k] for k in ("train", "export", "verify", "bench", "steps", "data")},
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "wall_seconds": None,
    }
    write_json(result, row)
    return row


def run_trial_process(trial_dir: Path, threads: int) -> dict:
    """Run one trial in a child process (output to its log.txt) and return its result row."""
    with open(trial_dir / "log.txt", "ab") as log:
        proc = start_trial(trial_dir, threads, log)
        try:
            rc = proc.wait()
        except BaseException:
            proc.terminate()
            proc.wait()
            raise
    return finish_trial(trial_dir, rc)


# --- launchers --------------------------------------------------------------------------------------


def run_local(todo: list[Path], jobs: int, threads: int, on_done: Callable[[], None], total: int,
              progress: bool = True) -> None:
    """Up to `jobs` trial processes at a time; a progress bar over the sweep showing each running trial's step."""
    pending, running = list(todo), {}
    previous = signal.signal(signal.SIGTERM, _interrupt)
    shown, shown_at = "", 0.0
    bar = tqdm(total=total, initial=total - len(todo), desc="sweep", unit="trial", disable=not progress,
               dynamic_ncols=True)
    try:
        while pending or running:
            while pending and len(running) < jobs:
                d = pending.pop(0)
                log = open(d / "log.txt", "ab")
                running[d] = (start_trial(d, threads, log), log)
            for d, (proc, log) in list(running.items()):
                if proc.poll() is not None:
                    log.close()
                    del running[d]
                    row = finish_trial(d, proc.returncode)
                    bar.write(f"{d.name}: {row['status']}" + (f" ({row['failed_step']}: {row['error']})"
                                                                if row["status"] != "ok" else ""))
                    bar.update(1)
                    on_done()
            status = "; ".join(f"{d.name}: {trial_status(d)}" for d in running)
            # In a terminal, show each change; in a log file, at most a line every 30 s.
            if status != shown and (sys.stderr.isatty() or time.time() - shown_at > 30):
                bar.set_postfix_str(status, refresh=True)
                shown, shown_at = status, time.time()
            time.sleep(0.5)
    finally:
        for proc, log in running.values():  # interrupted: stop the children; their trials continue on a rerun
            proc.terminate()
        for proc, log in running.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        bar.close()
        signal.signal(signal.SIGTERM, previous)


def _ray_trial(config: dict) -> None:
    """A Ray Tune function trainable: runs one trial's process and reports its figures to Tune."""
    from ray import tune

    row = run_trial_process(Path(config["dir"]), config["threads"])
    metrics = {k: v for k, v in row["figures"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    tune.report({"ok": int(row["status"] == "ok"), **metrics})


def _start_ray(ray, address: str | None, local: dict, attempts: int = 3) -> None:
    """ray.init; a local node gets a fixed 30 s to come up, which a busy machine can miss: try again."""
    for attempt in range(1, attempts + 1):
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR", **local)
            return
        except Exception as exc:  # Ray raises a bare Exception for a node that did not start
            ray.shutdown()
            if address or attempt == attempts:
                where = f"the Ray cluster at {address}" if address else "a local Ray node"
                raise SweepError(f"could not start {where} ({str(exc).splitlines()[0]}); "
                                 "if the machine is busy, run `ray start --head` and pass --ray-address auto") from exc


def run_ray(todo: list[Path], jobs: int, threads: int, out: Path, address: str | None = None,
            progress: bool = True) -> None:
    """The same trial processes as Ray Tune trials: one grid point per trial folder, `threads` CPUs each."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage report over the network
    try:
        import ray
        from ray import tune
    except ImportError as exc:
        raise SweepError(f"--launcher ray needs Ray Tune ({exc}): pip install 'facesegtool[ray]'") from exc
    started = not ray.is_initialized()
    if started:
        _start_ray(ray, address, {} if address else {"num_cpus": max(os.cpu_count() or 1, jobs * threads)})
    try:
        tuner = tune.Tuner(
            tune.with_resources(_ray_trial, {"cpu": threads}),
            param_space={"dir": tune.grid_search([str(d.resolve()) for d in todo]), "threads": threads},
            tune_config=tune.TuneConfig(max_concurrent_trials=jobs),
            run_config=tune.RunConfig(storage_path=str((out / "ray").resolve()), name="tune",
                                      verbose=1 if progress else 0),
        )
        tuner.fit()
    finally:
        if started:
            ray.shutdown()


# --- the sweep --------------------------------------------------------------------------------------


def collect(spec: SweepSpec, out: Path) -> list[dict]:
    rows = []
    for trial in spec.trials:
        result = out / "trials" / trial.dirname / RESULT
        if result.is_file():
            rows.append({**read_json(result), "labels": trial.labels})  # labels as the spec's table names them now
    return rows


def write_sweep_results(spec: SweepSpec, out: Path, data: Path) -> list[Path]:
    from ..bench.host import host_description

    rows = collect(spec, out)
    ok = sum(r["status"] == "ok" for r in rows)
    threads = sorted({t.bench["threads"] for t in spec.trials})
    meta = {
        "name": spec.name, "title": spec.title, "budget": spec.budget, "notes": spec.notes,
        "spec": str(spec.path), "table": spec.table, "steps": spec.steps, "data": str(data),
        "trials": len(spec.trials), "finished": len(rows), "ok": ok, "failed": len(rows) - ok,
        "bench_threads": ",".join(map(str, threads)), "cpu": host_description()["cpu"],
        "scored_on": (f"{spec.data['holdout']} dev faces carved from train (val untouched)"
                      if spec.data.get("holdout") else "the val split"),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return write_results(out, rows, meta)


def _check_out(spec: SweepSpec, out: Path) -> None:
    """Before any work: --out must be writable, apart from the data the spec reads, and new, empty or
    a sweep's own folder (a rerun continues it), never a folder of someone's files."""
    try:
        check_writable_dir(out, "--out")
        data = spec.data
        check_apart({"--out": out}, {f"data.{key}": data.get(key) for key in ("prepared", *SOURCE_KEYS, "mapping")})
    except OutputError as exc:
        raise SweepError(str(exc)) from None
    if out.is_dir() and not (out / "spec.yaml").is_file() and any(out.iterdir()):
        shown = ", ".join(sorted(p.name for p in out.iterdir())[:3])
        raise SweepError(f"--out {out}: holds files that are not a sweep's ({shown}, ...); choose a new or empty "
                         "--out, or the folder of the sweep to continue")


def run_sweep(spec_path: str | Path, out: str | Path, jobs: int = 1, launcher: str = "local",
              threads: int | None = None, retry_failed: bool = False, ray_address: str | None = None,
              progress: bool = True) -> SweepReport:
    """Run every trial of the spec that is not done yet into out; see the module docstring."""
    from .spec import SpecError

    if launcher not in LAUNCHERS:
        raise SweepError(f"unknown launcher {launcher!r}; use one of {', '.join(LAUNCHERS)}")
    if jobs < 1 or (threads is not None and threads < 1):
        raise SweepError("--jobs and --threads must be at least 1")
    try:
        spec = load_spec(spec_path)
    except SpecError as exc:
        raise SweepError(str(exc)) from exc
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SweepError(f"--out {out} is a file; give a folder")
    _check_out(spec, out)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "spec.yaml").exists() or not (out / "spec.yaml").samefile(spec.path):
        shutil.copyfile(spec.path, out / "spec.yaml")
    data = prepare_data(spec, out, progress)
    threads = threads or max(1, (os.cpu_count() or 1) // jobs)
    todo = _setup_trials(spec, out, data, threads, retry_failed)
    if todo:
        if launcher == "local":
            run_local(todo, jobs, threads, lambda: write_sweep_results(spec, out, data), len(spec.trials), progress)
        else:
            run_ray(todo, jobs, threads, out, ray_address, progress)
    files = write_sweep_results(spec, out, data)
    return SweepReport(out, spec, collect(spec, out), [d.name for d in todo], files)
