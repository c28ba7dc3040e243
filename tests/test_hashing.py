"""hashing.sha256_file: the one file digest (sidecars record it of the .tflite and of the model)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from facesegtool.hashing import sha256_file

MODEL = Path(__file__).resolve().parents[1] / "models" / "default" / "model.pt"


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="needs coreutils' sha256sum")
def test_sha256_file_matches_sha256sum_on_the_shipped_model(tmp_path):
    expected = subprocess.run(["sha256sum", str(MODEL)], capture_output=True, text=True, check=True).stdout.split()[0]
    assert sha256_file(MODEL) == expected
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert sha256_file(empty) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
