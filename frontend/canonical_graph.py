"""A mutable view of an ONNX graph for the canonicalizer: producers, consumers, constants, Q/DQ parameters.

The canonicalizer (:mod:`systolix.frontend.canonical`) matches ``DequantizeLinear -> op -> QuantizeLinear``
groups and replaces them with onnxruntime integer operators. This module holds the bookkeeping it needs:
which node produces and which nodes consume a tensor, the value of constant tensors (initializers or
``Constant`` nodes), the quantization parameters a Q or DQ node declares, fresh unique names, the element
type of every tensor of the rewritten graph, and dead-code elimination.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from systolix.errors import SystolixError

#: Integer ranges of the activation types the canonical form supports.
QRANGE = {np.dtype(np.int8): (-128, 127), np.dtype(np.uint8): (0, 255)}

#: Output index of the zero-point input that fixes the output type of each onnxruntime integer operator.
QOP_OUTPUT_ZP_INPUT = {
    "QLinearConv": 7,
    "QLinearMatMul": 7,
    "QGemm": 8,
    "QLinearAdd": 7,
    "QLinearMul": 7,
    "QLinearAveragePool": 4,
    "QLinearGlobalAveragePool": 4,
    "QLinearLeakyRelu": 4,
    "QLinearSigmoid": 4,
    "QLinearSoftmax": 4,  # com.microsoft: inputs X, X_scale, x_zp, y_scale, y_zp
    "QLinearConcat": 1,
}


#: Standard ops whose output has the element type of their first input (layout and elementwise ops).
SAME_TYPE_OPS = frozenset(
    {
        "MaxPool", "GlobalMaxPool", "Resize", "Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Identity",
        "Softmax", "LogSoftmax", "Abs", "Acos", "Acosh", "Asin", "Asinh", "Atan", "Atanh", "Ceil", "Celu", "Clip",
        "Cos", "Cosh", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid", "HardSwish", "LeakyRelu", "Log",
        "Mish", "Neg", "Reciprocal", "Relu", "Round", "Selu", "Sigmoid", "Sign", "Sin", "Sinh", "Softplus",
        "Softsign", "Sqrt", "Tan", "Tanh", "ThresholdedRelu", "Add", "Sub", "Mul", "Div", "Concat",
        "AveragePool", "GlobalAveragePool", "Conv", "MatMul", "Gemm", "PRelu", "Slice",
    }
)  # fmt: skip


def describe(node: onnx.NodeProto) -> str:
    """``Conv node 'name'``: how error messages name a node."""
    return f"{node.op_type} node {node.name or '(unnamed, output ' + repr(node.output[0]) + ')'!r}"


@dataclass(frozen=True)
class QParams:
    """Quantization parameters declared by one QuantizeLinear or DequantizeLinear node.

    Attributes
    ----------
    scale : numpy.ndarray
        float32 scale, a scalar (per tensor) or a 1-D array (per axis).
    zero_point : numpy.ndarray
        Zero point with the integer type of the quantized tensor, same shape as ``scale``.
    axis : int
        The node's ``axis`` attribute (meaningful only per axis).
    scale_name, zp_name : str
        Names of the scale and zero-point tensors in the graph (``zp_name`` is ``""`` when the node
        has no zero-point input: the zero point is then 0 of type uint8 for Q, of the input type for DQ).
    """

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int
    scale_name: str
    zp_name: str

    @property
    def dtype(self) -> np.dtype:
        """Integer type of the quantized tensor."""
        return self.zero_point.dtype

    @property
    def per_tensor(self) -> bool:
        """True when one scale and zero point apply to the whole tensor."""
        return self.scale.size == 1

    @property
    def qmin(self) -> int:
        return QRANGE[self.dtype][0]

    @property
    def qmax(self) -> int:
        return QRANGE[self.dtype][1]

    def same_as(self, other: QParams) -> bool:
        """True when both declare bit-identical scale and equal zero point of the same type."""
        return (
            self.dtype == other.dtype
            and self.scale.shape == other.scale.shape
            and np.array_equal(self.scale.view(np.int32), other.scale.view(np.int32))
            and np.array_equal(self.zero_point, other.zero_point)
        )

    def quantize(self, value: float) -> float:
        """QuantizeLinear of one real value, without the final clamp (infinities stay infinite)."""
        if np.isinf(value):
            return float(value)
        v = np.float32(np.float32(value) / self.scale.reshape(-1)[0])
        return float(np.rint(v)) + int(self.zero_point.reshape(-1)[0])

    def text(self) -> str:
        """Short human-readable form for reports."""
        if self.per_tensor:
            scale, zp = float(self.scale.reshape(-1)[0]), int(self.zero_point.reshape(-1)[0])
            return f"scale={scale!r}, zero_point={zp}, {self.dtype}"
        return f"per-axis scale[{self.scale.size}] axis {self.axis}, {self.dtype}"


class GraphView:
    """Producers, consumers and constants of a graph that is being rewritten in place.

    Parameters
    ----------
    model : onnx.ModelProto
        The model to rewrite (modified by :meth:`commit`; pass a copy).
    """

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        self.graph = model.graph
        self.nodes: list[onnx.NodeProto] = list(self.graph.node)
        self.initializers: dict[str, TensorProto] = {t.name: t for t in self.graph.initializer}
        self.new_initializers: list[TensorProto] = []
        self._names = {t for n in self.nodes for t in itertools.chain(n.input, n.output)}
        self._names |= {n.name for n in self.nodes} | set(self.initializers)
        self._names |= {v.name for v in itertools.chain(self.graph.input, self.graph.output)}
        self.reindex()

    # -- structure ---------------------------------------------------------------------------------
    def reindex(self) -> None:
        """Recompute producer and consumer maps from ``self.nodes``."""
        self.producer: dict[str, onnx.NodeProto] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in self.nodes:
            for out in node.output:
                if out:
                    self.producer[out] = node
            for inp in node.input:
                if inp:
                    self.consumers[inp].append(node)

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.graph.output]

    def only_consumer(self, tensor: str) -> onnx.NodeProto | None:
        """The single node reading ``tensor``, or None when several (or none) do or it is a graph output."""
        users = self.consumers.get(tensor, [])
        if len(users) != 1 or tensor in self.output_names:
            return None
        return users[0]

    def producer_op(self, tensor: str) -> str | None:
        node = self.producer.get(tensor)
        return node.op_type if node is not None else None

    # -- constants ---------------------------------------------------------------------------------
    def const(self, name: str) -> np.ndarray | None:
        """Value of a constant tensor (initializer or ``Constant`` node output), else None."""
        if not name:
            return None
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer.get(name)
        if node is not None and node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    return numpy_helper.to_array(attr.t)
                if attr.name == "value_float":
                    return np.array(attr.f, np.float32)
                if attr.name == "value_floats":
                    return np.array(attr.floats, np.float32)
                if attr.name == "value_int":
                    return np.array(attr.i, np.int64)
                if attr.name == "value_ints":
                    return np.array(attr.ints, np.int64)
        return None

    def is_const(self, name: str) -> bool:
        return self.const(name) is not None

    def qparams(self, node: onnx.NodeProto, input_dtype: np.dtype | None = None) -> QParams:
        """Quantization parameters of a QuantizeLinear or DequantizeLinear node (they must be constants)."""
        scale = self.const(node.input[1])
        if scale is None:
            raise SystolixError(f"{describe(node)}: the scale {node.input[1]!r} must be a constant")
        if scale.dtype != np.float32:
            raise SystolixError(f"{describe(node)}: the scale must be float32, not {scale.dtype}")
        zp_name = node.input[2] if len(node.input) > 2 else ""
        if zp_name:
            zp = self.const(zp_name)
            if zp is None:
                raise SystolixError(f"{describe(node)}: the zero point {zp_name!r} must be a constant")
        else:
            zp = np.zeros(scale.shape, input_dtype if input_dtype is not None else np.uint8)
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("block_size", 0):
            raise SystolixError(f"{describe(node)}: blocked quantization is not supported")
        return QParams(scale, zp, int(attrs.get("axis", 1)), node.input[1], zp_name)

    def dq_params(self, node: onnx.NodeProto) -> QParams:
        """Parameters of a DequantizeLinear, whose missing zero point takes the input's type."""
        value = self.const(node.input[0])
        return self.qparams(node, value.dtype if value is not None else None)

    # -- names and new tensors ---------------------------------------------------------------------
    def unique(self, hint: str) -> str:
        """A tensor or node name not used anywhere in the graph, derived from ``hint``."""
        name, k = hint, 1
        while name in self._names:
            name, k = f"{hint}_{k}", k + 1
        self._names.add(name)
        return name

    def add_initializer(self, value: np.ndarray, hint: str) -> str:
        name = self.unique(hint)
        tensor = numpy_helper.from_array(value, name)
        self.initializers[name] = tensor
        self.new_initializers.append(tensor)
        return name

    def zp_name(self, params: QParams, hint: str) -> str:
        """Name of a zero-point tensor for ``params`` (created when the node had none)."""
        return params.zp_name or self.add_initializer(params.zero_point, hint)

    # -- commit ------------------------------------------------------------------------------------
    def commit(self) -> None:
        """Write ``self.nodes`` back, drop dead nodes, initializers and stale value_info."""
        live = set(self.output_names)
        kept: list[onnx.NodeProto] = []
        for node in reversed(self.nodes):
            if any(o in live for o in node.output if o):
                kept.append(node)
                live.update(i for i in node.input if i)
        kept.reverse()
        self.nodes = kept
        del self.graph.node[:]
        self.graph.node.extend(kept)
        initializers = [
            t for t in itertools.chain(self.graph.initializer, self.new_initializers) if t.name in live
        ]
        del self.graph.initializer[:]
        self.graph.initializer.extend(initializers)
        self.new_initializers = []
        produced = {o for n in kept for o in n.output} | {i.name for i in self.graph.input}
        stale = [v for v in self.graph.value_info if v.name not in produced]
        for v in stale:
            self.graph.value_info.remove(v)
        self.reindex()


def elem_types(view: GraphView) -> dict[str, int]:
    """ONNX element type of every tensor of the (canonical) graph, by propagation from inputs and constants.

    Covers the operators the canonical form is made of; tensors of other operators are left out.
    """
    types: dict[str, int] = {}
    for vi in view.graph.input:
        types[vi.name] = vi.type.tensor_type.elem_type
    for name, tensor in view.initializers.items():
        types[name] = tensor.data_type
    for node in view.nodes:
        out = node.output[0] if node.output else ""
        if node.op_type == "Constant":
            value = view.const(out)
            if value is not None:
                types[out] = helper.np_dtype_to_tensor_dtype(value.dtype)
        elif node.op_type == "QuantizeLinear":
            zp = node.input[2] if len(node.input) > 2 else ""
            types[out] = types.get(zp, TensorProto.UINT8) if zp else TensorProto.UINT8
        elif node.op_type == "DequantizeLinear":
            types[out] = TensorProto.FLOAT
        elif node.op_type in QOP_OUTPUT_ZP_INPUT:
            idx = QOP_OUTPUT_ZP_INPUT[node.op_type]
            if node.op_type == "QGemm" and (len(node.input) <= 7 or not node.input[7]):
                types[out] = TensorProto.FLOAT
            elif len(node.input) > idx and node.input[idx] in types:
                types[out] = types[node.input[idx]]
        elif node.domain in ("", "ai.onnx") and node.op_type in SAME_TYPE_OPS and node.input[0] in types:
            types[out] = types[node.input[0]]
    return types
