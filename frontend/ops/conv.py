"""Conv (float) and QLinearConv (integer): 1D and 2D, stride, padding, dilation, groups."""

from __future__ import annotations

import numpy as np
import onnx

from systolix.errors import SystolixError

from ..context import ImportContext, attr, quant_params
from ..ir import Conv
from . import register
from .window import window_geometry


def _conv(node: onnx.NodeProto, ctx: ImportContext, x: str, weight: np.ndarray, bias: np.ndarray | None,
          **quant) -> Conv:
    in_shape = ctx.shape(x)
    if weight.ndim != len(in_shape):
        raise SystolixError(f"node {ctx.node_label} (Conv): weight of shape {weight.shape} does not match input "
                            f"{in_shape}")
    kernel = tuple(int(k) for k in weight.shape[2:])
    declared = attr(node, "kernel_shape")
    if declared is not None and tuple(declared) != kernel:
        raise SystolixError(f"node {ctx.node_label} (Conv): kernel_shape {tuple(declared)} differs from the "
                            f"weight's {kernel}")
    strides, pads, dilations, out = window_geometry(node, ctx, in_shape, kernel)
    group = int(attr(node, "group", 1))
    out_shape = (in_shape[0], int(weight.shape[0]), *out)
    return Conv(name=ctx.node_label, op=node.op_type, inputs=(x,), output=node.output[0], in_shapes=(in_shape,),
                out_shape=out_shape, kernel=kernel, strides=strides, pads=pads, dilations=dilations, group=group,
                weight=weight, bias=bias, **quant)


@register("Conv")
def conv(node: onnx.NodeProto, ctx: ImportContext) -> None:
    x = ctx.resolve(node.input[0])
    weight = ctx.const(node, 1, "weight").astype(np.float32)
    bias = ctx.const(node, 2, "bias", optional=True)
    ctx.add(_conv(node, ctx, x, weight, None if bias is None else bias.astype(np.float32).reshape(-1)))


@register("QLinearConv")
def qlinear_conv(node: onnx.NodeProto, ctx: ImportContext) -> None:
    x = ctx.resolve(node.input[0])
    x_q = quant_params(ctx, node, 1, 2, "input")
    weight = ctx.const(node, 3, "weight")
    w_q = quant_params(ctx, node, 4, 5, "weight")
    y_q = quant_params(ctx, node, 6, 7, "output")
    bias = ctx.const(node, 8, "bias", optional=True)
    if bias is not None and bias.dtype != np.int32:
        raise SystolixError(f"node {ctx.node_label} (QLinearConv): bias must be int32, not {bias.dtype}")
    ctx.quant.setdefault(x, x_q)
    ctx.add(_conv(node, ctx, x, weight, bias, x_quant=x_q, w_quant=w_q, y_quant=y_q), quant=y_q)
