"""A sweep's results as data and as pictures: results.json, results.csv, results.md, pareto.png.

results.json holds every trial's figures with its full config; results.csv the same flattened,
one row per trial; results.md the design's table layout (IoU, F1, parameters, modules, CPU ms)
followed by the deployment columns it lacked, then per-class IoU; pareto.png puts int8 accuracy
against int8 latency on the host and marks the trials no other trial beats on both.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

from ..atomic import check_apart, check_writable_dir, write_bytes_atomic
from ..errors import FacesegError
from ..labels import CLASSES

FILES = ("results.json", "results.csv", "results.md", "pareto.png")


class CombineError(FacesegError, ValueError):
    """Sweeps that cannot be combined (no results, nothing finished ok, an --out of other files)."""


def _num(value, digits: int = 3, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value * scale:.{digits}f}"


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: lower or equal latency (x) and higher or equal accuracy (y),
    better in one. Sorted by latency."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _accuracy_and_latency(row: dict) -> tuple[str, float | None, str, float | None]:
    """(y label, y, x label, x): int8 fg IoU vs int8 ms, falling back to fp32 / PyTorch when a sweep has none."""
    f = row["figures"]
    for variant in ("int8", "fp32"):
        if f.get(f"{variant}_ms") is not None and f.get(f"{variant}_iou_fg") is not None:
            return f"{variant} TFLite fg macro IoU", f[f"{variant}_iou_fg"], f"{variant} TFLite ms (host)", f[f"{variant}_ms"]
    return "PyTorch fg macro IoU", f.get("iou_fg"), "PyTorch ms (host)", f.get("torch_ms")


def plot_pareto(rows: list[dict], title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    pts, names, axis = [], [], None
    for row in rows:
        if row["status"] != "ok":
            continue
        ylab, y, xlab, x = _accuracy_and_latency(row)
        if x is None or y is None:
            continue
        axis = axis or (xlab, ylab)
        if (xlab, ylab) != axis:  # never mix int8 and fp32 on one axis
            continue
        pts.append((x, y))
        names.append(row["name"])
    if pts:
        front = pareto_front(pts)
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], c="tab:blue", label="trial")
        fx, fy = [pts[i][0] for i in front], [pts[i][1] for i in front]
        ax.step(fx, fy, where="post", color="tab:red", lw=1.5, label="Pareto frontier")
        ax.scatter(fx, fy, s=120, facecolors="none", edgecolors="tab:red")
        for (x, y), name in zip(pts, names):
            ax.annotate(name, (x, y), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set(xlabel=axis[0] + ", lower is better", ylabel=axis[1] + ", higher is better")
        ax.legend(loc="lower right")
    else:
        ax.text(0.5, 0.5, "no finished trial with latency and accuracy", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def flat_row(row: dict) -> dict:
    """One CSV row: name, status, labels, figures, seconds, then the config (nested values as JSON)."""
    out = {"name": row["name"], "status": row["status"], "failed_step": row.get("failed_step"), "error": row.get("error")}
    out.update({f"label.{k}": v for k, v in row["labels"].items()})
    out.update(row["figures"])
    out.update({f"seconds.{k}": v for k, v in row["seconds"].items()})
    for section, values in row["config"].items():
        if isinstance(values, dict):
            out.update({f"config.{section}.{k}": json.dumps(v) if isinstance(v, (dict, list)) else v
                        for k, v in values.items()})
        else:
            out[f"config.{section}"] = json.dumps(values) if isinstance(values, list) else values
    return out


def to_csv(rows: list[dict]) -> str:
    flat = [flat_row(r) for r in rows]
    columns = list(dict.fromkeys(k for r in flat for k in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    for r in flat:
        writer.writerow({k: "" if r.get(k) is None else r[k] for k in columns})
    return buf.getvalue()


def markdown(rows: list[dict], meta: dict) -> str:
    """The design's table (its columns first), the deployment columns after, then per-class IoU."""
    labels = meta["table"]
    scored = meta.get("scored_on", "the val split")
    lines = [f"# {meta['title']}", ""]
    if meta.get("budget"):
        lines += [f"Budget: {meta['budget']}.", ""]
    lines += [
        f"{meta['finished']} of {meta['trials']} trials finished ({meta['ok']} ok, {meta['failed']} failed); "
        f"data {meta['data']}, scored on {scored}; "
        f"host latency on {meta['bench_threads']} thread(s) of {meta['cpu']}.",
        "",
    ]
    head = [*labels, "IoU", "F1", "Params (M)", "Modules", "CPU ms (PyTorch)",
            "fg IoU", "fg F1", "GMACs", "TFLite fp32 ms", "TFLite int8 ms", "int8 fg IoU", "int8 drop (fg pts)",
            "int8 MB", "GPU delegate"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        f = r["figures"]
        cells = [str(r["labels"].get(k, "")) for k in labels]
        cells += [_num(f.get("iou")), _num(f.get("f1")), _num(f.get("params"), 2, 1e-6),
                  str(f.get("modules", "-")), _num(f.get("torch_ms"), 1),
                  _num(f.get("iou_fg")), _num(f.get("f1_fg")), _num(f.get("gmacs"), 2),
                  _num(f.get("fp32_ms"), 1), _num(f.get("int8_ms"), 1), _num(f.get("int8_iou_fg")),
                  _num(f.get("int8_drop_fg"), 2), _num(f.get("int8_mb"), 2), f.get("gpu_delegate", "-")]
        if r["status"] != "ok":
            cells[len(labels)] = f"**failed** ({r['failed_step']})"
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Per-class IoU (PyTorch, {scored}; '-' where a class is in neither truth nor prediction):", ""]
    head = [*labels, *CLASSES[1:]]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [str(r["labels"].get(k, "")) for k in labels]
        cells += [_num(r["figures"].get(f"iou_{c}"), 2) for c in CLASSES[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:
        lines += ["", "Failed trials:", ""]
        lines += [f"- `{r['name']}` at {r['failed_step']}: {r['error']}" for r in failed]
    lines += [
        "",
        "IoU / F1: macro over the 11 classes with background, argmax masks, confusion over all scored faces; "
        "fg: the same without background. Modules: layers (modules without children). CPU ms: PyTorch eager, "
        "batch 1, median. TFLite ms: the host interpreter (XNNPACK). int8 drop: PyTorch fg IoU minus int8 fg IoU "
        "on the same faces, in IoU points. GPU delegate: TFLite's own compatibility check of the fp32 model "
        "(the design's GPU ms need a GPU; none here).",
        "",
        "![accuracy vs int8 latency](pareto.png)",
        "",
    ]
    return "\n".join(lines)


def write_results(out: Path, rows: list[dict], meta: dict) -> list[Path]:
    """Write the four result files into out (each atomically); returns their paths."""
    out = Path(out)
    paths = [out / name for name in FILES]
    write_bytes_atomic(paths[0], (json.dumps({"sweep": meta, "trials": rows}, indent=1) + "\n").encode())
    write_bytes_atomic(paths[1], to_csv(rows).encode())
    write_bytes_atomic(paths[2], markdown(rows, meta).encode())
    write_bytes_atomic(paths[3], plot_pareto(rows, meta["title"]))
    return paths


def _is_combined(folder: Path) -> bool:
    """Whether folder holds an earlier sweep-combine's results (which a new combine may replace)."""
    try:
        return json.loads((folder / "results.json").read_text())["sweep"]["name"] == "combined"
    except (OSError, ValueError, KeyError, TypeError):
        return False


def combine_results(sweeps: list[str | Path], out: str | Path, title: str) -> list[Path]:
    """One table and one Pareto plot over several finished sweeps (e.g. every architecture at one recipe).

    Rows keep their sweep's name as the first column; a trial name used by two sweeps is prefixed
    with its sweep's. Raises CombineError naming a folder without results.json (OutputError for --out).
    """
    check_apart({"--out": out}, {"sweep": sweeps})  # else it would rewrite an input sweep's own results
    check_writable_dir(out, "--out")
    if Path(out).is_dir() and any(Path(out).iterdir()) and not _is_combined(Path(out)):
        raise CombineError(f"--out {out}: holds files that are not combined sweep results; choose a new or empty --out")
    loaded = []
    for d in map(Path, sweeps):
        try:
            loaded.append(json.loads((d / "results.json").read_text()))
        except (OSError, ValueError) as exc:  # ValueError: not JSON, or not UTF-8 text
            raise CombineError(f"{d}: no readable results.json (run `facesegtool sweep SPEC --out {d}` first): {exc}") from None
    if not any(t.get("status") == "ok" for s in loaded for t in s["trials"]):
        raise CombineError(f"no trial of {', '.join(map(str, sweeps))} finished ok, so there is nothing to compare; "
                           "see each sweep's errors in its results.md and rerun them with `facesegtool sweep SPEC "
                           "--out DIR --retry-failed`")
    names = [t["name"] for s in loaded for t in s["trials"]]
    rows, table = [], ["sweep"]
    for s in loaded:
        sweep = s["sweep"]
        table += [k for k in sweep["table"] if k not in table]
        for t in s["trials"]:
            name = t["name"] if names.count(t["name"]) == 1 else f"{sweep['name']}/{t['name']}"
            rows.append({**t, "name": name, "labels": {"sweep": sweep["name"], **t["labels"]}})

    def joined(key: str) -> str:
        return "; ".join(dict.fromkeys(str(s["sweep"].get(key, "")) for s in loaded if s["sweep"].get(key)))

    meta = {
        "name": "combined", "title": title, "table": table, "sweeps": [str(d) for d in sweeps],
        "budget": joined("budget") if len({s["sweep"].get("budget") for s in loaded}) == 1
        else "each sweep's own (see its results.md)",
        "notes": "", "data": joined("data"), "scored_on": joined("scored_on") or "the val split",
        "trials": sum(s["sweep"]["trials"] for s in loaded), "finished": len(rows),
        "ok": sum(r["status"] == "ok" for r in rows), "failed": sum(r["status"] != "ok" for r in rows),
        "bench_threads": joined("bench_threads"), "cpu": joined("cpu"),
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return write_results(out, rows, meta)
