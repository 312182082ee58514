"""Fully connected layers: Gemm, MatMul (+ a constant Add as bias), QGemm, QLinearMatMul."""

from __future__ import annotations

import numpy as np
import onnx

from systolix.errors import SystolixError

from ..context import ImportContext, attr, quant_params
from ..ir import Dense, MatMul
from . import register


def _dense(node: onnx.NodeProto, ctx: ImportContext, x: str, weight: np.ndarray, bias: np.ndarray | None,
           **kw) -> Dense:
    in_shape = ctx.shape(x)
    if in_shape[-1] != weight.shape[0]:
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): input of shape {in_shape} cannot be "
                            f"multiplied by a {weight.shape[0]}x{weight.shape[1]} weight")
    out_shape = (*in_shape[:-1], int(weight.shape[1]))
    return Dense(name=ctx.node_label, op=node.op_type, inputs=(x,), output=node.output[0], in_shapes=(in_shape,),
                 out_shape=out_shape, weight=weight, bias=bias, **kw)


def _gemm_operands(node: onnx.NodeProto, ctx: ImportContext, b: np.ndarray) -> np.ndarray:
    if attr(node, "transA", 0):
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): transA=1 is not supported (the activation "
                            "must be the left operand, untransposed)")
    if b.ndim != 2:
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): weight must be 2D, not {b.shape}")
    return b.T if attr(node, "transB", 0) else b


def _bias_vector(node: onnx.NodeProto, ctx: ImportContext, c: np.ndarray | None, m: int) -> np.ndarray | None:
    if c is None:
        return None
    if c.size == 1:
        return np.full(m, c.reshape(()), dtype=c.dtype)
    if c.size != m or (c.ndim == 2 and c.shape[0] != 1):
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): bias of shape {c.shape} is not a vector "
                            f"of the {m} outputs")
    return c.reshape(-1)


@register("Gemm")
def gemm(node: onnx.NodeProto, ctx: ImportContext) -> None:
    x = ctx.resolve(node.input[0])
    b = _gemm_operands(node, ctx, ctx.const(node, 1, "weight B").astype(np.float32))
    alpha, beta = float(attr(node, "alpha", 1.0)), float(attr(node, "beta", 1.0))
    c = ctx.const(node, 2, "bias C", optional=True)
    bias = _bias_vector(node, ctx, None if c is None else c.astype(np.float32), b.shape[1])
    weight = (b * np.float32(alpha)).astype(np.float32)
    if bias is not None:
        bias = (bias * np.float32(beta)).astype(np.float32)
    ctx.add(_dense(node, ctx, x, weight, bias))


@register("MatMul")
def matmul(node: onnx.NodeProto, ctx: ImportContext) -> None:
    if not ctx.is_const(node.input[1]):
        raise SystolixError(f"node {ctx.node_label} (MatMul): both operands are computed; only MatMul by a "
                            "constant weight is supported in float models")
    weight = ctx.const(node, 1, "weight").astype(np.float32)
    if weight.ndim != 2:
        raise SystolixError(f"node {ctx.node_label} (MatMul): weight must be 2D, not {weight.shape}")
    ctx.add(_dense(node, ctx, ctx.resolve(node.input[0]), weight, None))


@register("QGemm")
def qgemm(node: onnx.NodeProto, ctx: ImportContext) -> None:
    x = ctx.resolve(node.input[0])
    a_q = quant_params(ctx, node, 1, 2, "input A")
    b = _gemm_operands(node, ctx, ctx.const(node, 3, "weight B"))
    b_q = quant_params(ctx, node, 4, 5, "weight B")
    if len(node.input) < 8 or not node.input[7]:
        raise SystolixError(f"node {ctx.node_label} (QGemm): without y_scale the output is int32; only quantized "
                            "outputs are supported")
    y_q = quant_params(ctx, node, 7, 8, "output")
    c = ctx.const(node, 6, "bias C", optional=True)
    if c is not None and c.dtype != np.int32:
        raise SystolixError(f"node {ctx.node_label} (QGemm): bias C must be int32, not {c.dtype}")
    ctx.quant.setdefault(x, a_q)
    layer = _dense(node, ctx, x, b, _bias_vector(node, ctx, c, b.shape[1]), x_quant=a_q, w_quant=b_q, y_quant=y_q,
                   alpha=float(attr(node, "alpha", 1.0)))
    ctx.add(layer, quant=y_q)


@register("QLinearMatMul")
def qlinear_matmul(node: onnx.NodeProto, ctx: ImportContext) -> None:
    a = ctx.resolve(node.input[0])
    a_q = quant_params(ctx, node, 1, 2, "input A")
    b_q = quant_params(ctx, node, 4, 5, "input B")
    y_q = quant_params(ctx, node, 6, 7, "output")
    ctx.quant.setdefault(a, a_q)
    if ctx.is_const(node.input[3]):
        weight = ctx.const(node, 3, "weight B")
        if weight.ndim != 2:
            raise SystolixError(f"node {ctx.node_label} (QLinearMatMul): weight must be 2D, not {weight.shape}")
        ctx.add(_dense(node, ctx, a, weight, None, x_quant=a_q, w_quant=b_q, y_quant=y_q), quant=y_q)
        return
    b = ctx.resolve(node.input[3])
    sa, sb = ctx.shape(a), ctx.shape(b)
    if len(sa) != len(sb) or sa[:-2] != sb[:-2] or sa[-1] != sb[-2]:
        raise SystolixError(f"node {ctx.node_label} (QLinearMatMul): shapes {sa} and {sb} cannot be multiplied")
    layer = MatMul(name=ctx.node_label, op=node.op_type, inputs=(a, b), output=node.output[0], in_shapes=(sa, sb),
                   out_shape=(*sa[:-1], sb[-1]), a_quant=a_q, b_quant=b_q, y_quant=y_q)
    ctx.add(layer, quant=y_q)
