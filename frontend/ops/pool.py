"""Pooling: MaxPool and GlobalMaxPool (float or integer), AveragePool, GlobalAveragePool and their QLinear forms."""

from __future__ import annotations

import onnx

from systolix.errors import SystolixError

from ..context import ImportContext, attr, quant_params
from ..ir import AveragePool, GlobalAveragePool, MaxPool
from . import register
from .window import window_geometry


def _window(node: onnx.NodeProto, ctx: ImportContext, x: str):
    in_shape = ctx.shape(x)
    kernel = attr(node, "kernel_shape")
    if kernel is None:
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): kernel_shape is required")
    if attr(node, "channels_last", 0):
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): channels_last=1 is not supported (NCHW only)")
    ceil_mode = bool(attr(node, "ceil_mode", 0))
    strides, pads, dilations, out = window_geometry(node, ctx, in_shape, tuple(kernel), ceil_mode=ceil_mode)
    return dict(name=ctx.node_label, op=node.op_type, inputs=(x,), output=node.output[0], in_shapes=(in_shape,),
                out_shape=(*in_shape[:2], *out), kernel=tuple(kernel), strides=strides, pads=pads,
                dilations=dilations, ceil_mode=ceil_mode)


@register("MaxPool")
def max_pool(node: onnx.NodeProto, ctx: ImportContext) -> None:
    if len(node.output) > 1 and node.output[1]:
        raise SystolixError(f"node {ctx.node_label} (MaxPool): the Indices output is not supported")
    if attr(node, "storage_order", 0):
        raise SystolixError(f"node {ctx.node_label} (MaxPool): storage_order=1 is not supported")
    x = ctx.resolve(node.input[0])
    ctx.add(MaxPool(**_window(node, ctx, x)), quant=ctx.quant.get(x))


@register("GlobalMaxPool")
def global_max_pool(node: onnx.NodeProto, ctx: ImportContext) -> None:
    """GlobalMaxPool = MaxPool with a window over the whole input (the vector unit's max, H*W taps)."""
    x = ctx.resolve(node.input[0])
    in_shape = ctx.shape(x)
    spatial = tuple(int(d) for d in in_shape[2:])
    if len(spatial) not in (1, 2):
        raise SystolixError(f"node {ctx.node_label} (GlobalMaxPool): only 1D and 2D inputs are supported, "
                            f"not {list(in_shape)}")
    n = len(spatial)
    ctx.add(MaxPool(name=ctx.node_label, op=node.op_type, inputs=(x,), output=node.output[0], in_shapes=(in_shape,),
                    out_shape=(*in_shape[:2], *([1] * n)), kernel=spatial, strides=(1,) * n, pads=(0,) * (2 * n),
                    dilations=(1,) * n), quant=ctx.quant.get(x))


@register("AveragePool")
def average_pool(node: onnx.NodeProto, ctx: ImportContext) -> None:
    x = ctx.resolve(node.input[0])
    fields = _window(node, ctx, x)
    ctx.add(AveragePool(**fields, count_include_pad=bool(attr(node, "count_include_pad", 0))))


@register("QLinearAveragePool")
def qlinear_average_pool(node: onnx.NodeProto, ctx: ImportContext) -> None:
    x = ctx.resolve(node.input[0])
    x_q = quant_params(ctx, node, 1, 2, "input")
    y_q = quant_params(ctx, node, 3, 4, "output")
    ctx.quant.setdefault(x, x_q)
    fields = _window(node, ctx, x)
    ctx.add(AveragePool(**fields, count_include_pad=bool(attr(node, "count_include_pad", 0)), x_quant=x_q,
                        y_quant=y_q), quant=y_q)


def _global(node: onnx.NodeProto, ctx: ImportContext, x: str, **quant) -> GlobalAveragePool:
    in_shape = ctx.shape(x)
    if len(in_shape) not in (3, 4):
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): input shape {in_shape}; only NCW and NCHW")
    if attr(node, "channels_last", 0):
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): channels_last=1 is not supported (NCHW only)")
    out_shape = (*in_shape[:2], *([1] * (len(in_shape) - 2)))
    return GlobalAveragePool(name=ctx.node_label, op=node.op_type, inputs=(x,), output=node.output[0],
                             in_shapes=(in_shape,), out_shape=out_shape, **quant)


@register("GlobalAveragePool")
def global_average_pool(node: onnx.NodeProto, ctx: ImportContext) -> None:
    ctx.add(_global(node, ctx, ctx.resolve(node.input[0])))


@register("QLinearGlobalAveragePool")
def qlinear_global_average_pool(node: onnx.NodeProto, ctx: ImportContext) -> None:
    x = ctx.resolve(node.input[0])
    x_q = quant_params(ctx, node, 1, 2, "input")
    y_q = quant_params(ctx, node, 3, 4, "output")
    ctx.quant.setdefault(x, x_q)
    ctx.add(_global(node, ctx, x, x_quant=x_q, y_quant=y_q), quant=y_q)
