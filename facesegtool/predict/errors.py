"""The one error predict raises for bad input."""

from ..segmenter import SegmenterError


# Bad input for predict and a model or image the Segmenter cannot use are one kind: the message says which file
# and what to do, and predict skips that one file.
PredictError = SegmenterError
