"""`facesegtool predict`: masks, overlays and beauty effects for photos, folders and videos.

    report = predict(["photo.jpg", "clips/"], model="exports/model_int8.tflite", out_dir="out",
                     effects=parse_effects("hair=#8040C0"), alpha=0.5, face_crop=True)

Per input it writes <stem>_mask.png (palette colours), <stem>_overlay.png (translucent palette
over the photo) and <stem>_effect.png (the beauty effects); for a video, the same three as .mp4.
The model is a TFLite export (pre/post-processing from its sidecar JSON, as on the phone) or a
PyTorch checkpoint (the shipped default when neither is given).

The package reads in the order a photo flows through it:

    detect.py     face detector (BlazeFace on LiteRT; Haar for comparison) and the crop framing
    (the Segmenter, facesegtool/segmenter.py, under the verbs: an image at the model's input -> class scores)
    head.py       whole-head merge: a face crop's scores and a wider pass, blended on one grid
    refine.py     guided refinement of the probabilities (the bilinear upsampling is imaging.upsample_scores)
    beard.py      facial hair out of the hair class
    parse.py      one image -> its mask: the above in order
    video.py      tracking, score smoothing, and a video's outputs
    effects.py    beauty effects and overlay (integer arithmetic shared with the Java core)
    render.py     the pictures and the contact sheet
    measures.py, report.py   the seam / flicker figures and measures.json
    run.py        predict() over files and folders

The pictures and figures under models/<name>/ are made by tools/showcase.py, tools/upsample_bench.py
and tools/beard_measure.py, on top of this package.
"""

from ..segmenter import Segmenter, TFLiteSegmenter, TorchSegmenter, load_segmenter
from .detect import BlazeFaceDetector, FaceDetector, HaarDetector, load_detector
from .errors import PredictError
from .parse import Parsed, parse_image
from .report import Prediction, PredictReport
from .run import collect_inputs, predict

__all__ = ["BlazeFaceDetector", "FaceDetector", "HaarDetector", "Parsed", "PredictError", "Prediction", "PredictReport",
           "Segmenter", "TFLiteSegmenter", "TorchSegmenter", "collect_inputs", "load_detector", "load_segmenter",
           "parse_image", "predict"]
