"""verify's second runtime: each export in MediaPipe's stock ImageSegmenter, given only its path.

The LiteRT interpreter fed as the sidecar says is verify's reference for the file; MediaPipe knows
nothing but the file's standard metadata. Where its category mask equals the interpreter's argmax
(upsampled to the face's pixels the one way, imaging.upsample_scores) the metadata tells the truth.
Without the `mediapipe` extra this is one note, never an error.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
from tqdm import tqdm

from .. import mediapipe_runtime
from ..imaging import upsample_scores
from ..tflite_runner import TFLiteModel

# Share of pixels on which MediaPipe's mask must equal the interpreter's. Float files run the same
# kernels from the same bytes (measured 100.000 %); an int8 file with float input is quantized by
# MediaPipe's own float path, a rounding apart (measured 99.56 % for the default model).
FLOORS = {"fp32": 0.999, "fp16": 0.999, "dynamic": 0.999, "int8": 0.995}


def mediapipe_agreement(model: TFLiteModel, images: Iterable[np.ndarray]) -> dict:
    """{"runtime", "loaded", "agreement", "faces", "floor", "error"} for one model on RGB images at its size."""
    out_shape = list(model.output_details["shape"])
    full_size = out_shape[1:3] == list(model.size)  # NHWC: a coarse output MediaPipe upsamples its own way
    record = {"runtime": f"mediapipe {mediapipe_runtime.version()}", "loaded": False, "agreement": None,
              "faces": 0, "floor": FLOORS.get(model.variant) if full_size else None, "output_full_size": full_size,
              "error": None}
    try:
        segmenter = mediapipe_runtime.MediaPipeSegmenter(model.path)
    except mediapipe_runtime.MediaPipeError as exc:
        record["error"] = str(exc)
        return record
    record["loaded"] = True
    same = []
    with segmenter:
        for rgb in images:
            scores = upsample_scores(model.logits(rgb), rgb.shape[:2])
            same.append(float(np.mean(segmenter.category_mask(rgb) == scores.argmax(-1))))
    record["faces"], record["agreement"] = len(same), (float(np.mean(same)) if same else None)
    return record


def check_models(models: list[TFLiteModel], faces, progress: bool = True) -> tuple[dict[str, dict], list[str]]:
    """MediaPipe's verdict on every model (by file name) and the notes to print."""
    if not mediapipe_runtime.available():
        return {}, [mediapipe_runtime.unavailable_note()]
    images = [face.image for face in faces]
    records, notes = {}, []
    for model in tqdm(models, desc="MediaPipe", unit="model", disable=not progress, leave=False):
        rec = records[model.path.name] = mediapipe_agreement(model, images)
        if not rec["loaded"]:
            notes.append(f"{rec['runtime']}: {rec['error']}")
        else:
            notes.append(f"{rec['runtime']}: {model.path.name} loads from its path alone; its category mask equals "
                         f"the interpreter's argmax on {100 * rec['agreement']:.3f} % of pixels ({rec['faces']} faces)"
                         + ("" if rec["output_full_size"] else
                            "; the output is coarser than the input and MediaPipe upsamples it its own way (not "
                            "gated): `export --resize-output` bakes the upsample in for the same mask everywhere"))
    return records, notes


def failure(record: dict | None) -> str | None:
    """Why MediaPipe's result fails the gate: a loaded model that gives another mask. A refusal is reported,
    not failed: an int8-input export (--io-dtype int8) is refused by design."""
    if not record or not record["loaded"] or record["agreement"] is None or record["floor"] is None:
        return None
    if record["agreement"] < record["floor"]:
        return (f"MediaPipe's mask equals the interpreter's on only {100 * record['agreement']:.2f} % of pixels "
                f"(< {100 * record['floor']:.1f} %): the file's standard metadata misdescribes its input or output")
    return None
