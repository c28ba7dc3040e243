"""What an export may overwrite or remove in its --out, and the lock that keeps two exports apart there.

An export writes <stem>.onnx, <stem>_<variant>.tflite and their sidecars. It overwrites only files a
facesegtool export wrote, and `--replace` removes only what another model's previous export recorded:
its .tflite (as its sidecar names it and with the sha256 it records), that sidecar, and the ONNX the
sidecar names, each a plain file directly in --out. A sidecar is data: a name in it such as
"../victim.onnx" or "/home/me/x.onnx" is never joined to --out and deleted. Nothing the export
reads (the --model file, its weights or code) is ever removed.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from ..contract import ContractError, read_contract, read_raw, sidecar_path
from ..hashing import sha256_file
from .onnx import ExportError


def variant_file_name(stem: str, variant: str, int16_activations: bool = False) -> str:
    """The .tflite name of one variant; an int16x8 export has its own, so it never replaces the int8 one."""
    return f"{stem}_{'int16x8' if variant == 'int8' and int16_activations else variant}.tflite"


def lock_out_dir(out_dir: Path) -> int:
    """An exclusive flock on the folder itself (no lock file left behind; the kernel drops it when the holder
    dies); returns the fd to close when done. Raises ExportError while another export holds it."""
    fd = os.open(out_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ExportError(f"--out {out_dir}: another `facesegtool export` is writing into this folder; wait for it "
                          "to finish, or choose another --out") from None
    return fd


def foreign_exports(out_dir: Path, sha256: str) -> list[Path]:
    """The .tflite files in out_dir whose sidecars record another model than the one with this sha256. Read
    unchecked (not contract.exported_from): a damaged sidecar of another model's export counts too, and --replace
    then refuses to remove what it cannot prove is an export's."""
    if not out_dir.is_dir():
        return []
    found = []
    for tflite in sorted(out_dir.glob("*.tflite")):
        source = (read_raw(tflite) or {}).get("source")
        recorded = source.get("sha256") if isinstance(source, dict) else None
        if recorded and recorded != sha256:
            found.append(tflite)
    return found


def _plain_file_in(out_dir: Path, name: object) -> Path | None:
    """out_dir/name when `name` is a bare file name (no folder, no '..', not absolute) of a regular file that is
    no link, lying in out_dir itself; else None."""
    if not isinstance(name, str) or not name or name in (".", "..") or Path(name).name != name or "\\" in name:
        return None
    path = out_dir / name
    if path.is_symlink() or not path.is_file() or path.resolve().parent != out_dir.resolve():
        return None
    return path


def recorded_files(out_dir: Path, tflite: Path) -> list[Path] | None:
    """The files one previous export in out_dir wrote, as its sidecar records them (None when the .tflite is not
    the one its sidecar describes: renamed, changed or a link, so not provably an export's)."""
    try:
        contract = read_contract(tflite)
    except ContractError:
        return None
    model = _plain_file_in(out_dir, contract.tflite_name)
    json_file = _plain_file_in(out_dir, sidecar_path(tflite).name)
    if model is None or model.name != tflite.name or json_file is None or contract.sha256 != sha256_file(model):
        return None
    files = [model, json_file]
    onnx_name = (contract.raw.get("export") or {}).get("onnx")
    onnx_file = _plain_file_in(out_dir, onnx_name) if str(onnx_name).endswith(".onnx") else None
    return files + ([onnx_file] if onnx_file is not None else [])


def files_to_replace(out_dir: Path, others: list[Path], keep: set[Path]) -> list[Path]:
    """What --replace removes of the other exports: their recorded files, less any in `keep` (this export's own
    outputs, which are overwritten, and its inputs). Raises ExportError for a .tflite that is not provably one."""
    kept = {p.resolve() for p in keep}
    remove: list[Path] = []
    for tflite in others:
        files = recorded_files(out_dir, tflite)
        if files is None:
            raise ExportError(f"--replace: {tflite} is not the file its sidecar {sidecar_path(tflite).name} describes "
                              "(renamed, changed, a link, or the sidecar is damaged), so it is not removed; move it "
                              "away yourself, or choose another --out")
        remove += [f for f in files if f.resolve() not in kept and f not in remove]
    return remove


def check_overwrites(out_dir: Path, planned: list[Path]) -> None:
    """Refuse to overwrite a file in out_dir that no export wrote (a user's file that shares an export's name)."""
    recorded_onnx = {str(e.get("onnx")) for t in out_dir.glob("*.tflite")
                     if isinstance(e := (read_raw(t) or {}).get("export"), dict)}
    for path in planned:
        if not (path.exists() or path.is_symlink()):
            continue
        ours = path.is_file() and not path.is_symlink() and (
            (path.suffix == ".tflite" and read_raw(path) is not None)
            or (path.suffix == ".json" and read_raw(path.with_suffix(".tflite")) is not None)
            or (path.suffix == ".onnx" and path.name in recorded_onnx))
        if not ours:
            raise ExportError(f"--out {out_dir}: {path.name} is already there and was not written by "
                              "`facesegtool export`; move it away or choose another --out")


def source_files(source) -> set[Path]:  # noqa: ANN001 (model_source.LoadedModel; imported lazily there)
    """The files an export reads its model from: never removed by --replace."""
    files = {Path(source.path)}
    if source.weights is not None:
        files.add(Path(source.weights))
    if source.format == "module" and ":" in source.ref:
        files.add(Path(source.ref.rsplit(":", 1)[0]))
    return files


def check_float_layers(previous_int8: Path, float_layers: list[str], sha256: str) -> None:
    """--float-layer names checked before converting, against a previous int8 export of the same model at the
    same size when one is in --out (the names verify printed); otherwise the converter checks them."""
    blank = [n for n in float_layers if not isinstance(n, str) or not n.strip()]
    if blank:
        raise ExportError("--float-layer: give TFLite tensor names as `facesegtool verify` prints them, not empty names")
    raw = read_raw(previous_int8) if previous_int8.is_file() else None
    if raw is None or (raw.get("source") or {}).get("sha256") != sha256:
        return
    from ai_edge_litert.interpreter import Interpreter

    from .onnx2tf_worker import layer_key

    try:
        tensors = [d["name"] for d in Interpreter(model_content=previous_int8.read_bytes()).get_tensor_details()]
    except (ValueError, RuntimeError, OSError):
        return
    known = {layer_key(part) for t in tensors for part in t.split(";")}
    missing = sorted({layer_key(p) for n in float_layers for p in n.split(";") if p} - known)
    if missing:
        raise ExportError(f"--float-layer: no tensor named {', '.join(missing)} in {previous_int8.name}; give TFLite "
                          "tensor names as `facesegtool verify` prints them for this model's int8 export")
