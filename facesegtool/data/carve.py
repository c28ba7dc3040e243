"""Carve a development split out of a prepared set's train split, for choosing recipes honestly.

The fixed val split is the number we report, so recipes, epochs and checkpoints are chosen on a
`dev` split taken from train instead. The carved set is a new prepared dir whose "train" is the
rest of train and whose "val" is the dev faces; the original val faces are left out of it
entirely, so nothing trained or selected on the carved set has seen them. Images and masks are
not copied: images/ and masks/ link to the parent set.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..atomic import check_writable_dir
from ..imaging import read_index_mask
from ..labels import NUM_CLASSES
from .dataset import PreparedDataError, load_prepared, split_names
from .prepare import replace_dir, weight_schemes
from .source import PREPARED_FORMAT, BadSampleError, stable_fraction


def carve_dev_split(prepared: str | Path, out: str | Path, holdout: int, seed: int = 0) -> dict:
    """Write OUT: train = PREPARED's train minus `holdout` faces, val = those faces. Returns the manifest."""
    prepared, out = Path(prepared).resolve(), Path(out)
    manifest = load_prepared(prepared)
    _check_carve_out(prepared, out)
    train = split_names(manifest, "train")
    if not 0 < holdout < len(train):
        raise PreparedDataError(f"{prepared}: --holdout must be between 1 and {len(train) - 1} (train has {len(train)})")
    # A stable hash of (seed, name): the same dev faces on every machine and every rerun.
    ranked = sorted(train, key=lambda name: stable_fraction(f"{seed}:{name}"))
    dev = set(ranked[:holdout])
    items = [dict(it, split="val" if it["name"] in dev else "train") for it in manifest["items"] if it.get("split") == "train"]
    pixels = {"train": np.zeros(NUM_CLASSES, dtype=np.int64), "val": np.zeros(NUM_CLASSES, dtype=np.int64)}
    for it in items:
        mask_path = prepared / "masks" / f"{it['name']}.png"
        try:
            mask = read_index_mask(mask_path)
        except BadSampleError:
            raise PreparedDataError(f"{mask_path}: missing or unreadable mask of a train face listed in "
                                    f"{prepared / 'manifest.json'}; run `facesegtool data prepare` again for {prepared}") from None
        pixels[it["split"]] += np.bincount(mask.ravel(), minlength=256)[:NUM_CLASSES]
    carved = {
        **{k: v for k, v in manifest.items() if k not in ("items", "class_pixels", "weights", "skipped")},
        "items": items,
        "carved_from": {"path": str(prepared), "holdout": holdout, "seed": seed, "val_left_out": len(split_names(manifest, "val"))},
        "class_pixels": {split: [int(v) for v in counts] for split, counts in pixels.items()},
        "weights": weight_schemes(pixels["train"]),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    for sub in ("images", "masks"):
        os.symlink(os.path.relpath(prepared / sub, out.resolve()), tmp / sub)  # relative to where the link will live
    (tmp / "manifest.json").write_text(json.dumps(carved, indent=1))
    replace_dir(tmp, out)
    return carved


def _check_carve_out(prepared: Path, out: Path) -> None:
    """Refuse an --out whose replacement would delete something: the prepared set itself (or a folder
    holding it, or one inside it), or any folder that is not an earlier carved set. The carve writes a
    new folder and moves the old one away, so only a carved set (links and a manifest) may be replaced."""
    check_writable_dir(out, "--out")
    target = out.resolve()
    if target == prepared or prepared.is_relative_to(target) or target.is_relative_to(prepared):
        raise PreparedDataError(
            f"--out {out}: is {'the prepared set' if target == prepared else 'inside or around the prepared set'} "
            f"{prepared}; carving there would delete its images and masks; choose an --out outside it")
    if not out.exists() and not out.is_symlink():
        return
    if out.is_dir() and not out.is_symlink() and not any(out.iterdir()):
        return
    try:
        existing = json.loads((out / "manifest.json").read_text())
        carved = existing.get("format") == PREPARED_FORMAT and "carved_from" in existing
    except (OSError, ValueError, AttributeError):
        carved = False
    if not carved or out.is_symlink():
        raise PreparedDataError(
            f"--out {out}: exists and is not a set written by `data carve`; refusing to replace it (that would "
            "delete what is in it); choose another --out, or remove it yourself first")
