"""The data-source registry: every raw face-parsing source kind, the option that names it, how it is built.

`facesegtool data prepare` takes one option per kind (--celebamask DIR ...) and a sweep spec's
`data:` section takes the same names as keys (celebamask: DIR), both built by `build_sources`, so
a kind added here is in both.

    sources = build_sources({"celebamask": ["../shared/data/celebamask-mini"], "synthesisai": []})
    manifest = prepare_from_dirs({"facesynthetics": "DIR"}, "prepared/fs256", size=256)   # build + prepare
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI reads this table for its options: no numpy/PIL import then
    from .source import Source


@dataclass(frozen=True)
class SourceKind:
    key: str  # the spec key and the option's parameter name
    help: str
    build: Callable[[str | Path, dict, float | None], Source]  # (root, part mapping, mut1ny tolerance) -> source

    @property
    def option(self) -> str:
        return "--" + self.key.replace("_", "-")


# The source modules are imported when a source is built, not when the CLI declares its options.
def _celebamask(root: str | Path, mapping: dict, tolerance: float | None) -> Source:
    from .celebamask import CelebAMaskIndex

    return CelebAMaskIndex(root, mapping)


def _celebamask_parts(root: str | Path, mapping: dict, tolerance: float | None) -> Source:
    from .celebamask import CelebAMaskParts

    return CelebAMaskParts(root, mapping)


def _mut1ny(root: str | Path, mapping: dict, tolerance: float | None) -> Source:
    from .mut1ny import Mut1ny

    return Mut1ny(root) if tolerance is None else Mut1ny(root, tolerance=tolerance)


def _facesynthetics(root: str | Path, mapping: dict, tolerance: float | None) -> Source:
    from .facesynthetics import FaceSynthetics

    return FaceSynthetics(root)


def _synthesisai(root: str | Path, mapping: dict, tolerance: float | None) -> Source:
    from .synthesisai import SynthesisAI

    return SynthesisAI(root)


SOURCE_KINDS = (
    SourceKind("celebamask", "CelebAMask-HQ as index masks: DIR/images/*.jpg + DIR/masks/*.png (repeatable).",
               _celebamask),
    SourceKind("celebamask_parts", "CelebAMask-HQ release layout: CelebA-HQ-img/ + CelebAMask-HQ-mask-anno/ "
               "(repeatable).", _celebamask_parts),
    SourceKind("mut1ny", "Mut1ny RGB-coded labels (repeatable).", _mut1ny),
    SourceKind("facesynthetics", "Microsoft FaceSynthetics renders: DIR/NNNNNN.png + NNNNNN_seg.png, beard labelled "
               "(repeatable).", _facesynthetics),
    SourceKind("synthesisai", "Synthesis AI face API renders: DIR/N.rgb.png + N.segments.png + N.info.json, cropped "
               "to the head (repeatable).", _synthesisai),
)
SOURCE_KEYS = tuple(kind.key for kind in SOURCE_KINDS)


def listed_dirs(value: str | Path | Sequence[str | Path] | None) -> list[str | Path]:
    """A spec's `celebamask: DIR` or `celebamask: [DIR, ...]` (or an option's tuple) as a list."""
    if not value:
        return []
    return [value] if isinstance(value, (str, Path)) else list(value)


def build_sources(dirs: Mapping[str, str | Path | Sequence[str | Path] | None], mapping: str | Path | None = None,
                  tolerance: float | None = None) -> list[Source]:
    """Sources in registry order from {kind key: DIR or DIRs}; `mapping` is a JSON file overriding the
    CelebAMask part -> class mapping, `tolerance` Mut1ny's palette snap distance (None: its default).
    Raises DataError for an unknown key, MappingError for a bad mapping file."""
    from ..labels import load_mapping
    from .source import DataError

    unknown = sorted(set(dirs) - set(SOURCE_KEYS))
    if unknown:
        raise DataError(f"unknown data source(s) {', '.join(unknown)}; known: {', '.join(SOURCE_KEYS)}")
    parts = load_mapping(mapping)
    return [kind.build(root, parts, tolerance) for kind in SOURCE_KINDS for root in listed_dirs(dirs.get(kind.key))]


def prepare_from_dirs(dirs: Mapping[str, str | Path | Sequence[str | Path] | None], out_dir: str | Path,
                      mapping: str | Path | None = None, tolerance: float | None = None, **options) -> dict:
    """build_sources, then data.prepare.prepare into out_dir (options: size, skip_bad, val_fraction,
    progress); returns the manifest. What `data prepare` and a sweep's data: section run."""
    from .prepare import prepare

    return prepare(build_sources(dirs, mapping, tolerance), out_dir, **options)
