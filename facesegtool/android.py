"""The Android demo's link to the Python side: installing a model into its assets.

    install_model("exports/default/model_int8.tflite")      # -> android_demo/app/src/main/assets/

The golden files that prove its plain-Java core computes what the Python code computes are
written by tools/android_goldens.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from .atomic import atomic_path, check_apart
from .checkpoint import REPO_ROOT
from .errors import FacesegError

APP_DIR = REPO_ROOT / "android_demo"
ASSET_MODEL = "model.tflite"  # the app loads these two names from its assets
ASSET_SIDECAR = "model.json"


class AndroidError(FacesegError, ValueError):
    pass


# --- install-model -----------------------------------------------------------------------------


def _atomic_copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def _is_demo_project(app: Path) -> bool:
    """Whether app is the android_demo Gradle project (or a copy), not any folder with an app/ inside."""
    try:
        settings = (app / "settings.gradle.kts").read_text()
    except (OSError, UnicodeDecodeError):
        return False
    return '":app"' in settings and (app / "app" / "src" / "main" / "AndroidManifest.xml").is_file()


# Tensor types the app's ModelIO can feed and read (fillInput / argmax / scores).
APP_IO_DTYPES = ("float32", "int8", "uint8")


def install_model(tflite: str | Path, app_dir: str | Path = APP_DIR) -> tuple[Path, Path]:
    """Copy FILE.tflite and its sidecar FILE.json into the app's assets as model.tflite / model.json.

    Checks first, so that the app never meets a model it cannot run on its first frame: the sidecar
    is a facesegtool sidecar whose sha256 is the .tflite's; the .tflite loads in the TFLite
    interpreter (a truncated file fails here, even when its sidecar was written for it) and the
    sidecar describes its tensors; its input and output types are ones the app feeds and reads
    (float32, int8, uint8: not an --int16-activations export's int16 I/O).
    """
    from .contract import ContractError
    from .tflite_runner import TFLiteModel

    tflite = Path(tflite)
    if not tflite.is_file():
        raise AndroidError(f"{tflite}: no such .tflite file")
    try:
        model = TFLiteModel(tflite, num_threads=1)
    except ContractError as exc:
        raise AndroidError(f"{exc}; the app would fail on it: re-export it with `facesegtool export`") from exc
    # TFLiteModel has already refused a sidecar whose sha256 is another file's (ContractError above).
    io = {"input": np.dtype(model.input_details["dtype"]).name, "output": np.dtype(model.output_details["dtype"]).name}
    bad = {k: v for k, v in io.items() if v not in APP_IO_DTYPES}
    if bad:
        what = ", ".join(f"{k} {v}" for k, v in bad.items())
        raise AndroidError(
            f"{tflite}: {what}: the app feeds and reads only {'/'.join(APP_IO_DTYPES)} tensors; install the fp32, "
            "fp16, dynamic or int8 export (an --int16-activations export keeps int16 I/O, for host use)"
        )
    out_layout = model.contract.output.layout
    shape = [int(v) for v in model.output_details["shape"]]
    channels = shape[1 if out_layout == "NCHW" else -1] if len(shape) == 4 else None
    if channels != len(model.classes):  # the app colours each output channel as the sidecar's class of that index
        raise AndroidError(f"{tflite.with_suffix('.json')}: names {len(model.classes)} classes, but {tflite.name} "
                           f"outputs {channels} channels (shape {shape}); re-export to get a matching pair")
    app = Path(app_dir)
    if not _is_demo_project(app):
        raise AndroidError(f"{app}: not the android_demo project (a Gradle project whose settings include its :app "
                           "module, with app/src/main/AndroidManifest.xml); give --app the android_demo folder")
    assets = app / "app" / "src" / "main" / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    model_dst, sidecar_dst = assets / ASSET_MODEL, assets / ASSET_SIDECAR
    check_apart({"the app's model": [model_dst, sidecar_dst]}, {"--tflite": [tflite, model.contract.path]})
    _atomic_copy(tflite, model_dst)
    _atomic_copy(model.contract.path, sidecar_dst)
    return model_dst, sidecar_dst
