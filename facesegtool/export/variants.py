"""The TFLite variants an export writes, in one table (as Ultralytics' `export_formats()`).

The table drives `--quant` parsing, the check of option combinations before any work, the file
names, the sidecar's "variant" field and the order verify and bench list models in.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import FacesegError

IO_DTYPES = ("float32", "int8", "uint8")  # an int8 model's input/output type


class ExportOptionError(FacesegError, ValueError):
    """A --quant value or a combination of export options that cannot work; raised before any work."""


@dataclass(frozen=True)
class Variant:
    name: str  # the --quant value, the sidecar's "variant", the end of the file name
    what: str  # what is quantised, in words
    calibrated: bool  # needs calibration faces (the int8 activations' ranges)
    options: frozenset[str]  # the export() options only some variants use that this one takes

    def file_name(self, stem: str, int16_activations: bool = False) -> str:
        """The .tflite name; an int16x8 export has its own, so it never replaces the int8 one."""
        return f"{stem}_{INT16X8 if self.name == 'int8' and int16_activations else self.name}.tflite"


INT16X8 = "int16x8"  # the file suffix of int8 with 16-bit activations
_INT8_ONLY = frozenset({"io_dtype", "int16_activations", "float_layers"})

# In canonical order: the order of --quant all, of export's report, and of verify's and bench's tables.
TABLE: tuple[Variant, ...] = (
    Variant("fp32", "float32 weights and activations", False, frozenset()),
    Variant("fp16", "float16 weights, float32 compute", False, frozenset()),
    Variant("dynamic", "int8 weights, float activations", False, frozenset({"per_channel"})),
    Variant("int8", "int8 weights and activations, calibrated on faces", True, _INT8_ONLY | {"per_channel"}),
)
VARIANTS: tuple[str, ...] = tuple(v.name for v in TABLE)
BY_NAME: dict[str, Variant] = {v.name: v for v in TABLE}
# The variant-specific options and the value that means "not asked for" (the export() defaults).
OPTION_DEFAULTS = {"per_channel": True, "io_dtype": None, "int16_activations": False, "float_layers": ()}
OPTION_FLAGS = {"per_channel": "--per-tensor", "io_dtype": "--io-dtype", "int16_activations": "--int16-activations",
                "float_layers": "--float-layer"}
# The sidecar's "export" keys of the variant-specific options recorded only for variants that take them
# (per_channel, which only dynamic and int8 use, has always been recorded in every sidecar).
SIDECAR_KEYS = {"io_dtype": "int8_io_dtype", "int16_activations": "int16_activations", "float_layers": "float_layers"}
# The ends of every file name a variant's .tflite or sidecar can have (NAME_<suffix>.tflite / .json).
FILE_SUFFIXES: tuple[str, ...] = (*VARIANTS, INT16X8)


def parse_quant(quant: str | list[str] | tuple[str, ...]) -> list[str]:
    """"all" | one variant | a list (or comma-separated) -> variants in canonical order."""
    items = quant.split(",") if isinstance(quant, str) else list(quant)
    items = [q.strip() for q in items if q.strip()]
    if "all" in items:
        return list(VARIANTS)
    bad = [q for q in items if q not in VARIANTS]
    if bad or not items:
        raise ExportOptionError(f"unknown quantization {', '.join(bad) or '(none)'}; "
                                f"choose from {', '.join(VARIANTS)}, all")
    return [v for v in VARIANTS if v in items]


def check_options(variants: list[str], per_channel: bool = True, io_dtype: str | None = None,
                  int16_activations: bool = False, float_layers: list[str] | tuple[str, ...] = ()) -> None:
    """Refuse, in one message, option values no requested variant takes and combinations that cannot work."""
    problems = []
    if io_dtype is not None and io_dtype not in IO_DTYPES:
        problems.append(f"--io-dtype must be one of {', '.join(IO_DTYPES)}, not {io_dtype!r}")
    if float_layers and int16_activations:
        problems.append("--float-layer works with int8 activations only, not with --int16-activations")
    given = {"per_channel": per_channel, "io_dtype": io_dtype, "int16_activations": int16_activations,
             "float_layers": tuple(float_layers)}
    for option, value in given.items():
        takers = [v.name for v in TABLE if option in v.options]
        if value != OPTION_DEFAULTS[option] and not set(takers) & set(variants):
            problems.append(f"{OPTION_FLAGS[option]} applies to {' and '.join(takers)} only, "
                            f"not to --quant {','.join(variants)}")
    if problems:
        raise ExportOptionError("; ".join(problems))


def sidecar_options(variant: str, options: dict, calibration: dict | None) -> dict:
    """The export options recorded in one variant's sidecar: every shared one, each variant-specific one
    only where the variant takes it, and the calibration where it is calibrated."""
    taken = BY_NAME[variant].options
    skipped = {key for option, key in SIDECAR_KEYS.items() if option not in taken}
    recorded = {k: v for k, v in options.items() if k not in skipped}
    if BY_NAME[variant].calibrated:
        recorded["calibration"] = calibration
    return recorded


def variant_rank(name: str | None) -> int:
    """A variant's place in the canonical order (unknown or None: after all of them)."""
    return VARIANTS.index(name) if name in VARIANTS else len(VARIANTS)


def file_rank(path: str | Path) -> int:
    """The canonical place of a .tflite named NAME_<variant>.tflite (anything else: last)."""
    stem = Path(path).stem
    return next((i for i, v in enumerate(VARIANTS) if stem.endswith(v)), len(VARIANTS))
