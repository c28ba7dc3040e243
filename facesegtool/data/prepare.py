"""`data prepare`: one or more sources -> one cached, resized 11-class set with a manifest.

Output (see the project brief): PREPARED_DIR/{manifest.json, images/<name>.png (RGB),
masks/<name>.png (class ids, 255 = ignore)}. Everything is written into a temporary folder
beside PREPARED_DIR and renamed into place at the end, so an interrupted run leaves nothing.
Over an earlier set only that set's own files (its manifest's) are replaced: a user's notes or
a run trained into PREPARED_DIR/runs/ stay.

Split, first rule that applies per sample:
  1. the source's own split file (train.txt / val.txt)                      -> "source-file"
  2. its subject, when the source says who is who: hash of the subject      -> "subject"
     (so one person never lands on both sides)
  3. a stable hash of the file name: SHA-1(name) / 2**64 < val_fraction -> val  -> "name-hash"

Resize: a non-square picture is first padded to a square (image black, mask ignore, so the pad
teaches nothing), then image INTER_AREA (shrink) / INTER_LINEAR (grow), mask nearest (imaging.fit_square).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..atomic import OutputError, check_apart, check_writable_dir
from ..imaging import fit_square
from ..labels import CLASSES, EMPIRICAL_WEIGHTS, IGNORE_INDEX, NUM_CLASSES
from .source import PREPARED_FORMAT, BadSampleError, DataError, DataSourceError, Source, stable_fraction

MANIFEST_VERSION = 1
SPLITS = ("train", "val")


def assign_split(name: str, own: str | None, subject: str | None, val_fraction: float) -> tuple[str, str]:
    """(split, rule) for one sample; see the module docstring."""
    if own is not None:
        return own, "source-file"
    if subject is not None:
        return ("val" if stable_fraction(f"subject:{subject}") < val_fraction else "train"), "subject"
    return ("val" if stable_fraction(name) < val_fraction else "train"), "name-hash"


def weight_schemes(train_pixels: Sequence[int]) -> dict[str, list[float]]:
    """The three weight schemes, in CLASSES order.

    proportional: w_c = 1 / f_c with f_c the class's share of labelled training pixels, divided by
    the geometric mean of those w_c so the typical class weighs 1. A class with no training pixels
    (e.g. beard in CelebAMask-HQ) has no frequency: it is left out of the geometric mean and given
    the largest weight of the classes that do occur (treated as the rarest class), so the vector
    stays finite and such pixels, if another source brings them, still count as rare.
    """
    counts = np.asarray(train_pixels, dtype=np.float64)
    seen = counts > 0
    proportional = np.ones(NUM_CLASSES)
    if seen.any():
        inverse = counts[seen].sum() / counts[seen]
        inverse /= np.exp(np.log(inverse).mean())
        proportional[seen] = inverse
        proportional[~seen] = inverse.max()
    return {
        "equal": [1.0] * NUM_CLASSES,
        "empirical": [float(w) for w in EMPIRICAL_WEIGHTS],
        "proportional": [round(float(w), 6) for w in proportional],
    }


def new_manifest(size: int, sources: list[dict], items: list[dict], skipped: list, class_pixels: dict[str, Sequence[int]],
                 ignored_pixels: dict[str, int], **extra) -> dict:
    """The manifest.json of a prepared set (`data prepare`, `data pseudo-label`): its pixel counts per split and
    the weight schemes of its train split; `extra` (val_fraction, pseudo_label) goes after the classes."""
    train = [int(v) for v in class_pixels["train"]]
    return {
        "format": PREPARED_FORMAT,
        "version": MANIFEST_VERSION,
        "size": size,
        "classes": list(CLASSES),
        **extra,
        "sources": sources,
        "items": items,
        "skipped": skipped,
        "class_pixels": {split: [int(v) for v in counts] for split, counts in class_pixels.items()},
        "ignored_pixels": ignored_pixels,
        "absent_train_classes": [c for c, n in zip(CLASSES, train) if n == 0],
        "weights": weight_schemes(train),
    }


def prepare(
    sources: Sequence[Source],
    out_dir: str | Path,
    size: int = 256,
    skip_bad: bool = False,
    val_fraction: float = 0.1,
    progress: bool = True,
) -> dict:
    """Write the prepared set to out_dir (atomically) and return its manifest.

    Raises DataSourceError (a source is empty or unusable) or BadSampleError (one sample is bad and
    skip_bad is off). With skip_bad, bad samples are listed in manifest["skipped"]. An existing
    out_dir is replaced only if it is itself a prepared set, and then only its own files; a folder
    of anything else is refused. A link to a set replaces the set it points to, not the link.
    """
    out_dir = Path(out_dir)
    if out_dir.is_symlink() and out_dir.exists():
        out_dir = Path(os.path.realpath(out_dir))
    if not sources:
        raise DataSourceError("no sources given (use --celebamask, --celebamask-parts, --mut1ny, --facesynthetics "
                              "or --synthesisai)")
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    if size < 8:
        raise DataError(f"--size must be at least 8 px, got {size}")
    check_writable_dir(out_dir, "--out")
    check_apart({"--out": out_dir}, {"source": [s.root for s in sources]})
    old = check_replaceable(out_dir)

    listed = []
    for source in sources:
        samples = source.samples()
        if not samples:
            raise DataSourceError(f"{source.root}: no images found ({source.kind} source)")
        listed.append((source, samples))

    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        manifest = _write_all(listed, tmp, size, skip_bad, val_fraction, progress)
        install_set(tmp, out_dir, old)
    except OSError as exc:  # e.g. the disk filled up: name the folder asked for, not the hidden temp one
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OutputError):
            raise
        raise OutputError(f"cannot write the prepared set {out_dir}: {exc.strerror or exc}; free some space "
                          f"(it needs about {_needed_mb(listed, size)} MB) or choose another --out") from None
    except BaseException:  # KeyboardInterrupt included: nothing partial stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def size_problem(size: int, option: str = "--size") -> str | None:
    """Why the nets cannot train at `size` (they downsample 32x, and `export` takes only multiples of 32)."""
    if size < 32 or size % 32:
        nearest = max(32, round(size / 32) * 32)
        return (f"{option} {size}: the side must be a multiple of 32 (the nets downsample 32x and `export` takes "
                f"only such sizes); use e.g. {option} {nearest}")
    return None


def check_size(size: int, option: str = "--size") -> int:
    """`size` if the nets can train at it, else ValueError (see size_problem)."""
    problem = size_problem(size, option)
    if problem:
        raise ValueError(problem)
    return size


def size_warning(size: int) -> str | None:
    """A prepared set may have any size (train --size resizes it), but training at its own size needs a multiple of 32."""
    problem = size_problem(size)
    return f"{problem}, or train on this set with `train --size`" if problem else None


def _needed_mb(listed, size: int) -> int:
    """A rough size of the prepared set: PNGs at fast compression hold about 2 bytes per pixel and image."""
    return max(1, round(sum(len(samples) for _, samples in listed) * size * size * 2 / 1e6))


# Upscaling more than this makes up detail the picture never had (a 1x1 "image" becomes a flat square).
MAX_UPSCALE = 4


def _write_all(listed, tmp: Path, size: int, skip_bad: bool, val_fraction: float, progress: bool) -> dict:
    (tmp / "images").mkdir()
    (tmp / "masks").mkdir()
    total = sum(len(samples) for _, samples in listed)
    bar = tqdm(total=total, desc="prepare", unit="img", disable=not progress)
    try:
        manifest = _write_samples(listed, tmp, size, skip_bad, val_fraction, bar)
    finally:  # closed before an error is printed, so the message gets a line of its own
        bar.close()
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _write_samples(listed, tmp: Path, size: int, skip_bad: bool, val_fraction: float, bar: tqdm) -> dict:
    items, skipped, used = [], [], set()
    pixels = {s: np.zeros(NUM_CLASSES, np.int64) for s in SPLITS}
    ignored = dict.fromkeys(SPLITS, 0)
    sources_out = []
    for index, (source, samples) in enumerate(listed):
        counters: dict[str, int] = {}
        for sample in samples:
            bar.update()
            try:
                rgb, mask, found = source.load(sample)
            except BadSampleError as exc:
                if not skip_bad:
                    raise
                skipped.append({"file": exc.file, "reason": exc.reason, "source": source.kind})
                continue
            side = max(mask.shape)
            if side * MAX_UPSCALE < size:
                exc = BadSampleError(sample.image, f"is only {mask.shape[1]}x{mask.shape[0]} px, too small to "
                                     f"scale up to {size} px (at least {-(-size // MAX_UPSCALE)} px needed); "
                                     "remove it or use a smaller --size")
                if not skip_bad:
                    raise exc
                skipped.append({"file": exc.file, "reason": exc.reason, "source": source.kind})
                continue
            for key, value in found.items():
                counters[key] = counters.get(key, 0) + int(value)
            rgb, mask = fit_square(rgb, mask, size, IGNORE_INDEX)
            # case aside: on a case-insensitive disk Face.png and face.png are one file
            name = sample.name if sample.name.casefold() not in used else f"{source.kind}{index}-{sample.name}"
            used.add(name.casefold())
            split, rule = assign_split(sample.name, sample.split, sample.subject, val_fraction)
            Image.fromarray(rgb, "RGB").save(tmp / "images" / f"{name}.png", compress_level=1)
            Image.fromarray(mask, "L").save(tmp / "masks" / f"{name}.png", compress_level=1)
            hist = np.bincount(mask.ravel(), minlength=256)
            pixels[split] += hist[:NUM_CLASSES]
            ignored[split] += int(hist[IGNORE_INDEX])
            items.append(
                {
                    "name": name,
                    "split": split,
                    "source": source.kind,
                    "subject": sample.subject,
                    "split_by": rule,
                    "file": str(sample.image),
                    "unlabelled_classes": dict(source.unlabelled_classes),
                }
            )
        sources_out.append({**source.describe(), "samples": len(samples), "counters": counters})
    if not items:
        raise DataSourceError(f"no usable samples: all {len(skipped)} were bad (see the reasons with --skip-bad off)")
    return new_manifest(size, sources_out, items, skipped, {s: pixels[s] for s in SPLITS}, ignored,
                        val_fraction=val_fraction)


def check_replaceable(out_dir: Path, pseudo_labels: bool = False) -> dict | None:
    """The manifest of the set at out_dir that a new one may replace (None: no set there yet).

    Refused: a folder of other files, a carved set (its images/ and masks/ are links into its
    parent set) and, for pseudo_labels, a set whose labels were not a teacher's."""
    if not out_dir.exists():
        return None
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        return None
    manifest = out_dir / "manifest.json"
    try:
        old = json.loads(manifest.read_text())
        is_prepared = old.get("format") == PREPARED_FORMAT
    except (OSError, ValueError, AttributeError):
        is_prepared = False
    if not is_prepared:
        raise DataSourceError(f"{out_dir}: exists and is not a prepared set; refusing to overwrite it")
    if any((out_dir / sub).is_symlink() for sub in ("images", "masks")):
        raise DataSourceError(f"{out_dir}: is a set written by `data carve` (its images/ and masks/ link to another "
                              "set); refusing to write into it; choose another --out")
    if pseudo_labels and "pseudo_label" not in old:
        raise DataSourceError(f"{out_dir}: is a labelled set, not one `pseudo-label` wrote; refusing to replace its "
                              "labels with a teacher's; choose another --out")
    return old


STATS_CHART = "class_frequencies.png"  # `data stats` writes it into the set


def _own_files(manifest: dict) -> set[str]:
    """The files (relative to the set) that the tool wrote for this manifest."""
    names = [it["name"] for it in manifest.get("items", []) if isinstance(it, dict) and "name" in it]
    return {"manifest.json", STATS_CHART} | {f"{sub}/{n}.png" for n in names for sub in ("images", "masks")}


def install_set(new: Path, out_dir: Path, old: dict | None) -> None:
    """Put the set written in `new` at out_dir: renamed into place when out_dir is new; over an earlier
    set (old: its manifest) only that set's own files are replaced, and a user file in the way is refused."""
    os.chmod(new, 0o755)  # mkdtemp makes it owner-only
    if not out_dir.exists():
        os.replace(new, out_dir)
        return
    ours = _own_files(old) if old else set()
    incoming = sorted(str(p.relative_to(new)) for p in new.rglob("*") if p.is_file())
    for rel in incoming:
        if rel not in ours and (out_dir / rel).exists():
            raise DataSourceError(f"{out_dir / rel}: not written by `facesegtool` for the set there, and the new set "
                                  "has a file of that name; move it away or choose another --out")
    trash = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
    try:
        # the manifest goes first and comes back last: a set is never claimed before its files are there
        for rel in sorted(ours, key=lambda r: r != "manifest.json"):
            if (out_dir / rel).is_file():
                (trash / rel).parent.mkdir(parents=True, exist_ok=True)
                os.replace(out_dir / rel, trash / rel)
        for rel in sorted(incoming, key=lambda r: r == "manifest.json"):
            (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(new / rel, out_dir / rel)
    finally:
        shutil.rmtree(trash, ignore_errors=True)
    shutil.rmtree(new, ignore_errors=True)


def replace_dir(new: Path, out_dir: Path) -> None:
    """Put new at out_dir; an old prepared set is moved aside first and removed after."""
    os.chmod(new, 0o755)  # mkdtemp makes it owner-only
    old = None
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        os.replace(out_dir, old / "set")
    os.replace(new, out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
