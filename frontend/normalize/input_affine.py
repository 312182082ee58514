"""``fold-input-scaling``: the scaling and normalisation a model applies to its float input, folded into the first
convolution.

Keras' ``Rescaling(1/255)`` and ``Normalization(mean, variance)`` layers, and torchvision-style ``(x - mean) / std``
written into a model, become ``Mul``/``Add``/``Sub``/``Div`` by scalar or per-channel constants between the graph
input and the first ``Conv``. Quantized as they stand, each becomes an int8 layer of its own (and the
quantization of ``x / 255`` costs precision for nothing). Per channel they compute ``y = a * x + b``; a ``Conv``
without padding is linear in its input, so ``Conv(W, bias)(a * x + b) = Conv(W * a, bias + sum(W * b))(x)`` exactly
in real arithmetic. The folded weights are computed in float64 and stored as float32; the difference onnxruntime
shows on the float model is measured and reported like every rewrite's. A padded ``Conv`` is left alone (its
zero padding would meet ``b`` at the borders), as is anything in a quantized graph.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .base import copy_model

__all__ = ["FoldInputScaling"]

_OPS = frozenset({"Mul", "Add", "Sub", "Div"})


def _attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


class FoldInputScaling:
    name = "fold-input-scaling"

    def apply(self, model: onnx.ModelProto) -> tuple[onnx.ModelProto, str] | None:
        graph = model.graph
        if any(n.op_type in ("QuantizeLinear", "DequantizeLinear") or n.domain not in ("", "ai.onnx")
               for n in graph.node):
            return None
        constants = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        inputs = [i.name for i in graph.input if i.name not in constants]
        if len(inputs) != 1:
            return None
        readers: dict[str, list[onnx.NodeProto]] = {}
        for node in graph.node:
            for name in node.input:
                readers.setdefault(name, []).append(node)
        outputs = {o.name for o in graph.output}
        tensor, layout, chain = inputs[0], None, []
        while True:
            nodes = readers.get(tensor, [])
            if len(nodes) != 1 or tensor in outputs:
                return None
            node = nodes[0]
            if node.op_type == "Transpose" and not chain and layout is None:
                layout = node  # tf2onnx's NHWC -> NCHW on the input (hoist-transpose put it before the scaling)
            elif node.op_type in _OPS and len(node.input) == 2 and node.input[0] == tensor \
                    and node.input[1] in constants:
                chain.append(node)
            elif node.op_type == "Conv":
                break
            else:
                return None
            tensor = node.output[0]
        conv = node
        if not chain or conv.input[0] != tensor or len(conv.input) < 2 or conv.input[1] not in constants:
            return None
        if any(p != 0 for p in _attr(conv, "pads", [])) or _attr(conv, "auto_pad", b"NOTSET") not in (b"NOTSET",
                                                                                                        b"VALID"):
            return None
        if _attr(conv, "group", 1) != 1:
            return None
        w = constants[conv.input[1]].astype(np.float64)
        channels = w.shape[1]
        a, b = np.ones(channels), np.zeros(channels)
        for node in chain:
            c = constants[node.input[1]].astype(np.float64)
            values = self._per_channel(c, channels, w.ndim)  # after the layout Transpose: channels on axis 1
            if values is None:
                return None
            if node.op_type == "Mul":
                a, b = a * values, b * values
            elif node.op_type == "Div":
                a, b = a / values, b / values
            elif node.op_type == "Add":
                b = b + values
            else:
                b = b - values
        shape = (1, channels) + (1,) * (w.ndim - 2)
        folded_w = (w * a.reshape(shape)).astype(np.float32)
        bias = constants[conv.input[2]].astype(np.float64) if len(conv.input) > 2 and conv.input[2] else 0.0
        folded_b = (bias + (w * b.reshape(shape)).sum(axis=tuple(range(1, w.ndim)))).astype(np.float32)
        out = copy_model(model)
        w_name, b_name = f"{conv.input[1]}__input_scaling", f"{conv.name or conv.output[0]}__input_scaling_bias"
        out.graph.initializer.extend([numpy_helper.from_array(folded_w, w_name),
                                      numpy_helper.from_array(folded_b, b_name)])
        gone = {id(n) for n in chain}
        source = layout.output[0] if layout is not None else inputs[0]
        kept = []
        for original in graph.node:
            if id(original) in gone:
                continue
            node = onnx.NodeProto()
            node.CopyFrom(original)
            if original is conv:
                del node.input[:]
                node.input.extend([source, w_name, b_name])
            elif original is layout:
                node.input[0] = inputs[0]
            kept.append(node)
        del out.graph.node[:]
        out.graph.node.extend(kept)
        ops = ", ".join(n.op_type for n in chain)
        return out, (f"the input's scaling ({ops}, per channel y = a*x + b) folded into the first Conv's weights "
                     "and bias")

    @staticmethod
    def _per_channel(c: np.ndarray, channels: int, rank: int) -> np.ndarray | None:
        """``c`` as one value per channel (axis 1, broadcast over everything else), or None."""
        if c.size == 1:
            return np.full(channels, float(c.reshape(())))
        full = c.reshape((1,) * (rank - c.ndim) + c.shape)
        axis = 1
        if full.shape[axis] != channels or any(d != 1 for i, d in enumerate(full.shape) if i != axis):
            return None
        return full.reshape(channels)
