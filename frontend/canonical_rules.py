"""Rewrite rules: one ``DequantizeLinear -> op -> QuantizeLinear`` group into onnxruntime integer operators.

Each rule receives the compute node of a matched group, the parameters of the QuantizeLinear that closes
it and the name its integer result must take, and returns the replacing nodes. Rules are registered by
op type in :data:`RULES`; the matching itself (which nodes form a group, fused Relu/Clip, trailing and
leading nodes) lives in :mod:`systolix.frontend.canonical`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from systolix.errors import SystolixError
from systolix.frontend.canonical_graph import GraphView, QParams, describe
from systolix.frontend.canonical_operands import activation, const_weight, int32_bias

MS = "com.microsoft"

#: Ops that only move int8 values around: with equal input and output parameters they run on the integers.
LAYOUT_OPS = ("MaxPool", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Resize", "Slice")


@dataclass
class Rewrite:
    """What a rule produced for one group."""

    nodes: list[onnx.NodeProto]
    removed: list[onnx.NodeProto]
    op: str
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Group:
    """A matched group: ``compute`` (plus ``extra`` float nodes such as a bias Add) closed by ``q``."""

    compute: onnx.NodeProto
    extra: tuple[onnx.NodeProto, ...]
    q: onnx.NodeProto
    out: QParams
    out_name: str


def _attrs(node: onnx.NodeProto, *names: str) -> list[onnx.AttributeProto]:
    return [a for a in node.attribute if a.name in names]


def _check_same_type(group: Group, params: QParams, what: str) -> None:
    if params.dtype != group.out.dtype:
        raise SystolixError(
            f"{describe(group.compute)}: {what} is {params.dtype} but its output is quantized to "
            f"{group.out.dtype}; onnxruntime's integer operators need the same type"
        )


def _out_inputs(view: GraphView, group: Group) -> list[str]:
    return [group.out.scale_name, view.zp_name(group.out, f"{group.q.name}_zero_point")]


def _in_inputs(view: GraphView, operand) -> list[str]:
    return [
        operand.name,
        operand.params.scale_name,
        view.zp_name(operand.params, f"{operand.dq.name}_zero_point"),
    ]


def conv(view: GraphView, group: Group) -> Rewrite:
    """DQ(x) -> Conv(DQ(w), [DQ(b)]) -> Q  =>  QLinearConv with an int32 bias."""
    node = group.compute
    x = activation(view, node.input[0], node)
    w = const_weight(view, node.input[1], node)
    _check_same_type(group, x.params, "its input")
    m = w.value.shape[0]
    w_scale = w.params.scale.reshape(-1)
    if not w.params.per_tensor and (w.params.axis not in (0, -w.value.ndim) or w_scale.size != m):
        raise SystolixError(
            f"{describe(node)}: weights must be quantized per tensor or per output channel (axis 0), "
            f"not {w.params.text()}"
        )
    if np.unique(w.params.zero_point).size != 1:
        raise SystolixError(f"{describe(node)}: per-channel weight zero points must all be equal")
    inputs = [
        *_in_inputs(view, x),
        w.name,
        w.params.scale_name,
        view.zp_name(w.params, f"{node.name}_w_zero_point"),
    ]
    inputs += _out_inputs(view, group)
    notes = []
    if len(node.input) > 2 and node.input[2]:
        expected = np.broadcast_to(np.float32(x.params.scale.reshape(-1)[0]) * w_scale, (m,)).astype(
            np.float32
        )
        bias, note = int32_bias(view, node.input[2], expected, node)
        inputs.append(bias)
        notes += [note] if note else []
    attrs = _attrs(node, "auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")
    new = helper.make_node("QLinearConv", inputs, [group.out_name], name=node.name)
    new.attribute.extend(attrs)
    return Rewrite([new], [node], "QLinearConv", notes)


def _qgemm(
    view: GraphView, group: Group, a_tensor: str, b_tensor: str, bias: str | None, trans_b: int, alpha: float
) -> Rewrite:
    node = group.compute
    a = activation(view, a_tensor, node)
    b = const_weight(view, b_tensor, node)
    _check_same_type(group, a.params, "its input")
    if b.value.ndim != 2:
        raise SystolixError(f"{describe(node)}: the weight must be 2-D, not of shape {b.value.shape}")
    n = b.value.shape[0] if trans_b else b.value.shape[1]
    b_scale = b.params.scale.reshape(-1)
    n_axis = 0 if trans_b else 1
    if not b.params.per_tensor and (b.params.axis % 2 != n_axis or b_scale.size != n):
        raise SystolixError(
            f"{describe(node)}: weights must be quantized per tensor or per output column, "
            f"not {b.params.text()}"
        )
    inputs = [
        *_in_inputs(view, a),
        b.name,
        b.params.scale_name,
        view.zp_name(b.params, f"{node.name}_b_zero_point"),
    ]
    notes = []
    if bias:
        a_scale = np.float32(np.float32(alpha) * a.params.scale.reshape(-1)[0])
        expected = np.broadcast_to(a_scale * b_scale, (n,)).astype(np.float32)
        name, note = int32_bias(view, bias, expected, node)
        inputs.append(name)
        notes += [note] if note else []
    else:
        inputs.append("")
    inputs += _out_inputs(view, group)
    new = helper.make_node(
        "QGemm",
        inputs,
        [group.out_name],
        name=node.name,
        domain=MS,
        alpha=float(alpha),
        transA=0,
        transB=trans_b,
    )
    return Rewrite([new], [node, *group.extra], "QGemm", notes)


def matmul(view: GraphView, group: Group, rank: int | None = None) -> Rewrite:
    """MatMul (+ bias Add) with a constant weight => QGemm; MatMul of two activations => QLinearMatMul."""
    node = group.compute
    bias = None
    if group.extra:
        add = group.extra[0]
        bias = add.input[1] if add.input[0] == node.output[0] else add.input[0]
    b_dq = view.producer.get(node.input[1])
    b_const = b_dq is not None and b_dq.op_type == "DequantizeLinear" and view.is_const(b_dq.input[0])
    if b_const and (rank == 2 or bias):
        if rank not in (2, None):
            raise SystolixError(f"{describe(node)}: a MatMul with a bias needs a 2-D input, not rank {rank}")
        return _qgemm(view, group, node.input[0], node.input[1], bias, 0, 1.0)
    if bias:
        raise SystolixError(f"{describe(node)}: a bias after a MatMul of two activations is not supported")
    a = activation(view, node.input[0], node, "input A")
    b = (
        const_weight(view, node.input[1], node)
        if b_const
        else activation(view, node.input[1], node, "input B")
    )
    _check_same_type(group, a.params, "input A")
    b_zp = view.zp_name(b.params, f"{node.name}_b_zero_point")
    inputs = [*_in_inputs(view, a), b.name, b.params.scale_name, b_zp, *_out_inputs(view, group)]
    new = helper.make_node("QLinearMatMul", inputs, [group.out_name], name=node.name)
    return Rewrite([new], [node], "QLinearMatMul")


def gemm(view: GraphView, group: Group) -> Rewrite:
    """DQ(a) -> Gemm(DQ(b), [DQ(c)]) -> Q  =>  QGemm (beta must be 1)."""
    node = group.compute
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.get("transA", 0):
        raise SystolixError(f"{describe(node)}: transA=1 is not supported")
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    if bias and attrs.get("beta", 1.0) != 1.0:
        raise SystolixError(f"{describe(node)}: beta must be 1, not {attrs['beta']}")
    return _qgemm(
        view, group, node.input[0], node.input[1], bias, int(attrs.get("transB", 0)), attrs.get("alpha", 1.0)
    )


def binary(view: GraphView, group: Group) -> Rewrite:
    """DQ(a), DQ(b) -> Add/Mul -> Q  =>  QLinearAdd / QLinearMul (com.microsoft)."""
    node = group.compute
    a = activation(view, node.input[0], node, "input A")
    b = activation(view, node.input[1], node, "input B")
    _check_same_type(group, a.params, "input A")
    _check_same_type(group, b.params, "input B")
    op = "QLinear" + node.op_type
    inputs = [*_in_inputs(view, a), *_in_inputs(view, b), *_out_inputs(view, group)]
    new = helper.make_node(op, inputs, [group.out_name], name=node.name, domain=MS)
    return Rewrite([new], [node], op)


def average_pool(view: GraphView, group: Group) -> Rewrite:
    """DQ -> AveragePool -> Q  =>  QLinearAveragePool (com.microsoft, channels first)."""
    node = group.compute
    x = activation(view, node.input[0], node)
    _check_same_type(group, x.params, "its input")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if any(d != 1 for d in attrs.get("dilations", [])):
        raise SystolixError(f"{describe(node)}: dilations are not supported")
    inputs = [*_in_inputs(view, x), *_out_inputs(view, group)]
    new = helper.make_node(
        "QLinearAveragePool", inputs, [group.out_name], name=node.name, domain=MS, channels_last=0
    )
    new.attribute.extend(
        _attrs(node, "auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides")
    )
    return Rewrite([new], [node], "QLinearAveragePool")


def global_average_pool(view: GraphView, group: Group) -> Rewrite:
    """DQ -> GlobalAveragePool -> Q  =>  QLinearGlobalAveragePool (com.microsoft, channels first)."""
    node = group.compute
    x = activation(view, node.input[0], node)
    _check_same_type(group, x.params, "its input")
    inputs = [*_in_inputs(view, x), *_out_inputs(view, group)]
    new = helper.make_node(
        "QLinearGlobalAveragePool", inputs, [group.out_name], name=node.name, domain=MS, channels_last=0
    )
    return Rewrite([new], [node], "QLinearGlobalAveragePool")


def concat(view: GraphView, group: Group) -> Rewrite:
    """DQ(x1), DQ(x2), ... -> Concat -> Q  =>  QLinearConcat (com.microsoft)."""
    node = group.compute
    inputs = _out_inputs(view, group)
    for i, tensor in enumerate(node.input):
        x = activation(view, tensor, node, f"input {i}")
        _check_same_type(group, x.params, f"input {i}")
        inputs += _in_inputs(view, x)
    new = helper.make_node("QLinearConcat", inputs, [group.out_name], name=node.name, domain=MS)
    new.attribute.extend(_attrs(node, "axis"))
    return Rewrite([new], [node], "QLinearConcat")


def layout(view: GraphView, group: Group) -> Rewrite:
    """DQ -> MaxPool/Reshape/... -> Q with identical parameters  =>  the op on the integer tensor."""
    node = group.compute
    x = activation(view, node.input[0], node)
    if len([o for o in node.output if o]) > 1:
        raise SystolixError(f"{describe(node)}: only the first output is supported")
    if x.params.same_as(group.out):
        new = helper.make_node(
            node.op_type, [x.name, *node.input[1:]], [group.out_name], name=node.name, domain=node.domain
        )
        new.attribute.extend(node.attribute)
        return Rewrite([new], [node], node.op_type)
    # Different parameters (onnxruntime's quantizer gives a MaxPool/Flatten followed by a Relu the Relu's
    # range): run the op on the input's integers, then requantize through a DQ -> Identity -> Q table.
    # Exact: these ops only move or select values, and Q(DQ(.)) is non-decreasing, so max commutes with it.
    mid = view.unique(f"{group.out_name}_int")
    new = helper.make_node(node.op_type, [x.name, *node.input[1:]], [mid], name=node.name, domain=node.domain)
    new.attribute.extend(node.attribute)
    deq = view.unique(f"{group.out_name}_dequantized")
    dq = helper.make_node("DequantizeLinear", [mid, *x.dq.input[1:]], [deq], name=view.unique(f"{node.name}_dq"))
    ident = view.unique(f"{group.out_name}_requantized")
    idn = helper.make_node("Identity", [deq], [ident], name=view.unique(f"{node.name}_requantize"))
    q = helper.make_node("QuantizeLinear", [ident, *group.q.input[1:]], [group.out_name],
                         name=view.unique(f"{node.name}_q"))
    return Rewrite([new, dq, idn, q], [node], f"{node.op_type} + requantization table",
                   notes=[f"{node.op_type} input and output quantization differ: requantized by a table"])


Rule = Callable[[GraphView, Group], Rewrite]

#: Rewrite rule for each compute op type (MatMul is dispatched separately: it needs the input rank).
RULES: dict[str, Rule] = {
    "Conv": conv,
    "Gemm": gemm,
    "Add": binary,
    "Mul": binary,
    "AveragePool": average_pool,
    "GlobalAveragePool": global_average_pool,
    "Concat": concat,
    **{op: layout for op in LAYOUT_OPS},
}
