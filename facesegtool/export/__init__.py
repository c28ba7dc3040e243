"""`facesegtool export`: checkpoint -> ONNX -> TFLite fp32 / fp16 / dynamic / int8, with sidecars.

    from facesegtool.export import export
    report = export(quant="int8")          # the shipped default model -> exports/default/
    print(report.table())

The exporter is exporter.py (prepare -> convert -> stage -> publish), the variants variants.py;
this package only names what callers use.
"""

from ..checkpoint import CheckpointError
from ..model_source import ModelSourceError
from ..model_spec import ModelSpecError
from .calibration import CalibrationError
from .exporter import DEFAULT_NUM_CALIB, WORK_OWNER, WORK_PREFIX, ExportOptions, export, remove_stale_work_dirs
from .onnx import ExportError
from .report import ExportReport, VariantResult
from .tflite import ConversionError
from .variants import VARIANTS, ExportOptionError, parse_quant

__all__ = [
    "export",
    "ExportOptions",
    "ExportReport",
    "VariantResult",
    "ExportError",
    "ExportOptionError",
    "ConversionError",
    "CalibrationError",
    "CheckpointError",
    "ModelSourceError",
    "ModelSpecError",
    "VARIANTS",
    "parse_quant",
    "DEFAULT_NUM_CALIB",
    "WORK_OWNER",
    "WORK_PREFIX",
    "remove_stale_work_dirs",
]
