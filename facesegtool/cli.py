"""The `facesegtool` command line. Thin: each command parses options and calls one library function.

Data flows one way: data prepare -> train -> export -> verify / bench / predict.
"""

from __future__ import annotations

import sys

import click

EPILOG = """\b
Examples:
  facesegtool data prepare --celebamask ../shared/data/celebamask-mini --size 256 --out prepared/celeba256
  facesegtool train --model unet-mobilenetv3-small --data prepared/celeba256 --epochs 20
  facesegtool export --quant int8
  facesegtool verify
  facesegtool bench --device host
  facesegtool bench --device adb --benchmark-binary ./benchmark_model
  facesegtool predict photo.jpg --face-crop --effect hair=#8040C0
"""


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="facesegtool")
def main() -> None:
    """Face parsing from PyTorch to an Android phone: prepare data, train, export to TFLite,
    verify what quantization cost, benchmark on host and device."""


def fail(message: str) -> None:
    """Print a clear error (no traceback) and exit non-zero."""
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(2)


# --- data: prepare / stats -------------------------------------------------------------------


# --- models / train / eval -------------------------------------------------------------------


# --- export / calibration --------------------------------------------------------------------


# --- verify ----------------------------------------------------------------------------------


# --- bench -----------------------------------------------------------------------------------


# --- predict / android -----------------------------------------------------------------------


if __name__ == "__main__":
    main()
