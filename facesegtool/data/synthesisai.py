"""Synthesis AI face API renders (per-image segment names, beard and mustache), mapped onto the 11 classes.

Layout (`../shared/data/beard-labelled/synthesisai-16`, the API's sample):
    N.rgb.png (RGB render), N.segments.png (16-bit segment ids), N.info.json whose
    "segments_mapping" names each id (the ids differ from image to image, so the names decide).
    Optional train.txt / val.txt / subjects.txt.

Names map through labels.SYNTHESISAI_TO_CLASS; a name not in that table stops the sample (a new
renderer version must be mapped by hand, not guessed). The renders are upper-body shots whose head
fills about a third of the frame, so each is cropped to a square around the head (HEAD_SCALE times
the labelled head's larger side), about CelebA-HQ's framing; where the square leaves the picture
the image is black and the mask ignore, as prepare pads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..imaging import crop_padded, read_rgb
from ..labels import IGNORE_INDEX, SYNTHESISAI_TO_CLASS, class_or_ignore
from .source import BadSampleError, Sample, Source, duplicate_names, refuse_duplicates

RGB_SUFFIX, SEGMENTS_SUFFIX, INFO_SUFFIX = ".rgb.png", ".segments.png", ".info.json"
# Segments that are not the head: the crop is fitted to the rest.
NOT_HEAD = ("background", "clothing", "body", "shoulders", "neck")
HEAD_SCALE = 1.3  # crop side / the head's larger side


def read_segments(path: Path) -> np.ndarray:
    """A segment-id mask (16-bit or 8-bit grey PNG) as int32 ids."""
    try:
        with Image.open(path) as im:
            im.load()
            if not (im.mode.startswith("I") or im.mode in ("L", "P")):
                raise BadSampleError(path, f"not a single-channel segment-id mask (PNG mode {im.mode})")
            return np.asarray(im).astype(np.int32)
    except FileNotFoundError:
        raise BadSampleError(path, "file not found") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise BadSampleError(path, f"unreadable mask ({exc})") from None


def read_mapping(path: Path) -> dict[str, int]:
    """name -> id from N.info.json's "segments_mapping"."""
    try:
        mapping = json.loads(path.read_text(encoding="utf-8")).get("segments_mapping")
    except FileNotFoundError:
        raise BadSampleError(path, "file not found") from None
    except (OSError, ValueError, AttributeError) as exc:
        raise BadSampleError(path, f"unreadable info JSON ({exc})") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, int) for v in mapping.values()):
        raise BadSampleError(path, 'no "segments_mapping" object of name: integer id')
    unknown = sorted(set(mapping) - set(SYNTHESISAI_TO_CLASS))
    if unknown:
        raise BadSampleError(path, f"segment names {', '.join(unknown)} are not in labels.SYNTHESISAI_TO_CLASS; "
                                   "add them there (a class or \"ignore\")")
    return mapping


def head_square(ids: np.ndarray, mapping: dict[str, int], path: Path) -> tuple[int, int, int]:
    """(top, left, side) of the crop around the labelled head; may reach past the picture."""
    head = ~np.isin(ids, [mapping[n] for n in NOT_HEAD if n in mapping])
    if not head.any():
        raise BadSampleError(path, "no head segments (only background, clothing, body or neck)")
    ys, xs = np.nonzero(head)
    side = int(round(HEAD_SCALE * max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)))
    cy, cx = (ys.min() + ys.max() + 1) // 2, (xs.min() + xs.max() + 1) // 2
    return int(cy - side // 2), int(cx - side // 2), side


class SynthesisAI(Source):
    """N.rgb.png + N.segments.png + N.info.json triples in one folder."""

    kind = "synthesisai"

    def __init__(self, root: str | Path, crop_to_head: bool = True):
        super().__init__(root)
        self.crop_to_head = crop_to_head  # off: the whole frame (e.g. to score predict's own face crops)

    def describe(self) -> dict:
        return {**super().describe(), "crop_to_head": self.crop_to_head, "head_scale": HEAD_SCALE}

    def samples(self) -> list[Sample]:
        files = [p for p in self.root.iterdir() if p.is_file()]
        images, segments, infos = ({p.name[: -len(suffix)]: p for p in files if p.name.endswith(suffix)}
                                   for suffix in (RGB_SUFFIX, SEGMENTS_SUFFIX, INFO_SUFFIX))
        listed, subjects = self.own_split(), self.subjects()
        out = []
        for name in sorted(images.keys() | segments.keys()):
            image = images.get(name, self.root / f"{name}{RGB_SUFFIX}")
            problem = None
            for table, suffix in ((images, RGB_SUFFIX), (segments, SEGMENTS_SUFFIX), (infos, INFO_SUFFIX)):
                if name not in table:
                    problem = (image if name in images else segments[name], f"no {name}{suffix} beside it")
                    break
            labels = (segments.get(name, self.root / f"{name}{SEGMENTS_SUFFIX}"),
                      infos.get(name, self.root / f"{name}{INFO_SUFFIX}"))
            out.append(Sample(name, image, labels, self.split_for(name, listed), subjects.get(name), problem))
        return self.checked(refuse_duplicates(out, duplicate_names(images.values(), lambda p: p.name[: -len(RGB_SUFFIX)])),
                            listed)

    def load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
        sample.check()
        segments_path, info_path = sample.labels
        rgb = read_rgb(sample.image, orientation="refuse")
        ids, mapping = read_segments(segments_path), read_mapping(info_path)
        if ids.shape != rgb.shape[:2]:
            raise BadSampleError(segments_path, f"mask is {ids.shape[1]}x{ids.shape[0]} but its image "
                                                f"{sample.image.name} is {rgb.shape[1]}x{rgb.shape[0]}")
        unnamed = sorted(set(np.unique(ids).tolist()) - set(mapping.values()))
        if unnamed:
            raise BadSampleError(segments_path, f"ids {', '.join(map(str, unnamed[:8]))} are not in "
                                                f"{info_path.name}'s segments_mapping")
        lut = np.full(max(ids.max(), max(mapping.values())) + 1, IGNORE_INDEX, dtype=np.uint8)
        for name, segment_id in mapping.items():
            lut[segment_id] = class_or_ignore(SYNTHESISAI_TO_CLASS[name])
        mask = lut[ids]
        beard = int(np.isin(ids, [mapping[n] for n in ("beard", "mustache") if n in mapping]).sum())
        if not self.crop_to_head:
            return rgb, mask, {"beard_pixels": beard}
        top, left, side = head_square(ids, mapping, segments_path)
        return (crop_padded(rgb, left, top, side, 0), crop_padded(mask, left, top, side, IGNORE_INDEX),
                {"beard_pixels": beard, "cropped_to_head": 1})
