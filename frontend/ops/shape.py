"""Shape-only ops (Flatten, Reshape, Squeeze, Unsqueeze, Transpose, Slice), removed ops (Dropout, Identity),
constants, and Softmax at the output (left to the host)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from systolix.errors import SystolixError

from ..context import ImportContext, attr
from ..ir import Reshape, Slice, Softmax, Transpose
from . import register


def _reshape_layer(node: onnx.NodeProto, ctx: ImportContext, x: str, out: tuple[int, ...]) -> None:
    in_shape = ctx.shape(x)
    if int(np.prod(in_shape)) != int(np.prod(out)) or any(d <= 0 for d in out):
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): cannot reshape {in_shape} to {out}")
    if out[:1] != (1,):
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): the reshape to {out} moves the batch axis")
    ctx.add(Reshape(name=ctx.node_label, op=node.op_type, inputs=(x,), output=node.output[0], in_shapes=(in_shape,),
                    out_shape=out), quant=ctx.quant.get(x))


@register("Flatten")
def flatten(node: onnx.NodeProto, ctx: ImportContext) -> None:
    x = ctx.resolve(node.input[0])
    shape = ctx.shape(x)
    axis = int(attr(node, "axis", 1))
    axis = axis + len(shape) if axis < 0 else axis
    _reshape_layer(node, ctx, x, (int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))))


@register("Reshape")
def reshape(node: onnx.NodeProto, ctx: ImportContext) -> None:
    x = ctx.resolve(node.input[0])
    in_shape = ctx.shape(x)
    target = [int(d) for d in ctx.const(node, 1, "shape").reshape(-1)]
    if not attr(node, "allowzero", 0):
        target = [in_shape[i] if d == 0 and i < len(in_shape) else d for i, d in enumerate(target)]
    if target.count(-1) > 1:
        raise SystolixError(f"node {ctx.node_label} (Reshape): more than one -1 in {target}")
    if -1 in target:
        known = int(np.prod([d for d in target if d != -1]))
        target[target.index(-1)] = int(np.prod(in_shape)) // max(known, 1)
    _reshape_layer(node, ctx, x, tuple(target))


def _axes(node: onnx.NodeProto, ctx: ImportContext) -> list[int] | None:
    if len(node.input) > 1 and node.input[1]:
        return [int(a) for a in ctx.const(node, 1, "axes").reshape(-1)]
    axes = attr(node, "axes")
    return None if axes is None else list(axes)


@register("Squeeze")
def squeeze(node: onnx.NodeProto, ctx: ImportContext) -> None:
    x = ctx.resolve(node.input[0])
    shape = ctx.shape(x)
    axes = _axes(node, ctx)
    axes = [i for i, d in enumerate(shape) if d == 1 and i > 0] if axes is None else \
        [a + len(shape) if a < 0 else a for a in axes]
    _reshape_layer(node, ctx, x, tuple(d for i, d in enumerate(shape) if i not in axes))


@register("Unsqueeze")
def unsqueeze(node: onnx.NodeProto, ctx: ImportContext) -> None:
    x = ctx.resolve(node.input[0])
    out = list(ctx.shape(x))
    axes = _axes(node, ctx) or []
    rank = len(out) + len(axes)
    for a in sorted(a + rank if a < 0 else a for a in axes):
        out.insert(a, 1)
    _reshape_layer(node, ctx, x, tuple(out))


@register("Transpose")
def transpose(node: onnx.NodeProto, ctx: ImportContext) -> None:
    x = ctx.resolve(node.input[0])
    shape = ctx.shape(x)
    perm = tuple(int(p) for p in attr(node, "perm", list(range(len(shape)))[::-1]))
    if perm[:1] != (0,):
        raise SystolixError(f"node {ctx.node_label} (Transpose): perm {perm} moves the batch axis")
    out = tuple(shape[p] for p in perm)
    ctx.add(Transpose(name=ctx.node_label, op="Transpose", inputs=(x,), output=node.output[0], in_shapes=(shape,),
                      out_shape=out, perm=perm), quant=ctx.quant.get(x))


@register("Slice")
def slice_(node: onnx.NodeProto, ctx: ImportContext) -> None:
    """Slice along one axis other than the batch (constant starts, ends, axes, steps); a Slice that keeps every
    element is an alias."""
    x = ctx.resolve(node.input[0])
    shape = ctx.shape(x)

    def const(i: int, what: str) -> list[int] | None:
        if len(node.input) > i and node.input[i]:
            return [int(v) for v in ctx.const(node, i, what).reshape(-1)]
        return None

    starts, ends = const(1, "starts"), const(2, "ends")
    axes = const(3, "axes") or list(range(len(starts)))
    steps = const(4, "steps") or [1] * len(starts)
    picked = []
    for a, b, e, s in zip(axes, starts, ends, steps, strict=True):
        a = a + len(shape) if a < 0 else a
        start, stop, step = slice(b, e, s).indices(shape[a])
        if (start, stop, step) != (0, shape[a], 1):
            picked.append((a, start, stop, step))
    if any(s < 1 for _, _, _, s in picked) or any(a == 0 for a, _, _, _ in picked) or len(picked) > 1:
        raise SystolixError(f"node {ctx.node_label} (Slice): only a slice of one axis other than the batch, with a "
                            f"positive step, is supported (starts {starts}, ends {ends}, axes {axes}, steps {steps})")
    if not picked:
        ctx.alias[node.output[0]] = x
        return
    ((axis, start, stop, step),) = picked
    out = tuple(len(range(start, stop, step)) if i == axis else d for i, d in enumerate(shape))
    if 0 in out:
        raise SystolixError(f"node {ctx.node_label} (Slice): the slice {start}:{stop}:{step} of axis {axis} is empty")
    ctx.add(Slice(name=ctx.node_label, op="Slice", inputs=(x,), output=node.output[0], in_shapes=(shape,),
                  out_shape=out, axis=axis, start=start, stop=stop, step=step), quant=ctx.quant.get(x))


@register("Dropout", "Identity")
def passthrough(node: onnx.NodeProto, ctx: ImportContext) -> None:
    if len(node.output) > 1 and node.output[1] and ctx.consumers.get(node.output[1]):
        raise SystolixError(f"node {ctx.node_label} (Dropout): its mask output is used; not supported")
    ctx.alias[node.output[0]] = ctx.resolve(node.input[0])


@register("Constant")
def constant(node: onnx.NodeProto, ctx: ImportContext) -> None:
    value = attr(node, "value")
    if value is None:
        raise SystolixError(f"node {ctx.node_label} (Constant): only the 'value' attribute is supported")
    ctx.constants[node.output[0]] = numpy_helper.to_array(value)


@register("Softmax")
def softmax(node: onnx.NodeProto, ctx: ImportContext) -> None:
    if node.output[0] not in ctx.graph_outputs:
        raise SystolixError(f"node {ctx.node_label} (Softmax): Softmax is supported only at the model's output "
                            "(it is left to the host)")
    x = ctx.resolve(node.input[0])
    shape = ctx.shape(x)
    ctx.add(Softmax(name=ctx.node_label, op="Softmax", inputs=(x,), output=node.output[0], in_shapes=(shape,),
                    out_shape=shape, axis=int(attr(node, "axis", -1))))
