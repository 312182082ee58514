"""``symbolic-batch``: a fixed batch other than 1 in the file becomes a symbolic batch ``N``.

Exporters leave the batch they traced with (``[5, 1, 28, 28]``, sometimes absurd values). The batch axis of
every graph input and output and of the value infos becomes ``N``, and a constant ``Reshape`` target whose
first entry is that batch gets ``-1`` there (or ``0``, "copy the input's", when it already has a ``-1``).
Only rank >= 2 inputs whose batch is the same fixed value are rewritten.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from .base import copy_model

__all__ = ["SymbolicBatch"]


def _batch(value: onnx.ValueInfoProto) -> int | None:
    dims = value.type.tensor_type.shape.dim
    if len(dims) < 2 or not dims[0].HasField("dim_value"):
        return None
    return int(dims[0].dim_value)


class SymbolicBatch:
    name = "symbolic-batch"

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, str] | None:
        inits = {i.name for i in model.graph.initializer}
        inputs = [i for i in model.graph.input if i.name not in inits]
        batches = {_batch(i) for i in inputs}
        if len(batches) != 1 or None in batches or batches == {1} or batches == {0}:
            return None
        (batch,) = batches
        out = copy_model(model)
        for value in [*out.graph.input, *out.graph.output, *out.graph.value_info]:
            if value.name not in inits and _batch(value) == batch:
                dim = value.type.tensor_type.shape.dim[0]
                dim.Clear()
                dim.dim_param = "N"
        reshapes = 0
        producers = {o: n for n in out.graph.node for o in n.output}
        constants = {i.name: i for i in out.graph.initializer}
        for node in out.graph.node:
            if node.op_type != "Reshape" or len(node.input) < 2:
                continue
            target = constants.get(node.input[1])
            if target is None and node.input[1] in producers and producers[node.input[1]].op_type == "Constant":
                continue  # Constant nodes are folded by onnxruntime; a batch in them is left (rare)
            if target is None:
                continue
            shape = numpy_helper.to_array(target).copy()
            if shape.ndim != 1 or shape.size == 0 or int(shape[0]) != batch:
                continue
            shape[0] = 0 if -1 in shape[1:] else -1
            target.CopyFrom(numpy_helper.from_array(shape.astype(np.int64), target.name))
            reshapes += 1
        extra = f", {reshapes} Reshape target(s)" if reshapes else ""
        return out, f"fixed batch {batch} -> symbolic N (inputs, outputs{extra})"
