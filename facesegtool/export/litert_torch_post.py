"""Runs in a child process of the main venv (see litert_torch.py): the post-steps on litert-torch's files.

    python -m facesegtool.export.litert_torch_post SPEC.json

The same steps as onnx2tf_worker.py's files get, with the same functions: int8 re-typed to uint8
I/O when asked (litert_torch.retype_io_uint8), our metadata entry (sidecar.embed_metadata), then the
standard TFLite Metadata (tflite_metadata.write_standard_metadata). A child because these import
TensorFlow, which is heavy and process-global: the exporting process stays light, as with onnx2tf.
The spec: {"files": {variant: path}, "io_dtype": "uint8"|"int8", "labels": [...], "metadata": {...},
"standard_metadata": StandardMetadata fields | null}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(spec_path: str) -> int:
    spec = json.loads(Path(spec_path).read_text())
    from facesegtool.export.litert_torch import retype_io_uint8
    from facesegtool.export.sidecar import embed_metadata
    from facesegtool.export.tflite_metadata import StandardMetadata, write_standard_metadata

    for variant, path in spec["files"].items():
        if variant == "int8" and spec["io_dtype"] == "uint8":
            retype_io_uint8(path)
        embed_metadata(path, spec["labels"], spec["metadata"] | {"variant": variant, "converter": "litert-torch"})
        if spec.get("standard_metadata"):  # last: the standard writer keeps our entry
            standard = dict(spec["standard_metadata"])
            standard["version"] = f"{standard.get('version', '')} {variant}".strip()
            write_standard_metadata(path, StandardMetadata(**standard))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
