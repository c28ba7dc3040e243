"""Remove the TRANSPOSE ops that onnx2tf puts around some channel concatenations, in the .tflite itself.

onnx2tf sometimes concatenates NHWC tensors in NCHW: TRANSPOSE(0,3,1,2) on every input, CONCATENATION
on axis 1, TRANSPOSE(0,2,3,1) back (measured on our U-Nets: the decoder concats whose skip comes from
a residual ADD, two per concat plus one per skip). That is exactly a CONCATENATION on axis 3 of the
untransposed inputs, so the pattern is rewritten into that: same values to the bit, no copies. On a
phone each TRANSPOSE is a pass over a feature map, and on the GPU delegate a layout change.

    content, folded = fold_concat_transposes(tflite_bytes)   # folded: TRANSPOSE ops removed

Works on fp32, fp16 and int8 graphs (a transpose keeps its input's quantization, so the rewired
tensors carry the same scales).
"""

from __future__ import annotations

import numpy as np

TO_NCHW = [0, 3, 1, 2]
TO_NHWC = [0, 2, 3, 1]


def fold_concat_transposes(content: bytes) -> tuple[bytes, int]:
    """The model with every TRANSPOSE -> CONCATENATION(axis 1) -> TRANSPOSE pattern folded; and how many
    TRANSPOSE ops went. The model is returned unchanged (same bytes) when there is nothing to fold."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model_from_bytearray(bytearray(content))
    codes = [flatbuffer_utils.get_builtin_code_from_operator_code(c) for c in model.operatorCodes]
    op = schema.BuiltinOperator
    removed_total = 0
    for graph in model.subgraphs:
        ops = graph.operators
        producer = {t: i for i, o in enumerate(ops) for t in o.outputs}
        consumers: dict[int, list[int]] = {}
        for i, o in enumerate(ops):
            for t in o.inputs:
                consumers.setdefault(t, []).append(i)
        outputs = set(graph.outputs)

        def perm(i: int) -> list[int] | None:
            o = ops[i]
            if codes[o.opcodeIndex] != op.TRANSPOSE or len(o.inputs) < 2:
                return None
            tensor = graph.tensors[o.inputs[1]]
            data = model.buffers[tensor.buffer].data
            if data is None:
                return None
            dtype = np.int64 if tensor.type == schema.TensorType.INT64 else np.int32
            return np.frombuffer(bytes(data), dtype=dtype).tolist()

        dead: set[int] = set()
        for c, concat in enumerate(ops):
            if codes[concat.opcodeIndex] != op.CONCATENATION:
                continue
            out = concat.outputs[0]
            if len(graph.tensors[out].shape) != 4 or concat.builtinOptions.axis not in (1, -3) or out in outputs:
                continue
            ins = [producer.get(t) for t in concat.inputs]
            after = consumers.get(out, [])
            if any(i is None or perm(i) != TO_NCHW for i in ins) or len(after) != 1 or perm(after[0]) != TO_NHWC:
                continue
            back = ops[after[0]]
            concat.inputs = [ops[i].inputs[0] for i in ins]
            concat.outputs = [back.outputs[0]]
            concat.builtinOptions.axis = 3
            dead.add(after[0])
            for i in ins:  # a transpose that fed only this concat is no longer needed
                t = ops[i].outputs[0]
                if all(k == c for k in consumers.get(t, [])) and t not in outputs:
                    dead.add(i)
        if dead:
            graph.operators = [o for i, o in enumerate(ops) if i not in dead]
            removed_total += len(dead)
    if not removed_total:
        return content, 0
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model)), removed_total
