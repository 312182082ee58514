"""Activations: float elementwise ops, and on integer tensors 256-entry lookup tables.

In an integer model every unary op between DequantizeLinear and QuantizeLinear (and QLinearLeakyRelu,
QLinearSigmoid) becomes a :class:`~systolix.frontend.ir.Lookup` whose table onnxruntime computes.
"""

from __future__ import annotations

import numpy as np
import onnx

from systolix.errors import SystolixError

from ..context import ImportContext, attr, quant_params
from ..ir import Activation, ChannelLookup, Lookup
from ..tables import UNARY_OPS, ort_table
from . import register

#: Float elementwise ops of one activation (a quantized model turns each into a 256-entry table).
_FLOAT = {"Relu": "relu", "Clip": "clip", "LeakyRelu": "leaky_relu", "Sigmoid": "sigmoid", "Tanh": "tanh",
          "HardSigmoid": "hard_sigmoid", "Elu": "elu", "Softplus": "softplus", "Selu": "selu", "Celu": "celu",
          "HardSwish": "hard_swish", "Gelu": "gelu", "Mish": "mish", "Softsign": "softsign",
          "ThresholdedRelu": "thresholded_relu", "PRelu": "prelu", "Exp": "exp", "Log": "log", "Erf": "erf",
          "Abs": "abs", "Neg": "neg", "Sqrt": "sqrt", "Reciprocal": "reciprocal", "Sin": "sin", "Cos": "cos",
          "Floor": "floor", "Ceil": "ceil", "Round": "round", "Sign": "sign"}


@register(*_FLOAT)
def activation(node: onnx.NodeProto, ctx: ImportContext) -> None:
    if ctx.quantized:
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): a float activation in an integer model must "
                            "sit between DequantizeLinear and QuantizeLinear")
    x = ctx.resolve(node.input[0])
    attrs: list[tuple[str, float]] = []
    if node.op_type == "Clip":
        lo = attr(node, "min")
        hi = attr(node, "max")
        if len(node.input) > 1 and node.input[1]:
            lo = float(ctx.const(node, 1, "min"))
        if len(node.input) > 2 and node.input[2]:
            hi = float(ctx.const(node, 2, "max"))
        attrs = [(k, float(v)) for k, v in (("min", lo), ("max", hi)) if v is not None]
    elif node.op_type in ("LeakyRelu", "Elu", "HardSigmoid", "Celu", "ThresholdedRelu"):
        default = {"LeakyRelu": 0.01, "Elu": 1.0, "HardSigmoid": 0.2, "Celu": 1.0, "ThresholdedRelu": 1.0}
        attrs = [("alpha", float(attr(node, "alpha", default[node.op_type])))]
        if node.op_type == "HardSigmoid":
            attrs.append(("beta", float(attr(node, "beta", 0.5))))
    elif node.op_type == "PRelu":
        slope = np.asarray(ctx.const(node, 1, "slope"), dtype=np.float32)
        if slope.size == 1:
            attrs = [("slope", float(slope.reshape(-1)[0]))]
        else:
            _channel_slope(node, ctx, ctx.shape(ctx.resolve(node.input[0])), slope)
            attrs = [("slopes", float(slope.size))]
    shape = ctx.shape(x)
    ctx.add(Activation(name=ctx.node_label, op=node.op_type, inputs=(x,), output=node.output[0],
                       in_shapes=(shape,), out_shape=shape, func=_FLOAT[node.op_type], attrs=tuple(attrs)))


def _channel_slope(node: onnx.NodeProto, ctx: ImportContext, shape: tuple[int, ...], slope: np.ndarray) -> int:
    """The channel count of a PRelu slope of one value per channel (``[C, 1, ...]`` or ``[1, C, 1, ...]`` against
    ``[N, C, ...]``, ``[C]`` against ``[N, C]``); raises for any other shape."""
    channels = int(shape[1]) if len(shape) > 1 else 0
    dims = [int(d) for d in slope.shape]
    while len(dims) < len(shape):
        dims.insert(0, 1)
    if len(dims) != len(shape) or dims[1] != channels or any(d != 1 for i, d in enumerate(dims) if i != 1):
        raise SystolixError(f"node {ctx.node_label} (PRelu): a slope of shape {list(slope.shape)} with an input of "
                            f"shape {list(shape)} is not supported (one slope, or one slope per channel)")
    return channels


def _channel_tables(node: onnx.NodeProto, ctx: ImportContext, nodes: list[onnx.NodeProto], x: str, x_q, y_q) -> None:
    """DequantizeLinear -> PRelu with one slope per channel -> QuantizeLinear: one 256-entry table per channel,
    computed by onnxruntime running these nodes on the 256 codes of every channel at once (``[1, C, 256, 1, ...]``,
    ``[256, C]`` for a 2-D tensor; PRelu and QuantizeLinear work element by element)."""
    shape = tuple(ctx.shape(x))
    channels = _channel_slope(node, ctx, shape, np.asarray(ctx.const(node, 1, "slope")))
    ctx.quant.setdefault(x, x_q)
    codes = np.arange(x_q.qmin, x_q.qmax + 1).astype(x_q.np_dtype)
    if len(shape) == 2:
        grid = np.repeat(codes[:, None], channels, axis=1)
    else:
        grid = np.repeat(codes[None, :], channels, axis=0).reshape(1, channels, 256, *([1] * (len(shape) - 3)))
    out = ort_table(ctx, nodes, x_q, y_q, codes=np.ascontiguousarray(grid))
    tables = out.T if len(shape) == 2 else out.reshape(channels, 256)
    ctx.add(ChannelLookup(name=ctx.node_label, op=node.op_type, inputs=(x,), output=nodes[-1].output[0],
                          in_shapes=(shape,), out_shape=shape, func=f"prelu, one slope per channel ({channels} "
                          "tables)", tables=np.ascontiguousarray(tables).astype(y_q.np_dtype),
                          slope=np.full(channels, np.nan), offset=np.zeros(channels), x_quant=x_q, y_quant=y_q),
            quant=y_q)


def _lookup(node: onnx.NodeProto, ctx: ImportContext, nodes: list[onnx.NodeProto], x: str, x_q, y_q,
            func: str) -> None:
    ctx.quant.setdefault(x, x_q)
    shape = ctx.shape(x)
    table = ort_table(ctx, nodes, x_q, y_q)
    out = nodes[-1].output[0]
    ctx.add(Lookup(name=ctx.node_label, op=node.op_type, inputs=(x,), output=out, in_shapes=(shape,),
                   out_shape=shape, func=func, table=table, x_quant=x_q, y_quant=y_q), quant=y_q)


@register("QLinearLeakyRelu", "QLinearSigmoid")
def qlinear_unary(node: onnx.NodeProto, ctx: ImportContext) -> None:
    x_q = quant_params(ctx, node, 1, 2, "input")
    y_q = quant_params(ctx, node, 3, 4, "output")
    func = "leaky_relu" if node.op_type == "QLinearLeakyRelu" else "sigmoid"
    if node.op_type == "QLinearLeakyRelu":
        func += f"(alpha={float(attr(node, 'alpha', 0.01)):g})"
    _lookup(node, ctx, [node], ctx.resolve(node.input[0]), x_q, y_q, func)


@register("DequantizeLinear")
def dequantize(node: onnx.NodeProto, ctx: ImportContext) -> None:
    """DequantizeLinear -> unary op -> QuantizeLinear becomes a table; nothing else is expected here."""
    op = ctx.single_consumer(node.output[0])
    q = ctx.single_consumer(op.output[0]) if op is not None and op.op_type in UNARY_OPS else None
    if q is None or q.op_type != "QuantizeLinear":
        raise SystolixError(f"node {ctx.node_label} (DequantizeLinear): in the integer form a DequantizeLinear must "
                            f"feed exactly one unary op ({', '.join(sorted(UNARY_OPS))}) followed by "
                            "QuantizeLinear; float computation elsewhere is not supported")
    if attr(node, "axis", 1) != 1 and ctx.const(node, 1, "scale").size > 1:
        raise SystolixError(f"node {ctx.node_label}: per-channel activation quantization is not supported")
    x = ctx.resolve(node.input[0])
    x_q = quant_params(ctx, node, 1, 2, "input")
    y_q = quant_params(ctx, q, 1, 2, "output")
    if x_q.per_channel or y_q.per_channel:
        raise SystolixError(f"node {ctx.node_label}: per-channel activation quantization is not supported")
    ctx.consumed.update({id(op), id(q)})
    label = ctx.node_label
    ctx.node_label = op.name or label
    if op.op_type == "PRelu" and ctx.const(op, 1, "slope").size > 1:
        _channel_tables(op, ctx, [node, op, q], x, x_q, y_q)
    else:
        _lookup(op, ctx, [node, op, q], x, x_q, y_q, op.op_type.lower())
    ctx.node_label = label
