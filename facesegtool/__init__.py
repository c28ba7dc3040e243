"""facesegtool: real-time face parsing from PyTorch to an Android phone."""

__version__ = "0.1.0"
