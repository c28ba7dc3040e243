"""A sweep spec (YAML): which trials to run and how to measure them.

    name: weights
    title: Class weights (the design's table of weight schemes)
    budget: 128 px, 5 epochs, the 800 train / 100 val faces
    data:                  # prepared once into OUT/data; or `prepared: DIR` to use a prepared set as is
      celebamask: ../shared/data/celebamask-mini   # any of data prepare's sources (data/registry.py):
      size: 128            # celebamask_parts, mut1ny, facesynthetics, synthesisai; with mapping, tolerance
      holdout: 80          # optional: score trials on N faces carved from train (data.carve), never on val
    train:                 # TrainConfig fields shared by every trial (facesegtool train's options)
      model: unet-mobilenetv3-small
      epochs: 5
    grid:                  # every combination of these values is a trial ...
      weights: [equal, empirical, proportional]
    trials:                # ... for each of these (default: one, no overrides); `name` names a trial,
      - {}                 # export/verify/bench override those sections for that trial
    steps: [train, eval, export, verify, bench]   # the default: the whole pipeline
    export: {quant: [fp32, int8], num_calib: 32}  # facesegtool.export.export() options
    verify: {limit: null}                         # faces of the val split to verify on (null: all)
    bench: {threads: 1, runs: 20, warmup: 3}      # host latency, each runtime on `threads` threads
    table: [weights]       # the fields that name a trial in the tables [default: those that vary]
    torchrun: 2            # optional: each trial trains under torchrun with this many processes (DDP)

Relative paths are read from the current directory, as on the command line.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..data.registry import SOURCE_KEYS
from ..errors import FacesegError
from ..training.loop import TrainConfig
from ..yaml_io import safe_load_no_aliases

STEPS = ("train", "eval", "export", "verify", "bench")
TOP_KEYS = {"name", "title", "budget", "notes", "data", "train", "grid", "trials", "steps", "export", "verify", "bench",
            "table", "torchrun"}
# the raw sources are data prepare's (data/registry.py), with its --mapping and --tolerance
DATA_KEYS = {"prepared", *SOURCE_KEYS, "mapping", "tolerance", "size", "val_fraction", "holdout"}
SECTION_DEFAULTS = {
    "export": {"quant": ["fp32", "int8"], "num_calib": 32},
    "verify": {"limit": None},
    "bench": {"threads": 1, "runs": 20, "warmup": 3},
}
# Set by the sweep for every trial, never by a spec (workers and device a spec may set).
TRAIN_RESERVED = {"data", "out", "resume", "progress", "threads"}


class SpecError(FacesegError, ValueError):
    """A spec that cannot run; the message names the file and what to change."""


@dataclass
class Trial:
    index: int
    name: str
    train: dict  # TrainConfig fields (without data/out/runtime ones)
    export: dict
    verify: dict
    bench: dict
    labels: dict  # table column -> value, the fields that tell this trial from the others

    @property
    def dirname(self) -> str:
        return f"{self.index:02d}-{_safe(self.name)}"

    def config(self) -> dict:
        """What the trial runs with; a rerun must find the same in its folder to reuse it."""
        return {"name": self.name, "train": self.train, "export": self.export, "verify": self.verify,
                "bench": self.bench, "labels": self.labels}


@dataclass
class SweepSpec:
    path: Path
    name: str
    title: str
    budget: str
    notes: str
    data: dict
    steps: list[str]
    trials: list[Trial]
    table: list[str]
    torchrun: int | None = None
    raw: dict = field(repr=False, default_factory=dict)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", text).strip("_")[:80] or "trial"


def _fail(path: Path, message: str) -> SpecError:
    return SpecError(f"{path}: {message}")


def _check_keys(path: Path, where: str, given: dict, allowed: set[str]) -> None:
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise _fail(path, f"unknown key(s) {', '.join(unknown)} in {where}; allowed: {', '.join(sorted(allowed))}")


def _train_keys() -> set[str]:
    return {f.name for f in fields(TrainConfig)} - TRAIN_RESERVED


_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "dict": (dict,), "list": (list,),
          "None": (type(None),)}


def _check_types(path: Path, where: str, train: dict) -> None:
    """Each train option has its TrainConfig type (epochs: abc would fail only once the trial runs)."""
    declared = {f.name: str(f.type) for f in fields(TrainConfig)}
    for key, value in train.items():
        names = [n.strip() for n in declared.get(key, "").split("|")]
        allowed = tuple(t for n in names for t in _TYPES.get(n, ()))
        if not allowed:
            continue
        if isinstance(value, bool) and bool not in allowed:  # True is an int to Python, not to a spec reader
            allowed = ()
        if not isinstance(value, allowed):
            wanted = " or ".join(n for n in names if n != "None") + (" (or null)" if "None" in names else "")
            raise _fail(path, f"{where}: {key} must be {wanted}, not {value!r}")


def _section(path: Path, raw: dict, key: str) -> dict:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise _fail(path, f"'{key}' must be a mapping of options")
    return {**SECTION_DEFAULTS[key], **value}


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a spec; raises SpecError naming the file and the problem."""
    path = Path(path)
    try:
        raw = safe_load_no_aliases(path.read_text(encoding="utf-8"))  # an alias bomb would expand to gigabytes
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec ({exc.strerror or exc})") from exc
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: not a text file (byte {exc.start} is not UTF-8); give a YAML sweep spec "
                        "such as models/sweeps/weights.yaml") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise SpecError(f"{path}: not valid YAML{where}: {problem} (quote a value that holds ': ')") from exc
    if not isinstance(raw, dict):
        raise _fail(path, "a spec is a YAML mapping (name:, data:, train:, grid: ...)")
    _check_keys(path, "the spec", raw, TOP_KEYS)

    data = raw.get("data") or {}
    if not isinstance(data, dict):
        raise _fail(path, "'data' must be a mapping: prepared: DIR, or celebamask: DIR and size: PX")
    _check_keys(path, "data", data, DATA_KEYS)
    sources = [k for k in SOURCE_KEYS if data.get(k)]
    if bool(data.get("prepared")) == bool(sources):
        raise _fail(path, "data needs either prepared: DIR or a source to prepare (celebamask: DIR, size: PX)")
    holdout = data.get("holdout")
    if holdout is not None and (isinstance(holdout, bool) or not isinstance(holdout, int) or holdout < 1):
        raise _fail(path, f"data.holdout is a number of train faces to score on (e.g. 80); got {holdout!r}")
    tolerance = data.get("tolerance")
    if tolerance is not None and (isinstance(tolerance, bool) or not isinstance(tolerance, (int, float))
                                  or tolerance < 0):
        raise _fail(path, f"data.tolerance is Mut1ny's RGB snap distance, a number >= 0 (e.g. 40); "
                          f"got {tolerance!r}")
    if data.get("mapping") is not None and not isinstance(data["mapping"], str):
        raise _fail(path, f"data.mapping is a JSON file of part: class (data prepare --mapping); "
                          f"got {data['mapping']!r}")

    steps = list(raw.get("steps") or STEPS)
    bad = [s for s in steps if s not in STEPS]
    if bad or steps[0] != "train" or len(set(steps)) != len(steps):
        raise _fail(path, f"steps must start with train and come from {', '.join(STEPS)}; got {steps}")
    if any(s in steps for s in ("verify", "bench")) and "export" not in steps:
        raise _fail(path, "verify and bench measure the exported models: add export to steps")

    train_keys = _train_keys()
    base = raw.get("train") or {}
    if not isinstance(base, dict):
        raise _fail(path, "'train' must be a mapping of train options (model:, epochs:, ...)")
    _check_keys(path, "train", base, train_keys)
    grid = raw.get("grid") or {}
    if not isinstance(grid, dict) or any(not isinstance(v, list) or not v for v in grid.values()):
        raise _fail(path, "'grid' maps train options to non-empty lists of values")
    _check_keys(path, "grid", grid, train_keys)
    listed = raw.get("trials")
    if listed == []:  # an empty list is a mistake, not "one default trial"
        raise _fail(path, "'trials' is empty: list at least one trial, or leave 'trials' out for one default trial")
    listed = listed or [{}]
    if not isinstance(listed, list) or not all(isinstance(t, dict) for t in listed):
        raise _fail(path, "'trials' is a list of mappings of train options (and name:)")
    sections = {k: _section(path, raw, k) for k in SECTION_DEFAULTS}
    torchrun = raw.get("torchrun")
    if torchrun is not None and (not isinstance(torchrun, int) or torchrun < 1):
        raise _fail(path, f"torchrun is a number of processes per trial (1 or more), not {torchrun!r}")

    combos = []
    for entry in listed:
        entry = dict(entry)
        _check_keys(path, "a trial", entry, train_keys | {"name"} | set(SECTION_DEFAULTS))
        for values in itertools.product(*grid.values()) if grid else [()]:
            combos.append((entry, dict(zip(grid, values))))
    trains = [{**base, **{k: v for k, v in e.items() if k in train_keys}, **g} for e, g in combos]
    for i, train in enumerate(trains, start=1):
        _check_types(path, f"trial {i}", train)
    varying = [k for k in sorted(train_keys) if len({repr(t.get(k)) for t in trains}) > 1]
    table = list(raw.get("table") or varying or ["model"])
    _check_keys(path, "table", dict.fromkeys(table), train_keys | {"name"})

    from ..models import list_models

    models = list_models()
    trials, names = [], set()
    for i, ((entry, _), train) in enumerate(zip(combos, trains), start=1):
        model = train.get("model", TrainConfig.model)
        if model not in models:
            raise _fail(path, f"trial {i}: unknown model {model!r}; `facesegtool models` lists them")
        name = str(entry.get("name") or "_".join(str(train.get(k, getattr(TrainConfig, k, ""))) for k in varying)
                   or model)
        if name in names:
            raise _fail(path, f"two trials are both named {name!r}: give them distinct name: values")
        names.add(name)
        labels = {k: (name if k == "name" else train.get(k, getattr(TrainConfig, k, None))) for k in table}
        per_trial = {k: {**sections[k], **(entry.get(k) or {})} for k in SECTION_DEFAULTS}
        trials.append(Trial(i, name, train, per_trial["export"], per_trial["verify"], per_trial["bench"], labels))
    return SweepSpec(
        path=path,
        name=str(raw.get("name") or path.stem),
        title=str(raw.get("title") or raw.get("name") or path.stem),
        budget=str(raw.get("budget") or ""),
        notes=str(raw.get("notes") or ""),
        data=data,
        steps=steps,
        trials=trials,
        table=table,
        torchrun=torchrun,
        raw=raw,
    )
