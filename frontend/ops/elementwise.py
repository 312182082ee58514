"""Add (residual, or a bias folded into the layer before it), QLinearAdd, Concat, QLinearConcat and
BatchNormalization (folded into the Conv before it)."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx

from systolix.errors import SystolixError

from ..context import ImportContext, attr, quant_params
from ..ir import Activation, Add, ChannelConstant, ChannelLookup, Concat, Conv, Dense, Lookup, Mul
from . import register


def _broadcast_shape(node: onnx.NodeProto, ctx: ImportContext, a: tuple, b: tuple) -> tuple:
    try:
        return tuple(int(d) for d in np.broadcast_shapes(a, b))
    except ValueError:
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): shapes {a} and {b} do not broadcast") from None


def _per_channel(node: onnx.NodeProto, ctx: ImportContext, x: str, c: np.ndarray):
    """(the Dense/Conv producing ``x``, ``c`` as one value per output channel), when ``x op c`` can fold into
    that layer (its only reader, float, ``c`` one value or one per output channel on the channel axis)."""
    layer = ctx.producer.get(x)
    if not isinstance(layer, Dense | Conv) or ctx.single_consumer(x) is not node or layer.x_quant is not None:
        return None
    m = layer.weight.shape[1] if isinstance(layer, Dense) else layer.weight.shape[0]
    shape = layer.out_shape
    axis = len(shape) - 1 if isinstance(layer, Dense) else 1
    want = [1] * len(shape)
    want[axis] = m
    if c.size not in (1, m) or (c.size == m and c.ndim and int(np.prod(c.shape)) == m
                                and tuple(c.shape) not in (tuple(want[-c.ndim:]), (m,))):
        return None
    if c.size == m and c.ndim == 1 and axis != len(shape) - 1 and m != 1:
        return None  # a (m,) vector broadcasts over the last axis, not the channels
    return layer, np.broadcast_to(c.astype(np.float32).reshape(-1), (m,))


def _fold_bias(node: onnx.NodeProto, ctx: ImportContext, x: str, c: np.ndarray) -> bool:
    """Fold ``x + c`` into the Dense/Conv producing ``x`` when c is a per-output-channel vector."""
    found = _per_channel(node, ctx, x, c)
    if found is None:
        return False
    layer, add = found
    bias = add if layer.bias is None else layer.bias + add
    new = dataclasses.replace(layer, bias=bias.astype(np.float32), output=node.output[0])
    ctx.replace(layer, new)
    return True


def _fold_scale(node: onnx.NodeProto, ctx: ImportContext, x: str, c: np.ndarray) -> bool:
    """Fold ``x * c`` into the Dense/Conv producing ``x`` when c is a per-output-channel vector (tf2onnx writes
    a BatchNormalization after a DepthwiseConv2D as Mul and Add): its weights and bias are scaled."""
    found = _per_channel(node, ctx, x, c)
    if found is None:
        return False
    layer, k = found
    k64 = k.astype(np.float64)
    if isinstance(layer, Dense):
        weight = layer.weight.astype(np.float64) * k64.reshape(1, -1)
    else:
        weight = layer.weight.astype(np.float64) * k64.reshape(-1, *([1] * (layer.weight.ndim - 1)))
    bias = None if layer.bias is None else (layer.bias.astype(np.float64) * k64).astype(np.float32)
    ctx.replace(layer, dataclasses.replace(layer, weight=weight.astype(np.float32), bias=bias, output=node.output[0]))
    return True


@register("Add")
def add(node: onnx.NodeProto, ctx: ImportContext) -> None:
    a, b = ctx.resolve(node.input[0]), ctx.resolve(node.input[1])
    if ctx.is_const(b) or ctx.is_const(a):
        x, c = (a, ctx.constants[b]) if ctx.is_const(b) else (b, ctx.constants[a])
        if _fold_bias(node, ctx, x, c) or _float_constant_op(node, ctx, x, c, "add"):
            return
        raise SystolixError(f"node {ctx.node_label} (Add): adding a constant of shape {list(c.shape)} is supported "
                            "as the bias of the Conv/Gemm/MatMul right before it, or with one value or one value per "
                            "channel")
    sa, sb = ctx.shape(a), ctx.shape(b)
    out = _broadcast_shape(node, ctx, sa, sb)
    ctx.add(Add(name=ctx.node_label, op="Add", inputs=(a, b), output=node.output[0], in_shapes=(sa, sb),
                out_shape=out))


def _channel_shape(shape: tuple, value: np.ndarray) -> bool:
    """``value`` is one value per channel of a tensor of ``shape`` (the channel axis 1; ``[C, 1, 1]``, ...)."""
    rank = len(shape)
    if rank < 2 or value.ndim > rank:
        return False
    padded = (1,) * (rank - value.ndim) + tuple(int(d) for d in value.shape)
    return padded == (1, int(shape[1])) + (1,) * (rank - 2)


def _float_constant_op(node: onnx.NodeProto, ctx: ImportContext, x: str, c: np.ndarray, func: str) -> bool:
    """A float ``x + c`` / ``x * c`` with ``c`` one value or one per channel: a layer of its own (a table, or one
    table per channel, once quantized)."""
    shape = tuple(ctx.shape(x))
    if ctx.quantized or not (c.size == 1 or _channel_shape(shape, c)):
        return False
    ctx.add(ChannelConstant(name=ctx.node_label, op=node.op_type, inputs=(x,), output=node.output[0],
                            in_shapes=(shape,), out_shape=_broadcast_shape(node, ctx, shape, tuple(c.shape)), func=func,
                            constant=np.asarray(c, np.float32).reshape(-1)))
    return True


def _constant_operand_table(node: onnx.NodeProto, ctx: ImportContext, a: str, b: str) -> None:
    """QLinearAdd/QLinearMul of an activation and a one-value constant: each output code depends on the input
    code alone, so the op is a 256-entry table, computed by onnxruntime running this very node on every code
    (the same scalar-operand kernel as in the model)."""
    from systolix.frontend.reference import ort_span_kind

    from ..tables import ort_table

    x, const, x_slot = (b, a, 3) if ctx.is_const(a) else (a, b, 0)
    value = ctx.constants[const]
    shape = ctx.shape(x)
    if value.size != 1:
        _per_channel_tables(node, ctx, x, const, x_slot)
        return
    x_q = quant_params(ctx, node, x_slot + 1, x_slot + 2, "input")
    y_q = quant_params(ctx, node, 6, 7, "output")
    ctx.quant.setdefault(x, x_q)
    shape = ctx.shape(x)
    # The table must come from the kernel form the model uses (ort_span_kind): when the broadcaster keeps a
    # trailing axis of size 1, the activation is a per-span scalar too, so the codes are shaped [256, 1].
    def kind(x_shape: tuple[int, ...]) -> str:
        c = tuple(value.shape)
        return ort_span_kind(x_shape, c) if x_slot == 0 else ort_span_kind(c, x_shape)

    trailing_one = kind((256,)) != kind(shape) and kind((256, 1)) == kind(shape)
    if kind((256, 1) if trailing_one else (256,)) != kind(shape):
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): cannot reproduce onnxruntime's "
                            f"{kind(shape)} kernel form for shapes {list(shape)} and {list(value.shape)}")
    table = ort_table(ctx, [node], x_q, y_q, variable=node.input[x_slot], trailing_one=trailing_one)
    func = f"{'add' if node.op_type == 'QLinearAdd' else 'mul'} {float(value.reshape(-1)[0]):g} (codes)"
    ctx.add(Lookup(name=ctx.node_label, op=node.op_type, inputs=(x,), output=node.output[0], in_shapes=(shape,),
                   out_shape=_broadcast_shape(node, ctx, shape, tuple(value.shape)), func=func, table=table,
                   x_quant=x_q, y_quant=y_q), quant=y_q)


def _per_channel_tables(node: onnx.NodeProto, ctx: ImportContext, x: str, const: str, x_slot: int) -> None:
    """QLinearAdd/QLinearMul of an activation and a per-channel constant (one value per channel, on the channel
    axis: ``[C, 1, 1]``, ``[1, C, 1, 1]``, ``[C]`` for a 2-D tensor ...): onnxruntime runs every channel with its
    value as a scalar operand, so each channel is a 256-entry table, computed by onnxruntime running this very
    node on the 256 codes of every channel at once, shaped for the model's kernel form
    (:func:`~systolix.frontend.reference.ort_span_kind`)."""
    from systolix.frontend.reference import ort_span_kind

    from ..tables import ort_table

    value = ctx.constants[const]
    shape = tuple(ctx.shape(x))
    rank, channels = len(shape), int(shape[1]) if len(shape) > 1 else 0
    if not _channel_shape(shape, value):
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): a constant operand of shape "
                            f"{list(value.shape)} with an input of shape {list(shape)} is not supported (only one "
                            f"value, one value per channel ({[channels] + [1] * (rank - 2)}), or an activation)")
    x_q = quant_params(ctx, node, x_slot + 1, x_slot + 2, "input")
    k_q = quant_params(ctx, node, 4 - x_slot, 5 - x_slot, "constant")
    y_q = quant_params(ctx, node, 6, 7, "output")
    ctx.quant.setdefault(x, x_q)
    codes = np.arange(x_q.qmin, x_q.qmax + 1).astype(x_q.np_dtype)

    def kind(x_shape: tuple[int, ...]) -> str:  # onnxruntime's kernel form for the activation's shape
        c = tuple(int(d) for d in value.shape)
        return ort_span_kind(x_shape, c) if x_slot == 0 else ort_span_kind(c, x_shape)

    # The 256 codes of every channel at once, shaped so that the broadcaster takes the model's kernel form:
    # along the batch ([256, C, 1, ...]: one element per channel and sample) or along a spatial axis.
    ones = (1,) * (rank - 2)
    grids = [np.repeat(codes[:, None], channels, axis=1).reshape(256, channels, *ones)]
    if rank > 2:
        grids.insert(0, np.broadcast_to(codes.reshape(1, 1, 256, *ones[1:]), (1, channels, 256, *ones[1:])))
    grid = next((g for g in grids if kind(g.shape) == kind(shape)), None)
    if grid is None:
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): cannot reproduce onnxruntime's {kind(shape)} "
                            f"kernel form for shapes {list(shape)} and {list(value.shape)}")
    out = ort_table(ctx, [node], x_q, y_q, variable=node.input[x_slot], codes=np.ascontiguousarray(grid))
    tables = out.reshape(channels, 256) if grid.shape[0] == 1 else out.reshape(256, channels).T
    k = (np.float64(np.float32(k_q.scale))
         * (value.reshape(-1).astype(np.float64) - np.asarray(k_q.zero_point, np.float64).reshape(-1)))
    x_s, y_s = float(np.float32(x_q.scale)), float(np.float32(y_q.scale))
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):  # a search hint only: may be inf or nan
        if node.op_type == "QLinearMul":
            slope, offset, what = x_s * k / np.float64(y_s), np.zeros(channels), "mul"
        else:
            slope, offset, what = np.full(channels, np.float64(x_s) / np.float64(y_s)), k / np.float64(y_s), "add"
    ctx.add(ChannelLookup(name=ctx.node_label, op=node.op_type, inputs=(x,), output=node.output[0],
                          in_shapes=(shape,), out_shape=shape, func=f"{what} a per-channel constant ({channels} "
                          "tables)", tables=np.asarray(tables).astype(y_q.np_dtype), slope=slope, offset=offset,
                          x_quant=x_q, y_quant=y_q), quant=y_q)


def _self_gated_table(node: onnx.NodeProto, ctx: ImportContext, a: str, b: str) -> bool:
    """``x * f(x)`` (HardSwish, SiLU/Swish as exporters decompose them: a QLinearMul of an activation and a
    table of that same activation) is a function of ``x``'s code: one 256-entry table, computed by onnxruntime
    running the QLinearMul on every code and the table's code for it. The ``f`` table is replaced when the
    product is its only reader."""
    from systolix.frontend.reference import reference_session, run_session

    from ..tables import _ONNX_TYPE

    found = [(x, gate, slot) for x, gate, slot in ((a, b, 0), (b, a, 3))
             if isinstance(ctx.producer.get(gate), Lookup) and ctx.producer[gate].inputs[0] == x]
    if not found:
        return False
    x, gate, x_slot = found[0]
    layer = ctx.producer[gate]
    x_q = quant_params(ctx, node, x_slot + 1, x_slot + 2, "input")
    y_q = quant_params(ctx, node, 6, 7, "output")
    codes = np.arange(x_q.qmin, x_q.qmax + 1).astype(x_q.np_dtype)
    gates = np.asarray(layer.table).astype(layer.y_quant.np_dtype)
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    copy.input[x_slot], copy.input[3 - x_slot] = "x", "g"
    copy.output[0] = "y"
    consts = [onnx.numpy_helper.from_array(ctx.constants[ctx.resolve(n)], n)
              for i, n in enumerate(node.input) if i not in (0, 3) and n]
    graph = onnx.helper.make_graph([copy], "gated", [
        onnx.helper.make_tensor_value_info("x", _ONNX_TYPE[x_q.dtype], [256]),
        onnx.helper.make_tensor_value_info("g", _ONNX_TYPE[layer.y_quant.dtype], [256])],
        [onnx.helper.make_tensor_value_info("y", _ONNX_TYPE[y_q.dtype], [256])], consts)
    model = onnx.helper.make_model(graph, opset_imports=list(ctx.model.opset_import))
    model.ir_version = ctx.model.ir_version
    (table,) = run_session(reference_session(model), ["y"], {"x": codes, "g": gates})
    fused = Lookup(name=ctx.node_label, op=node.op_type, inputs=(x,), output=node.output[0],
                   in_shapes=(ctx.shape(x),), out_shape=ctx.shape(x), func=f"x * {layer.func}(x) (codes)",
                   table=np.asarray(table).astype(y_q.np_dtype), x_quant=x_q, y_quant=y_q)
    if ctx.single_consumer(gate) is node:
        ctx.replace(layer, fused)
        ctx.quant[fused.output] = y_q
        ctx.dtypes[fused.output] = y_q.dtype
    else:
        ctx.add(fused, quant=y_q)
    return True


@register("Mul")
def mul(node: onnx.NodeProto, ctx: ImportContext) -> None:
    """A float ``x * f(x)`` (SiLU as ``x * Sigmoid(x)``, HardSwish as ``x * HardSigmoid(x)`` before opset 14:
    how torch.onnx.export writes them) is one elementwise activation of ``x`` (a table once quantized). The
    ``f`` activation is replaced when the product is its only reader. ``x * c`` by a per-channel constant folds
    into the Conv/Dense before it. Any other product of two activations (same shape, or the squeeze-and-excite
    ``[N, C, H, W] * [N, C, 1, 1]``) is a `Mul` layer."""
    a, b = ctx.resolve(node.input[0]), ctx.resolve(node.input[1])
    if not ctx.quantized and (ctx.is_const(a) or ctx.is_const(b)):
        x, c = (a, ctx.constants[b]) if ctx.is_const(b) else (b, ctx.constants[a])
        if _fold_scale(node, ctx, x, c) or _float_constant_op(node, ctx, x, c, "mul"):
            return
        raise SystolixError(f"node {ctx.node_label} (Mul): multiplying by a constant of shape {list(c.shape)} is "
                            "supported as a scale of each output channel of the Conv/Gemm/MatMul right before it, or "
                            "with one value or one value per channel")
    if ctx.quantized:
        raise SystolixError(f"node {ctx.node_label} (Mul): a float Mul in a quantized model (not between "
                            "DequantizeLinear and QuantizeLinear) is not supported")
    found = [(x, gate) for x, gate in ((a, b), (b, a))
             if isinstance(ctx.producer.get(gate), Activation) and ctx.producer[gate].inputs[0] == x
             and not ctx.producer[gate].func.startswith("x*")]
    if not found:
        _two_activations(node, ctx, a, b)
        return
    x, gate = found[0]
    layer = ctx.producer[gate]
    fused = Activation(name=ctx.node_label, op="Mul", inputs=(x,), output=node.output[0], in_shapes=(ctx.shape(x),),
                       out_shape=ctx.shape(x), func=f"x*{layer.func}", attrs=layer.attrs)
    if ctx.single_consumer(gate) is node:
        ctx.replace(layer, fused)
    else:
        ctx.add(fused)


def _two_activations(node: onnx.NodeProto, ctx: ImportContext, a: str, b: str) -> None:
    """A product of two activations: same shape, or one of them one value per channel (``[N, C, 1, 1]``, the
    squeeze-and-excite gate), either order. Integer (QLinearMul) when the model is quantized."""
    sa, sb = tuple(ctx.shape(a)), tuple(ctx.shape(b))
    out = _broadcast_shape(node, ctx, sa, sb)
    if sa != sb and not (len(out) >= 3 and (sa == out or sb == out)
                         and (sa if sb == out else sb) == (*out[:2], *([1] * (len(out) - 2)))):
        raise SystolixError(f"node {ctx.node_label} ({node.op_type}): a product of activations of shapes {list(sa)} "
                            f"and {list(sb)} is not supported (only the same shape, or one of them [N, C, 1, 1] "
                            "against [N, C, H, W])")
    if node.op_type == "QLinearMul":
        a_q = quant_params(ctx, node, 1, 2, "input A")
        b_q = quant_params(ctx, node, 4, 5, "input B")
        y_q = quant_params(ctx, node, 6, 7, "output")
        ctx.quant.setdefault(a, a_q)
        ctx.quant.setdefault(b, b_q)
        ctx.add(Mul(name=ctx.node_label, op=node.op_type, inputs=(a, b), output=node.output[0], in_shapes=(sa, sb),
                    out_shape=out, a_quant=a_q, b_quant=b_q, y_quant=y_q), quant=y_q)
    else:
        ctx.add(Mul(name=ctx.node_label, op=node.op_type, inputs=(a, b), output=node.output[0], in_shapes=(sa, sb),
                    out_shape=out))


@register("QLinearMul")
def qlinear_mul(node: onnx.NodeProto, ctx: ImportContext) -> None:
    a, b = ctx.resolve(node.input[0]), ctx.resolve(node.input[3])
    if ctx.is_const(a) or ctx.is_const(b):
        _constant_operand_table(node, ctx, a, b)
    elif not _self_gated_table(node, ctx, a, b):
        _two_activations(node, ctx, a, b)


@register("QLinearAdd")
def qlinear_add(node: onnx.NodeProto, ctx: ImportContext) -> None:
    a, b = ctx.resolve(node.input[0]), ctx.resolve(node.input[3])
    if ctx.is_const(a) or ctx.is_const(b):
        _constant_operand_table(node, ctx, a, b)
        return
    a_q = quant_params(ctx, node, 1, 2, "input A")
    b_q = quant_params(ctx, node, 4, 5, "input B")
    y_q = quant_params(ctx, node, 6, 7, "output")
    ctx.quant.setdefault(a, a_q)
    ctx.quant.setdefault(b, b_q)
    sa, sb = ctx.shape(a), ctx.shape(b)
    out = _broadcast_shape(node, ctx, sa, sb)
    ctx.add(Add(name=ctx.node_label, op=node.op_type, inputs=(a, b), output=node.output[0], in_shapes=(sa, sb),
                out_shape=out, a_quant=a_q, b_quant=b_q, y_quant=y_q), quant=y_q)


def _concat_shape(node: onnx.NodeProto, ctx: ImportContext, shapes: list[tuple], axis: int) -> tuple[int, tuple]:
    rank = len(shapes[0])
    axis = axis + rank if axis < 0 else axis
    for s in shapes:
        if len(s) != rank or any(s[i] != shapes[0][i] for i in range(rank) if i != axis):
            raise SystolixError(f"node {ctx.node_label} ({node.op_type}): shapes {shapes} differ off axis {axis}")
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return axis, tuple(out)


@register("Concat")
def concat(node: onnx.NodeProto, ctx: ImportContext) -> None:
    xs = ctx.inputs(node.input)
    shapes = [ctx.shape(x) for x in xs]
    axis, out = _concat_shape(node, ctx, shapes, int(attr(node, "axis", 1)))
    quant = [ctx.quant.get(x) for x in xs]
    same = all(q is not None for q in quant) and len({(float(q.scale), int(q.zero_point), q.dtype)
                                                      for q in quant}) == 1
    if ctx.quantized and not same:
        raise SystolixError(f"node {ctx.node_label} (Concat): integer inputs with different quantization")
    ctx.add(Concat(name=ctx.node_label, op="Concat", inputs=xs, output=node.output[0], in_shapes=tuple(shapes),
                   out_shape=out, axis=axis, in_quant=tuple(quant) if ctx.quantized else None,
                   y_quant=quant[0] if ctx.quantized else None), quant=quant[0] if ctx.quantized else None)


@register("QLinearConcat")
def qlinear_concat(node: onnx.NodeProto, ctx: ImportContext) -> None:
    y_q = quant_params(ctx, node, 0, 1, "output")
    if (len(node.input) - 2) % 3:
        raise SystolixError(f"node {ctx.node_label} (QLinearConcat): inputs must come in (x, scale, zp) triples")
    xs, quants = [], []
    for i in range(2, len(node.input), 3):
        x = ctx.resolve(node.input[i])
        q = quant_params(ctx, node, i + 1, i + 2, f"input {len(xs)}")
        ctx.quant.setdefault(x, q)
        xs.append(x)
        quants.append(q)
    shapes = [ctx.shape(x) for x in xs]
    axis, out = _concat_shape(node, ctx, shapes, int(attr(node, "axis", 1)))
    ctx.add(Concat(name=ctx.node_label, op=node.op_type, inputs=tuple(xs), output=node.output[0],
                   in_shapes=tuple(shapes), out_shape=out, axis=axis, in_quant=tuple(quants), y_quant=y_q),
            quant=y_q)


@register("BatchNormalization")
def batch_norm(node: onnx.NodeProto, ctx: ImportContext) -> None:
    x = ctx.resolve(node.input[0])
    layer = ctx.producer.get(x)
    if not isinstance(layer, Conv) or ctx.single_consumer(x) is not node:
        raise SystolixError(f"node {ctx.node_label} (BatchNormalization): only a BatchNormalization right after a "
                            "Conv (its only consumer) is supported; it is folded into that Conv")
    if len(node.output) > 1 and any(node.output[1:]):
        raise SystolixError(f"node {ctx.node_label} (BatchNormalization): training-mode outputs are not supported")
    gamma, beta, mean, var = (ctx.const(node, i, w).astype(np.float64).reshape(-1)
                              for i, w in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "variance")))
    eps = float(attr(node, "epsilon", 1e-5))
    m = layer.weight.shape[0]
    if not all(v.size == m for v in (gamma, beta, mean, var)):
        raise SystolixError(f"node {ctx.node_label} (BatchNormalization): parameters do not have {m} channels")
    k = gamma / np.sqrt(var + eps)
    weight = (layer.weight.astype(np.float64) * k.reshape(-1, *([1] * (layer.weight.ndim - 1)))).astype(np.float32)
    bias0 = np.zeros(m) if layer.bias is None else layer.bias.astype(np.float64)
    bias = ((bias0 - mean) * k + beta).astype(np.float32)
    ctx.replace(layer, dataclasses.replace(layer, weight=weight, bias=bias, output=node.output[0]))
