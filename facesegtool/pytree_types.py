"""The output (and input) container types a torch.export archive names, made known before it is loaded.

A `transformers` model exported as it comes returns a `ModelOutput` (SegFormer's
`transformers.modeling_outputs.SemanticSegmenterOutput`), which torch.export saves by its type name in
the archive's pytree specs. Loading needs that type registered with torch's pytree, and transformers
registers every ModelOutput class when the module defining it is imported. So: read the names, import
the modules of the `transformers.*` ones (from the installed package only, never from the archive),
and refuse anything still unknown with one line that says what to do.

    from facesegtool.pytree_types import keyword_input, module_calls, register_archive_types
    calls = module_calls(Path("segformer.pt2"))
    register_archive_types(Path("segformer.pt2"), calls)   # raises PytreeTypeError with the remedy
    keyword_input(calls)                                     # "pixel_values" when exported with kwargs only
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import zipfile
from pathlib import Path

import torch.utils._pytree as pytree

from .errors import FacesegError

TRANSFORMERS_PIN = "transformers==5.25.0"  # the version tested here (setup.cfg extra `transformers`)
_TYPE = re.compile(r'"type": "([A-Za-z_][\w.]*)"')
_OUTPUT_MODULE = re.compile(r"^transformers\.(modeling_outputs|models\.\w+\.modeling_\w+)$")
_WRAPPER = ("or save a plain tensor output instead: torch.export.export(Logits(model).eval(), ...) with "
            "class Logits(nn.Module) whose forward returns self.model(pixel_values=x).logits")


class PytreeTypeError(FacesegError, ValueError):
    """The archive's outputs are of a type that cannot be registered here; the message says how to fix it."""


def module_calls(path: Path) -> list[dict]:
    """The module call graph of a torch.export .pt2 (plain JSON): each call's fqn and pytree signature."""
    calls: list[dict] = []
    with zipfile.ZipFile(path) as archive:
        for entry in archive.namelist():
            if entry.endswith("models/model.json"):
                graph = json.loads(archive.read(entry)).get("graph_module") or {}
                calls += [c for c in graph.get("module_call_graph") or [] if isinstance(c, dict)]
    return calls


def archive_type_names(calls: list[dict]) -> set[str]:
    """Container type names in the calls' in/out pytree specs (e.g. transformers' ModelOutput classes)."""
    names: set[str] = set()
    for call in calls:
        signature = call.get("signature") or {}
        for spec in (signature.get("in_spec"), signature.get("out_spec")):
            if isinstance(spec, str):
                names.update(_TYPE.findall(spec.replace('\\"', '"')))
    return names


def register_archive_types(path: Path, calls: list[dict]) -> list[str]:
    """Make every container type the archive names known to torch's pytree; returns the ones imported.

    Only `transformers.*` types are imported, and only from the installed transformers package."""
    unknown = sorted(n for n in archive_type_names(calls) if n not in pytree.SERIALIZED_TYPE_TO_PYTHON_TYPE)
    imported = []
    for name in unknown:
        if not name.startswith("transformers."):
            raise PytreeTypeError(f"{path}: its outputs are of type {name}, which torch cannot rebuild here "
                                  "(a custom pytree type); export a model that returns tensors, a tuple or a dict")
        module = name.rsplit(".", 1)[0]
        if not _OUTPUT_MODULE.match(module):  # only where transformers defines its outputs: no other import
            raise PytreeTypeError(f"{path}: its outputs are of type {name}, not one of transformers' model outputs "
                                  "(transformers.modeling_outputs or a models.*.modeling_* module); "
                                  "export a model that returns tensors, a tuple or a dict")
        if importlib.util.find_spec("transformers") is None:
            raise PytreeTypeError(
                f"{path}: a Hugging Face model whose output is {name}; loading it needs transformers: "
                f"pip install '{TRANSFORMERS_PIN}' (or pip install -e '.[transformers]'), {_WRAPPER}")
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise PytreeTypeError(f"{path}: its output type {name} is not in the installed transformers ({exc}); "
                                  f"install the version it was saved with (tested: {TRANSFORMERS_PIN}), {_WRAPPER}"
                                  ) from exc
        if name not in pytree.SERIALIZED_TYPE_TO_PYTHON_TYPE:
            raise PytreeTypeError(f"{path}: importing {module} did not register its output type {name}; "
                                  f"{_WRAPPER}")
        imported.append(name)
    return imported


def keyword_input(calls: list[dict]) -> str | None:
    """The keyword the program takes its image by (`pixel_values`) when it was exported with kwargs only."""
    root = next((c for c in calls if c.get("fqn") == ""), None)
    spec = ((root or {}).get("signature") or {}).get("in_spec")
    return _only_kwarg(spec) if isinstance(spec, str) else None


def _only_kwarg(spec: str) -> str | None:
    """in_spec "((), {name: x})": the one keyword; None for positional inputs."""
    try:
        _, tree = json.loads(spec)
        args, kwargs = tree["children_spec"]
        keys = json.loads(kwargs["context"])
    except (ValueError, KeyError, TypeError):
        return None
    if args["children_spec"] or kwargs["type"] != "builtins.dict" or len(keys) != 1:
        return None
    return str(keys[0])
