"""Class frequencies of a prepared set: a text table and a bar chart."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..labels import CLASSES, PALETTE

SPLITS = ("train", "val")


def frequency_table(manifest: dict) -> str:
    """Per class: pixels and share in each split, and the three weight schemes."""
    pixels = {s: np.asarray(manifest["class_pixels"][s], dtype=np.int64) for s in SPLITS}
    weights = manifest["weights"]
    counts = {s: sum(1 for item in manifest["items"] if item["split"] == s) for s in SPLITS}
    header = f"{'class':<10} {'train px':>12} {'train %':>8} {'val px':>11} {'val %':>7}  {'equal':>5} {'empir':>5} {'prop':>7}"
    lines = [f"images: {counts['train']} train, {counts['val']} val, {manifest['size']}px", header]
    shares = {s: pixels[s] / max(int(pixels[s].sum()), 1) * 100 for s in SPLITS}
    for i, name in enumerate(CLASSES):
        lines.append(
            f"{name:<10} {pixels['train'][i]:>12,} {shares['train'][i]:>8.3f} {pixels['val'][i]:>11,} "
            f"{shares['val'][i]:>7.3f}  {weights['equal'][i]:>5.2g} {weights['empirical'][i]:>5.2g} "
            f"{weights['proportional'][i]:>7.3f}"
        )
    ignored = manifest.get("ignored_pixels", {})
    lines.append(f"{'ignored':<10} {ignored.get('train', 0):>12,} {'':>8} {ignored.get('val', 0):>11,}")
    absent = manifest.get("absent_train_classes") or []
    if absent:
        lines.append(f"no training pixels: {', '.join(absent)} (proportional weight = the largest seen)")
    return "\n".join(lines)


def plot_frequencies(manifest: dict, png: str | Path) -> Path:
    """Bar chart of each class's share of pixels per split (log scale: teeth and background differ 1000x)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    png = Path(png)
    x = np.arange(len(CLASSES))
    with plt.rc_context({"hatch.color": "grey"}):  # hatch visible on the black background bar too
        fig, ax = _bars(manifest, plt, x)
    ax.legend(loc="center right", handles=[Patch(facecolor="white", edgecolor="black", label="train"),
                                           Patch(facecolor="white", edgecolor="black", hatch="//", label="val")])
    fig.tight_layout()
    with atomic_path(png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return png


def write_frequency_chart(prepared_dir: str | Path, png: str | Path | None = None) -> tuple[dict, Path]:
    """`data stats`: the set's manifest and its bar chart, written to png [default: PREPARED_DIR/class_frequencies.png].

    The chart may sit beside the set, never on one of its files, and never over a file that is not a PNG.
    """
    from ..atomic import OutputError, check_apart
    from .dataset import load_prepared

    manifest = load_prepared(prepared_dir)
    png = Path(png) if png else Path(prepared_dir) / "class_frequencies.png"
    names = [it.get("name") for it in manifest["items"] if isinstance(it, dict)]
    own = [Path(prepared_dir) / f"{sub}/{n}.png" for n in names for sub in ("images", "masks")]
    check_apart({"--png": png}, {"PREPARED_DIR": [Path(prepared_dir) / "manifest.json", *own]})
    if png.is_file():
        with open(png, "rb") as f:
            if f.read(8) != b"\x89PNG\r\n\x1a\n":
                raise OutputError(f"--png {png}: exists and is not a PNG picture; refusing to overwrite it; "
                                  "choose another --png")
    return manifest, plot_frequencies(manifest, png)


def _bars(manifest: dict, plt, x: np.ndarray):
    fig, ax = plt.subplots(figsize=(9, 4.2))
    colors = PALETTE / 255.0
    for offset, split, hatch in ((-0.2, "train", None), (0.2, "val", "//")):
        counts = np.asarray(manifest["class_pixels"][split], dtype=np.float64)
        share = counts / max(counts.sum(), 1) * 100
        ax.bar(x + offset, np.where(share > 0, share, np.nan), width=0.4, color=colors, edgecolor="black",
               hatch=hatch)
        for i in np.flatnonzero(share == 0):
            ax.annotate("none", (x[i] + offset, 0), xycoords=("data", "axes fraction"), xytext=(0, 3),
                        textcoords="offset points", ha="center", fontsize=7, rotation=90)
    ax.set_yscale("log")
    ax.set_xlim(-0.6, len(CLASSES) - 0.4)
    ax.set_xticks(x, CLASSES, rotation=30, ha="right")
    ax.set_ylabel("share of labelled pixels (%)")
    ax.set_title(f"Class frequencies ({len(manifest['items'])} images, {manifest['size']}px); hatched = val")
    ax.grid(axis="y", which="both", alpha=0.3)
    return fig, ax
