"""``split-as-slices``: Split -> one Slice per output.

A Split copies consecutive ranges of its input along one axis into its outputs; a Slice per output with that
range computes the same tensors (torch's ``x.chunk(2, dim=1)`` in ShuffleNet v2 exports as a Split). One output
per node is what the importer's layers have, and a Slice on an integer tensor is a layout op of the canonical
form. The sizes come from the ``split`` input or attribute, or (equal parts, ``num_outputs``) from shape
inference; a Split whose sizes are unknown is left as it is.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .base import copy_model, inferred_shapes

__all__ = ["SplitAsSlices"]


def _sizes(node: onnx.NodeProto, constants: dict[str, np.ndarray], dim: int | None) -> list[int] | None:
    if len(node.input) > 1 and node.input[1]:
        value = constants.get(node.input[1])
        return None if value is None else [int(v) for v in value.reshape(-1)]
    for a in node.attribute:
        if a.name == "split":
            return [int(v) for v in a.ints]
    if dim is None:
        return None
    parts = next((int(a.i) for a in node.attribute if a.name == "num_outputs"), len(node.output))
    step = -(-dim // parts)  # ONNX: equal parts, the last one smaller when the size does not divide
    return [min(step, dim - i * step) for i in range(parts)]


class SplitAsSlices:
    name = "split-as-slices"

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, str] | None:
        if not any(n.op_type == "Split" and n.domain in ("", "ai.onnx") for n in model.graph.node):
            return None
        shapes = inferred_shapes(model, fallback=True)
        constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        out = copy_model(model)
        nodes, done, names = [], 0, {i.name for i in model.graph.initializer}
        split_inputs = {n.input[1] for n in model.graph.node if n.op_type == "Split" and len(n.input) > 1}
        for node in out.graph.node:
            if node.op_type != "Split" or node.domain not in ("", "ai.onnx"):
                nodes.append(node)
                continue
            shape = shapes.get(node.input[0], [])
            axis = next((int(a.i) for a in node.attribute if a.name == "axis"), 0)
            axis = axis + len(shape) if axis < 0 and shape else axis
            dim = shape[axis] if 0 <= axis < len(shape) else None
            sizes = _sizes(node, constants, dim)
            if sizes is None or len(sizes) != len(node.output) or axis < 0:
                nodes.append(node)
                continue
            start = 0
            for k, (output, size) in enumerate(zip(node.output, sizes, strict=True)):
                base = f"{node.name or node.output[0]}_slice{k}"
                starts, ends, axes = (f"{base}_starts", f"{base}_ends", f"{base}_axes")
                while starts in names or ends in names or axes in names:
                    base += "_"
                    starts, ends, axes = (f"{base}_starts", f"{base}_ends", f"{base}_axes")
                names |= {starts, ends, axes}
                out.graph.initializer.extend([numpy_helper.from_array(np.array([start], np.int64), starts),
                                              numpy_helper.from_array(np.array([start + size], np.int64), ends),
                                              numpy_helper.from_array(np.array([axis], np.int64), axes)])
                start += size
                if output:
                    nodes.append(helper.make_node("Slice", [node.input[0], starts, ends, axes], [output], name=base))
            done += 1
        if not done:
            return None
        del out.graph.node[:]
        out.graph.node.extend(nodes)
        used = {name for n in nodes for name in n.input} | {o.name for o in out.graph.output}
        dropped = [i for i in out.graph.initializer if i.name not in used and i.name in split_inputs]
        for init in dropped:  # the Split's own sizes, read by no node now
            out.graph.initializer.remove(init)
        return out, f"{done} Split node(s) as one Slice per output"
