"""Checkpoints: everything needed to rebuild a model, saved atomically, loaded without pickle.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, so that
`torch.load(path, weights_only=True)` can read it:

    {
      "format": "facesegtool-checkpoint", "version": 1,
      "model": {"name": "unet-mobilenetv3-small", "kwargs": {...}},
      "classes": [...11 names...],
      "input": INPUT_CONTRACT-shaped dict (size, channel_order, mean, std),
      "state_dict": {...},
      "metrics": {...},            # e.g. SegmentationScores.as_dict() on val
      "train_config": {...},
      # training state, only in resumable checkpoints:
      "epoch": int, "optimizer": ..., "scheduler": ..., "history": [...]
    }
"""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from .atomic import atomic_path
from .errors import FacesegError
from .labels import CLASSES
from .models import create_model

FORMAT = "facesegtool-checkpoint"
VERSION = 1

# Models are trained from scratch on inputs scaled to [-1, 1]: symmetric around zero, which
# int8 quantization represents well, and trivial to bake into the app's pre-processing.
DEFAULT_INPUT = {"size": 256, "channel_order": "RGB", "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "scale": 255.0}

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "default"
CALIBRATION_DIR = REPO_ROOT / "calibration"  # the shipped calibration face crops
DEFAULT_EXPORT_DIR = Path("exports") / "default"  # where `facesegtool export` puts the shipped model (cwd-relative)


class CheckpointError(FacesegError, RuntimeError):
    pass


def make_checkpoint(
    model: nn.Module,
    model_name: str,
    model_kwargs: dict | None = None,
    input_contract: dict | None = None,
    classes: tuple[str, ...] | list[str] = CLASSES,
    metrics: dict | None = None,
    train_config: dict | None = None,
    **training_state: Any,
) -> dict:
    ckpt = {
        "format": FORMAT,
        "version": VERSION,
        "model": {"name": model_name, "kwargs": dict(model_kwargs or {})},
        "classes": list(classes),
        "input": dict(input_contract or DEFAULT_INPUT),
        "state_dict": model.state_dict(),
        "metrics": metrics or {},
        "train_config": train_config or {},
    }
    ckpt.update(training_state)
    return ckpt


def save_checkpoint(ckpt: dict, path: str | Path, half: bool = False) -> Path:
    """Write atomically (temp file in the same folder, then rename): a kill never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if half:
        ckpt = dict(ckpt)
        ckpt["state_dict"] = {
            k: (v.half() if v.is_floating_point() else v) for k, v in ckpt["state_dict"].items()
        }
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return path


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, truncated, or a pickle that is not plain data
        raise CheckpointError(
            f"cannot read checkpoint {path}: {load_failure(exc)}; give a checkpoint written by `facesegtool train` "
            "(code in a checkpoint never runs here: only tensors and plain data are read)"
        ) from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a facesegtool checkpoint (no 'format': '{FORMAT}')")
    check_checkpoint(ckpt, path)
    return ckpt


def check_checkpoint(ckpt: dict, path: str | Path) -> None:
    """The fields a model is rebuilt from, checked once on read: an edited or damaged checkpoint stops with
    one CheckpointError naming the file and the field, not a TypeError deep in the model's constructor."""
    from .model_spec import ModelSpecError, check_contract_dict, check_labels, check_normalization, positive_size

    def bad(field: str, what: str) -> CheckpointError:
        return CheckpointError(f"{path}: checkpoint field {field!r} {what}; give a checkpoint written by "
                               "`facesegtool train`")

    model = ckpt.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("name"), str):
        raise bad("model", "must be a mapping with the model's registry name")
    kwargs = model.get("kwargs", {})
    if not isinstance(kwargs, dict) or not all(isinstance(k, str) for k in kwargs):
        raise bad("model.kwargs", f"must be a mapping of argument names to values, not {str(kwargs)[:80]}")
    state = ckpt.get("state_dict")
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise bad("state_dict", "must be a non-empty mapping of parameter names to tensors")
    try:
        check_labels(ckpt.get("classes"), "classes")
        inp = ckpt.get("input")
        if not isinstance(inp, dict):
            raise ModelSpecError("input must be a mapping (size, mean, std, scale, channel_order)")
        positive_size(inp.get("size"), "input.size")
        check_normalization(inp, "input")
        if "spec" in ckpt:
            check_contract_dict(ckpt["spec"], "spec")
    except ModelSpecError as exc:
        raise CheckpointError(f"{path}: checkpoint field {exc}; give a checkpoint written by `facesegtool train`") from None


def load_failure(exc: Exception) -> str:
    """Why torch.load refused the file, in our words: never torch's advice to retry with weights_only=False,
    which would run whatever code the file holds."""
    text = " ".join(str(exc).split())
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text or "WeightsUnpickler" in text:
        found = re.search(r"GLOBAL ([\w.]+)", text)
        if found:
            return f"it holds Python code or objects ({found.group(1)}), not only tensors and plain data, so it was refused"
        return "not tensors and plain data as a checkpoint holds them (corrupt, truncated, or another kind of file)"
    if "PytorchStreamReader" in text or "miniz" in text:  # torch's zip reader: its long advice speaks of checkpoints
        return "a damaged or truncated zip archive (cut off while copying or saving?); copy or save it again"
    if isinstance(exc, (KeyError, EOFError)):  # torch.load of text or cut-off bytes: KeyError(101), EOFError
        return "not a PyTorch checkpoint file (a text file, a cut-off download, or another kind of file)"
    return text.rstrip(".") or type(exc).__name__


def load_model(path: str | Path | None = None) -> tuple[nn.Module, dict]:
    """Rebuild the model of a checkpoint (the shipped default when path is None), in eval mode, float32."""
    path = Path(path) if path is not None else default_checkpoint()
    ckpt = read_checkpoint(path)
    spec = ckpt["model"]
    try:
        model = create_model(spec["name"], num_classes=len(ckpt["classes"]), **spec.get("kwargs", {}))
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()})
    except (ValueError, RuntimeError, KeyError, TypeError) as exc:  # TypeError: kwargs the constructor does not take
        why = " ".join(str(exc).split())
        raise CheckpointError(f"{path}: cannot rebuild model {spec.get('name')!r}: "
                              f"{why[:300] + ' ...' if len(why) > 300 else why}") from None
    model.eval()
    return model, ckpt


def default_checkpoint() -> Path:
    """The shipped default model; FACESEGTOOL_MODEL overrides it."""
    env = os.environ.get("FACESEGTOOL_MODEL")
    path = Path(env) if env else DEFAULT_MODEL_DIR / "model.pt"
    if not path.is_file():
        raise CheckpointError(
            f"no default model at {path}: pass --checkpoint FILE, or train one with `facesegtool train`"
        )
    return path
