"""A reduction layer subtracts its OWN input zero point, not the one recorded where its input is stored.

Found by the fuzzer on Verilator (seeds 8, 58, 242 at 4x4): a MaxPool on the graph input, a Flatten, then
a QLinearMatMul / QGemm. The MaxPool's output has no quantization of its own (the graph input has none,
or only the host's QuantizeLinear), the Flatten's output carries the dense layer's ``a_zero_point``; the
Flatten is an alias of the MaxPool's rows, and the compiler took the DENSE instruction's ``x_zp`` from
those rows' placement (zero point 0, or -128 for uint8 storage) instead of the layer's input
quantization. The MaxPool's output itself compared exact; only the dense layer after it was wrong.

:func:`alias_zero_point_model` builds that graph with two consumers reading the MaxPool's rows with two
different zero points: a QLinearMatMul through a Flatten and a padded 1-D QLinearConv through a Reshape.
The compiled program, run by the functional model, must equal the golden model (bit-exact with
onnxruntime, ``tests/sim``) on every tensor; the Verilator test is in
``tests/sim/test_fuzz_rtl_regressions.py``.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from systolix.arch.config import AcceleratorConfig
from systolix.arch.isa import Mode, Opcode
from systolix.compiler.compile import compile_model
from systolix.compiler.model import run_program
from systolix.frontend.importer import import_model
from systolix.quantize.golden_model import run_golden

_ELEM = {"int8": TensorProto.INT8, "uint8": TensorProto.UINT8}
_RANGE = {"int8": (-128, 127), "uint8": (0, 255)}


def alias_zero_point_model(*, dtype: str = "int8", pads: tuple[int, ...] = (0, 2, 0, 1), seed: int = 0,
                           dense_zp: int = -27, conv_zp: int = 41) -> onnx.ModelProto:
    """int8/uint8 ``x`` [N, 5, 4, 6] -> MaxPool (k 1x3, ``pads``) -> Flatten -> QLinearMatMul (``y``), and
    MaxPool -> Reshape [N, 5, H*W] -> QLinearConv 1-D (k 3, pads 1) (``z``).

    ``dense_zp`` and ``conv_zp`` are the two consumers' input zero points (offsets from the type's middle:
    0 for int8, 128 for uint8); the graph input and the MaxPool output have no quantization.
    """
    rng = np.random.default_rng(seed)
    lo, hi = _RANGE[dtype]
    mid = 0 if dtype == "int8" else 128
    c, h, w = 5, 4, 6
    ow = w + pads[1] + pads[3] - 2
    k = c * h * ow
    units = 6

    def init(name: str, value) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(value), name)

    a_s, c_s = np.float32(0.02), np.float32(0.03)
    w_s = np.float32(0.004)
    inits = [
        init("a_scale", a_s), init("a_zp", np.array(mid + dense_zp, dtype)),
        init("wd", rng.integers(-127, 128, (k, units)).astype(np.int8)), init("wd_scale", w_s),
        init("wd_zp", np.array(0, np.int8)),
        init("y_scale", np.float32(a_s * w_s * np.sqrt(k) * 74.0 * 74.0 / 40.0)),
        init("y_zp", np.array(mid + 3, dtype)),
        init("shape", np.array([0, c, h * ow], np.int64)),
        init("c_scale", c_s), init("c_zp", np.array(mid + conv_zp, dtype)),
        init("wc", rng.integers(-127, 128, (4, c, 3)).astype(np.int8)), init("wc_scale", w_s),
        init("wc_zp", np.array(0, np.int8)),
        init("z_scale", np.float32(c_s * w_s * np.sqrt(c * 3) * 74.0 * 74.0 / 40.0)),
        init("z_zp", np.array(mid - 5, dtype)),
    ]
    nodes = [
        helper.make_node("MaxPool", ["x"], ["pool"], kernel_shape=[1, 3], strides=[1, 1], pads=list(pads)),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("QLinearMatMul", ["flat", "a_scale", "a_zp", "wd", "wd_scale", "wd_zp", "y_scale", "y_zp"],
                         ["y"], name="dense"),
        helper.make_node("Reshape", ["pool", "shape"], ["line"]),
        helper.make_node("QLinearConv", ["line", "c_scale", "c_zp", "wc", "wc_scale", "wc_zp", "z_scale", "z_zp"],
                         ["z"], name="conv", kernel_shape=[3], pads=[1, 1]),
    ]
    assert lo <= mid + dense_zp <= hi and lo <= mid + conv_zp <= hi
    graph = helper.make_graph(nodes, "alias_zero_point", [helper.make_tensor_value_info("x", _ELEM[dtype],
                                                                                       ["N", c, h, w])],
                              [helper.make_tensor_value_info("y", _ELEM[dtype], ["N", units]),
                               helper.make_tensor_value_info("z", _ELEM[dtype], ["N", 4, h * ow])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
@pytest.mark.parametrize("pads", [(0, 2, 0, 1), (0, 0, 0, 0)])
@pytest.mark.parametrize("preset", ["4x4", "8x8"])
def test_consumers_of_an_alias_use_their_own_zero_point(tmp_path, dtype, pads, preset):
    path = tmp_path / "model.onnx"
    onnx.save(alias_zero_point_model(dtype=dtype, pads=pads), path)
    model = import_model(path).ir
    config = AcceleratorConfig.preset(preset)
    program = compile_model(model, config, keep_all=True)
    shift = 128 if dtype == "uint8" else 0
    mid = 128 if dtype == "uint8" else 0
    x_zps = {i.mode: i.x_zp for i in program.instructions if i.opcode == Opcode.MATMUL}
    assert x_zps == {Mode.DENSE: mid - 27 - shift, Mode.CONV: mid + 41 - shift}

    lo, hi = _RANGE[dtype]
    x = np.random.default_rng(1).integers(lo, hi + 1, (4, 5, 4, 6)).astype(dtype)
    want = run_golden(model, {"x": x})
    got = run_program(program, config, {"x": x})
    for name in ("pool", "flat", "line", "y", "z"):
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert len(np.unique(want["y"])) > 3 and len(np.unique(want["z"])) > 3  # not saturated everywhere


def two_convs_model(dtype: str = "int8") -> onnx.ModelProto:
    """``x`` [N, 2, 6, 6] read by two padded QLinearConvs with different input zero points (-20 and +33 from the
    type's middle); the host writes both in im2col form."""
    rng = np.random.default_rng(4)
    mid = 0 if dtype == "int8" else 128
    w_s = np.float32(0.004)
    inits, nodes = [], []
    for name, zp in (("a", -20), ("b", 33)):
        inits += [numpy_helper.from_array(np.float32(0.02), f"{name}_xs"),
                  numpy_helper.from_array(np.array(mid + zp, dtype), f"{name}_xzp"),
                  numpy_helper.from_array(rng.integers(-127, 128, (3, 2, 3, 3)).astype(np.int8), f"{name}_w"),
                  numpy_helper.from_array(w_s, f"{name}_ws"),
                  numpy_helper.from_array(np.array(0, np.int8), f"{name}_wzp"),
                  numpy_helper.from_array(np.float32(0.02 * w_s * np.sqrt(18) * 74.0 * 74.0 / 40.0), f"{name}_ys"),
                  numpy_helper.from_array(np.array(mid + 7, dtype), f"{name}_yzp")]
        nodes.append(helper.make_node("QLinearConv", ["x", *(f"{name}_{s}" for s in ("xs", "xzp", "w", "ws", "wzp",
                                                                                      "ys", "yzp"))],
                                      [name], name=f"conv_{name}", kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    graph = helper.make_graph(nodes, "two_convs", [helper.make_tensor_value_info("x", _ELEM[dtype], ["N", 2, 6, 6])],
                              [helper.make_tensor_value_info(n, _ELEM[dtype], ["N", 3, 6, 6]) for n in "ab"], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_im2col_padding_is_each_convolutions_zero_point(tmp_path, dtype):
    path = tmp_path / "model.onnx"
    onnx.save(two_convs_model(dtype), path)
    model = import_model(path).ir
    config = AcceleratorConfig.preset("4x4")
    program = compile_model(model, config)
    mid = 0 if dtype == "int8" else 128
    assert sorted(t.pad_value for t in program.input_transform if t.op == "Im2col") == [mid - 20, mid + 33]
    lo, hi = _RANGE[dtype]
    x = np.random.default_rng(5).integers(lo, hi + 1, (4, 2, 6, 6)).astype(dtype)
    want, got = run_golden(model, {"x": x}), run_program(program, config, {"x": x})
    for name in "ab":
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
