"""The functional model's pieces and corner cases of the arithmetic, against independent references.

``requantize_lanes`` (integers, from the packed M, E) is compared with the literal float32 sequence of
onnxruntime (``requantize_float32``). Small integer-IR models exercise what the generated networks do
not: QLinearMatMul's scale formula, a narrowed clamp, biases that wrap int32, scales of ``2**24`` and
more, uint8 weights, a one-element Add (onnxruntime swaps its operands), a Reshape that keeps the
layout feeding a table. The reference is the golden model.
"""

from __future__ import annotations

import numpy as np
import pytest

from systolix.arch import latency
from systolix.arch.config import PRESETS, AcceleratorConfig
from systolix.arch.params import ChannelParams
from systolix.compiler.compile import compile_model
from systolix.compiler.cycles import predicted_cycles
from systolix.compiler.model import requantize_lanes, run_program
from systolix.frontend import ir
from systolix.quantize.golden_model import run_golden
from systolix.quantize.requant import requantize_float32, scale_to_mantissa_exponent


def q(scale: float, zp: int = 0, dtype: str = "int8") -> ir.QuantParams:
    return ir.QuantParams(np.float32(scale), np.int64(zp), dtype)


def test_requantize_lanes_matches_float32() -> None:
    rng = np.random.default_rng(0)
    lanes = 8
    for _ in range(40):
        scale = np.exp(rng.uniform(np.log(1e-9), np.log(1e9), lanes)).astype(np.float32)
        m, e = scale_to_mantissa_exponent(scale)
        zp = int(rng.integers(-128, 128))
        lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2))
        lo, hi = min(lo, zp), max(hi, zp)
        chans = [ChannelParams(bias=0, m=int(m[c]), e=max(int(e[c]), 0), zp=zp, lo=lo, hi=hi) for c in range(lanes)]
        acc = np.concatenate([rng.integers(-(2**31), 2**31, (500, lanes)), rng.integers(-3000, 3000, (500, lanes))])
        got = requantize_lanes(acc, chans)
        want = requantize_float32(acc.astype(np.int32), scale, zp, lo, hi, channel_axis=1)
        np.testing.assert_array_equal(got, want)


class Net:
    def __init__(self, shape: tuple[int, ...], dtype: str = "int8", zp: int = 3):
        self.rng = np.random.default_rng(7)
        self.layers: list[ir.Layer] = []
        self.info = {"x": ir.TensorInfo("x", shape, dtype, q(0.05, zp, dtype))}

    def add_layer(self, layer: ir.Layer, quant: ir.QuantParams | None) -> str:
        self.layers.append(layer)
        self.info[layer.output] = ir.TensorInfo(layer.output, layer.out_shape, quant.dtype if quant else "int8", quant)
        return layer.output

    def dense(self, x: str, m: int, op: str = "QGemm", *, y_q: ir.QuantParams, w_scale=0.01, bias_range=1000,
              clamp=None, alpha: float = 1.0) -> str:
        shape = self.info[x].shape
        name = f"fc{len(self.layers)}"
        return self.add_layer(ir.Dense(
            name=name, op=op, inputs=(x,), output=name, in_shapes=(shape,), out_shape=(1, m),
            weight=self.rng.integers(-127, 128, (shape[-1], m)).astype(np.int8),
            bias=self.rng.integers(-bias_range, bias_range, m).astype(np.int64).astype(np.int32),
            x_quant=self.info[x].quant,
            w_quant=ir.QuantParams(np.float32(w_scale), np.zeros(np.shape(w_scale), np.int64), "int8"),
            y_quant=y_q, clamp=clamp, alpha=alpha), y_q)

    def model(self, out: str) -> ir.Model:
        return ir.Model(name="m", inputs=(self.info["x"],), outputs=(self.info[out],), layers=tuple(self.layers),
                        quantized=True, tensors=dict(self.info))


def _run_both(model: ir.Model, n: int = 16) -> None:
    info = model.inputs[0]
    dt = np.dtype(info.dtype)
    x = np.random.default_rng(1).integers(np.iinfo(dt).min, np.iinfo(dt).max + 1, (n, *info.shape[1:])).astype(dt)
    golden = run_golden(model, {"x": x})
    for preset in ("4x4", "8x8"):
        config = PRESETS[preset]
        got = run_program(compile_model(model, config, keep_all=True), config, {"x": x})
        for name, want in golden.items():
            assert got[name].shape == want.shape and got[name].dtype == want.dtype, name
            np.testing.assert_array_equal(got[name], want, err_msg=f"{preset} {name}")


def test_qlinear_matmul_scale_clamp_and_alpha() -> None:
    net = Net((1, 20))
    w_scales = np.linspace(0.003, 0.02, 9).astype(np.float32)
    h = net.dense("x", 9, "QGemm", y_q=q(0.3, -20), w_scale=w_scales, clamp=(-20, 90), alpha=0.37)
    net.dense(h, 6, "QLinearMatMul", y_q=q(0.05, 4, "uint8"), w_scale=0.013)
    _run_both(net.model(net.layers[-1].output))


def test_wrapping_bias_and_huge_or_tiny_scales() -> None:
    net = Net((1, 12))
    a = net.dense("x", 5, y_q=q(1e-8, 0), w_scale=0.5, bias_range=2**31 - 1)  # scale 2.5e6, sums wrap int32
    b = net.dense(a, 5, y_q=q(1e-2, 2), w_scale=np.float32(1e-33), bias_range=2**31 - 1)  # denormal scale
    net.dense(b, 4, y_q=q(1e-10, -3), w_scale=1.0)  # scale 1e8 >= 2**24 (E < 0)
    model = net.model(net.layers[-1].output)
    _run_both(model)


def test_uint8_weights_with_zero_point_128() -> None:
    net = Net((1, 3, 6, 6), dtype="uint8", zp=140)
    w = np.random.default_rng(3).integers(0, 256, (5, 3, 3, 3)).astype(np.uint8)
    y_q = q(0.2, 100, "uint8")
    net.add_layer(ir.Conv(name="c", op="QLinearConv", inputs=("x",), output="c", in_shapes=((1, 3, 6, 6),),
                          out_shape=(1, 5, 4, 5), kernel=(3, 3), strides=(1, 1), pads=(0, 1, 0, 0),
                          dilations=(1, 1), group=1, weight=w, bias=None, x_quant=net.info["x"].quant,
                          w_quant=q(0.004, 128, "uint8"), y_quant=y_q), y_q)
    _run_both(net.model("c"))


def test_one_element_add_and_layout_keeping_reshape() -> None:
    net = Net((1, 6))
    a = net.dense("x", 1, y_q=q(0.07, -2))
    b = net.dense("x", 1, y_q=q(0.11, 5))
    y_q = q(0.09, 1)
    s = net.add_layer(ir.Add(name="add", op="QLinearAdd", inputs=(a, b), output="add", in_shapes=((1, 1), (1, 1)),
                             out_shape=(1, 1), a_quant=net.info[a].quant, b_quant=net.info[b].quant, y_quant=y_q), y_q)
    r = net.add_layer(ir.Reshape(name="r", op="Reshape", inputs=(s,), output="r", in_shapes=((1, 1),),
                                 out_shape=(1, 1, 1, 1)), y_q)
    t_q = q(0.01, -7)
    net.add_layer(ir.Lookup(name="t", op="Tanh", inputs=(r,), output="t", in_shapes=((1, 1, 1, 1),),
                            out_shape=(1, 1, 1, 1), func="tanh",
                            table=np.random.default_rng(4).integers(-128, 128, 256).astype(np.int8),
                            x_quant=y_q, y_quant=t_q), t_q)
    _run_both(net.model("t"), n=64)


def test_predicted_cycles_grow_with_work() -> None:
    config = PRESETS["8x8"]
    net = Net((1, 64))
    net.dense("x", 64, y_q=q(0.1))
    small = compile_model(net.model(net.layers[-1].output), config)
    net2 = Net((1, 128))
    net2.dense("x", 128, y_q=q(0.1))
    big = compile_model(net2.model(net2.layers[-1].output), config)
    assert 0 < small.predicted_cycles < big.predicted_cycles
    assert predicted_cycles(small.instructions[-1], config) == latency.controller_halt_cycles(config)  # HALT


@pytest.mark.parametrize("lanes", [4, 8, 16])
def test_global_average_pool_uses_one_tile(lanes: int) -> None:
    net = Net((1, 20, 7, 9))
    y_q = q(0.04, -1)
    net.add_layer(ir.GlobalAveragePool(name="gap", op="QLinearGlobalAveragePool", inputs=("x",), output="gap",
                                       in_shapes=((1, 20, 7, 9),), out_shape=(1, 20, 1, 1),
                                       x_quant=net.info["x"].quant, y_quant=y_q), y_q)
    config = AcceleratorConfig(rows=lanes, cols=lanes)
    program = compile_model(net.model("gap"), config)
    assert program.layers[0].wgt_rows == lanes  # one shared identity tile, whatever H*W and C
    x = np.random.default_rng(2).integers(-128, 128, (8, 20, 7, 9)).astype(np.int8)
    got = run_program(program, config, {"x": x})["gap"]
    want = run_golden(net.model("gap"), {"x": x})["gap"]
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
