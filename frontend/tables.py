"""256-entry lookup tables for unary ops on integer codes, computed by onnxruntime itself.

A unary op between a DequantizeLinear and a QuantizeLinear (or QLinearLeakyRelu, QLinearSigmoid) maps
each of the 256 input codes to one output code. Running onnxruntime on all 256 codes through exactly
those nodes gives the table that reproduces what onnxruntime computes on this machine, including
instruction-set-dependent polynomials (QLinearSigmoid, Tanh), with no float model of ours in between.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from systolix.errors import SystolixError

from .context import ImportContext
from .ir import QuantParams

UNARY_OPS = frozenset({
    "Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Elu", "Selu", "Celu",
    "Softplus", "Softsign", "Exp", "Log", "Neg", "Abs", "Sqrt", "Reciprocal", "Erf", "Gelu", "Mish",
    "ThresholdedRelu", "Sin", "Cos", "Floor", "Ceil", "Round", "Sign", "PRelu", "Identity",
})

_ONNX_TYPE = {"int8": onnx.TensorProto.INT8, "uint8": onnx.TensorProto.UINT8}


def ort_table(ctx: ImportContext, nodes: list[onnx.NodeProto], x_q: QuantParams, y_q: QuantParams,
              variable: str | None = None, trailing_one: bool = False,
              codes: np.ndarray | None = None) -> np.ndarray:
    """Run ``nodes`` (last output: the integer result) on all 256 codes of the integer tensor ``variable``
    (default: the first input of the first node); every other input must be a constant.

    With ``trailing_one`` the codes are shaped ``[256, 1]`` instead of ``[256]`` (so that a broadcasting
    node takes the same kernel form as in the model, :func:`~systolix.frontend.reference.ort_span_kind`).
    Returns the table ``t`` with ``y = t[x - x_q.qmin]``, of ``y_q``'s integer type. With ``codes`` (an array
    of ``x_q``'s type, any shape) the nodes run on that array instead and the result has the output's shape
    (per-channel tables: the 256 codes along one axis of every channel).
    """
    from systolix.frontend.reference import reference_session, run_session

    first_in, last_out = variable or nodes[0].input[0], nodes[-1].output[0]
    copies, needed = [], set()
    for node in nodes:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        for i, name in enumerate(copy.input):
            if name == first_in:
                copy.input[i] = "x"
            elif name:
                needed.add(ctx.resolve(name))
                copy.input[i] = ctx.resolve(name)
        for i, name in enumerate(copy.output):
            if name == last_out:
                copy.output[i] = "y"
        copies.append(copy)
    per_channel = codes is not None
    if codes is None:
        codes = np.arange(x_q.qmin, x_q.qmax + 1).astype(x_q.np_dtype)
        codes = codes.reshape(256, 1) if trailing_one else codes
    shape = list(codes.shape)
    inits = []
    for name in sorted(needed):
        if name in ctx.constants:
            inits.append(numpy_helper.from_array(ctx.constants[name], name))
        elif not any(name in n.output for n in copies):
            raise SystolixError(f"node {ctx.node_label}: input {name!r} of a table op must be a constant")
    graph = helper.make_graph(
        copies, "table",
        [helper.make_tensor_value_info("x", _ONNX_TYPE[x_q.dtype], shape)],
        [helper.make_tensor_value_info("y", _ONNX_TYPE[y_q.dtype], None)], inits)
    model = helper.make_model(graph, opset_imports=list(ctx.model.opset_import))
    model.ir_version = ctx.model.ir_version
    try:
        (table,) = run_session(reference_session(model), ["y"], {"x": codes})
    except Exception as exc:  # onnxruntime raises its own exception types
        raise SystolixError(f"node {ctx.node_label}: onnxruntime could not evaluate the table op: "
                            f"{str(exc).splitlines()[0]}") from None
    table = np.asarray(table)
    if per_channel:
        return table.astype(y_q.np_dtype)
    if table.size != 256:  # a constant of several values broadcast the codes: one table per channel or element
        op = nodes[-1].op_type if len(nodes) == 1 else "/".join(n.op_type for n in nodes)
        raise SystolixError(f"node {ctx.node_label} ({op}): a constant operand of {table.size // 256} values (one per "
                            "channel) makes it a different table per channel; only one table per op is supported "
                            "(a per-tensor constant)")
    return table.reshape(256).astype(y_q.np_dtype)
