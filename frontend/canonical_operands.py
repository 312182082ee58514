"""Operands of a quantized group: activation inputs, constant weights, int32 biases, fused activations.

Helpers shared by the rewrite rules of :mod:`systolix.frontend.canonical_rules`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from systolix.errors import SystolixError
from systolix.frontend.canonical_graph import QRANGE, GraphView, QParams, describe

#: Ops that clamp only: after a requantizing op they are the quantized range clamp when it covers them.
CLAMP_OPS = ("Relu", "Clip")


@dataclass(frozen=True)
class Operand:
    """An integer tensor read through a DequantizeLinear: ``name`` is the integer tensor."""

    name: str
    params: QParams
    dq: onnx.NodeProto


def activation(view: GraphView, tensor: str, user: onnx.NodeProto, what: str = "input") -> Operand:
    """The integer tensor behind a float input that a per-tensor DequantizeLinear produces."""
    dq = view.producer.get(tensor)
    if dq is None or dq.op_type != "DequantizeLinear":
        raise SystolixError(
            f"{describe(user)}: its {what} {tensor!r} is not produced by a DequantizeLinear; groups "
            "must read integer tensors through DequantizeLinear"
        )
    params = view.dq_params(dq)
    if not params.per_tensor:
        raise SystolixError(
            f"{describe(user)}: its {what} {tensor!r} is quantized per axis; only per tensor is supported"
        )
    if params.dtype not in QRANGE:
        raise SystolixError(
            f"{describe(user)}: its {what} {tensor!r} is {params.dtype}; only int8 and uint8 are supported"
        )
    return Operand(dq.input[0], params, dq)


def output_params(view: GraphView, q: onnx.NodeProto, user: onnx.NodeProto) -> QParams:
    """Per-tensor int8/uint8 parameters of the QuantizeLinear closing a group."""
    params = view.qparams(q)
    if not params.per_tensor or params.dtype not in QRANGE:
        raise SystolixError(
            f"{describe(q)} after {describe(user)}: the output must be quantized per tensor to int8/uint8, "
            f"not {params.text()}"
        )
    return params


@dataclass(frozen=True)
class Weight:
    """A constant integer weight read through a DequantizeLinear."""

    name: str
    value: np.ndarray
    params: QParams


def const_weight(view: GraphView, tensor: str, user: onnx.NodeProto, what: str = "weight") -> Weight:
    """The constant int8/uint8 tensor behind a DequantizeLinear feeding ``user``."""
    dq = view.producer.get(tensor)
    value = view.const(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
    if value is None:
        raise SystolixError(
            f"{describe(user)}: its {what} {tensor!r} must be DequantizeLinear of a constant int8/uint8"
        )
    if value.dtype not in QRANGE:
        raise SystolixError(
            f"{describe(user)}: its {what} is {value.dtype}; only int8 and uint8 are supported"
        )
    return Weight(dq.input[0], value, view.dq_params(dq))


def int32_bias(
    view: GraphView, tensor: str, expected_scale: np.ndarray, user: onnx.NodeProto
) -> tuple[str, str | None]:
    """An int32 bias of scale ``expected_scale`` (float32, one per output channel) for ``tensor``.

    A DequantizeLinear of an int32 constant whose scale is bit-identical to ``expected_scale`` and whose
    zero point is 0 is used as it is. Otherwise the float bias it declares (or a float constant) is
    re-quantized like onnxruntime's quantizer does: ``round_half_even(f64(bias) / f64(scale))``.

    Returns
    -------
    (name, note)
        The int32 tensor name and, when the bias was re-quantized, a sentence saying why.
    """
    n = expected_scale.size
    dq = view.producer.get(tensor)
    if dq is not None and dq.op_type == "DequantizeLinear":
        raw = view.const(dq.input[0])
        if raw is None:
            raise SystolixError(f"{describe(user)}: its bias {tensor!r} must be a constant")
        params = view.dq_params(dq)
        scale = np.broadcast_to(params.scale.reshape(-1), (n,)) if params.scale.size in (1, n) else None
        if scale is None:
            raise SystolixError(
                f"{describe(user)}: bias scale has {params.scale.size} values, expected 1 or {n}"
            )
        zp = np.broadcast_to(params.zero_point.reshape(-1), (n,))
        if raw.size not in (1, n):
            raise SystolixError(f"{describe(user)}: bias has {raw.size} values, expected {n}")
        flat = np.broadcast_to(raw.reshape(-1), (n,))
        if (
            raw.dtype == np.int32
            and not zp.any()
            and np.array_equal(scale.view(np.int32), expected_scale.view(np.int32))
        ):
            if raw.shape == (n,):
                return dq.input[0], None
            return view.add_initializer(np.ascontiguousarray(flat), f"{user.name}_bias_int32"), None
        # DequantizeLinear: f32(x - zp) * scale, in float32.
        real = (flat.astype(np.int64) - zp.astype(np.int64)).astype(np.float32) * scale.astype(np.float32)
        why = (
            f"bias re-quantized to int32 with scale f32(x_scale*w_scale) (declared: {raw.dtype}, "
            f"zero point {'0' if not zp.any() else 'non-zero'}, scale "
            f"{'equal' if np.array_equal(scale, expected_scale) else 'different'})"
        )
    else:
        value = view.const(tensor)
        if value is None or value.dtype != np.float32 or value.size not in (1, n):
            raise SystolixError(
                f"{describe(user)}: its bias {tensor!r} must be DequantizeLinear of an int32 constant or a "
                f"float32 constant of {n} values"
            )
        real = np.broadcast_to(value.reshape(-1), (n,)).astype(np.float32)
        why = "float bias quantized to int32 with scale f32(x_scale*w_scale)"
    q = np.rint(real.astype(np.float64) / expected_scale.astype(np.float64))
    q = np.clip(q, np.iinfo(np.int32).min, np.iinfo(np.int32).max).astype(np.int32)
    return view.add_initializer(q, f"{user.name}_bias_int32"), why


def clamp_bounds(view: GraphView, node: onnx.NodeProto) -> tuple[float, float]:
    """The real interval a Relu or Clip node clamps to."""
    if node.op_type == "Relu":
        return 0.0, float("inf")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    lo, hi = float(attrs.get("min", -np.inf)), float(attrs.get("max", np.inf))
    for idx in (1, 2):
        if len(node.input) > idx and node.input[idx]:
            value = view.const(node.input[idx])
            if value is None:
                raise SystolixError(f"{describe(node)}: its bounds must be constants")
            if idx == 1:
                lo = float(value)
            else:
                hi = float(value)
    return lo, hi


def clamp_is_requant(view: GraphView, node: onnx.NodeProto, out: QParams) -> bool:
    """True when a Relu/Clip before the output quantization changes nothing the range clamp does not.

    ``Q(clip(v, lo, hi)) = clamp(Q(v), Q(lo), Q(hi))`` because Q is monotonic, so the clamp is free
    when ``Q(lo) <= qmin`` and ``Q(hi) >= qmax`` (for Relu: when the zero point is qmin).
    """
    lo, hi = clamp_bounds(view, node)
    return out.quantize(lo) <= out.qmin and out.quantize(hi) >= out.qmax
