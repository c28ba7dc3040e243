"""Standard TFLite Metadata in every exported .tflite: what MediaPipe Tasks and the LiteRT support library read.

MediaPipe's ImageSegmenter (Android, iOS, web, Python) and the LiteRT/TFLite Support library take a
model by its path alone and learn from the model's `TFLITE_METADATA` entry how to feed it and read it:

- model: name, description, version, author, license;
- input: an RGB image, its NormalizationOptions in pixel units (x_normalised = (pixel - mean) / std,
  pixel in 0..255) and its value range;
- output: a segmentation mask tensor (1 x H x W x C) whose labels are the associated file labels.txt
  (TENSOR_AXIS_LABELS), one label per output channel;
- MediaPipe's own `SEGMENTER_METADATA` custom entry: the output's activation (SOFTMAX for logits,
  NONE for scores that are probabilities already), so its confidence masks are probabilities.

Written with TFLite Support's metadata writer (tflite-support 0.4.4, the library MediaPipe's writer
was forked from; installed --no-deps: it declares protobuf < 4, which only its Task API, unused here,
needs). mediapipe 1.2.2's own writer cannot run: its `metadata` module imports a compiled helper the
wheel does not ship. What the standard has no field for (palette, the mapping of the model's labels
onto our classes, the rest of the input contract) stays in our own entry (sidecar.METADATA_NAME) and
in the sidecar JSON.

Runs wherever the model is converted (the onnx2tf worker); nothing here imports TensorFlow itself.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import FacesegError

LABELS_FILE = "labels.txt"  # associated file, as TFLite Support / ML Kit / MediaPipe name it
SEGMENTER_METADATA = "SEGMENTER_METADATA"  # MediaPipe's custom metadata name for ImageSegmenterOptions
ACTIVATIONS = ("NONE", "SIGMOID", "SOFTMAX")  # image_segmenter_metadata_schema.fbs, enum Activation (byte)
SEGMENTER_FILE_IDENTIFIER = b"V001"
LICENSE = "Trained on CelebAMask-HQ: non-commercial research and education only (see the model card)."


class MetadataError(FacesegError, RuntimeError):
    """The standard metadata could not be written or read (the message says why)."""


@dataclass(frozen=True)
class StandardMetadata:
    """What the standard metadata says about one exported model."""

    name: str
    labels: list[str]
    mean: list[float]  # NormalizationOptions, pixel units (0..255), 1 or 3 values
    std: list[float]
    activation: str = "SOFTMAX"
    description: str = "Face parsing: one class per pixel (semantic segmentation of a face crop)."
    version: str = ""
    author: str = "facesegtool"
    license: str = ""  # LICENSE for facesegtool's own models; a user's model carries what its owner says


def pixel_normalization(contract: dict, normalization_baked: bool) -> tuple[list[float], list[float]]:
    """NormalizationOptions in pixel units for an input contract ((x / scale - mean) / std).

    (x / scale - mean) / std == (x - mean * scale) / (std * scale); a model with the normalisation
    baked in takes the pixels as they are (mean 0, std 1).
    """
    if normalization_baked:
        return [0.0], [1.0]
    scale = float(contract.get("scale", 255.0))
    mean = [float(m) * scale for m in contract["mean"]]
    std = [float(s) * scale for s in contract["std"]]
    if len(set(mean)) == 1 and len(set(std)) == 1:
        mean, std = mean[:1], std[:1]
    return mean, std


def activation_for(output_kind: str) -> str:
    """Logits need a softmax for probabilities; probabilities are used as they are."""
    return "NONE" if output_kind == "probabilities" else "SOFTMAX"


def _segmenter_options(activation: str) -> bytes:
    """MediaPipe's ImageSegmenterOptions table (image_segmenter_metadata_schema.fbs: field 0, the
    activation byte), built with the flatbuffers library; tests read it back with MediaPipe's own
    generated reader."""
    import flatbuffers

    builder = flatbuffers.Builder(0)
    builder.StartObject(2)
    builder.PrependInt8Slot(0, ACTIVATIONS.index(activation), 0)
    builder.Finish(builder.EndObject(), SEGMENTER_FILE_IDENTIFIER)
    return bytes(builder.Output())


def _writer_modules():
    try:
        from tensorflow_lite_support.metadata import metadata_schema_py_generated as metadata_fb
        from tensorflow_lite_support.metadata.python import metadata
        from tensorflow_lite_support.metadata.python.metadata_writers import image_segmenter, metadata_info
    except ImportError as exc:  # the wheel, or the libusb-1.0 its compiled helper links against
        raise MetadataError(
            f"TFLite Support's metadata writer is not importable ({exc}); install it with "
            "`pip install --no-deps tflite-support==0.4.4` (and `apt install libusb-1.0-0`), as `make setup` does"
        ) from None
    return metadata_fb, metadata, image_segmenter, metadata_info


def write_standard_metadata(tflite: str | Path, md: StandardMetadata) -> None:
    """Rewrite `tflite` in place with the standard metadata and labels.txt; other metadata entries stay."""
    metadata_fb, metadata, image_segmenter, metadata_info = _writer_modules()
    from tensorflow_lite_support.metadata import schema_py_generated as schema_fb

    if md.activation not in ACTIVATIONS:
        raise MetadataError(f"activation must be one of {', '.join(ACTIVATIONS)}, not {md.activation!r}")
    tflite = Path(tflite)
    model_buffer = bytearray(tflite.read_bytes())
    subgraph = schema_fb.Model.GetRootAsModel(model_buffer, 0).Subgraphs(0)
    input_type = subgraph.Tensors(subgraph.Inputs(0)).Type()
    with tempfile.TemporaryDirectory(prefix="facesegtool-metadata-") as tmp:
        labels_path = Path(tmp) / LABELS_FILE
        labels_path.write_text("\n".join(md.labels) + "\n", encoding="utf-8")
        writer = image_segmenter.MetadataWriter.create_from_metadata_info(
            model_buffer,
            general_md=metadata_info.GeneralMd(name=md.name, version=md.version, description=md.description,
                                               author=md.author, licenses=md.license),
            input_md=metadata_info.InputImageTensorMd(
                name="image", description="RGB face crop, pixels 0..255 before normalisation",
                norm_mean=list(md.mean), norm_std=list(md.std),
                color_space_type=metadata_fb.ColorSpaceType.RGB, tensor_type=input_type),
            output_md=metadata_info.TensorMd(
                name="segmentation_masks", description="Per-pixel class scores, one channel per label",
                associated_files=[metadata_info.LabelFileMd(str(labels_path))]),
        )
        # writer._metadata_buffer: the TFLITE_METADATA it built, not yet populated (0.4.4 has no public getter);
        # MediaPipe's activation is added to the subgraph's custom metadata before populating.
        model_md = metadata_fb.ModelMetadataT.InitFromObj(
            metadata_fb.ModelMetadata.GetRootAsModelMetadata(writer._metadata_buffer, 0))
        custom = metadata_fb.CustomMetadataT()
        custom.name = SEGMENTER_METADATA
        custom.data = list(_segmenter_options(md.activation))
        model_md.subgraphMetadata[0].customMetadata = [custom]
        import flatbuffers

        builder = flatbuffers.Builder(0)
        builder.Finish(model_md.Pack(builder), metadata.MetadataPopulator.METADATA_FILE_IDENTIFIER)
        populator = metadata.MetadataPopulator.with_model_buffer(model_buffer)
        populator.load_metadata_buffer(builder.Output())
        populator.load_associated_files([str(labels_path)])
        try:
            populator.populate()
        except ValueError as exc:
            raise MetadataError(f"{tflite.name}: the standard metadata does not fit the model: {exc}") from exc
        tflite.write_bytes(populator.get_model_buffer())


def read_standard_metadata(tflite: str | Path) -> dict | None:
    """The standard metadata of a .tflite, read back with TFLite Support's extractor (None when absent):
    {"name", "version", "license", "color_space", "mean", "std", "labels", "activation", "min_parser_version"}."""
    metadata_fb, metadata, _, _ = _writer_modules()
    data = Path(tflite).read_bytes()
    try:
        displayer = metadata.MetadataDisplayer.with_model_buffer(data)
    except ValueError:  # "The model does not have metadata."
        return None
    md = metadata_fb.ModelMetadataT.InitFromObj(
        metadata_fb.ModelMetadata.GetRootAsModelMetadata(metadata.get_metadata_buffer(data), 0))
    sub = md.subgraphMetadata[0]
    inp, out = sub.inputTensorMetadata[0], sub.outputTensorMetadata[0]
    norm = next((u.options for u in inp.processUnits or []
                 if u.optionsType == metadata_fb.ProcessUnitOptions.NormalizationOptions), None)
    label_files = [f.name.decode() for f in out.associatedFiles or []
                   if f.type == metadata_fb.AssociatedFileType.TENSOR_AXIS_LABELS]
    labels = (displayer.get_associated_file_buffer(label_files[0]).decode("utf-8").splitlines()
              if label_files else [])
    activation = None
    for custom in sub.customMetadata or []:
        if custom.name.decode() == SEGMENTER_METADATA:
            raw = bytes(bytearray(custom.data))
            activation = _read_activation(raw)
    color = inp.content.contentProperties.colorSpace if inp.content is not None else None
    return {
        "name": (md.name or b"").decode(),
        "version": (md.version or b"").decode(),
        "license": (md.license or b"").decode(),
        "min_parser_version": (md.minParserVersion or b"").decode(),
        "color_space": {metadata_fb.ColorSpaceType.RGB: "RGB", metadata_fb.ColorSpaceType.GRAYSCALE: "GRAYSCALE"}
                       .get(color, "UNKNOWN"),
        "mean": [float(v) for v in norm.mean] if norm is not None else None,
        "std": [float(v) for v in norm.std] if norm is not None else None,
        "labels_file": label_files[0] if label_files else None,
        "labels": labels,
        "activation": activation,
        "packed_files": sorted(displayer.get_packed_associated_file_list()),
    }


def _read_activation(raw: bytes) -> str:
    """The activation byte of an ImageSegmenterOptions table (field 0; absent = NONE)."""
    from flatbuffers import encode, packer, table
    from flatbuffers import number_types as N

    tab = table.Table(bytearray(raw), encode.Get(packer.uoffset, raw, 0))
    offset = tab.Offset(4)  # vtable slot of field 0
    value = tab.Get(N.Int8Flags, offset + tab.Pos) if offset else 0
    return ACTIVATIONS[value]

