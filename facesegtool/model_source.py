"""Where a model comes from: one loader that every command reads through.

`--model` takes any of these, recognised from the file itself:

    models/default/model.pt        a facesegtool checkpoint (`facesegtool train`)
    parser.pt2                     a torch.export ExportedProgram (`torch.export.save`)
    parser.ts                      TorchScript (`torch.jit.save` of a scripted or traced module)
    my_parser.py:build_model       a user's own code: build_model() returns an nn.Module, whose
                                   state_dict comes from --weights (read with weights_only=True)
    parser.onnx                    ONNX (then ONNX Runtime is the reference every report names)

    source = load_source("parser.pt2", spec="parser.yaml")
    scores = source.net(x)         # 1 x C x h x w, the selected output, NCHW (h, w may be < input)
    source.spec                    # model_spec.ModelSpec: labels, input contract, mapping

Nothing here unpickles code: checkpoints and weights are read with `weights_only=True`, an
ExportedProgram is loaded with every unpickling path of torch.export.load forced to plain data,
TorchScript is read by TorchScript's own restricted loader, and a whole pickled nn.Module
(`torch.save(model)`) is refused with how to save it instead. Only the `file.py:function` form
runs the user's Python, because the user asked for exactly that.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import pickle
import re
import shlex
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import FORMAT as CHECKPOINT_FORMAT
from .checkpoint import CheckpointError, load_failure, default_checkpoint, load_model
from .hashing import sha256_file
from .model_spec import (ModelSpec, ModelSpecError, checkpoint_spec, positive_size, read_spec_file, resolve_spec,
                         spec_from_dict)

FORMATS = ("checkpoint", "exported-program", "torchscript", "module", "onnx")
_MODULE_REF = re.compile(r"^(?P<file>.+\.py):(?P<func>[A-Za-z_][A-Za-z0-9_]*)$")

SAVE_ADVICE = (
    "save it in a form that holds no code to unpickle: "
    "torch.export.save(torch.export.export(model.eval(), (torch.rand(1, 3, S, S),)), 'parser.pt2'), "
    "or torch.jit.save(torch.jit.trace(model.eval(), torch.rand(1, 3, S, S)), 'parser.ts'), "
    "or torch.save(model.state_dict(), 'weights.pt') and pass --model your_code.py:build_model --weights weights.pt"
)


class ModelSourceError(CheckpointError, ValueError):
    """The model file cannot be used as given; the message names it and says what to do."""


@dataclass
class LoadedModel:
    """A model from any source, behind one contract."""

    net: nn.Module  # normalised 1 x 3 x S x S float input -> 1 x C x h x w scores (NCHW, selected output)
    spec: ModelSpec
    path: Path
    format: str
    name: str  # for file names: the registry name, or the model file's stem
    sha256: str  # of the model file: what an export records, so verify can refuse another model's .tflite
    checkpoint: dict | None = None  # the facesegtool checkpoint itself (metrics, training config)
    onnx_path: Path | None = None  # format "onnx": the file that is converted
    notes: list[str] = field(default_factory=list)
    ref: str = ""  # what the user passed as --model ("code.py:build_model" for the module form)
    weights: Path | None = None  # --weights of the module form

    @property
    def reference(self) -> str:
        """What the TFLite models are compared with: the runtime that runs this source."""
        return "onnxruntime" if self.format == "onnx" else "pytorch"

    @property
    def contract(self) -> dict:
        return self.spec.input

    @property
    def classes(self) -> list[str]:
        return list(self.spec.labels)

    @property
    def is_registry(self) -> bool:
        return self.format == "checkpoint"

    @property
    def ckpt(self) -> dict:
        """The checkpoint-shaped view (model name, classes, input) that older call sites read."""
        if self.checkpoint is not None:
            return self.checkpoint
        return {"format": self.format, "model": {"name": self.name, "kwargs": {}}, "classes": self.classes,
                "input": dict(self.contract), "metrics": {}, "spec": self.spec.to_dict()}

    def describe(self) -> dict:
        """What reports and sidecars record of the source."""
        return {"path": str(self.path), "format": self.format, "sha256": self.sha256, "reference": self.reference,
                "name": self.name, "ref": self.ref or str(self.path),
                "weights": None if self.weights is None else str(self.weights)}

    def cli_args(self) -> list[str]:
        """The options that name this model again on another command line."""
        args = ["--model", self.ref or str(self.path)]
        return args + (["--weights", str(self.weights)] if self.weights is not None else [])

    @torch.inference_mode()
    def scores(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# --- output adaptation ---------------------------------------------------------------------------------


def select_output(out: Any, select: int | str | None) -> torch.Tensor:
    """The one tensor the spec names: a tensor as it is; else an index into a tuple/list, a key of a dict,
    or (select None) a dict's "logits" (transformers' outputs), else the first tensor output, as
    BiSeNet-style nets return (main, aux1, aux2)."""
    if isinstance(out, torch.Tensor):
        return out
    if select is None and isinstance(out, dict) and isinstance(out.get("logits"), torch.Tensor):
        return out["logits"]  # a Hugging Face ModelOutput (or its dict): the scores, whatever else it holds
    if isinstance(select, str):
        if not isinstance(out, dict) or select not in out:
            keys = list(out) if isinstance(out, dict) else f"a {type(out).__name__}"
            raise ModelSpecError(f"output select {select!r}: the model returns {keys}")
        return select_output(out[select], None)
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        index = 0 if select is None else select
        if not isinstance(index, int) or not -len(out) <= index < len(out):
            raise ModelSpecError(f"output select {select!r}: the model returns {len(out)} outputs")
        return select_output(out[index], None)
    raise ModelSpecError(f"the model returns a {type(out).__name__}, not tensors")


class ContractNet(nn.Module):
    """The user's model as the pipeline sees it: the selected output, NCHW, optionally resized to the input.

    An ExportedProgram's module cannot be put in train mode (which export and tracing call), so it is held
    outside the module tree with its parameters frozen; they then trace as constants, which ONNX folds.
    """

    def __init__(self, model: Callable, select: int | str | None, layout: str, resize_to: int | None = None,
                 hide: bool = False):
        super().__init__()
        if hide:
            for p in model.parameters():
                p.requires_grad_(False)
            object.__setattr__(self, "inner", model)
        else:
            self.inner = model
        self.select = select
        self.layout = layout
        self.resize_to = resize_to

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = select_output(self.inner(x), self.select)
        if out.dim() != 4:
            raise ModelSpecError(f"the selected output has shape {tuple(out.shape)}, not 1 x C x H x W (or NHWC)")
        if self.layout == "NHWC":
            out = out.permute(0, 3, 1, 2)
        if self.resize_to is not None and tuple(out.shape[-2:]) != (self.resize_to, self.resize_to):
            out = F.interpolate(out, size=(self.resize_to, self.resize_to), mode="bilinear", align_corners=False)
        return out


class OnnxRuntimeNet(nn.Module):
    """An ONNX file run by ONNX Runtime, behind the same call as a torch model (the reference for ONNX sources)."""

    def __init__(self, path: Path, select: int | str | None, layout: str, num_threads: int | None = None):
        super().__init__()
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if num_threads:
            opts.intra_op_num_threads = num_threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelSourceError(f"{path}: ONNX Runtime cannot load it ({' '.join(str(exc).split())[:300]})") from exc
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.select = select
        self.layout = layout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = self.session.run(None, {self.input_name: x.detach().cpu().numpy().astype(np.float32)})
        named = dict(zip(self.output_names, (torch.from_numpy(o) for o in outs)))
        out = select_output(named if isinstance(self.select, str) else list(named.values()), self.select)
        return out.permute(0, 3, 1, 2) if self.layout == "NHWC" else out


# --- format recognition ----------------------------------------------------------------------------------


def detect_format(model: str | Path) -> str:
    """One of FORMATS, from the reference's form and the file's contents (not only its name)."""
    text = str(model)
    if _MODULE_REF.match(text) and not Path(text).is_file():
        return "module"
    path = Path(text)
    if path.is_dir():
        raise ModelSourceError(f"{path} is a folder; give the model file in it (e.g. {path / 'model.pt'})")
    if not path.is_file():
        if text.endswith(".py"):
            raise ModelSourceError(f"{path}: name the function that builds the model, e.g. --model {path}:build_model")
        raise ModelSourceError(f"model file not found: {path}")
    if path.suffix == ".py":
        raise ModelSourceError(f"{path}: name the function that builds the model, e.g. --model {path}:build_model")
    if zipfile.is_zipfile(path):
        try:
            names = zipfile.ZipFile(path).namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise ModelSourceError(f"{path}: damaged archive ({exc})") from exc
        if any(n.endswith("archive_format") or n.endswith("/models/model.json") or n.startswith("models/")
               for n in names):
            return "exported-program"
        if any("/code/" in n or n.startswith("code/") for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "checkpoint"  # torch.save: a checkpoint, a bare state_dict or a pickled module (told apart on load)
        raise ModelSourceError(f"{path}: a zip archive that is none of: facesegtool checkpoint, torch.export .pt2, "
                               "TorchScript")
    with open(path, "rb") as f:
        head = f.read(8)
    if path.suffix == ".onnx" or _looks_like_onnx(path):
        return "onnx"
    if head[:1] == b"\x80":  # a legacy (non-zip) torch.save pickle
        return "checkpoint"
    what = f"cannot read checkpoint {path}" if path.suffix in (".pt", ".pth", ".ckpt") else str(path)
    raise ModelSourceError(f"{what}: not a model file this tool reads (a facesegtool checkpoint, .pt2, TorchScript, "
                           "ONNX, or --model code.py:function); corrupt or truncated?")


def _looks_like_onnx(path: Path) -> bool:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:
        return False
    return len(proto.graph.node) > 0


# --- loaders ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _plain_data_only():
    """torch.export.load unpickles weights, constants and sample inputs with weights_only=False and
    opaque objects with pickle.loads; force every such path to plain data for the duration of the load."""
    real_load, real_loads, real_obj = torch.load, pickle.loads, torch._C._pickle_load_obj

    def safe_load(f, *args, **kwargs):
        kwargs["weights_only"] = True
        return real_load(f, *args, **kwargs)

    def refuse(*_args, **_kwargs):
        raise pickle.UnpicklingError("the archive holds pickled Python objects, which are not loaded here")

    torch.load, pickle.loads, torch._C._pickle_load_obj = safe_load, refuse, refuse
    try:
        yield
    finally:
        torch.load, pickle.loads, torch._C._pickle_load_obj = real_load, real_loads, real_obj


def _load_exported_program(path: Path) -> tuple[nn.Module, int | None]:
    from .pytree_types import PytreeTypeError, keyword_input, module_calls, register_archive_types

    try:  # a Hugging Face model's ModelOutput must be a known pytree type before the archive loads
        calls = module_calls(path)
        register_archive_types(path, calls)
    except PytreeTypeError as exc:
        raise ModelSourceError(str(exc)) from None
    except (zipfile.BadZipFile, OSError, ValueError):  # torch.export.load below names the fault
        calls = []
    try:
        with _plain_data_only():
            program = torch.export.load(str(path))
    except Exception as exc:
        raise ModelSourceError(f"{path}: cannot load as a torch.export program: {load_failure(exc)}") from exc
    keyword = keyword_input(calls)
    module = program.module()
    return (module if keyword is None else KeywordInput(module, keyword)), _static_size(program)


class KeywordInput(nn.Module):
    """A program exported with its image as a keyword only (`pixel_values=x`), called positionally.

    Holds the program outside the module tree, frozen, as ContractNet(hide=True) does."""

    def __init__(self, program: nn.Module, keyword: str):
        super().__init__()
        for p in program.parameters():
            p.requires_grad_(False)
        object.__setattr__(self, "program", program)
        self.keyword = keyword

    def forward(self, x: torch.Tensor) -> Any:
        return self.program(**{self.keyword: x})


def _static_size(program: Any) -> int | None:
    """The square input side an ExportedProgram is fixed at (None when dynamic)."""
    user = list(program.graph_signature.user_inputs)
    for node in program.graph.nodes:
        if node.op == "placeholder" and node.name in user:
            shape = getattr(node.meta.get("val"), "shape", None)
            if shape is None or len(shape) != 4:
                return None
            h, w = shape[2], shape[3]
            if isinstance(h, int) and isinstance(w, int):
                if h != w:
                    raise ModelSourceError(f"the model takes {h}x{w} inputs; only square inputs are supported")
                return int(h)
            return None
    return None


def _load_torchscript(path: Path) -> nn.Module:
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as exc:
        raise ModelSourceError(f"{path}: cannot load as TorchScript: {' '.join(str(exc).split())[:300]}") from exc


def _load_user_module(ref: str, weights: str | Path | None) -> tuple[nn.Module, Path]:
    found = _MODULE_REF.match(ref)
    if not found:
        raise ModelSourceError(f"--model {ref}: write it as path/to/code.py:function_name")
    file, func = Path(found["file"]), found["func"]
    if not file.is_file():
        raise ModelSourceError(f"{file}: no such Python file (from --model {ref})")
    name = f"facesegtool_user_{hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:8]}"
    try:
        spec = importlib.util.spec_from_file_location(name, file)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # exit() in user code must not end the command as if it had succeeded
        raise ModelSourceError(f"{file}: importing it failed: {_user_failure(exc)}") from None
    builder = getattr(module, func, None)
    if not callable(builder):
        raise ModelSourceError(f"{file} has no function {func!r}")
    try:
        net = builder()
    except (Exception, SystemExit) as exc:
        raise ModelSourceError(f"{file}:{func}() failed: {_user_failure(exc)}") from None
    if not isinstance(net, nn.Module):
        raise ModelSourceError(f"{file}:{func}() returned a {type(net).__name__}, not a torch nn.Module")
    if weights is None:
        raise ModelSourceError(f"--model {ref} needs --weights FILE (the model's state_dict, torch.save(model.state_dict(), FILE))")
    weights = Path(weights)
    state = _read_state_dict(weights)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        lines = " ".join(str(exc).split())
        raise ModelSourceError(f"{weights} does not fit {file}:{func}(): {lines[:400]}") from exc
    return net.eval(), weights


def _user_failure(exc: BaseException) -> str:
    if isinstance(exc, SystemExit):
        return f"it called exit({exc.code!r}) instead of returning a model"
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def _read_state_dict(path: Path) -> dict:
    if not path.is_file():
        raise ModelSourceError(f"{path}: no such weights file")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelSourceError(f"{path}: cannot read weights: {load_failure(exc)}; give torch.save(model.state_dict())")
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not data or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ModelSourceError(f"{path}: not a state_dict (a dict of tensors); give torch.save(model.state_dict(), FILE)")
    return data


def _load_torch_save(path: Path) -> dict:
    """A torch.save file: our checkpoint, else a clear refusal for a bare state_dict or a pickled module."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        why = load_failure(exc)
        if "holds Python code or objects" in why:
            found = why.split("(")[1].split(")")[0]
            raise ModelSourceError(
                f"cannot read checkpoint {path}: it holds Python code or objects ({found}), not only tensors and "
                "plain data (a whole pickled model, torch.save(model), is such a file); code in a model file never "
                f"runs here. Give a checkpoint written by `facesegtool train`, or {SAVE_ADVICE}") from exc
        raise ModelSourceError(f"{path}: cannot read: {why}") from exc
    if isinstance(data, dict) and data.get("format") == CHECKPOINT_FORMAT:
        return data
    if isinstance(data, dict) and data and all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ModelSourceError(f"{path}: a bare state_dict has no architecture; pass the code that builds it: "
                               f"--model your_code.py:build_model --weights {path}")
    raise ModelSourceError(f"{path}: not a facesegtool checkpoint; {SAVE_ADVICE}")


# --- the one entry point --------------------------------------------------------------------------------


def load_source(
    model: str | Path | None = None,
    spec: str | Path | dict | None = None,
    weights: str | Path | None = None,
    size: int | None = None,
    num_threads: int | None = None,
) -> LoadedModel:
    """Load any supported model (None: the shipped default) with its contract resolved and checked.

    spec: a YAML/JSON file or a dict in the model_spec format; size: the input side to run at
    (--size), overriding the spec's. Raises ModelSourceError / ModelSpecError / CheckpointError.
    """
    raw = read_spec_file(spec) if isinstance(spec, (str, Path)) else dict(spec or {})
    where = str(spec) if isinstance(spec, (str, Path)) else "--spec"
    if (raw.get("input") or {}).get("size") is not None:  # a quoted "64" is a typo, not a dynamic shape
        positive_size(raw["input"]["size"], f"{where}: input size")
    if model is None:
        model = default_checkpoint()
    fmt = detect_format(model)
    if weights is not None and fmt != "module":
        raise ModelSourceError(f"--weights goes with --model code.py:function; {model} is a {fmt} file that holds its weights")
    graph_size: int | None = None
    base: ModelSpec | None = None
    checkpoint: dict | None = None
    onnx_path: Path | None = None
    hide = False
    if fmt == "checkpoint":
        path = Path(model)
        ckpt = _load_torch_save(path)
        try:
            net, checkpoint = load_model(path)
        except CheckpointError as exc:
            raise ModelSourceError(str(exc)) from exc
        name = checkpoint["model"]["name"]
        base = spec_from_dict(checkpoint["spec"]) if "spec" in ckpt else checkpoint_spec(checkpoint)
    elif fmt == "exported-program":
        path = Path(model)
        net, graph_size = _load_exported_program(path)
        name, hide = path.stem, True
    elif fmt == "torchscript":
        path = Path(model)
        net, name = _load_torchscript(path), path.stem
    elif fmt == "module":
        net, path = _load_user_module(str(model), weights)
        name = Path(_MODULE_REF.match(str(model))["file"]).stem
    else:
        path = onnx_path = Path(model)
        graph_size, channels_hint = _onnx_input_size(path)
        name = path.stem
    sha = sha256_file(path)

    # Probe once at the size the spec gives (or the graph's, or a guess for the probe only) to count channels.
    # (a static graph runs at its own size; a spec that says otherwise is refused by resolve_spec below)
    probe_size = graph_size or size or (raw.get("input") or {}).get("size") or (base.size if base else None)
    if fmt == "checkpoint":
        num_channels = len(base.labels)
        probe_out = None
    else:
        if not isinstance(probe_size, int) or isinstance(probe_size, bool):
            raise ModelSpecError(f"{where}: the model does not fix its input size (dynamic shapes) and no size is "
                                 "given: set `input: {size: N}` in --spec or pass --size N")
        if fmt == "onnx":
            probe_net = OnnxRuntimeNet(path, (raw.get("output") or {}).get("select"),
                                       str((raw.get("output") or {}).get("layout", "NCHW")).upper(), num_threads)
        else:
            probe_net = ContractNet(net, (raw.get("output") or {}).get("select"),
                                    str((raw.get("output") or {}).get("layout", "NCHW")).upper(), hide=hide)
        try:
            with torch.inference_mode():
                probe_out = probe_net(torch.zeros(1, 3, probe_size, probe_size))
        except ModelSpecError as exc:
            raise ModelSpecError(f"{where}: {exc}") from exc
        except (Exception, SystemExit) as exc:
            raise ModelSourceError(f"{path}: running it on a 1x3x{probe_size}x{probe_size} input failed: "
                                   f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}") from exc
        num_channels = int(probe_out.shape[1])
    resolved = resolve_spec(raw, num_channels, graph_size=graph_size, size=size, base=base, where=where)
    if fmt == "checkpoint":
        if resolved.output_layout != "NCHW" or resolved.select is not None:
            raise ModelSpecError(f"{where}: facesegtool checkpoints give one NCHW output; drop output layout/select")
        final = net
    elif fmt == "onnx":
        final = OnnxRuntimeNet(path, resolved.select, resolved.output_layout, num_threads)
    else:
        final = ContractNet(net, resolved.select, resolved.output_layout, hide=hide)
    if probe_out is not None:
        h, w = probe_out.shape[-2:]
        if h != w or probe_size % h:
            raise ModelSpecError(f"{where}: the selected output is {h}x{w} for a {probe_size}x{probe_size} input; "
                                 "expected the input size or a whole fraction of it (wrong output select or layout?)")
    final.eval()
    return LoadedModel(final, resolved, path, fmt, name, sha, checkpoint, onnx_path, list(resolved.assumed),
                       ref=str(model), weights=path if fmt == "module" else None)


def _onnx_input_size(path: Path) -> tuple[int | None, None]:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelSourceError(f"{path}: not a readable ONNX file ({exc})") from exc
    if not proto.graph.node:  # an empty or cut-off file parses as an empty model
        raise ModelSourceError(f"{path}: not an ONNX model (no graph in it: empty, truncated or another kind of file)")
    inits = {i.name for i in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    if len(inputs) != 1:
        raise ModelSourceError(f"{path}: the graph takes {len(inputs)} inputs; a face parser takes one image")
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        raise ModelSourceError(f"{path}: the input has {len(dims)} dimensions, not 1 x 3 x H x W")
    if dims[1] not in (3, None):
        raise ModelSourceError(f"{path}: the input is {dims}: only NCHW RGB inputs (1 x 3 x H x W) are supported")
    h, w = dims[2], dims[3]
    if h and w and h != w:
        raise ModelSourceError(f"{path}: the model takes {h}x{w} inputs; only square inputs are supported")
    return (h if h and w else None), None


def load_exported_source(
    model: str | Path | None,
    sidecars: list[dict],
    spec: str | Path | dict | None = None,
    weights: str | Path | None = None,
    num_threads: int | None = None,
) -> LoadedModel:
    """The model some exports came from: `model` if given, else the one their sidecars record (when the
    file is still there), else the shipped default; its contract from `spec`, else the recorded one.

    A sidecar is data: it may name a model file to read (checkpoint, .pt2, TorchScript, ONNX: loaded as
    data only), never code to run. A recorded `code.py:function` source is refused with the options that
    name it, so that the user confirms it on the command line; and such code named there is imported only
    after its weights have matched the sha256 the exports recorded."""
    given = model
    if model is None:
        sources = {json_key(s.get("source") or {"path": s.get("source_checkpoint")}) for s in sidecars}
        if len(sources) == 1:
            model, recorded_weights = _recorded_model(dict(sources.pop()), sidecars)
            weights = weights or recorded_weights
    elif _MODULE_REF.match(str(model)) and not Path(str(model)).is_file():
        _check_recorded_sha256(weights, sidecars, str(model))
    # A checkpoint named on the command line carries its own contract; the recorded one is for the rest.
    if spec is None and not (given is not None and detect_format(given) == "checkpoint"):
        recorded_specs = [s["spec"] for s in sidecars if isinstance(s.get("spec"), dict)]
        if recorded_specs:
            first = recorded_specs[0]
            spec = {"labels": first["labels"], "input": dict(first["input"]),
                    "output": {k: v for k, v in first["output"].items() if v is not None}, "mapping": first["mapping"]}
    return load_source(model, spec=spec, weights=weights, num_threads=num_threads)


def _recorded_model(recorded: dict, sidecars: list[dict]) -> tuple[str | None, str | None]:
    """(model, weights) the sidecars record, when the files are still there and hold no code to run."""
    ref, path, recorded_weights = (None if v in (None, "None") else v  # json_key made None a string
                                   for v in map(recorded.get, ("ref", "path", "weights")))
    code = [r for r in (ref, path) if r and (_MODULE_REF.match(r) or r.endswith(".py")) and not Path(r).is_file()]
    if code:
        exported = next((s.get("tflite") for s in sidecars if s.get("tflite")), "the exports")
        confirm = shlex.join(["--model", code[0]] + (["--weights", recorded_weights] if recorded_weights else []))
        raise ModelSourceError(f"{exported} records its model as Python code ({code[0]}); code named in a sidecar is "
                               f"never run: check that code, then name it yourself: {confirm}")
    for candidate in (ref, path):
        if candidate and Path(candidate).is_file() and Path(candidate).suffix != ".py":
            return candidate, None
    return None, None


def _check_recorded_sha256(weights: str | Path | None, sidecars: list[dict], ref: str) -> None:
    """Before any user code is imported: its weights must be the file the exports were made from."""
    if weights is None or not Path(weights).is_file():
        return  # load_source says what is missing, before importing anything
    digest = sha256_file(Path(weights))
    for s in sidecars:
        recorded = (s.get("source") or {}).get("sha256")
        if recorded and recorded != digest:
            raise ModelSourceError(
                f"{s.get('tflite') or 'an export'} was exported from {(s.get('source') or {}).get('ref') or 'another model'} "
                f"(sha256 {str(recorded)[:12]}), not from {ref} with {weights} (sha256 {digest[:12]}); {ref} was not "
                "imported: pass the model and --weights it was exported from, or re-export")


def json_key(d: dict) -> tuple:
    return tuple(sorted((k, str(v)) for k, v in d.items() if k in ("ref", "path", "weights", "sha256")))
