"""The model contract: what a face-parsing model takes and gives, and how its labels map onto ours.

Every model the tool handles, ours or a user's, is described by one `ModelSpec`:

    labels      the model's own class names, in output-channel order
    input       size, channel_order, mean, std, scale (x_model = (pixel / scale - mean) / std)
    output      layout (NCHW | NHWC), kind (logits | probabilities), select (which output of a
                tuple / dict: an index or a key)
    mapping     model label -> one of our 11 classes, or "ignore" (many to one)

A user writes the parts they know in a YAML file (`--spec FILE.yaml`):

    preset: celebamask19            # labels + mapping of a common label set (see PRESETS)
    input: {size: 512, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
    output: {select: 0}             # BiSeNet-style (main, aux1, aux2): the first
    mapping: {hat: ignore}          # entries override the preset's

What the spec leaves out is inferred from the model (class count from the output shape, input
size from a static graph) or assumed, and every assumption is recorded in `ModelSpec.assumed`.
A spec that contradicts the model stops with one ModelSpecError naming the conflict.
"""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import FacesegError
from .labels import CELEBAMASK_TO_CLASS, CLASS_INDEX, CLASSES, IGNORE_INDEX, PALETTE

IGNORE = "ignore"
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

# The 19 CelebAMask-HQ parts in the order face-parsing code commonly trains on (face-parsing.PyTorch /
# BiSeNet and most of its descendants), which is not the order of the dataset's own part ids.
CELEBAMASK19 = ("background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
                "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat")
# The same parts in the order of CelebAMask-HQ's index masks (labels.CELEBAMASK_PARTS).
CELEBAMASK_IDS = ("background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
                  "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth")
LAPA11 = ("background", "skin", "left_eyebrow", "right_eyebrow", "left_eye", "right_eye", "nose", "upper_lip",
          "inner_mouth", "lower_lip", "hair")
LAPA_TO_CLASS = {"background": "background", "skin": "face", "left_eyebrow": "eyebrows", "right_eyebrow": "eyebrows",
                 "left_eye": "eyes", "right_eye": "eyes", "nose": "nose", "upper_lip": "lips", "inner_mouth": "teeth",
                 "lower_lip": "lips", "hair": "hair"}

# name -> (labels in output order, mapping onto our classes). CelebAMask's necklace, earring, hat
# and cloth are background, as in our own training data (labels.CELEBAMASK_TO_CLASS).
PRESETS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "facesegtool11": (CLASSES, {c: c for c in CLASSES}),
    "celebamask19": (CELEBAMASK19, dict(CELEBAMASK_TO_CLASS)),
    "celebamask-ids": (CELEBAMASK_IDS, dict(CELEBAMASK_TO_CLASS)),
    "lapa11": (LAPA11, LAPA_TO_CLASS),
}
# A model whose spec names no labels: its channel count picks the preset (and says so).
PRESET_BY_COUNT = {len(CLASSES): "facesegtool11", len(CELEBAMASK19): "celebamask19"}

LAYOUTS = ("NCHW", "NHWC")
KINDS = ("logits", "probabilities")
SPEC_KEYS = {"preset", "labels", "input", "output", "mapping", "name"}
INPUT_KEYS = {"size", "channel_order", "mean", "std", "scale"}
OUTPUT_KEYS = {"layout", "kind", "select"}


class ModelSpecError(FacesegError, ValueError):
    """The spec is malformed or contradicts the model; the message names the conflict."""


@dataclass
class ModelSpec:
    labels: list[str]
    input: dict
    mapping: dict[str, str]
    output_layout: str = "NCHW"
    output_kind: str = "logits"
    select: int | str | None = None
    preset: str | None = None
    assumed: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def size(self) -> int:
        return int(self.input["size"])

    @property
    def is_ours(self) -> bool:
        """Our 11 classes in our order, mapped one to one: no translation anywhere."""
        return tuple(self.labels) == CLASSES and all(self.mapping.get(c) == c for c in CLASSES)

    @property
    def has_mapping(self) -> bool:
        """At least one label maps onto one of our classes (absolute IoU on our labelled faces is possible)."""
        return any(v != IGNORE and v != "background" for v in self.mapping.values())

    def lut(self) -> np.ndarray:
        """Model class index -> our class index (IGNORE_INDEX for labels mapped to "ignore")."""
        return np.array([CLASS_INDEX[self.mapping[n]] if self.mapping[n] != IGNORE else IGNORE_INDEX
                         for n in self.labels], dtype=np.uint8)

    def display_lut(self) -> np.ndarray:
        """Like lut(), with ignored labels shown as background: for effects and pictures, never for scoring."""
        lut = self.lut()
        return np.where(lut == IGNORE_INDEX, CLASS_INDEX["background"], lut).astype(np.uint8)

    def palette(self) -> list[list[int]]:
        """One RGB colour per model label: our class's colour where it maps to one, a generated hue otherwise."""
        colours = []
        spare = 0
        for name in self.labels:
            target = self.mapping[name]
            if target != IGNORE and (target != "background" or name == "background"):
                colours.append([int(v) for v in PALETTE[CLASS_INDEX[target]]])
            else:  # golden-angle hues: distinct for any number of labels
                r, g, b = colorsys.hsv_to_rgb((0.13 + 0.618034 * spare) % 1.0, 0.65, 0.9)
                colours.append([round(255 * r), round(255 * g), round(255 * b)])
                spare += 1
        return colours

    def to_dict(self) -> dict:
        """The contract as plain data (sidecars, checkpoints of record, reports); read back by spec_from_dict."""
        return {
            "labels": list(self.labels),
            "input": dict(self.input),
            "output": {"layout": self.output_layout, "kind": self.output_kind, "select": self.select},
            "mapping": dict(self.mapping),
            "target_classes": list(CLASSES),
            "preset": self.preset,
            "assumed": list(self.assumed),
        }


def spec_from_dict(data: dict, where: str = "spec") -> ModelSpec:
    """Inverse of ModelSpec.to_dict (no inference: the dict is a finished contract), checked: it comes from a
    file (a checkpoint, a sidecar) that may have been edited. Raises ModelSpecError naming `where` and the field."""
    check_contract_dict(data, where)
    out = data.get("output") or {}
    return ModelSpec(list(data["labels"]), dict(data["input"]), dict(data["mapping"]), out.get("layout", "NCHW"),
                     out.get("kind", "logits"), out.get("select"), data.get("preset"), list(data.get("assumed") or []))


def check_labels(labels: object, where: str) -> list[str]:
    """Two or more distinct non-empty class names, else ModelSpecError naming `where`."""
    if not isinstance(labels, list) or not all(isinstance(n, str) and n for n in labels):
        raise ModelSpecError(f"{where} must be a list of class names, not {str(labels)[:80]!r}")
    if len(labels) < 2:
        raise ModelSpecError(f"{where} lists {len(labels)} class(es); a face parser has 2 or more")
    if len(set(labels)) != len(labels):
        raise ModelSpecError(f"{where}: duplicate label(s) {', '.join(sorted({n for n in labels if labels.count(n) > 1}))}")
    return labels


def check_mapping(mapping: object, labels: list[str], where: str) -> None:
    """Every label mapped onto one of our classes or "ignore"."""
    if not isinstance(mapping, dict):
        raise ModelSpecError(f"{where} must map each label to one of our classes or '{IGNORE}'")
    for label in labels:
        target = mapping.get(label)
        if not isinstance(target, str) or (target not in CLASS_INDEX and target != IGNORE):
            raise ModelSpecError(f"{where}: label {label!r} -> {target!r}: not one of {', '.join(CLASSES)} or '{IGNORE}'")


def check_contract_dict(data: object, where: str) -> None:
    """A finished contract as ModelSpec.to_dict writes it: labels, input, output, mapping."""
    if not isinstance(data, dict):
        raise ModelSpecError(f"{where} must be a mapping (labels, input, output, mapping)")
    labels = check_labels(data.get("labels"), f"{where}.labels")
    inp = data.get("input")
    if not isinstance(inp, dict):
        raise ModelSpecError(f"{where}.input must be a mapping (size, mean, std, scale, channel_order)")
    if "size" in inp:
        positive_size(inp["size"], f"{where}.input.size")
    check_normalization(inp, f"{where}.input")
    check_mapping(data.get("mapping"), labels, f"{where}.mapping")
    out = data.get("output") or {}
    if not isinstance(out, dict):
        raise ModelSpecError(f"{where}.output must be a mapping (layout, kind, select)")
    if str(out.get("layout", "NCHW")).upper() not in LAYOUTS or out.get("kind", "logits") not in KINDS:
        raise ModelSpecError(f"{where}.output: layout must be NCHW or NHWC and kind logits or probabilities")
    select = out.get("select")
    if select is not None and (isinstance(select, bool) or not isinstance(select, (int, str))):
        raise ModelSpecError(f"{where}.output.select must be an output's index or name, not {str(select)[:80]!r}")


def read_spec_file(path: str | Path) -> dict:
    """The raw YAML (or JSON) spec, checked for shape only; resolve_spec checks it against the model."""
    import yaml

    from .yaml_io import safe_load_no_aliases

    path = Path(path)
    try:
        data = safe_load_no_aliases(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelSpecError(f"{path}: no such spec file") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelSpecError(f"{path}: not a readable YAML spec ({' '.join(str(exc).split())[:200]})") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ModelSpecError(f"{path}: a spec is a YAML mapping (keys: {', '.join(sorted(SPEC_KEYS))})")
    _check_keys(data, SPEC_KEYS, str(path))
    for section, keys in (("input", INPUT_KEYS), ("output", OUTPUT_KEYS)):
        if data.get(section) is not None:
            if not isinstance(data[section], dict):
                raise ModelSpecError(f"{path}: '{section}' must be a mapping of {', '.join(sorted(keys))}")
            _check_keys(data[section], keys, f"{path}: {section}")
    return data


def _check_keys(data: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        raise ModelSpecError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def resolve_spec(
    raw: dict | None,
    num_channels: int,
    graph_size: int | None = None,
    size: int | None = None,
    base: ModelSpec | None = None,
    where: str = "--spec",
) -> ModelSpec:
    """The finished contract: `raw` (a user's spec) over `base` (what the model file carries), checked
    against what the model actually gives (num_channels of the selected output, graph_size of a static
    input). `size` (a command's --size) overrides the spec's input size."""
    raw = dict(raw or {})
    assumed: list[str] = []

    # Labels: explicit, else a preset, else what the file carries, else by channel count.
    preset = raw.get("preset")
    if preset is not None and preset not in PRESETS:
        raise ModelSpecError(f"{where}: unknown preset {preset!r}; known: {', '.join(PRESETS)}")
    labels = raw.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or not all(isinstance(n, str) and n for n in labels):
            raise ModelSpecError(f"{where}: 'labels' must be a list of class names in output order")
        if len(set(labels)) != len(labels):
            dup = sorted({n for n in labels if labels.count(n) > 1})
            raise ModelSpecError(f"{where}: duplicate label(s) {', '.join(dup)}")
    elif preset is not None:
        labels = list(PRESETS[preset][0])
    elif base is not None:
        labels, preset = list(base.labels), base.preset
    elif num_channels in PRESET_BY_COUNT:
        preset = PRESET_BY_COUNT[num_channels]
        labels = list(PRESETS[preset][0])
        assumed.append(f"labels: the spec names none; {num_channels} output channels taken as preset {preset!r}")
    else:
        labels = [f"class_{i}" for i in range(num_channels)]
        assumed.append(f"labels: the spec names none and {num_channels} channels match no preset: "
                       f"named class_0..class_{num_channels - 1}, mapped to none of our classes")
    if num_channels < 2:
        raise ModelSpecError(f"{where}: the model's output has {num_channels} channel; a face parser gives one score "
                             "per class (2 or more channels): wrong output select, or not a segmentation model?")
    if len(labels) != num_channels:
        source = "labels" if raw.get("labels") is not None else f"preset {preset!r}" if preset else "labels"
        raise ModelSpecError(f"{where}: {source} list {len(labels)} classes but the model's output has "
                             f"{num_channels} channels; give one label per output channel, in order")

    # Mapping: preset's (when the labels are the preset's), then base's, then names equal to ours, then the spec's.
    mapping: dict[str, str] = {}
    if preset is not None and list(labels) == list(PRESETS[preset][0]):
        mapping.update(PRESETS[preset][1])
    elif base is not None and list(labels) == list(base.labels):
        mapping.update(base.mapping)
    user_mapping = raw.get("mapping") or {}
    if not isinstance(user_mapping, dict):
        raise ModelSpecError(f"{where}: 'mapping' must map model labels to one of our classes or 'ignore'")
    for label, target in user_mapping.items():
        if not isinstance(label, str) or not isinstance(target, str):
            raise ModelSpecError(f"{where}: mapping {str(label)[:40]} -> {str(target)[:40]}: each entry maps a label name "
                                 "to a class name")
        if label not in labels:
            raise ModelSpecError(f"{where}: mapping names label {label!r}, which the model does not have; "
                                 f"its labels: {', '.join(labels)}")
        if target not in CLASS_INDEX and target != IGNORE:
            raise ModelSpecError(f"{where}: mapping {label!r} -> {target!r}: unknown class; use one of "
                                 f"{', '.join(CLASSES)} or '{IGNORE}'")
        mapping[label] = target
    unmapped = [n for n in labels if n not in mapping]
    for name in unmapped:
        mapping[name] = name if name in CLASS_INDEX else IGNORE
    guessed = [n for n in unmapped if n not in CLASS_INDEX]
    if guessed and labels[0] != "class_0":
        assumed.append(f"mapping: {', '.join(guessed)} not mapped by the spec: ignored")

    # Input: spec over base over defaults; the graph's static size must agree.
    inp = {k: v for k, v in (base.input if base is not None else {}).items() if k in INPUT_KEYS}
    inp.update({k: v for k, v in (raw.get("input") or {}).items() if v is not None and k in INPUT_KEYS})
    if size is not None:
        inp["size"] = int(size)
    if "size" in inp:
        inp["size"] = positive_size(inp["size"], f"{where}: input size")
        if graph_size is not None and inp["size"] != graph_size:
            raise ModelSpecError(f"{where}: input size {inp['size']} but the model's graph is fixed at "
                                 f"{graph_size}x{graph_size}; use {graph_size} or re-save the model with another size")
    elif graph_size is not None:
        inp["size"] = graph_size
        assumed.append(f"input size {graph_size} read from the model's graph")
    else:
        raise ModelSpecError(f"{where}: the model does not fix its input size (dynamic shapes) and no size is given: "
                             "set `input: {size: N}` in --spec or pass --size N")
    for key, default, why in (("mean", IMAGENET_MEAN, "ImageNet's"), ("std", IMAGENET_STD, "ImageNet's"),
                              ("scale", 255.0, "8-bit pixels"), ("channel_order", "RGB", "RGB")):
        if key not in inp:
            inp[key] = default
            assumed.append(f"input {key} {default} ({why}): the spec does not say")
    inp.update(check_normalization(inp, f"{where}: input"))

    out = raw.get("output") or {}
    layout = str(out.get("layout", base.output_layout if base else "NCHW")).upper()
    kind = str(out.get("kind", base.output_kind if base else "logits")).lower()
    if layout not in LAYOUTS:
        raise ModelSpecError(f"{where}: output layout must be NCHW or NHWC, not {layout!r}")
    if kind not in KINDS:
        raise ModelSpecError(f"{where}: output kind must be logits or probabilities, not {kind!r}")
    select = out.get("select", base.select if base else None)
    if select is not None and (isinstance(select, bool) or not isinstance(select, (int, str))):
        raise ModelSpecError(f"{where}: output select must be an output's index or its name, not {str(select)[:80]}")
    return ModelSpec(list(labels), inp, mapping, layout, kind, select, preset,
                     (list(base.assumed) if base else []) + assumed)


def positive_size(value: object, what: str) -> int:
    """An input side in pixels (an int >= 8, not "64" nor 64.0), else ModelSpecError naming `what`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 8:
        raise ModelSpecError(f"{what} must be a whole number of pixels >= 8, not {value!r}")
    return value


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_normalization(inp: dict, where: str) -> dict:
    """channel_order, mean, std and scale of an input contract, checked and normalised (x = (p / scale - mean) / std):
    a NaN or zero std or scale would make every input NaN or Inf. Raises ModelSpecError naming `where`."""
    order = str(inp.get("channel_order", "RGB")).upper()
    if order not in ("RGB", "BGR"):
        raise ModelSpecError(f"{where}.channel_order must be RGB or BGR, not {inp.get('channel_order')!r}")
    checked: dict = {"channel_order": order}
    for key in ("mean", "std"):
        values = inp.get(key)
        if not isinstance(values, (list, tuple)) or len(values) != 3 or not all(map(_is_number, values)):
            raise ModelSpecError(f"{where}.{key} must be three finite numbers, one per channel, not {values!r}")
        checked[key] = [float(v) for v in values]
    if min(checked["std"]) <= 0:
        raise ModelSpecError(f"{where}.std must be > 0, not {inp['std']!r}")
    scale = inp.get("scale", 255.0)
    if not _is_number(scale) or scale <= 0:
        raise ModelSpecError(f"{where}.scale must be a number > 0 (255 for 8-bit pixels), not {scale!r}")
    checked["scale"] = float(scale)
    return checked


def checkpoint_spec(ckpt: dict) -> ModelSpec:
    """The contract of one of our registry checkpoints: its classes, its input, identity mapping."""
    labels = list(ckpt.get("classes", CLASSES))
    preset = "facesegtool11" if tuple(labels) == CLASSES else None
    return ModelSpec(labels, dict(ckpt["input"]), {n: (n if n in CLASS_INDEX else IGNORE) for n in labels},
                     preset=preset)


def mask_in_our_classes(mask: np.ndarray, lut: np.ndarray | None) -> np.ndarray:
    """A model-class mask in our 11 classes through ModelSpec.lut() (None: it is in ours already); labels mapped to
    "ignore" count as background against the truth."""
    if lut is None:
        return mask
    return np.where(lut == IGNORE_INDEX, CLASS_INDEX["background"], lut).astype(np.uint8)[mask]
