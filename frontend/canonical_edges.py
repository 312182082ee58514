"""The edges of a quantized graph: float inputs quantized by a leading QuantizeLinear, and float ops
(Softmax, DequantizeLinear, QLinearSoftmax) after the last integer tensor, which the canonical form
leaves to the host.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from systolix.errors import SystolixError
from systolix.frontend.canonical_graph import QRANGE, GraphView, describe
from systolix.frontend.canonical_prefix import InputPrefix, cut_input_prefix

#: Float ops the host performs after the accelerator's last integer tensor.
HOST_OPS = ("Softmax", "LogSoftmax", "Tanh", "Sigmoid")  # final float activations left to the host

FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16)


def _step_text(view: GraphView, node: onnx.NodeProto) -> str:
    if node.op_type == "DequantizeLinear":
        return f"DequantizeLinear({view.dq_params(node).text()})"
    if node.op_type == "QuantizeLinear":
        return f"QuantizeLinear({view.qparams(node).text()})"
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type == "QLinearSoftmax":
        scale = [view.const(node.input[i]) for i in (1, 3)]
        zp = [view.const(node.input[i]) for i in (2, 4)]
        return (
            f"QLinearSoftmax(axis={attrs.get('axis', -1)}, x_scale={float(scale[0])!r}, "
            f"x_zero_point={int(zp[0])}, y_scale={float(scale[1])!r}, y_zero_point={int(zp[1])})"
        )
    return f"{node.op_type}(axis={attrs.get('axis', -1)})"


def _host_step(view: GraphView, tensor: str) -> onnx.NodeProto | None:
    """The trailing node producing ``tensor`` that can be left to the host, if any."""
    node = view.producer.get(tensor)
    if node is None:
        return None
    if node.op_type == "DequantizeLinear" and not view.is_const(node.input[0]):
        return node
    if node.op_type in HOST_OPS and view.producer_op(node.input[0]) == "DequantizeLinear":
        return node
    if node.op_type == "QLinearSoftmax":
        return node
    if node.op_type == "QuantizeLinear":
        inner = view.producer.get(node.input[0])
        if (
            inner is not None
            and inner.op_type in HOST_OPS
            and view.producer_op(inner.input[0]) == "DequantizeLinear"
        ):
            return node
    return None


def strip_outputs(view: GraphView) -> tuple[list[str], dict[str, str], list[str]]:
    """Move graph outputs before trailing DQ / DQ->Softmax[->Q] chains.

    Returns
    -------
    (host_ops, output_map, outputs)
        Descriptions of the removed chains, canonical output -> original output, and the new output names
        in order (the graph outputs themselves are rewritten by the caller, which knows their types).
    """
    host_ops: list[str] = []
    output_map: dict[str, str] = {}
    outputs: list[str] = []
    for original in view.output_names:
        name, chain = original, []
        while (node := _host_step(view, name)) is not None:
            chain.insert(0, _step_text(view, node))
            name = node.input[0]
        if chain:
            host_ops.append(f"{' -> '.join(chain)} at output {original!r}: left to the host")
        if name in output_map:
            host_ops.append(
                f"output {original!r} is the same integer tensor {name!r} as output {output_map[name]!r}"
            )
            continue
        output_map[name] = original
        outputs.append(name)
    return host_ops, output_map, outputs


def quantize_inputs(view: GraphView, unary_ops: frozenset[str] = frozenset()
                    ) -> tuple[dict[str, tuple[np.float32, int, np.dtype]], dict[str, str], dict[str, InputPrefix]]:
    """Make float graph inputs read by one QuantizeLinear integer inputs (the host quantizes).

    The new graph input takes the name of the QuantizeLinear's output, so tensor names still match the
    original model; the QuantizeLinear node is dropped from ``view.nodes``. When elementwise preprocessing the
    accelerator cannot run follows it (:mod:`.canonical_prefix`), the whole chain is the host's: the new input
    is the integer tensor after it.

    Returns
    -------
    (input_quant, input_map, input_prefix)
        canonical input -> (scale, zero point, integer type) (inputs the host only quantizes), canonical input
        -> original input, and canonical input -> :class:`~.canonical_prefix.InputPrefix` (the others).
    """
    input_quant: dict[str, tuple[np.float32, int, np.dtype]] = {}
    input_map: dict[str, str] = {}
    prefixes: dict[str, InputPrefix] = {}
    new_inputs: list[onnx.ValueInfoProto] = []
    for vi in view.graph.input:
        if vi.name in view.initializers or vi.type.tensor_type.elem_type not in FLOAT_TYPES:
            new_inputs.append(vi)
            continue
        users = view.consumers.get(vi.name, [])
        if not users:
            new_inputs.append(vi)
            continue
        prefix = cut_input_prefix(view, vi, unary_ops)
        if prefix is not None:
            out = prefix.model.graph.output[0]
            new = onnx.ValueInfoProto()
            new.CopyFrom(out)
            new_inputs.append(new)
            input_map[prefix.output] = vi.name
            prefixes[prefix.output] = prefix
            continue
        if len(users) != 1 or users[0].op_type != "QuantizeLinear":
            other = next((u for u in users if u.op_type != "QuantizeLinear"), users[-1])
            raise SystolixError(
                f"graph input {vi.name!r} is float and read by {describe(other)}; a float input must be "
                "read only by one QuantizeLinear (the host quantizes it)"
            )
        q = users[0]
        params = view.qparams(q)
        if not params.per_tensor or params.dtype not in QRANGE:
            raise SystolixError(f"{describe(q)}: a graph input must be quantized per tensor to int8/uint8")
        new = onnx.ValueInfoProto()
        new.CopyFrom(vi)
        new.name = q.output[0]
        new.type.tensor_type.elem_type = helper.np_dtype_to_tensor_dtype(params.dtype)
        new_inputs.append(new)
        input_quant[q.output[0]] = (
            np.float32(params.scale.reshape(-1)[0]),
            int(params.zero_point.reshape(-1)[0]),
            params.dtype,
        )
        input_map[q.output[0]] = vi.name
        view.nodes.remove(q)
    del view.graph.input[:]
    view.graph.input.extend(new_inputs)
    view.reindex()
    return input_quant, input_map, prefixes
