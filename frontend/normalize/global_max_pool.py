"""``global-max-pool``: GlobalMaxPool -> MaxPool with a window over the whole input.

onnxruntime runs GlobalMaxPool on float tensors only, so a quantized graph cannot keep it on integers; a
MaxPool whose kernel is the input's spatial size computes the same maximum and has int8/uint8 kernels. The
spatial size comes from shape inference; a GlobalMaxPool whose input size is unknown is left as it is.
"""

from __future__ import annotations

import onnx
from onnx import helper

from .base import copy_model, inferred_shapes

__all__ = ["GlobalMaxPoolAsMaxPool"]


class GlobalMaxPoolAsMaxPool:
    name = "global-max-pool"

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, str] | None:
        if not any(n.op_type == "GlobalMaxPool" for n in model.graph.node):
            return None
        shapes = inferred_shapes(model)
        if shapes is None:
            return None
        out = copy_model(model)
        done = 0
        for index, node in enumerate(out.graph.node):
            if node.op_type != "GlobalMaxPool":
                continue
            spatial = shapes.get(node.input[0], [])[2:]
            if not spatial or any(d is None or d <= 0 for d in spatial):
                continue
            new = helper.make_node("MaxPool", list(node.input), list(node.output), name=node.name,
                                   kernel_shape=list(spatial))
            out.graph.node[index].CopyFrom(new)
            done += 1
        if not done:
            return None
        return out, f"{done} GlobalMaxPool node(s) as MaxPool over the whole input"
