"""ONNX -> typed layer IR.

Float models are imported op by op. Quantized models (QDQ, QOperator or a mix) are first brought to the
integer canonical form (:mod:`systolix.frontend.canonical`), which is also the model onnxruntime runs as
the reference, and that form is imported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import onnx

from systolix.errors import SystolixError

from .context import ONNX_DTYPES, ImportContext, node_name
from .ir import HostStep, Model, QuantParams, TensorInfo
from .loader import load_onnx
from .ops import HANDLERS

QUANT_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul", "QGemm",
                       "QLinearAdd", "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearLeakyRelu",
                       "QLinearSigmoid", "QLinearConcat", "QLinearMul", "MatMulInteger", "ConvInteger"})


def is_quantized(model: onnx.ModelProto) -> bool:
    """True when the graph holds quantization ops (QDQ or QOperator) or integer inputs."""
    if any(n.op_type in QUANT_OPS for n in model.graph.node):
        return True
    inits = {i.name for i in model.graph.initializer}
    return any(i.type.tensor_type.elem_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
               for i in model.graph.input if i.name not in inits)


def supported_ops(quantized: bool) -> list[str]:
    """The ONNX op types the importer accepts, for error messages and docs."""
    return sorted(op for op in HANDLERS if quantized or op not in QUANT_OPS)


def _input_shape(value: onnx.ValueInfoProto) -> tuple[int, ...]:
    """Static shape of a graph input; a symbolic (or missing) batch dimension becomes 1."""
    tt = value.type.tensor_type
    if not tt.HasField("shape"):
        raise SystolixError(f"model input {value.name!r} has no shape; a static shape is required")
    dims = []
    for i, d in enumerate(tt.shape.dim):
        if d.HasField("dim_value") and d.dim_value <= 0:
            shown = ", ".join(str(x.dim_value) if x.HasField("dim_value") else (x.dim_param or "?")
                              for x in tt.shape.dim)
            raise SystolixError(f"model input {value.name!r} has a zero-size dimension at axis {i} (shape "
                                f"[{shown}]): it holds no elements; export it with the real size")
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif i == 0:
            dims.append(1)
        else:
            label = d.dim_param or "?"
            raise SystolixError(f"model input {value.name!r} has a dynamic dimension {label!r} at axis {i}; only "
                                "the batch axis may be dynamic (fix the spatial shape when exporting)")
    if dims and dims[0] != 1:
        raise SystolixError(f"model input {value.name!r} has a fixed batch of {dims[0]}; export it with batch 1 "
                            "or a symbolic batch")
    return tuple(dims)


def _unsupported(node: onnx.NodeProto, label: str, quantized: bool) -> SystolixError:
    return SystolixError(f"node {label}: op {node.op_type}{' (domain ' + node.domain + ')' if node.domain else ''} "
                         f"is not supported; supported: {', '.join(supported_ops(quantized))}")


def check_supported_ops(model: onnx.ModelProto, *, quantized: bool) -> None:
    """Refuse the first node whose op systolix does not import, naming it, its op and the supported ops.

    Checked before anything else about the graph (input shapes included), so that a model with an
    unsupported layer is refused for that layer, not for a symptom of it. (A quantization op of a
    quantized model is judged where it is met: it may be part of a pattern another handler takes.)
    """
    for index, node in enumerate(model.graph.node):
        if quantized:
            refused = node.op_type not in HANDLERS and node.op_type not in QUANT_OPS
        else:
            refused = node.op_type not in HANDLERS or node.op_type in QUANT_OPS
        if refused:
            raise _unsupported(node, node_name(node, index), quantized)


def import_graph(model: onnx.ModelProto, *, quantized: bool, name: str = "model",
                 input_quant: dict[str, QuantParams] | None = None) -> Model:
    """Turn one ONNX graph (float, or integer canonical form) into a :class:`Model`."""
    check_supported_ops(model, quantized=quantized)
    ctx = ImportContext(model, quantized)
    inits = set(ctx.constants)
    inputs = []
    for value in model.graph.input:
        if value.name in inits:
            continue
        shape = _input_shape(value)
        dtype = ONNX_DTYPES.get(value.type.tensor_type.elem_type)
        if dtype not in ("float32", "int8", "uint8"):
            raise SystolixError(f"model input {value.name!r} has element type {dtype or 'unknown'}; float32, int8 "
                                "and uint8 are supported")
        ctx.shapes[value.name] = shape
        ctx.dtypes[value.name] = dtype
        inputs.append(value.name)
    for index, node in enumerate(model.graph.node):
        if id(node) in ctx.consumed:
            continue
        ctx.node_label = node_name(node, index)
        handler = HANDLERS.get(node.op_type)
        if handler is None or (node.op_type in QUANT_OPS and not quantized):
            raise _unsupported(node, ctx.node_label, quantized)
        handler(node, ctx)
    if not ctx.layers:
        raise SystolixError(f"{name}: the graph has no layers systolix can run")
    outputs = []
    for value in model.graph.output:
        t = ctx.resolve(value.name)
        outputs.append(TensorInfo(t, ctx.shape(t), ctx.dtypes.get(t, "float32"), ctx.quant.get(t)))
    tensor_infos = {
        **{n: TensorInfo(n, ctx.shapes[n], ctx.dtypes[n], ctx.quant.get(n)) for n in inputs},
        **{layer.output: TensorInfo(layer.output, layer.out_shape, ctx.dtypes.get(layer.output, "float32"),
                                    ctx.quant.get(layer.output)) for layer in ctx.layers},
    }
    return Model(name=name, inputs=tuple(tensor_infos[n] for n in inputs), outputs=tuple(outputs),
                 layers=tuple(ctx.layers), quantized=quantized, input_quant=dict(input_quant or {}),
                 tensors=tensor_infos)


@dataclass(frozen=True)
class Imported:
    """An imported model: the IR, and the ONNX model onnxruntime runs as the reference.

    ``reference`` is the original model for float models and the integer canonical form for quantized
    ones; ``canonical`` holds the canonicalization details (None for float models).
    """

    ir: Model
    reference: onnx.ModelProto
    canonical: object | None = None
    original: onnx.ModelProto | None = None
    normalized: tuple[str, ...] = ()


def import_model(source: str | os.PathLike | onnx.ModelProto, name: str | None = None) -> Imported:
    """Load (if a path), normalise (:mod:`.normalize`) and import an ONNX model, canonicalizing quantized ones."""
    from .normalize import normalize

    if isinstance(source, onnx.ModelProto):
        model, name = source, name or (source.graph.name or "model")
    else:
        model, name = load_onnx(source), name or Path(source).name
    quantized = is_quantized(model)
    normalized = normalize(model, quantized=quantized)
    model, notes = normalized.model, tuple(normalized.lines())
    if not quantized:
        return Imported(import_graph(model, quantized=False, name=name), model, normalized=notes)
    from systolix.frontend.canonical import canonicalize

    canon = canonicalize(model)
    input_quant = {}
    for input_name, (scale, zp, dtype) in canon.input_quant.items():
        input_quant[input_name] = QuantParams(scale, zp, str(dtype))
    ir = import_graph(canon.model, quantized=True, name=name, input_quant=input_quant)
    host = tuple(canon.host_ops)
    converted = tuple(f"{c.name} ({c.op}): {c.why}" for c in canon.converted)
    prefix = tuple(HostStep(step_name, op, tuple(info.shape), what)
                   for info in ir.inputs if info.name in canon.input_prefix
                   for step_name, op, what in canon.input_prefix[info.name].steps)
    ops = " -> ".join(["QuantizeLinear", *(step.op for step in prefix)])
    host = (*(f"{ops} at input {canon.input_map[info.name]!r} (elementwise preprocessing the accelerator cannot "
              "run): run by the host with onnxruntime" for info in ir.inputs if info.name in canon.input_prefix), *host)
    ir = Model(name=ir.name, inputs=ir.inputs, outputs=ir.outputs, layers=ir.layers, quantized=True,
               input_quant=ir.input_quant, host_ops=host, converted=converted, tensors=ir.tensors,
               input_prefix=prefix)
    return Imported(ir, canon.model, canon, model, notes)
