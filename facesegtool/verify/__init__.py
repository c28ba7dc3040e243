"""What did export cost? Run PyTorch and each exported .tflite on the same real faces and compare.

    from facesegtool.verify import verify, summary_text
    result = verify(checkpoint="runs/exp1/best.pt", export_dir="exports/unet-mobilenetv3-small")
    print(summary_text(result))

Per model: macro IoU against the ground truth for PyTorch and TFLite and the drop (in IoU
points), the drop per class, how far the two masks agree, how far the logits differ, and the
graph's op histogram with the ops a phone's GPU delegate would refuse. A gate fails the run when
a drop exceeds --max-drop (or a class's --max-class-drop). Diagnoses: an int8 model that fails
is traced to the layers where it leaves float (and re-exported with remedies on request); an fp32
model is traced to the first ONNX node that converts wrongly.

Modules, each importing only those above it:
  faces.py           the faces to verify on (prepared dir, CelebAMask folder, plain images)
  compare.py         PyTorch vs each .tflite on those faces: ModelResult, VerifyResult, the gate
  int8_diagnosis.py  int8 vs fp32 layer by layer, and the remedies
  conversion.py      fp32 vs ONNX Runtime node by node (export/conversion_check.py)
  report.py          tables for the terminal, report.md with pictures, verify.json
  run.py             verify(): all of the above in order
"""

from .compare import ModelResult, VerifyResult
from ..data.faces import DEFAULT_DATA, FaceSet, open_faces
from .compare import VerifyError
from .report import summary_text, write_report
from .run import verify

__all__ = ["verify", "summary_text", "write_report", "open_faces", "VerifyError", "VerifyResult", "ModelResult",
           "FaceSet", "DEFAULT_DATA"]
