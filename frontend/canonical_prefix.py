"""The host input prefix: elementwise preprocessing at a float graph input, run by onnxruntime on the host.

A Keras model that starts with preprocessing layers (``Rescaling``, ``Normalization``), converted to full-int8
TFLite and then by tf2onnx, begins with a chain of quantized elementwise ops on its NHWC input::

    input (float) -> QuantizeLinear -> DQ -> Mul(1/255) -> Q -> DQ -> Sub(mean) -> Q -> DQ -> Mul(1/std) -> Q -> ...

Its constants are one value per channel on the *last* axis (NHWC, before tf2onnx's Transpose), and ``Sub`` and
``Div`` have no integer operator in the canonical form, so the accelerator cannot reproduce those steps. They
read nothing but the input and constants, though, so the host can run them exactly: this module cuts that
chain off the graph into a small ONNX model of its own (float input -> the integer tensor after the chain),
which onnxruntime runs on the host (exact by construction: it is the model's own subgraph on the same
runtime), and the accelerator's input becomes the integer tensor after it.

The chain is ``QuantizeLinear`` then groups ``DequantizeLinear -> op -> QuantizeLinear`` where ``op`` is an
elementwise ``Add``/``Sub``/``Mul``/``Div`` whose other operand is a constant (or a DequantizeLinear of one)
that does not change the shape, or a one-input elementwise op; every tensor has one reader. It is cut off
only when the accelerator could not run it: some group is ``Sub``/``Div``, or has a constant that is neither
one value nor one value per channel on axis 1. Otherwise (a scalar ``Mul``, a per-channel ``Add`` on NCHW)
the groups stay on the accelerator, as tables, as before.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import helper

from systolix.frontend.canonical_graph import QRANGE, GraphView, describe

__all__ = ["InputPrefix", "cut_input_prefix"]

#: Two-input elementwise ops a prefix group may hold (one operand a constant).
BINARY_OPS = ("Add", "Sub", "Mul", "Div")
#: Of those, the ones the canonical form has an integer operator for (QLinearAdd / QLinearMul).
_ACCELERATOR_BINARY = ("Add", "Mul")


@dataclass(frozen=True)
class InputPrefix:
    """The part of a quantized graph between a float input and the first tensor the accelerator reads.

    Attributes
    ----------
    model : onnx.ModelProto
        A model of its own: the original float input (same name) -> :attr:`output` (an int8/uint8 tensor).
    input : str
        The original graph input.
    output : str
        The integer tensor after the prefix: the canonical model's input.
    steps : tuple of (str, str, str)
        ``(node name, op, what)`` for each elementwise op of the prefix, in order.
    """

    model: onnx.ModelProto
    input: str
    output: str
    steps: tuple[tuple[str, str, str], ...]


def _constant_operand(view: GraphView, tensor: str) -> tuple[list[onnx.NodeProto], np.ndarray] | None:
    """(the nodes computing it, its float value) when ``tensor`` is a constant or a DequantizeLinear of one."""
    value = view.const(tensor)
    if value is not None:
        node = view.producer.get(tensor)
        return ([node] if node is not None else []), value
    dq = view.producer.get(tensor)
    if dq is None or dq.op_type != "DequantizeLinear" or not all(view.is_const(i) for i in dq.input if i):
        return None
    consts = [view.producer[i] for i in dq.input if i and i in view.producer]
    params = view.dq_params(dq)
    raw = view.const(dq.input[0]).astype(np.float64)
    if not params.per_tensor:
        return [*consts, dq], raw  # the shape is all that matters here
    scale, zp = float(params.scale.reshape(-1)[0]), float(params.zero_point.reshape(-1)[0])
    return [*consts, dq], (raw - zp) * scale


def _accelerator_can(op: str, constant: np.ndarray | None, shape: tuple[int, ...]) -> bool:
    """True when the canonical form and the accelerator take this group as they would anywhere else."""
    if constant is None:
        return True  # a one-input op: a 256-entry table
    if op not in _ACCELERATOR_BINARY:
        return False
    if constant.size == 1:
        return True
    rank = len(shape)
    padded = (1,) * (rank - constant.ndim) + tuple(int(d) for d in constant.shape)
    return rank >= 2 and padded == (1, shape[1]) + (1,) * (rank - 2)


def _input_shape(vi: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return None
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in tt.shape.dim]
    if any(d <= 0 for d in dims[1:]):
        return None
    return (1, *dims[1:])


def cut_input_prefix(view: GraphView, vi: onnx.ValueInfoProto, unary_ops: frozenset[str]) -> InputPrefix | None:
    """Cut the elementwise preprocessing chain at the float graph input ``vi`` off ``view`` (see the module).

    Returns None, leaving the graph unchanged, when there is no such chain or the accelerator can run it.
    Otherwise the chain's nodes are removed from ``view.nodes``, and the caller makes :attr:`InputPrefix.output`
    the graph input.
    """
    users = view.consumers.get(vi.name, [])
    shape = _input_shape(vi)
    if len(users) != 1 or users[0].op_type != "QuantizeLinear" or shape is None:
        return None
    first = users[0]
    if not view.qparams(first).per_tensor:
        return None
    chain: list[onnx.NodeProto] = [first]
    constants: list[onnx.NodeProto] = []
    steps: list[tuple[str, str, str]] = []
    needed = False
    tensor = first.output[0]
    while True:
        dq = view.only_consumer(tensor)
        if dq is None or dq.op_type != "DequantizeLinear" or not view.dq_params(dq).per_tensor:
            break
        op = view.only_consumer(dq.output[0])
        if op is None:
            break
        constant = None
        if op.op_type in BINARY_OPS and len(op.input) == 2 and dq.output[0] in op.input:
            other = op.input[1] if op.input[0] == dq.output[0] else op.input[0]
            found = _constant_operand(view, other)
            if found is None:
                break
            nodes, constant = found
            try:
                if tuple(np.broadcast_shapes(shape, constant.shape)) != shape:
                    break  # the op would change the shape: not elementwise preprocessing
            except ValueError:
                break
            what = (f"{op.op_type.lower()} a constant of shape {list(constant.shape)}" if constant.size > 1
                    else f"{op.op_type.lower()} {float(constant.reshape(-1)[0]):g}")
        elif op.op_type in unary_ops and len([i for i in op.input if i]) == 1:
            nodes, what = [], op.op_type
        else:
            break
        q = view.only_consumer(op.output[0])
        if q is None or q.op_type != "QuantizeLinear":
            break
        params = view.qparams(q)
        if not params.per_tensor or params.dtype not in QRANGE:
            break
        needed = needed or not _accelerator_can(op.op_type, constant, shape)
        chain += [dq, op, q]
        constants += nodes
        steps.append((op.name or describe(op), op.op_type, what))
        tensor = q.output[0]
    if not needed:
        return None
    model = _prefix_model(view, vi, chain, constants, tensor)
    for node in chain:
        view.nodes.remove(node)
    view.reindex()
    return InputPrefix(model, vi.name, tensor, tuple(steps))


def _prefix_model(view: GraphView, vi: onnx.ValueInfoProto, chain: list[onnx.NodeProto],
                  constants: list[onnx.NodeProto], output: str) -> onnx.ModelProto:
    """The chain as a model of its own: ``vi`` -> ``output`` (integer, the input's shape)."""
    ordered = [n for n in view.nodes if any(n is c for c in (*constants, *chain))]
    nodes = []
    for node in ordered:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        nodes.append(copy)
    used = {i for n in nodes for i in n.input if i}
    inits = [t for name, t in view.initializers.items() if name in used]
    out = onnx.ValueInfoProto()
    out.CopyFrom(vi)
    out.name = output
    out.type.tensor_type.elem_type = helper.np_dtype_to_tensor_dtype(view.qparams(chain[-1]).dtype)
    graph = helper.make_graph(nodes, "input_prefix", [vi], [out], inits)
    model = helper.make_model(graph, opset_imports=[o for o in view.model.opset_import if o.domain in ("", "ai.onnx")],
                              producer_name="systolix (host input prefix)")
    model.ir_version = view.model.ir_version
    onnx.checker.check_model(model)
    return model
