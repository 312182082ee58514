"""State shared by the op handlers while one ONNX graph is turned into layers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np
import onnx
from onnx import numpy_helper

from systolix.errors import SystolixError

from .ir import Layer, QuantParams, Shape

ONNX_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.INT64: "int64",
}


def node_name(node: onnx.NodeProto, index: int) -> str:
    return node.name or f"{node.op_type}_{index}"


class ImportContext:
    """Tensors, constants, shapes and quantization known so far, and the layers produced."""

    def __init__(self, model: onnx.ModelProto, quantized: bool) -> None:
        self.model = model
        self.quantized = quantized
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.constants: dict[str, np.ndarray] = {
            init.name: numpy_helper.to_array(init) for init in model.graph.initializer
        }
        self.shapes: dict[str, Shape] = {}
        self.dtypes: dict[str, str] = {}
        self.quant: dict[str, QuantParams] = {}
        self.layers: list[Layer] = []
        self.alias: dict[str, str] = {}
        self.producer: dict[str, Layer] = {}
        self.consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
        for node in model.graph.node:
            for name in node.input:
                if name:
                    self.consumers[name].append(node)
        self.graph_outputs = {o.name for o in model.graph.output}
        self.consumed: set[int] = set()  # ids of nodes already handled as part of a pattern
        self.node_label = ""

    # -- tensors -------------------------------------------------------------------------------------
    def resolve(self, name: str) -> str:
        while name in self.alias:
            name = self.alias[name]
        return name

    def is_const(self, name: str) -> bool:
        return self.resolve(name) in self.constants

    def const(self, node: onnx.NodeProto, index: int, what: str, *, optional: bool = False) -> np.ndarray | None:
        """Input ``index`` of ``node``, which must be a constant (an initializer or Constant output)."""
        if index >= len(node.input) or not node.input[index]:
            if optional:
                return None
            raise SystolixError(f"node {self.node_label} ({node.op_type}): missing input {index} ({what})")
        name = self.resolve(node.input[index])
        if name not in self.constants:
            raise SystolixError(f"node {self.node_label} ({node.op_type}): {what} ({node.input[index]!r}) must be "
                                "a constant initializer; computed values are not supported there")
        return self.constants[name]

    def shape(self, name: str) -> Shape:
        name = self.resolve(name)
        if name in self.shapes:
            return self.shapes[name]
        if name in self.constants:
            return tuple(int(d) for d in self.constants[name].shape)
        raise SystolixError(f"node {self.node_label}: the shape of tensor {name!r} is unknown (it is produced by "
                            "an op that was not imported)")

    def single_consumer(self, name: str) -> onnx.NodeProto | None:
        users = self.consumers.get(name, [])
        if len(users) == 1 and name not in self.graph_outputs:
            return users[0]
        return None

    # -- layers --------------------------------------------------------------------------------------
    def add(self, layer: Layer, quant: QuantParams | None = None, dtype: str | None = None) -> None:
        self.layers.append(layer)
        self.shapes[layer.output] = layer.out_shape
        self.producer[layer.output] = layer
        if quant is not None:
            self.quant[layer.output] = quant
        if dtype is not None:
            self.dtypes[layer.output] = dtype
        elif quant is not None:
            self.dtypes[layer.output] = quant.dtype
        else:
            self.dtypes[layer.output] = self.dtypes.get(self.resolve(layer.inputs[0]), "float32")

    def replace(self, old: Layer, new: Layer) -> None:
        """Replace ``old`` (e.g. a Conv that a BatchNormalization or bias Add folds into) by ``new``."""
        index = self.layers.index(old)
        self.layers[index] = new
        del self.producer[old.output]
        self.producer[new.output] = new
        self.shapes[new.output] = new.out_shape
        self.dtypes[new.output] = self.dtypes.get(old.output, "float32")
        if old.output in self.quant:
            self.quant[new.output] = self.quant[old.output]

    def inputs(self, names: Iterable[str]) -> tuple[str, ...]:
        return tuple(self.resolve(n) for n in names)


def attr(node: onnx.NodeProto, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def quant_params(ctx: ImportContext, node: onnx.NodeProto, scale_index: int, zp_index: int, what: str,
                 *, dtype_from: str | None = None) -> QuantParams:
    """Quantization parameters from two constant inputs (scale, zero point) of a QLinear node."""
    scale = ctx.const(node, scale_index, f"{what} scale")
    zp = ctx.const(node, zp_index, f"{what} zero point", optional=True)
    if zp is None:
        dtype = "uint8"
        zp = np.zeros(scale.shape, dtype=np.int64)
    else:
        dtype = str(zp.dtype)
    if dtype not in ("int8", "uint8", "int32"):
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): {what} zero point has type {dtype}; "
                            "only int8 and uint8 are supported")
    if scale.dtype != np.float32:
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): {what} scale has type {scale.dtype}; "
                            "only float32 scales are supported")
    scale = scale.reshape(-1) if scale.ndim and scale.size > 1 else scale.reshape(())
    zp = zp.reshape(-1) if zp.ndim and zp.size > 1 else zp.reshape(())
    if zp.shape != scale.shape:
        zp = np.broadcast_to(zp, scale.shape)
    try:
        return QuantParams(scale, zp, dtype)
    except SystolixError as exc:
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): {what}: {exc}") from None
