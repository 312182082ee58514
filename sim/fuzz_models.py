"""Random models for the fuzzer: QOperator graphs built directly, and float graphs for the quantizer.

Every model comes from one integer seed (:func:`random_model`), so a case is reproduced by its seed
alone. Two kinds:

- ``"qoperator"``: an int8 or uint8 graph input and a chain of 1-5 QOperator layers (QLinearConv 1D/2D
  with random kernels, strides, asymmetric pads, dilations and groups; MaxPool; QLinearAveragePool;
  QLinearGlobalAveragePool; QLinearAdd of two branches or with a constant; QLinearLeakyRelu and
  QLinearSigmoid; QLinearConcat; a final QGemm or QLinearMatMul), with quantization parameters drawn
  from ordinary ranges and, now and then, from the ends of float32 (denormal, tiny and huge scales),
  zero points at the ends of their type and int32 bias extremes.
- ``"float"``: a float32 graph (Conv 1D/2D, BatchNormalization, Relu/Clip/LeakyRelu/PRelu/Sigmoid/Tanh/
  HardSigmoid/HardSwish/Elu/Selu/Celu/Softplus/Softsign/Abs, Mul by a constant, MaxPool, AveragePool,
  GlobalAveragePool, GlobalMaxPool, residual Add, channel Concat, Gemm) that the fuzzer quantizes with
  onnxruntime's quantizer (QDQ or QOperator, int8 or uint8 activations, per tensor or per channel).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["RandomModel", "random_model"]

_ELEM = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8}
_RANGE = {"int8": (-128, 127), "uint8": (0, 255)}
#: Scales from the ends of float32 (denormal, smallest normal, tiny, huge, near the maximum).
_EXTREME_SCALES = (1e-45, 1e-40, 1.1754944e-38, 1e-30, 1e-12, 1e12, 1e30, 3e38)


@dataclasses.dataclass
class RandomModel:
    """One generated model.

    Attributes
    ----------
    seed : int
        The seed it was made from.
    kind : {"qoperator", "float"}
        QOperator graph, or float graph to be quantized.
    model : onnx.ModelProto
        The model (symbolic batch ``N``).
    layers : list of str
        Short descriptions of the layers, in order.
    quant : dict
        For ``"float"``: the quantizer options to use (``quant_format``, ``activation_type``,
        ``per_channel``).
    """

    seed: int
    kind: str
    model: onnx.ModelProto
    layers: list[str]
    quant: dict = dataclasses.field(default_factory=dict)


def random_model(seed: int, *, float_share: float = 0.1) -> RandomModel:
    """The model of fuzz case ``seed`` (a float model with probability ``float_share``)."""
    rng = np.random.default_rng(seed)
    if rng.random() < float_share:
        return _FloatBuilder(rng, seed).build()
    return _QBuilder(rng, seed).build()


def _out_len(n: int, k: int, s: int, d: int, p0: int, p1: int, ceil: bool = False) -> int:
    span = n + p0 + p1 - d * (k - 1) - 1
    if span < 0:
        return 0
    out = (-(-span // s) if ceil else span // s) + 1
    if ceil and (out - 1) * s >= n + p0:  # versions disagree on this case: it is not generated
        return 0
    return out


class _Graph:
    """Nodes, initializers and fresh names."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, value, prefix: str = "k") -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], prefix: str, domain: str = "", **attrs) -> str:
        out = self.name(prefix)
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, domain=domain, **attrs))
        return out

    def window(self, spatial: tuple[int, ...], *, max_k: int, dilate: bool, ceil: bool = False,
               pad_below_k: bool = False) -> dict | None:
        """Random kernel/strides/pads/dilations for ``spatial``; None if no output would remain."""
        rng = self.rng
        k = [int(rng.integers(1, max_k + 1)) for _ in spatial]
        s = [int(rng.integers(1, 4)) for _ in spatial]
        d = [int(rng.integers(1, 3)) if dilate and rng.random() < 0.3 else 1 for _ in spatial]
        pads = []
        for kk in k:
            hi = kk - 1 if pad_below_k else 2
            pads.append((int(rng.integers(0, hi + 1)), int(rng.integers(0, hi + 1))))
        outs = [_out_len(n, kk, ss, dd, p0, p1, ceil) for n, kk, ss, dd, (p0, p1) in zip(spatial, k, s, d, pads,
                                                                                         strict=True)]
        if min(outs) < 1:
            return None
        return {"kernel_shape": k, "strides": s, "dilations": d,
                "pads": [p for p, _ in pads] + [p for _, p in pads], "out": tuple(outs)}


# ------------------------------------------------------------------------------------------------
# QOperator


@dataclasses.dataclass
class _QTensor:
    name: str
    shape: tuple[int, ...]   # (C, *spatial), batch excluded
    scale: str               # initializer names
    zp: str
    scale_value: float


class _QBuilder:
    def __init__(self, rng: np.random.Generator, seed: int) -> None:
        self.rng = rng
        self.seed = seed
        self.g = _Graph(rng)
        self.dtype = "uint8" if rng.random() < 0.4 else "int8"
        self.layers: list[str] = []
        self.ms = False

    # parameters --------------------------------------------------------------------------------
    def scale(self, typical: float = 0.02) -> float:
        rng = self.rng
        if rng.random() < 0.05:
            return float(np.float32(min(rng.choice(_EXTREME_SCALES) * rng.uniform(1, 3), 3.4e38)))
        return float(np.float32(typical * np.exp(rng.uniform(-1.5, 1.5))))

    def zp(self) -> int:
        lo, hi = _RANGE[self.dtype]
        r = self.rng.random()
        if r < 0.1:
            return lo
        if r < 0.2:
            return hi
        return int(self.rng.integers(lo + 20, hi - 20))

    def qparams(self, scale: float, zp: int | None = None) -> tuple[str, str]:
        zp = self.zp() if zp is None else zp
        return (self.g.const(np.float32(scale), "s"), self.g.const(np.array(zp).astype(self.dtype), "z"))

    def tensor(self, name: str, shape: tuple[int, ...], scale: float) -> _QTensor:
        s, z = self.qparams(scale)
        return _QTensor(name, shape, s, z, scale)

    def out_scale(self, x: _QTensor, gain: float) -> float:
        """An output scale that keeps codes mostly in range (sometimes anything)."""
        if self.rng.random() < 0.05:
            return self.scale()
        with np.errstate(all="ignore"):
            v = np.float32(x.scale_value * gain * self.rng.uniform(0.3, 3.0))
        return float(v) if np.isfinite(v) and v > 0 else self.scale()

    # layers ------------------------------------------------------------------------------------
    def conv(self, x: _QTensor, *, out_ch: int | None = None, kernel_one: bool = False) -> _QTensor | None:
        rng, g = self.rng, self.g
        c, spatial = x.shape[0], x.shape[1:]
        if kernel_one:
            win = {"kernel_shape": [1] * len(spatial), "strides": [1] * len(spatial), "dilations": [1] * len(spatial),
                   "pads": [0] * (2 * len(spatial)), "out": spatial}
        else:
            win = g.window(spatial, max_k=4, dilate=True)
        if win is None:
            return None
        group, m = 1, out_ch or int(rng.integers(1, 9))
        r = rng.random()
        if out_ch is None and r < 0.2 and c > 1:
            group, m = c, c  # depthwise
        elif out_ch is None and r < 0.3:
            divisors = [d for d in range(2, c + 1) if c % d == 0]
            if divisors:
                group = int(rng.choice(divisors))
                m = group * int(rng.integers(1, 3))
        k = int(np.prod(win["kernel_shape"])) * (c // group)
        w_dtype = "uint8" if self.dtype == "uint8" and rng.random() < 0.1 else "int8"  # no s8 x u8 kernel
        lo, hi = (-127, 127) if w_dtype == "int8" else (0, 255)
        w = rng.integers(lo, hi + 1, (m, c // group, *win["kernel_shape"])).astype(w_dtype)
        per_channel = rng.random() < 0.5
        w_s = np.array([self.scale(0.01) for _ in range(m)] if per_channel else self.scale(0.01), np.float32)
        w_zp = 0 if w_dtype == "int8" else int(rng.integers(100, 156))
        w_zp_arr = np.full(m, w_zp, w_dtype) if per_channel else np.array(w_zp, w_dtype)
        inputs = [x.name, x.scale, x.zp, g.const(w, "w"), g.const(w_s, "ws"), g.const(w_zp_arr, "wz")]
        gain = float(np.mean(w_s)) * np.sqrt(k) * 60.0 / 40.0
        y = self.tensor("", (m, *win["out"]), self.out_scale(x, gain))
        inputs += [y.scale, y.zp]
        if rng.random() < 0.7:
            bias = rng.integers(-(2**15), 2**15, m)
            if rng.random() < 0.05:
                bias[int(rng.integers(m))] = int(rng.choice([-(2**31), 2**31 - 1]))
            inputs.append(g.const(bias.astype(np.int32), "b"))
        attrs = {a: win[a] for a in ("kernel_shape", "strides", "dilations", "pads")}
        y.name = g.node("QLinearConv", inputs, "conv", group=group, **attrs)
        self.layers.append(f"QLinearConv{len(spatial)}d k{win['kernel_shape']} s{win['strides']} "
                           f"d{win['dilations']} p{win['pads']} g{group} {c}->{m}")
        return y

    def max_pool(self, x: _QTensor) -> _QTensor | None:
        ceil = bool(self.rng.random() < 0.3)
        win = self.g.window(x.shape[1:], max_k=3, dilate=True, ceil=ceil, pad_below_k=True)
        if win is None:
            return None
        attrs = {a: win[a] for a in ("kernel_shape", "strides", "dilations", "pads")}
        name = self.g.node("MaxPool", [x.name], "maxpool", ceil_mode=int(ceil), **attrs)
        self.layers.append(f"MaxPool k{win['kernel_shape']} s{win['strides']} p{win['pads']} ceil{int(ceil)}")
        return _QTensor(name, (x.shape[0], *win["out"]), x.scale, x.zp, x.scale_value)

    def avg_pool(self, x: _QTensor) -> _QTensor | None:
        ceil = bool(self.rng.random() < 0.3)
        win = self.g.window(x.shape[1:], max_k=3, dilate=False, ceil=ceil, pad_below_k=True)
        if win is None:
            return None
        include = int(self.rng.random() < 0.5)
        y = self.tensor("", (x.shape[0], *win["out"]), self.out_scale(x, 1.0))
        attrs = {a: win[a] for a in ("kernel_shape", "strides", "pads")}
        y.name = self.g.node("QLinearAveragePool", [x.name, x.scale, x.zp, y.scale, y.zp], "avgpool",
                             domain="com.microsoft", ceil_mode=int(ceil), count_include_pad=include, **attrs)
        self.ms = True
        self.layers.append(f"QLinearAveragePool k{win['kernel_shape']} s{win['strides']} p{win['pads']} "
                           f"ceil{int(ceil)} include{include}")
        return y

    def global_avg_pool(self, x: _QTensor) -> _QTensor:
        y = self.tensor("", (x.shape[0],) + (1,) * (len(x.shape) - 1), self.out_scale(x, 0.5))
        y.name = self.g.node("QLinearGlobalAveragePool", [x.name, x.scale, x.zp, y.scale, y.zp], "gap",
                             domain="com.microsoft", channels_last=0)
        self.ms = True
        self.layers.append("QLinearGlobalAveragePool")
        return y

    def add(self, x: _QTensor) -> _QTensor | None:
        rng = self.rng
        if rng.random() < 0.3:  # a one-value constant operand
            other = _QTensor(self.g.const(np.array([rng.integers(*_RANGE[self.dtype])]).astype(self.dtype), "c"),
                             (1,), *self.qparams(self.scale()), 0.0)
            what = "constant"
        elif rng.random() < 0.5:
            other = self.conv(x, out_ch=x.shape[0], kernel_one=True)
            if other is None:
                return None
            what = "residual conv1x1"
        else:
            other, what = x, "itself"
        y = self.tensor("", x.shape, self.out_scale(x, 1.5))
        a, b = (x, other) if rng.random() < 0.5 else (other, x)
        if a.shape != x.shape:
            a, b = b, a
        y.name = self.g.node("QLinearAdd", [a.name, a.scale, a.zp, b.name, b.scale, b.zp, y.scale, y.zp], "add",
                             domain="com.microsoft")
        self.ms = True
        self.layers.append(f"QLinearAdd ({what})")
        return y

    def table(self, x: _QTensor) -> _QTensor:
        op = str(self.rng.choice(["QLinearLeakyRelu", "QLinearSigmoid"]))
        y = self.tensor("", x.shape, self.out_scale(x, 1.0) if op == "QLinearLeakyRelu" else 1 / 256)
        attrs = {"alpha": float(self.rng.uniform(0.01, 0.5))} if op == "QLinearLeakyRelu" else {}
        y.name = self.g.node(op, [x.name, x.scale, x.zp, y.scale, y.zp], "act", domain="com.microsoft", **attrs)
        self.ms = True
        self.layers.append(op)
        return y

    def concat(self, x: _QTensor) -> _QTensor | None:
        other = self.conv(x, out_ch=int(self.rng.integers(1, 5)), kernel_one=True)
        if other is None:
            return None
        y = self.tensor("", (x.shape[0] + other.shape[0], *x.shape[1:]), self.out_scale(x, 1.0))
        y.name = self.g.node("QLinearConcat", [y.scale, y.zp, x.name, x.scale, x.zp, other.name, other.scale,
                                               other.zp], "concat", domain="com.microsoft", axis=1)
        self.ms = True
        self.layers.append("QLinearConcat")
        return y

    def dense(self, x: _QTensor) -> _QTensor:
        rng, g = self.rng, self.g
        flat = g.node("Flatten", [x.name], "flat", axis=1)
        k, units = int(np.prod(x.shape)), int(rng.integers(1, 11))
        w = rng.integers(-127, 128, (k, units)).astype(np.int8)
        y = self.tensor("", (units,), self.out_scale(x, 0.01 * np.sqrt(k) * 60 / 40))
        if rng.random() < 0.5 and len(x.shape) > 1:
            w_s = self.scale(0.01)
            y.name = g.node("QLinearMatMul", [flat, x.scale, x.zp, g.const(w, "w"), g.const(np.float32(w_s), "ws"),
                                              g.const(np.array(0, np.int8), "wz"), y.scale, y.zp], "matmul")
            self.layers.append(f"QLinearMatMul {k}->{units}")
        else:
            per_col = rng.random() < 0.5
            w_s = np.array([self.scale(0.01) for _ in range(units)] if per_col else self.scale(0.01), np.float32)
            w_zp = np.zeros(units, np.int8) if per_col else np.array(0, np.int8)
            c = rng.integers(-(2**15), 2**15, units).astype(np.int32)
            y.name = g.node("QGemm", [flat, x.scale, x.zp, g.const(w, "w"), g.const(w_s, "ws"), g.const(w_zp, "wz"),
                                      g.const(c, "c"), y.scale, y.zp], "qgemm", domain="com.microsoft",
                            alpha=float(np.float32(rng.choice([1.0, rng.uniform(0.25, 2.0)]))))
            self.ms = True
            self.layers.append(f"QGemm {k}->{units}")
        return y

    def build(self) -> RandomModel:
        rng = self.rng
        dims = 1 if rng.random() < 0.3 else 2
        shape = (int(rng.integers(1, 7)), *(int(rng.integers(1, 13)) for _ in range(dims)))
        x = self.tensor("x", shape, self.scale())
        steps = {"conv": 4, "max_pool": 1.5, "avg_pool": 1, "global_avg_pool": 0.4, "add": 1.5, "table": 1,
                 "concat": 0.7}
        names, weights = list(steps), np.array(list(steps.values()))
        for _ in range(int(rng.integers(1, 6))):
            op = str(rng.choice(names, p=weights / weights.sum()))
            y = getattr(self, op)(x)
            if y is not None:
                x = y
        if not self.layers or rng.random() < 0.3:
            x = self.dense(x)
        elem = _ELEM[self.dtype]
        graph = helper.make_graph(
            self.g.nodes, f"fuzz_q{self.seed}", [helper.make_tensor_value_info("x", elem, ["N", *shape])],
            [helper.make_tensor_value_info(x.name, elem, ["N", *x.shape])], self.g.inits)
        opsets = [helper.make_opsetid("", 13)] + ([helper.make_opsetid("com.microsoft", 1)] if self.ms else [])
        return RandomModel(self.seed, "qoperator", helper.make_model(graph, opset_imports=opsets, ir_version=8),
                           self.layers)


# ------------------------------------------------------------------------------------------------
# Float


class _FloatBuilder:
    def __init__(self, rng: np.random.Generator, seed: int) -> None:
        self.rng = rng
        self.seed = seed
        self.g = _Graph(rng)
        self.layers: list[str] = []

    def w(self, shape: tuple[int, ...], std: float) -> str:
        return self.g.const((self.rng.standard_normal(shape) * std).astype(np.float32), "w")

    def conv(self, x: str, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]] | None:
        rng, g = self.rng, self.g
        c, spatial = shape[0], shape[1:]
        win = g.window(spatial, max_k=4, dilate=True)
        if win is None:
            return None
        group, m = 1, int(rng.integers(1, 9))
        if rng.random() < 0.2 and c > 1:
            group, m = c, c
        k = int(np.prod(win["kernel_shape"])) * (c // group)
        inputs = [x, self.w((m, c // group, *win["kernel_shape"]), 1 / np.sqrt(k))]
        if rng.random() < 0.7:
            inputs.append(self.w((m,), 0.1))
        attrs = {a: win[a] for a in ("kernel_shape", "strides", "dilations", "pads")}
        y = g.node("Conv", inputs, "conv", group=group, **attrs)
        self.layers.append(f"Conv{len(spatial)}d k{win['kernel_shape']} s{win['strides']} p{win['pads']} g{group}")
        return y, (m, *win["out"])

    def activation(self, x: str, channels: int) -> str:
        rng, g = self.rng, self.g
        op = str(rng.choice(["Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSwish", "BatchNormalization", "Tanh",
                             "HardSigmoid", "Elu", "Softplus", "Selu", "Celu", "Softsign", "Abs", "PRelu", "Mul"]))
        self.layers.append(op)
        if op == "PRelu":
            return g.node("PRelu", [x, self.w((channels, 1, 1)[: 1 + self.dims], 0.2)], "prelu")
        if op == "Mul":  # by a positive constant, per tensor
            return g.node("Mul", [x, g.const(np.float32(rng.uniform(0.2, 3.0)))], "mul")
        if op == "Clip":
            return g.node("Clip", [x, g.const(np.float32(0.0)), g.const(np.float32(rng.choice([1.0, 6.0])))], "clip")
        if op == "LeakyRelu":
            return g.node("LeakyRelu", [x], "lrelu", alpha=float(rng.uniform(0.01, 0.3)))
        if op == "BatchNormalization":
            c = channels
            return g.node("BatchNormalization", [x, self.w((c,), 0.3), self.w((c,), 0.1), self.w((c,), 0.1),
                                                 g.const(rng.uniform(0.5, 2, c).astype(np.float32))], "bn")
        return g.node(op, [x], op.lower())

    def build(self) -> RandomModel:
        rng, g = self.rng, self.g
        dims = 1 if rng.random() < 0.3 else 2
        shape = input_shape = (int(rng.integers(1, 5)), *(int(rng.integers(3, 13)) for _ in range(dims)))
        self.dims = dims
        x = "x"
        for _ in range(int(rng.integers(1, 5))):
            r = rng.random()
            if r < 0.45:
                made = self.conv(x, shape)
                if made is not None:
                    x, shape = made
            elif r < 0.65:
                x = self.activation(x, shape[0])
            elif r < 0.8:
                win = g.window(shape[1:], max_k=3, dilate=False, pad_below_k=True)
                if win is not None:
                    op = str(rng.choice(["MaxPool", "AveragePool"]))
                    attrs = {a: win[a] for a in ("kernel_shape", "strides", "pads")}
                    x = g.node(op, [x], op.lower(), **attrs)
                    shape = (shape[0], *win["out"])
                    self.layers.append(f"{op} k{win['kernel_shape']} s{win['strides']} p{win['pads']}")
            elif r < 0.9:
                c = shape[0]
                branch = g.node("Conv", [x, self.w((c, c, *(1,) * dims), 1 / np.sqrt(c))], "conv",
                                kernel_shape=[1] * dims)
                x = g.node("Add", [x, branch], "add")
                self.layers.append("residual Add")
            elif r < 0.95:
                op = str(rng.choice(["GlobalAveragePool", "GlobalMaxPool"]))
                x = g.node(op, [x], op.lower())
                shape = (shape[0],) + (1,) * dims
                self.layers.append(op)
            else:
                c = shape[0]
                branch = g.node("Conv", [x, self.w((c, c, *(1,) * dims), 1 / np.sqrt(c))], "conv",
                                kernel_shape=[1] * dims)
                x = g.node("Concat", [x, branch], "concat", axis=1)
                shape = (2 * c, *shape[1:])
                self.layers.append("channel Concat")
        flat = g.node("Flatten", [x], "flat", axis=1)
        k, units = int(np.prod(shape)), int(rng.integers(2, 11))
        y = g.node("Gemm", [flat, self.w((k, units), 1 / np.sqrt(k)), self.w((units,), 0.1)], "gemm")
        self.layers.append(f"Gemm {k}->{units}")
        graph = helper.make_graph(g.nodes, f"fuzz_f{self.seed}",
                                  [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *input_shape])],
                                  [helper.make_tensor_value_info(y, TensorProto.FLOAT, ["N", units])], g.inits)
        quant = {"quant_format": str(rng.choice(["qdq", "qoperator"])),
                 "activation_type": str(rng.choice(["int8", "uint8"])), "per_channel": bool(rng.random() < 0.5)}
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
        return RandomModel(self.seed, "float", model, self.layers, quant)
