"""A fix to the pinned onnx2tf (1.29.24), applied in the conversion worker before it converts.

Depthwise convs that became one CONV_2D per channel (SegFormer-B0: 4,096 of its 4,108 CONV_2D).
onnx2tf's Conv reads its input's shape, then transposes an input that was kept in ONNX's NCHW
layout (as onnx2tf keeps the output of a Reshape, e.g. SegFormer's Mix-FFN tokens -> image view)
to NHWC, and then tests "depthwise" as `group == input_tensor_shape[-1]` on the shape read before
the transpose: group (C) is compared with W, the test fails, and the conv takes the grouped path,
which with `disable_group_convolution` is a SPLIT into C one-channel convs and a CONCATENATION.
Depthwise convs whose input is already NHWC (any CNN) were never affected.

Upstream fixed it (onnx2tf PR #959, "Fix depthwise Conv detection after NCHW->NHWC input
transpose") by reading the shape again just before the test. The same change is made here to the
module's source (the test reads the input's current shape), so nothing else about the pinned
converter changes; when the test is not there as written (another onnx2tf), nothing is patched
and tests/test_export.py's depthwise test says whether that onnx2tf needs it.
"""

from __future__ import annotations

import inspect

# The test as 1.29.24 writes it, and the same test on the input's shape as it is now (NHWC): same lines,
# so tracebacks still point at the right lines of onnx2tf's file.
_STALE_TEST = (
    "    if depthwise and input_tensor_shape[-1] != None:\n"
    "        depthwise = bool(group == input_tensor_shape[-1])\n"
)
_FIXED_TEST = (
    "    if depthwise and input_tensor.shape[-1] != None:\n"
    "        depthwise = bool(group == input_tensor.shape[-1])\n"
)


def fix_depthwise_detection() -> bool:
    """Patch onnx2tf.ops.Conv in this process; True when the fix is in place afterwards."""
    import onnx2tf.ops.Conv as conv

    if getattr(conv, "_facesegtool_fixed", False):
        return True
    source = inspect.getsource(conv)
    if source.count(_STALE_TEST) != 1:  # another onnx2tf: leave it as it is
        return False
    # Re-run the module's own source, with the test fixed, in its namespace: onnx2tf looks make_node
    # up there (importlib.import_module returns this same module object).
    exec(compile(source.replace(_STALE_TEST, _FIXED_TEST), conv.__file__, "exec"), conv.__dict__)
    conv._facesegtool_fixed = True
    return True
