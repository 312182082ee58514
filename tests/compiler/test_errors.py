"""Compiler errors: layers the accelerator cannot run, and models that do not fit a configuration.

The models are built directly as integer IR. Expected sizes in the messages are worked out here from
``docs/architecture.md`` (rows = channel blocks x pixels; L rows per weight tile; one ``prm`` row per
output block), not taken from the compiler.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from systolix.arch.config import AcceleratorConfig
from systolix.compiler.compile import compile_model
from systolix.compiler.where import runs_on
from systolix.errors import SystolixError
from systolix.frontend import ir


def q(scale: float, zp: int = 0, dtype: str = "int8") -> ir.QuantParams:
    return ir.QuantParams(np.float32(scale), np.int64(zp), dtype)


class Net:
    """A tiny integer-IR model builder: each method appends a layer and returns its output name."""

    def __init__(self, shape: tuple[int, ...], dtype: str = "int8"):
        self.rng = np.random.default_rng(0)
        self.layers: list[ir.Layer] = []
        self.info = {"x": ir.TensorInfo("x", shape, dtype, q(0.05, 3, dtype))}

    def _out(self, name: str, shape: tuple[int, ...], quant: ir.QuantParams | None) -> str:
        self.info[name] = ir.TensorInfo(name, tuple(int(d) for d in shape), "int8", quant)
        return name

    def conv(self, x: str, cout: int, k: int = 1, stride: int = 1, pads: int = 0, group: int = 1,
             w_zp: int = 0, name: str | None = None) -> str:
        name = name or f"conv{len(self.layers)}"
        shape = self.info[x].shape
        nsp = len(shape) - 2
        out = [ir.window_output_size(s, k, stride, pads, pads, 1) for s in shape[2:]]
        w = self.rng.integers(-127, 128, (cout, shape[1] // group, *[k] * nsp)).astype(np.int8)
        y_q = q(0.1, -5)
        self.layers.append(ir.Conv(
            name=name, op="QLinearConv", inputs=(x,), output=name, in_shapes=(shape,), out_shape=(1, cout, *out),
            kernel=(k,) * nsp, strides=(stride,) * nsp, pads=(pads,) * 2 * nsp, dilations=(1,) * nsp, group=group,
            weight=w, bias=self.rng.integers(-1000, 1000, cout).astype(np.int32), x_quant=self.info[x].quant,
            w_quant=q(0.01, w_zp), y_quant=y_q))
        return self._out(name, (1, cout, *out), y_q)

    def dense(self, x: str, m: int, name: str | None = None) -> str:
        name = name or f"fc{len(self.layers)}"
        shape = self.info[x].shape
        y_q = q(0.2, 1)
        self.layers.append(ir.Dense(
            name=name, op="QGemm", inputs=(x,), output=name, in_shapes=(shape,), out_shape=(*shape[:-1], m),
            weight=self.rng.integers(-127, 128, (shape[-1], m)).astype(np.int8), bias=np.zeros(m, np.int32),
            x_quant=self.info[x].quant, w_quant=q(0.01), y_quant=y_q))
        return self._out(name, (*shape[:-1], m), y_q)

    def lookup(self, x: str, roll: int = 0) -> str:
        name = f"lut{len(self.layers)}"
        shape = self.info[x].shape
        y_q = q(0.01)
        table = np.roll(np.arange(-128, 128), roll).astype(np.int8)
        self.layers.append(ir.Lookup(name=name, op="Tanh", inputs=(x,), output=name, in_shapes=(shape,),
                                     out_shape=shape, func="tanh", table=table,
                                     x_quant=self.info[x].quant, y_quant=y_q))
        return self._out(name, shape, y_q)

    def reshape(self, x: str, shape: tuple[int, ...]) -> str:
        name = f"reshape{len(self.layers)}"
        self.layers.append(ir.Reshape(name=name, op="Reshape", inputs=(x,), output=name,
                                      in_shapes=(self.info[x].shape,), out_shape=shape))
        return self._out(name, shape, self.info[x].quant)

    def layer(self, layer: ir.Layer, quant: ir.QuantParams | None = None) -> str:
        self.layers.append(layer)
        return self._out(layer.output, layer.out_shape, quant)

    def model(self, out: str) -> ir.Model:
        return ir.Model(name="tiny", inputs=(self.info["x"],), outputs=(self.info[out],), layers=tuple(self.layers),
                        quantized=True, tensors=dict(self.info))


def config(lanes: int = 4, **depths: int) -> AcceleratorConfig:
    return dataclasses.replace(AcceleratorConfig(rows=lanes, cols=lanes), **depths)


def raises(message: str):
    return pytest.raises(SystolixError, match="^" + re.escape(message) + "$")


# -- sizes ---------------------------------------------------------------------------------------------------


def test_activation_rows() -> None:
    net = Net((1, 1, 8, 8))
    net.conv("x", 4, name="conv")
    # input 1 block x 64 pixels, output 1 block x 64 pixels, both live during the conv
    with raises("layer conv needs 128 activation rows but act_buffer_depth is 100; "
                "use act_buffer_depth >= 128 or a larger preset"):
        compile_model(net.model("conv"), config(act_buffer_depth=100))
    compile_model(net.model("conv"), config(act_buffer_depth=128))


def test_activation_rows_keep_all_versus_reuse() -> None:
    net = Net((1, 4, 8, 8))
    a = net.conv("x", 4, name="a")
    b = net.conv(a, 4, name="b")
    net.conv(b, 4, name="c")
    # 4 tensors of 1 block x 64 pixels; at most two are live at once (a layer's input and output), so with
    # reuse 2 x 64 rows suffice; keeping all of them takes 4 x 64.
    program = compile_model(net.model("c"), config(act_buffer_depth=256))
    assert (program.act_rows_reuse, program.act_rows_keep_all) == (128, 256)
    with raises("layer c needs 256 activation rows but act_buffer_depth is 200; "
                "use act_buffer_depth >= 256 or a larger preset"):
        compile_model(net.model("c"), config(act_buffer_depth=200), keep_all=True)


def test_weight_rows() -> None:
    net = Net((1, 8))
    h = net.dense("x", 8, name="fc1")
    net.dense(h, 8, name="fc2")
    # each: 2 output blocks x 2 input rows = 4 tiles of 4 rows
    with raises("layer fc2 needs 32 weight rows but weight_buffer_depth is 20; "
                "use weight_buffer_depth >= 32 or a larger preset"):
        compile_model(net.model("fc2"), config(weight_buffer_depth=20))


def test_parameter_rows() -> None:
    net = Net((1, 8))
    h = net.dense("x", 8, name="fc1")
    net.dense(h, 6, name="fc2")
    with raises("layer fc2 needs 4 parameter rows but param_memory_depth is 3; "
                "use param_memory_depth >= 4 or a larger preset"):
        compile_model(net.model("fc2"), config(param_memory_depth=3))


def test_accumulator_depth() -> None:
    net = Net((1, 1, 2, 40))
    net.conv("x", 4, name="wide")
    with raises("layer wide needs an accumulator memory of at least 40 rows (one output row of 40 pixels) "
                "but acc_memory_depth is 32; use acc_memory_depth >= 40"):
        compile_model(net.model("wide"), config(acc_memory_depth=32))


def test_program_depth() -> None:
    net = Net((1, 8))
    net.dense(net.dense("x", 8), 8, name="out")
    with raises("the program has 3 instructions but program_memory_depth is 2; use program_memory_depth >= 3"):
        compile_model(net.model("out"), config(program_memory_depth=2))


def test_lookup_tables() -> None:
    net = Net((1, 4))
    t = "x"
    names = []
    for k in range(17):
        t = net.lookup(t, roll=k)  # 17 different tables (identical ones are stored once)
        names.append(t)
    with raises(f"layer {names[16]} needs 4,352 lookup-table rows but lut_memory_depth is 4,096; "
                "use lut_memory_depth >= 4,352 or a larger preset"):
        compile_model(net.model(t), config(lut_memory_depth=4096))
    with raises(f"the model needs 4,352 lookup-table rows but lut_memory_depth is 2,048 (layer {names[8]} is the "
                "first that does not fit); use lut_memory_depth >= 4,352 or a larger preset"):
        compile_model(net.model(t), config())


def test_instruction_field() -> None:
    net = Net((1, 1, 32, 32))
    net.conv("x", 4, stride=16, name="s16")
    with raises("layer s16 (QLinearConv): instruction field stride_h=16 does not fit its 4 bits (range 0..15); "
                "the layer is too large for this instruction set"):
        compile_model(net.model("s16"), config())


def test_square_array_only() -> None:
    net = Net((1, 8))
    net.dense("x", 8, name="fc")
    with raises("the compiler needs a square array (rows == cols), not 4x8"):
        compile_model(net.model("fc"), AcceleratorConfig(rows=4, cols=8))


# -- unsupported layers ---------------------------------------------------------------------------------------


def test_asymmetric_weights() -> None:
    net = Net((1, 4, 4, 4))
    net.conv("x", 4, w_zp=3, name="asym")
    with raises("layer asym (QLinearConv): its int8 weights have zero point(s) [3]; the accelerator needs symmetric "
                "weights (int8 zero point 0); quantize with symmetric int8 weights (the default of systolix quantize)"):
        compile_model(net.model("asym"), config())


def test_dense_with_leading_dimensions() -> None:
    net = Net((1, 3, 8))
    net.dense("x", 4, name="seq")
    with raises("layer seq (QGemm): a Dense layer with input [1, 3, 8] (leading dimensions besides the batch) is "
                "not supported by the accelerator"):
        compile_model(net.model("seq"), config())


def _avg_net(pads: tuple[int, ...] = (0, 0, 0, 0), dilations: tuple[int, int] = (1, 1), y_scale: float | None = None,
             include: bool = False) -> ir.Model:
    net = Net((1, 4, 4, 4))
    x_q = net.info["x"].quant
    y_q = x_q if y_scale is None else q(y_scale, 3)
    out = (4 + pads[0] + pads[2] - 2) // 2 + 1, (4 + pads[1] + pads[3] - 2) // 2 + 1
    net.layer(ir.AveragePool(name="avg", op="QLinearAveragePool", inputs=("x",), output="avg",
                             in_shapes=((1, 4, 4, 4),), out_shape=(1, 4, *out), kernel=(2, 2), strides=(2, 2),
                             pads=pads, dilations=dilations, count_include_pad=include, x_quant=x_q, y_quant=y_q), y_q)
    return net.model("avg")


def test_average_pool_with_the_input_scale_is_a_float32_tie() -> None:
    """Output scale = input scale (as TFLite writes it), 2x2: sums 2 mod 4 are ties that onnxruntime's float32
    rounding of each value decides -- not an integer function of the window sum."""
    with raises("layer avg (QLinearAveragePool): onnxruntime averages in float32, and windows of 4 cells with the "
                "same integer sum -522 of codes minus the zero point (divisor 4) give different outputs (-128, -127): "
                "the float32 rounding of the individual values decides a rounding tie, so no integer window sum "
                "followed by a requantization reproduces it (the golden model does)"):
        compile_model(_avg_net(), config())
    assert runs_on(_avg_net())["avg"].startswith("refused: onnxruntime averages in float32, and windows of 4 cells")


def test_average_pool_divisor_along_the_width() -> None:
    model = _avg_net(pads=(0, 1, 0, 1), y_scale=0.0371)
    with raises("layer avg (QLinearAveragePool): with count_include_pad=0 and padding or partial windows along the "
                "width, the divisor changes from column to column ([1, 2] valid cells); the requantizer has one scale "
                "per channel, so only row bands can have their own divisor (1D pools and pools padded only along the "
                "height run on the accelerator)"):
        compile_model(model, config())
    assert runs_on(_avg_net(pads=(1, 0, 1, 0), y_scale=0.0371))["avg"] == "array (window sums, one scale per divisor)"
    assert runs_on(_avg_net(pads=(0, 1, 0, 1), y_scale=0.0371, include=True))["avg"].startswith("array")


def test_average_pool_dilation() -> None:
    with raises("layer avg (QLinearAveragePool): an average pool with dilation is not supported (onnxruntime's "
                "QLinearAveragePool has none)"):
        compile_model(_avg_net(dilations=(2, 1), y_scale=0.0371), config())


def test_concat_matmul_transpose() -> None:
    x_q = q(0.05, 3)
    net = Net((1, 4, 2, 2))
    c = net.conv("x", 4)
    net.layer(ir.Concat(name="cat", op="QLinearConcat", inputs=("x", c), output="cat",
                        in_shapes=((1, 4, 2, 2), (1, 4, 2, 2)), out_shape=(2, 4, 2, 2), axis=0,
                        in_quant=(x_q, x_q), y_quant=x_q), x_q)
    with raises("layer cat (QLinearConcat): a Concat on axis 0 of 4-D tensors is not supported by the accelerator"):
        compile_model(net.model("cat"), config())

    net = Net((1, 4, 4))
    net.layer(ir.MatMul(name="mm", op="QLinearMatMul", inputs=("x", "x"), output="mm",
                        in_shapes=((1, 4, 4), (1, 4, 4)), out_shape=(1, 4, 4), a_quant=x_q, b_quant=x_q,
                        y_quant=x_q), x_q)
    with raises("layer mm (QLinearMatMul): a matrix product of two activations is not supported by the accelerator "
                "(only constant weights)"):
        compile_model(net.model("mm"), config())

    net = Net((1, 4, 2, 3))
    c = net.conv("x", 4)
    t = net.layer(ir.Transpose(name="tr", op="Transpose", inputs=(c,), output="tr", in_shapes=((1, 4, 2, 3),),
                               out_shape=(1, 2, 3, 4), perm=(0, 2, 3, 1)), x_q)
    net.conv(t, 4, name="after")
    with raises("layer tr (Transpose): it moves data between channels and pixels; the accelerator moves whole "
                "channels (a channel permutation, as a 1x1 convolution) or whole pixels (the same pixel permutation "
                "in every channel, as row copies), not both ([4, 2, 3] -> [2, 3, 4])"):
        compile_model(net.model("after"), config())


def test_add_with_broadcasting() -> None:
    x_q = q(0.05, 3)
    net = Net((1, 4, 2, 2))
    c = net.conv("x", 1)
    net.layer(ir.Add(name="bc", op="QLinearAdd", inputs=("x", c), output="bc",
                     in_shapes=((1, 4, 2, 2), (1, 1, 2, 2)), out_shape=(1, 4, 2, 2), a_quant=x_q, b_quant=x_q,
                     y_quant=x_q), x_q)
    with raises("layer bc (QLinearAdd): broadcasting [1, 4, 2, 2] with [1, 1, 2, 2] is not supported by the "
                "accelerator (only the same shape, or [N, C, 1, 1] against [N, C, H, W])"):
        compile_model(net.model("bc"), config())


def test_reshape_moving_channels_needs_a_dense_consumer() -> None:
    net = Net((1, 4, 2, 2))
    c = net.conv("x", 4)
    r = net.reshape(c, (1, 1, 4, 4))
    net.conv(r, 4, name="after")
    with raises(f"layer {r} (Reshape): it moves data between channels and pixels; the accelerator moves whole "
                "channels (a channel permutation, as a 1x1 convolution) or whole pixels (the same pixel permutation "
                "in every channel, as row copies), not both ([4, 2, 2] -> [1, 4, 4])"):
        compile_model(net.model("after"), config())


def test_float_model() -> None:
    model = ir.Model(name="f", inputs=(), outputs=(), layers=(), quantized=False)
    with raises("f is a float model; quantize it first"):
        compile_model(model, config())


def test_per_channel_tables_beyond_the_lut_memory() -> None:
    """Per-channel tables that are not a requantized affine map run on the lookup unit, one table per lane: 256
    ``lut`` rows per channel block; a memory too small names the layer, the need and the budget."""
    net = Net((1, 9, 4, 4))
    x_q = net.info["x"].quant
    tables = np.tile(np.arange(-128, 128), (9, 1))
    tables[1, 7] = 100  # not monotone: no depthwise pass
    net.layer(ir.ChannelLookup(name="k", op="QLinearAdd", inputs=("x",), output="k", in_shapes=((1, 9, 4, 4),),
                               out_shape=(1, 9, 4, 4), func="add a per-channel constant (9 tables)", tables=tables,
                               slope=np.ones(9), offset=np.zeros(9), x_quant=x_q, y_quant=x_q), x_q)
    model = net.model("k")
    assert runs_on(model)["k"] == "vector (per-channel tables, one per lane)"
    # 9 channels on 4 lanes: 3 blocks, 3 different tables of 256 rows (block 0 holds channel 1's altered table,
    # block 1 the identity in every lane, block 2 the identity in lane 0 and the zero point in the padding lanes)
    with raises("layer k needs 768 lookup-table rows but lut_memory_depth is 512; use lut_memory_depth >= 768 or a "
                "larger preset"):
        compile_model(model, config(lut_memory_depth=512))
    program = compile_model(model, config(lut_memory_depth=768))
    assert [i.opcode.name for i in program.instructions] == ["LUT"] * 3 + ["HALT"]


def test_per_channel_tables_beyond_the_parameter_memory() -> None:
    """Per-channel tables need no lookup-table rows but one parameter row per channel block: a memory too small
    for them names the layer, the need and the budget."""
    channels = 40
    net = Net((1, channels, 2, 2))
    x_q = net.info["x"].quant
    codes = np.arange(-128, 128)
    tables = np.stack([np.clip(codes + c - 20, -128, 127) for c in range(channels)])
    net.layer(ir.ChannelLookup(name="k", op="QLinearAdd", inputs=("x",), output="k", in_shapes=((1, channels, 2, 2),),
                               out_shape=(1, channels, 2, 2), func=f"add a per-channel constant ({channels} tables)",
                               tables=tables, slope=np.ones(channels), offset=np.arange(channels) - 20.0,
                               x_quant=x_q, y_quant=x_q), x_q)
    small = dataclasses.replace(config(), param_memory_depth=4)
    with raises(f"layer k needs {channels // small.rows} parameter rows but param_memory_depth is 4; use "
                f"param_memory_depth >= {channels // small.rows} or a larger preset"):
        compile_model(net.model("k"), small)
