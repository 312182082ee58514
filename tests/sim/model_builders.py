"""Small ONNX models for the end-to-end golden-model tests, built with ``onnx.helper``.

Two kinds:

- :class:`FloatGraph` builds float32 models node by node (random weights from a seeded generator); the
  tests quantize them with :func:`systolix.quantize.ptq.quantize_model`.
- The ``q*_model`` functions build QOperator models directly (int8/uint8 graph input, random but valid
  quantization parameters), including models whose accumulators sit next to rounding ties
  (:func:`near_tie_conv_model`, :func:`near_tie_qgemm_model`).

Every model has a symbolic batch ``N`` and opset 13 (plus ``com.microsoft`` 1 where needed).

:func:`assert_bit_exact` is the one check all end-to-end tests apply to a simulated model.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from systolix.frontend.importer import import_model
from systolix.sim.compare import Comparison
from systolix.sim.onnxruntime_runner import run_onnxruntime
from systolix.sim.simulate import SimulationResult, prepare_inputs, simulate

OPSET = [helper.make_opsetid("", 13)]
MS_OPSET = [helper.make_opsetid("", 13), helper.make_opsetid("com.microsoft", 1)]
_ELEM = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8}
_RANGE = {"int8": (-128, 127), "uint8": (0, 255)}


def _finish(nodes: list[onnx.NodeProto], inits: list[onnx.TensorProto], x_shape: list, x_elem: int,
            outputs: list[tuple[str, int]], name: str, opsets: list) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", x_elem, ["N", *x_shape])],
        [helper.make_tensor_value_info(o, elem, ["N", *[None] * len(x_shape)]) for o, elem in outputs], inits)
    model = helper.make_model(graph, opset_imports=opsets, ir_version=8)
    onnx.checker.check_model(model)
    return model


# ------------------------------------------------------------------------------------------------
# The end-to-end check


def describe_mismatches(cmp: Comparison) -> str:
    """The layers with mismatches and the first differing element, for assertion messages."""
    bad = [f"{layer.name} ({layer.op}): {layer.mismatches}/{layer.elements}" for layer in cmp.layers
           if layer.mismatches]
    return f"mismatches in {bad}; first: {cmp.first_mismatch}"


def assert_bit_exact(path: str | Path, *, inputs: str | Path | None = None, random: int | None = None,
                     seed: int = 0, min_distinct: int = 4) -> SimulationResult:
    """Simulate ``path`` with the golden backend, every layer compared, and check the result.

    Checks: no mismatch; every non-host layer of the imported model was compared, over every element of
    every sample; the float input's quantization was compared (``inputs`` given); and the reference's
    outputs take at least ``min_distinct`` values (a model whose outputs all saturate proves little).

    Parameters
    ----------
    path
        The quantized model.
    inputs, random, seed
        As for :func:`systolix.sim.simulate.simulate`.
    min_distinct
        Fewest distinct values each reference output must hold.

    Returns
    -------
    SimulationResult
    """
    result = simulate(path, inputs=inputs, random=random, seed=seed, backend="golden", layers=True)
    cmp = result.comparison
    assert cmp.mismatches == 0, describe_mismatches(cmp)
    assert cmp.first_mismatch is None
    assert cmp.elements > 0
    assert cmp.bit_exact
    imported = import_model(path)
    name, x_ref, _, _, _, _ = prepare_inputs(imported, inputs, random, seed)
    assert cmp.samples == len(x_ref) > 0
    compared = {layer.name: layer for layer in cmp.layers}
    for layer in imported.ir.layers:
        if layer.host:
            continue
        assert layer.name in compared, f"layer {layer.name} ({layer.op}) was not compared"
        assert compared[layer.name].elements == cmp.samples * int(np.prod(layer.out_shape)), layer.name
    if imported.ir.input_quant and inputs is not None:
        assert compared["input quantization"].elements == x_ref.size
    outs = [o.name for o in imported.ir.outputs]
    for out, value in run_onnxruntime(imported.reference, {name: x_ref}, outs).items():
        assert np.unique(value).size >= min(min_distinct, value.size), f"output {out} is degenerate"
    return result


# ------------------------------------------------------------------------------------------------
# Float models


class FloatGraph:
    """A float32 model under construction: one input ``x`` of shape ``[N, *sample_shape]``.

    Each method adds one node and returns the name of its output; shapes of intermediate tensors come
    from onnx shape inference, so weights can be sized from their input.
    """

    def __init__(self, sample_shape: tuple[int, ...], seed: int = 0) -> None:
        self.sample_shape = tuple(sample_shape)
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._count = 0

    def _name(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix.lower()}{self._count}"

    def const(self, value: np.ndarray, prefix: str = "c") -> str:
        name = self._name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def random(self, shape: tuple[int, ...], std: float, prefix: str = "w") -> str:
        return self.const((self.rng.standard_normal(shape) * std).astype(np.float32), prefix)

    def op(self, op_type: str, inputs: list[str], **attrs) -> str:
        name = self._name(op_type)
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attrs))
        return name

    def shape(self, tensor: str) -> tuple[int, ...]:
        """Static shape of ``tensor`` for batch 1."""
        if tensor == "x":
            return (1, *self.sample_shape)
        model = self.build(tensor, check=False)
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        for vi in (*inferred.graph.output, *inferred.graph.value_info):
            if vi.name == tensor:
                return tuple(d.dim_value if d.HasField("dim_value") else 1 for d in vi.type.tensor_type.shape.dim)
        raise KeyError(tensor)

    # -- layers ----------------------------------------------------------------------------------
    def conv(self, x: str, out_ch: int, kernel: tuple[int, ...], *, bias: bool = True, group: int = 1,
             **attrs) -> str:
        in_ch = self.shape(x)[1]
        fan_in = in_ch // group * int(np.prod(kernel))
        w = self.random((out_ch, in_ch // group, *kernel), 1.0 / np.sqrt(fan_in))
        inputs = [x, w] + ([self.random((out_ch,), 0.2, "b")] if bias else [])
        if group != 1:
            attrs["group"] = group
        return self.op("Conv", inputs, **attrs)

    def batch_norm(self, x: str) -> str:
        c = self.shape(x)[1]
        gamma = self.const(self.rng.uniform(0.5, 1.5, c).astype(np.float32), "gamma")
        beta = self.const(self.rng.normal(0, 0.2, c).astype(np.float32), "beta")
        mean = self.const(self.rng.normal(0, 0.2, c).astype(np.float32), "mean")
        var = self.const(self.rng.uniform(0.5, 2.0, c).astype(np.float32), "var")
        return self.op("BatchNormalization", [x, gamma, beta, mean, var], epsilon=1e-3)

    def clip(self, x: str, lo: float, hi: float) -> str:
        return self.op("Clip", [x, self.const(np.float32(lo), "min"), self.const(np.float32(hi), "max")])

    def gemm(self, x: str, units: int, *, trans_b: int = 0, alpha: float = 1.0, bias: bool = True) -> str:
        k = self.shape(x)[-1]
        shape = (units, k) if trans_b else (k, units)
        inputs = [x, self.random(shape, 1.0 / np.sqrt(k))] + ([self.random((units,), 0.2, "b")] if bias else [])
        attrs = {"transB": trans_b} if trans_b else {}
        if alpha != 1.0:
            attrs["alpha"] = alpha
        return self.op("Gemm", inputs, **attrs)

    def matmul_add(self, x: str, units: int) -> str:
        k = self.shape(x)[-1]
        y = self.op("MatMul", [x, self.random((k, units), 1.0 / np.sqrt(k))])
        return self.op("Add", [y, self.random((units,), 0.2, "b")])

    def reshape(self, x: str, shape: list[int]) -> str:
        return self.op("Reshape", [x, self.const(np.array(shape, dtype=np.int64), "shape")])

    def build(self, *outputs: str, check: bool = True) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, "generated",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *self.sample_shape])],
            [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], self.inits)
        model = helper.make_model(graph, opset_imports=OPSET, ir_version=8)
        if check:
            model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
            del model.graph.value_info[:]
            onnx.checker.check_model(model)
        return model


# ------------------------------------------------------------------------------------------------
# QOperator models: random quantization parameters


class _Params:
    """Random but sensible quantization parameters."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def scale(self, lo: float = 0.005, hi: float = 0.1) -> np.float32:
        return np.float32(np.exp(self.rng.uniform(np.log(lo), np.log(hi))))

    def zp(self, dtype: str, spread: int = 30) -> np.ndarray:
        lo, hi = _RANGE[dtype]
        mid = (lo + hi + 1) // 2
        return np.array(self.rng.integers(mid - spread, mid + spread + 1), dtype=dtype)

    def codes(self, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
        lo, hi = _RANGE[dtype]
        return self.rng.integers(lo, hi + 1, size=shape).astype(dtype)


def _init(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _qparams(prefix: str, scale, zp) -> list[onnx.TensorProto]:
    return [_init(f"{prefix}_scale", np.asarray(scale, np.float32)), _init(f"{prefix}_zp", zp)]


def _acc_std(k: int) -> float:
    """Rough standard deviation of an accumulator of ``k`` products of random codes minus zero points."""
    return float(np.sqrt(k) * 74.0 * 74.0)


def qlinear_conv_model(*, x_dtype: str = "int8", w_dtype: str = "int8", sample_shape=(3, 9, 8), out_ch: int = 4,
                       kernel=(3, 3), per_channel: bool = True, bias: bool = True, seed: int = 0,
                       **attrs) -> onnx.ModelProto:
    """One QLinearConv (any attributes in ``attrs``) with random weights, scales and zero points."""
    p = _Params(seed)
    group = attrs.get("group", 1)
    in_ch = sample_shape[0]
    w = p.codes(w_dtype, (out_ch, in_ch // group, *kernel))
    x_s, x_zp = p.scale(), p.zp(x_dtype)
    w_zp = p.zp(w_dtype, 10) if w_dtype == "uint8" else np.array(0, np.int8)
    if per_channel:
        w_s = np.array([p.scale(0.002, 0.02) for _ in range(out_ch)], np.float32)
        w_zp = np.full(out_ch, w_zp, dtype=w_dtype)
    else:
        w_s = p.scale(0.002, 0.02)
    k = in_ch // group * int(np.prod(kernel))
    y_s = np.float32(x_s * float(np.mean(w_s)) * _acc_std(k) / 40.0 * p.rng.uniform(0.7, 1.4))
    y_zp = p.zp(x_dtype)
    inits = [*_qparams("x", x_s, x_zp), _init("w", w), *_qparams("w", w_s, w_zp), *_qparams("y", y_s, y_zp)]
    inputs = ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp", "y_scale", "y_zp"]
    if bias:
        inits.append(_init("b", p.rng.integers(-20000, 20000, out_ch).astype(np.int32)))
        inputs.append("b")
    node = helper.make_node("QLinearConv", inputs, ["y"], name="qconv", **attrs)
    return _finish([node], inits, list(sample_shape), _ELEM[x_dtype], [("y", _ELEM[x_dtype])], "qlinear_conv",
                   OPSET)


def qgemm_model(*, dtype: str = "int8", k: int = 24, units: int = 10, trans_b: int = 0, alpha: float = 1.0,
                per_column: bool = True, seed: int = 0) -> onnx.ModelProto:
    """com.microsoft QGemm on a [N, k] input with a constant int8 B, an int32 C and an integer output."""
    p = _Params(seed)
    b = p.codes("int8", (units, k) if trans_b else (k, units))
    a_s, a_zp = p.scale(), p.zp(dtype)
    b_s = np.array([p.scale(0.002, 0.02) for _ in range(units)], np.float32) if per_column else p.scale(0.002, 0.02)
    b_zp = np.zeros(units, np.int8) if per_column else np.array(0, np.int8)
    y_s = np.float32(alpha * a_s * float(np.mean(b_s)) * _acc_std(k) / 40.0)
    inits = [*_qparams("a", a_s, a_zp), _init("b", b), *_qparams("b", b_s, b_zp),
             _init("c", p.rng.integers(-20000, 20000, units).astype(np.int32)), *_qparams("y", y_s, p.zp(dtype))]
    attrs = {"transB": trans_b} if trans_b else {}
    node = helper.make_node("QGemm", ["x", "a_scale", "a_zp", "b", "b_scale", "b_zp", "c", "y_scale", "y_zp"],
                            ["y"], name="qgemm", domain="com.microsoft", alpha=float(alpha), **attrs)
    return _finish([node], inits, [k], _ELEM[dtype], [("y", _ELEM[dtype])], "qgemm", MS_OPSET)


def qlinear_matmul_model(*, dtype: str = "int8", seed: int = 0) -> onnx.ModelProto:
    """QLinearMatMul of two activations: ``x`` [N, 2, 5, 7] times its own transpose [N, 2, 7, 5]."""
    p = _Params(seed)
    x_s, x_zp = p.scale(), p.zp(dtype)
    y_s = np.float32(x_s * x_s * _acc_std(7) / 40.0)
    inits = [*_qparams("x", x_s, x_zp), *_qparams("y", y_s, p.zp(dtype))]
    nodes = [
        helper.make_node("Transpose", ["x"], ["xt"], name="transpose", perm=[0, 1, 3, 2]),
        helper.make_node("QLinearMatMul", ["x", "x_scale", "x_zp", "xt", "x_scale", "x_zp", "y_scale", "y_zp"],
                         ["y"], name="qmatmul"),
    ]
    return _finish(nodes, inits, [2, 5, 7], _ELEM[dtype], [("y", _ELEM[dtype])], "qlinear_matmul", OPSET)


def qlinear_add_model(*, dtype: str = "int8", seed: int = 0) -> onnx.ModelProto:
    """QLinearAdd with broadcast: ``x`` [N, 4, 5, 6] + its QLinearGlobalAveragePool [N, 4, 1, 1]."""
    p = _Params(seed)
    inits = [*_qparams("x", p.scale(), p.zp(dtype)), *_qparams("g", p.scale(0.002, 0.02), p.zp(dtype)),
             *_qparams("y", p.scale(), p.zp(dtype))]
    nodes = [
        helper.make_node("QLinearGlobalAveragePool", ["x", "x_scale", "x_zp", "g_scale", "g_zp"], ["g"],
                         name="qgap", domain="com.microsoft", channels_last=0),
        helper.make_node("QLinearAdd", ["x", "x_scale", "x_zp", "g", "g_scale", "g_zp", "y_scale", "y_zp"], ["y"],
                         name="qadd", domain="com.microsoft"),
    ]
    return _finish(nodes, inits, [4, 5, 6], _ELEM[dtype], [("y", _ELEM[dtype])], "qlinear_add", MS_OPSET)


def qlinear_pool_model(op: str, *, dtype: str = "int8", sample_shape=(3, 11, 9), seed: int = 0,
                       **attrs) -> onnx.ModelProto:
    """QLinearAveragePool (``attrs``: kernel_shape, strides, pads, ceil_mode, count_include_pad) or
    QLinearGlobalAveragePool, alone."""
    p = _Params(seed)
    x_s = p.scale()
    inits = [*_qparams("x", x_s, p.zp(dtype)), *_qparams("y", np.float32(x_s * p.rng.uniform(0.3, 0.9)),
                                                         p.zp(dtype))]
    if op == "QLinearGlobalAveragePool":
        attrs.setdefault("channels_last", 0)
    node = helper.make_node(op, ["x", "x_scale", "x_zp", "y_scale", "y_zp"], ["y"], name="qpool",
                            domain="com.microsoft", **attrs)
    return _finish([node], inits, list(sample_shape), _ELEM[dtype], [("y", _ELEM[dtype])], op.lower(), MS_OPSET)


def qlinear_unary_model(op: str, *, dtype: str = "int8", seed: int = 0, **attrs) -> onnx.ModelProto:
    """QLinearLeakyRelu or QLinearSigmoid on [N, 3, 6, 5]."""
    p = _Params(seed)
    y_s, y_zp = (np.float32(1 / 256), np.array(_RANGE[dtype][0], dtype)) if op == "QLinearSigmoid" else \
        (p.scale(), p.zp(dtype))
    inits = [*_qparams("x", p.scale(0.02, 0.08), p.zp(dtype)), *_qparams("y", y_s, y_zp)]
    node = helper.make_node(op, ["x", "x_scale", "x_zp", "y_scale", "y_zp"], ["y"], name="qunary",
                            domain="com.microsoft", **attrs)
    return _finish([node], inits, [3, 6, 5], _ELEM[dtype], [("y", _ELEM[dtype])], op.lower(), MS_OPSET)


def qlinear_concat_model(*, dtype: str = "int8", seed: int = 0) -> onnx.ModelProto:
    """QLinearConcat on channels of three tensors with three different scales and zero points:
    ``x``, a QLinearConv of ``x`` and an int8 MaxPool of ``x`` (with pads, so same spatial size)."""
    p = _Params(seed)
    conv = qlinear_conv_model(x_dtype=dtype, w_dtype="int8" if dtype == "int8" else "uint8", sample_shape=(2, 7, 6),
                              out_ch=3, kernel=(3, 3), pads=[1, 1, 1, 1], seed=seed + 100)
    nodes = list(conv.graph.node)
    inits = list(conv.graph.initializer)
    # The MaxPool output keeps x's parameters; QLinearConcat is told so.
    nodes.append(helper.make_node("MaxPool", ["x"], ["m"], name="maxpool", kernel_shape=[3, 3],
                                  pads=[1, 1, 1, 1]))
    inits += _qparams("cat", p.scale(0.01, 0.05), p.zp(dtype))
    nodes.append(helper.make_node(
        "QLinearConcat", ["cat_scale", "cat_zp", "x", "x_scale", "x_zp", "y", "y_scale", "y_zp", "m", "x_scale",
                          "x_zp"], ["out"], name="qconcat", domain="com.microsoft", axis=1))
    return _finish(nodes, inits, [2, 7, 6], _ELEM[dtype], [("out", _ELEM[dtype])], "qlinear_concat", MS_OPSET)


def int8_maxpool_model(*, dtype: str = "int8", **attrs) -> onnx.ModelProto:
    """MaxPool directly on integer codes (``attrs``: kernel_shape, strides, pads, ceil_mode, dilations)."""
    node = helper.make_node("MaxPool", ["x"], ["y"], name="maxpool", **attrs)
    return _finish([node], [], [3, 11, 10], _ELEM[dtype], [("y", _ELEM[dtype])], "maxpool", OPSET)


# ------------------------------------------------------------------------------------------------
# Near-tie models: accumulators whose exact product with the scale lies at or next to k + 1/2


def _f32_requant(acc: int, scale: np.float32) -> int:
    """onnxruntime's two roundings: f32(f32(acc) * scale), then round half to even."""
    return int(np.rint(np.float32(np.float32(acc) * scale)))


def _single_round(acc: int, scale: np.float32) -> int:
    """One rounding of the exact product (the wrong method near ties)."""
    exact = Fraction(acc) * Fraction(float(scale))
    return round(exact)  # Python's round() on a Fraction is half to even


@dataclass(frozen=True)
class NearTie:
    """An accumulator value, a float32 scale and the two results: onnxruntime's and a single rounding's."""

    acc: int
    scale: np.float32
    double: int
    single: int

    @property
    def distance(self) -> float:
        """|acc * scale - (k + 1/2)| for the nearest half-integer, exactly."""
        exact = Fraction(self.acc) * Fraction(float(self.scale))
        return float(abs(exact - (exact.__floor__() + Fraction(1, 2))))


def near_ties(count: int, *, seed: int = 0, max_code: int = 100) -> list[NearTie]:
    """``count`` (acc, scale) pairs whose product is within half a float32 ulp of a half-integer but not on
    it, so that one rounding of the exact product and onnxruntime's two roundings give different codes.

    Construction: for a half-integer target ``T = (2k+1)/2`` and an accumulator ``a``, the scale
    mantissa ``M = round(T * 2**E / a)`` puts ``a * M`` within ``a/2`` of ``T * 2**E``, while the float32
    product keeps 24 bits of ``a * M``: when the difference is below half of its last kept bit, the
    product rounds onto ``T`` exactly and round-half-even picks the even neighbour.
    """
    rng = np.random.default_rng(seed)
    found: list[NearTie] = []
    while len(found) < count:
        a = int(rng.integers(3000, 2**21)) * int(rng.choice([-1, 1]))
        k = int(rng.integers(-max_code, max_code))
        target = Fraction(2 * k + 1, 2)
        ideal = target / a  # the exact scale; find a float32 next to it
        if ideal <= 0:
            continue
        s = np.float32(float(ideal))
        for cand in (s, np.nextafter(s, np.float32(0)), np.nextafter(s, np.float32(np.inf))):
            tie = NearTie(a, np.float32(cand), _f32_requant(a, cand), _single_round(a, cand))
            if tie.double != tie.single and tie.distance > 0:
                found.append(tie)
                break
    return found


def exact_ties(count: int, *, seed: int = 0) -> list[NearTie]:
    """Pairs whose exact product is k + 1/2 exactly (a power-of-two scale): catches half-away-from-zero."""
    rng = np.random.default_rng(seed)
    ties = []
    for _ in range(count):
        shift = int(rng.integers(1, 12))
        k = int(rng.integers(-100, 100))
        a = (2 * k + 1) * 2 ** (shift - 1)
        s = np.float32(2.0**-shift)
        ties.append(NearTie(a, s, _f32_requant(a, s), _single_round(a, s)))
    return ties


def near_tie_conv_model(ties: list[NearTie], *, y_zp: int = 3) -> tuple[onnx.ModelProto, np.ndarray]:
    """A QLinearConv whose output channel ``c`` computes ``ties[c].acc`` on input code 0, with scale
    ``ties[c].scale``; returns the model and an int8 input holding every code (so each channel also
    sees the 255 accumulators around its tie).

    1x1 kernel, one input channel, weight 1, input zero point 0: ``acc[c] = x + bias[c]``. The scales are
    per channel: ``x_s = 0.5``, ``w_s[c] = scale[c] / 4``, ``y_s = 0.125`` (powers of two, so onnxruntime's
    ``f32(f32(x_s * w_s[c]) / y_s)`` is exactly ``scale[c]``).
    """
    m = len(ties)
    scales = np.array([t.scale for t in ties], np.float32)
    w_s = (scales / np.float32(4)).astype(np.float32)
    assert np.all((np.float32(np.float32(0.5) * w_s) / np.float32(0.125)).astype(np.float32) == scales)
    inits = [*_qparams("x", 0.5, np.array(0, np.int8)), _init("w", np.ones((m, 1, 1, 1), np.int8)),
             *_qparams("w", w_s, np.zeros(m, np.int8)), *_qparams("y", 0.125, np.array(y_zp, np.int8)),
             _init("b", np.array([t.acc for t in ties], np.int32))]
    node = helper.make_node("QLinearConv", ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp", "y_scale", "y_zp", "b"],
                            ["y"], name="qconv_ties")
    model = _finish([node], inits, [1, 16, 16], TensorProto.INT8, [("y", TensorProto.INT8)], "near_tie_conv",
                    OPSET)
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 16, 16)
    return model, np.concatenate([x, np.flip(x, axis=(2, 3))])


def near_tie_qgemm_model(ties: list[NearTie], *, alpha: float = 0.5, y_zp: int = -2
                         ) -> tuple[onnx.ModelProto, np.ndarray]:
    """A QGemm whose column ``c`` computes ``ties[c].acc`` on input row ``A[i, 0] = 0``, with scale ``ties[c].scale``.

    ``A`` [N, 4] int8 (zero point 0), ``B`` [4, M] with ones in row 0 (zero point 0), ``C[c] = acc[c]``:
    ``acc = A[:, 0] + C``. With ``a_s = 0.5``, ``y_s = 0.0625``, ``alpha`` a power of two and per-column
    ``b_s[c] = scale[c] * y_s / (alpha * a_s)`` (all powers of two apart from ``scale[c]``), onnxruntime's
    ``f32(f32(f32(alpha * a_s) * b_s[c]) / y_s)`` is exactly ``scale[c]``.
    """
    m = len(ties)
    scales = np.array([t.scale for t in ties], np.float32)
    a_s, y_s = np.float32(0.5), np.float32(0.0625)
    b_s = (scales * y_s / np.float32(alpha * 0.5)).astype(np.float32)
    got = ((np.float32(np.float32(alpha) * a_s) * b_s).astype(np.float32) / y_s).astype(np.float32)
    assert np.all(got == scales)
    b = np.zeros((4, m), np.int8)
    b[0] = 1
    inits = [*_qparams("a", a_s, np.array(0, np.int8)), _init("b", b), *_qparams("b", b_s, np.zeros(m, np.int8)),
             _init("c", np.array([t.acc for t in ties], np.int32)), *_qparams("y", y_s, np.array(y_zp, np.int8))]
    node = helper.make_node("QGemm", ["x", "a_scale", "a_zp", "b", "b_scale", "b_zp", "c", "y_scale", "y_zp"], ["y"],
                            name="qgemm_ties", domain="com.microsoft", alpha=float(alpha))
    model = _finish([node], inits, [4], TensorProto.INT8, [("y", TensorProto.INT8)], "near_tie_qgemm", MS_OPSET)
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, size=(256, 4)).astype(np.int8)
    x[:, 0] = np.arange(-128, 128)
    return model, x


def extreme_scales_model(*, dtype: str = "int8", seed: int = 0) -> onnx.ModelProto:
    """Scales at the ends of float32, as onnxruntime runs them (outputs ``y`` and ``c2``).

    - QLinearConv ``c1``: ``x_s * w_s = 1e40``, an infinite requantization scale on every channel;
      channel 0 has zero weights, so its accumulators are 0 and ``0 * inf`` is NaN: onnxruntime gives
      qmin there.
    - QLinearConv ``c3`` (ordinary) then ``c2`` with per-channel scales 0 (an underflowed product),
      1e-20, a denormal 1e-39 and 1e-3.
    - QLinearAdd(``c2``, ``c1``) with ratios 1 and 1e7: where ``c1`` is at its top the float sum
      exceeds 2**31 and onnxruntime's cvtps2dq gives INT_MIN, so the output is qmin, not qmax.
    """
    p = _Params(seed)
    lo, _ = _RANGE[dtype]
    w1 = p.codes("int8", (4, 3, 3, 3))
    w1[0] = 0
    w3 = p.codes("int8", (4, 3, 3, 3))
    w2 = p.codes("int8", (4, 4, 1, 1))
    w2_s = np.array([1e-45, 1e-20, 1e-39, 1e-3], np.float32)

    def zp(v: int) -> np.ndarray:
        return np.array(lo + v).astype(dtype)

    inits = [*_qparams("x", 1e20, zp(3)), _init("w1", w1), *_qparams("w1", 1e20, np.array(0, np.int8)),
             *_qparams("c1", 1e6, zp(3)), _init("w3", w3), *_qparams("w3", 1e-22, np.array(0, np.int8)),
             *_qparams("c3", 0.1, zp(100)), _init("w2", w2), *_qparams("w2", w2_s, np.zeros(4, np.int8)),
             *_qparams("c2", 0.1, zp(120)), *_qparams("y", 0.1, zp(128))]
    conv = ["x_scale", "x_zp"]
    nodes = [
        helper.make_node("QLinearConv", ["x", *conv, "w1", "w1_scale", "w1_zp", "c1_scale", "c1_zp"], ["c1"],
                         name="c1", pads=[1, 1, 1, 1]),
        helper.make_node("QLinearConv", ["x", *conv, "w3", "w3_scale", "w3_zp", "c3_scale", "c3_zp"], ["c3"],
                         name="c3", pads=[1, 1, 1, 1]),
        helper.make_node("QLinearConv", ["c3", "c3_scale", "c3_zp", "w2", "w2_scale", "w2_zp", "c2_scale", "c2_zp"],
                         ["c2"], name="c2"),
        helper.make_node("QLinearAdd", ["c2", "c2_scale", "c2_zp", "c1", "c1_scale", "c1_zp", "y_scale", "y_zp"],
                         ["y"], name="add", domain="com.microsoft"),
    ]
    return _finish(nodes, inits, [3, 7, 6], _ELEM[dtype], [("y", _ELEM[dtype]), ("c2", _ELEM[dtype])],
                   "extreme_scales", MS_OPSET)


def single_element_add_model() -> onnx.ModelProto:
    """A QLinearAdd of one element per sample: ``x`` [N, 1, 1, 1] plus a 1x1 QLinearConv of it.

    onnxruntime's broadcaster takes the swapped scalar kernel form for a one-element add at batch 1 and the
    general form in a batch; with these scales the two differ for the input codes 78 and 90.
    """
    x_s, b_s, c_s = np.float32(0.03495024), np.float32(0.04562748), np.float32(0.05687835)
    inits = [*_qparams("x", x_s, np.int8(84)), _init("w", np.ones((1, 1, 1, 1), np.int8)),
             *_qparams("w", np.float32(b_s / x_s), np.int8(0)), *_qparams("b", b_s, np.int8(-82)),
             *_qparams("y", c_s, np.int8(94))]
    nodes = [helper.make_node("QLinearConv", ["x", "x_scale", "x_zp", "w", "w_scale", "w_zp", "b_scale", "b_zp"],
                              ["b"], name="conv"),
             helper.make_node("QLinearAdd", ["x", "x_scale", "x_zp", "b", "b_scale", "b_zp", "y_scale", "y_zp"],
                              ["y"], name="add", domain="com.microsoft")]
    return _finish(nodes, inits, [1, 1, 1], TensorProto.INT8, [("y", TensorProto.INT8)], "single_add", MS_OPSET)
