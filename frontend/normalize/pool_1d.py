"""``pool-1d``: an average pool over ``[N, C, 1, W]`` with a ``1 x k`` window becomes a 1-D pool over ``[N, C, W]``.

tf2onnx writes a Keras ``AveragePooling1D`` (and torch a pool of a ``[N, C, 1, W]`` tensor) as a 2-D pool whose
height is 1, so its padding and partial windows lie along the *width*. With ``count_include_pad=0`` the divisor
then changes from column to column, which the accelerator's requantizer (one scale per channel) cannot follow;
as a 1-D pool the same windows lie along the rows, where every band of rows gets its own divisor. The pool
reads ``Squeeze(axes=[2])`` of its input and its output is ``Unsqueeze(axes=[2])``-ed back: the same windows
over the same elements, so onnxruntime's float result is the same (checked on every run, as for every rewrite).

Float pools only: in a quantized group (``DQ -> AveragePool -> Q``) onnxruntime's kernels for the 1-D and the 2-D
pool differ (measured: outputs 1 code apart on padded windows), so a quantized graph keeps its pools; a float
model quantized by ``systolix quantize`` gets its 1-D pools from the normalised float graph.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .base import copy_model, inferred_shapes

__all__ = ["AveragePoolAs1d"]

_POOLS = ("AveragePool",)
_QUANTIZED = ("DequantizeLinear", "QuantizeLinear")


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _one_d(node: onnx.NodeProto, shape: list) -> dict | None:
    """The 1-D attributes of a 2-D pool over a height of 1 with a window of height 1, or None."""
    attrs = _attrs(node)
    kernel = list(attrs.get("kernel_shape", []))
    if len(shape) != 4 or shape[2] != 1 or len(kernel) != 2 or kernel[0] != 1:
        return None
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        return None
    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    strides = list(attrs.get("strides", [1, 1]))
    dilations = list(attrs.get("dilations", [1, 1]))
    if pads[0] != 0 or pads[2] != 0 or dilations[0] != 1:
        return None
    new = {"kernel_shape": [kernel[1]], "pads": [pads[1], pads[3]], "strides": [strides[1]]}
    if "dilations" in attrs:
        new["dilations"] = [dilations[1]]
    for name in ("ceil_mode", "count_include_pad", "channels_last"):
        if name in attrs:
            new[name] = attrs[name]
    return new


class AveragePoolAs1d:
    name = "pool-1d"

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, str] | None:
        if not any(n.op_type in _POOLS for n in model.graph.node):
            return None
        shapes = inferred_shapes(model)
        if shapes is None:
            return None
        opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        out = copy_model(model)
        nodes = list(out.graph.node)
        readers: dict[str, list[onnx.NodeProto]] = {}
        for node in nodes:
            for name in node.input:
                readers.setdefault(name, []).append(node)
        producers = {o: n for n in nodes for o in n.output}
        axes = "pool_1d_axes"
        if opset >= 13:
            out.graph.initializer.append(numpy_helper.from_array(np.array([2], np.int64), axes))

        def squeeze(op: str, src: str, dst: str, name: str) -> onnx.NodeProto:
            if opset >= 13:
                return helper.make_node(op, [src, axes], [dst], name=name)
            return helper.make_node(op, [src], [dst], name=name, axes=[2])

        before: dict[int, list[onnx.NodeProto]] = {}
        after: dict[int, list[onnx.NodeProto]] = {}
        done = 0
        for node in nodes:
            if node.op_type not in _POOLS:
                continue
            new_attrs = _one_d(node, shapes.get(node.input[0], []))
            source = producers.get(node.input[0])
            if new_attrs is None or (source is not None and source.op_type in _QUANTIZED) or any(
                    r.op_type in _QUANTIZED for r in readers.get(node.output[0], [])):
                continue
            first, last = node, node
            label = node.name or node.output[0]
            src = first.input[0]
            squeezed = f"{src}__1d_{done}"
            first.input[0] = squeezed
            before.setdefault(id(first), []).append(squeeze("Squeeze", src, squeezed, f"{label}__squeeze"))
            result = last.output[0]
            last.output[0] = f"{result}__1d_{done}"
            after.setdefault(id(last), []).append(squeeze("Unsqueeze", last.output[0], result, f"{label}__unsqueeze"))
            del node.attribute[:]
            node.attribute.extend(helper.make_attribute(k, v) for k, v in new_attrs.items())
            done += 1
        if not done:
            return None
        ordered = []
        for node in nodes:
            ordered += [*before.get(id(node), []), node, *after.get(id(node), [])]
        del out.graph.node[:]
        out.graph.node.extend(ordered)
        return out, (f"{done} average pool(s) over a height of 1 as 1-D pools (Squeeze/Unsqueeze around them): "
                     "their windows run along the rows")
