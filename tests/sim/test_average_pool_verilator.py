"""Non-global average pools on the accelerator's RTL (Verilator), every element compared with onnxruntime.

QLinearAveragePool models alone (1D and 2D, count_include_pad 0 and 1, ceil_mode, pads, strides; int8 and
uint8), and float networks with AveragePool quantized by systolix (QOperator and QDQ). The 4x4 Verilator
build is cached per configuration (``~/.cache/systolix/verilator``), shared with the other Verilator tests.
"""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from systolix.arch.config import AcceleratorConfig
from systolix.sim.simulate import simulate
from tests.compiler.test_networks import _conv, _gemm, _save, quantized_net
from tests.sim.model_builders import qlinear_pool_model

needs_verilator = pytest.mark.skipif(shutil.which("make") is None or shutil.which("perl") is None
                                     or shutil.which("g++") is None,
                                     reason="the Verilator build needs make, perl and g++")

POOLS = {
    "2d-incl-pad-ceil-s8": ("int8", (5, 9, 11), dict(kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 0],
                                                      count_include_pad=1, ceil_mode=1)),
    "2d-excl-pad-bands-u8": ("uint8", (6, 10, 8), dict(kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 2, 0],
                                                        count_include_pad=0, ceil_mode=0)),
    "2d-2x2-stride1-u8": ("uint8", (3, 7, 7), dict(kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 0, 0])),
    "1d-excl-pad-ceil-s8": ("int8", (7, 23), dict(kernel_shape=[3], strides=[2], pads=[1, 1], count_include_pad=0,
                                                   ceil_mode=1)),
    "1d-incl-pad-u8": ("uint8", (4, 16), dict(kernel_shape=[4], strides=[3], pads=[2, 1], count_include_pad=1)),
}


@needs_verilator
@pytest.mark.parametrize("case", sorted(POOLS))
def test_qlinear_average_pool_on_the_accelerator(tmp_path, case: str) -> None:
    dtype, shape, attrs = POOLS[case]
    path = tmp_path / "pool.onnx"
    onnx.save(qlinear_pool_model("QLinearAveragePool", dtype=dtype, sample_shape=shape, seed=11, **attrs), str(path))
    result = simulate(path, random=24, backend="verilator", layers=True, config=AcceleratorConfig.preset("4x4"))
    cmp = result.comparison
    assert cmp.mismatches == 0, cmp.first_mismatch
    pool = next(layer for layer in cmp.layers if layer.op == "QLinearAveragePool")
    assert pool.elements > 0
    hw = result.hardware["hardware_layers"]
    assert len(hw) == 1 and hw[0]["cycles"] > 0


def _avgpool_net(path) -> tuple[int, ...]:
    """Conv -> Relu -> AveragePool 3x3 stride 3 (ceil_mode: a last band of 1x3 windows, count_include_pad=0) ->
    Conv 1x1 -> AveragePool 3x3 stride 1 (padding, count_include_pad=1) -> GlobalAveragePool -> Flatten -> Gemm.

    onnxruntime's quantizer gives an average pool its input's scale and zero point, so the average is
    ``K / d + zp``: an exact tie for an even divisor ``d``, which onnxruntime's float32 rounding decides (refused,
    :func:`test_two_by_two_pool_of_a_quantized_network_is_refused`); these divisors (9 and 3) are odd.
    """
    from onnx import helper

    rng = np.random.default_rng(21)
    node, inits = _conv(rng, "c", "x", 3, 6, [3, 3], pads=[1, 1, 1, 1])
    nodes = [node, helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("AveragePool", ["r"], ["p"], kernel_shape=[3, 3], strides=[3, 3], ceil_mode=1)]
    node, more = _conv(rng, "d", "p", 6, 5, [1, 1])
    nodes += [node, helper.make_node("AveragePool", ["d"], ["q"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                     count_include_pad=1),
              helper.make_node("GlobalAveragePool", ["q"], ["g"]), helper.make_node("Flatten", ["g"], ["f"])]
    node, last = _gemm(rng, "y", "f", 5, 3)
    _save(path, "avgpools", [*nodes, node], inits + more + last, (3, 10, 9), "y", 3)
    return (3, 10, 9)


def _two_by_two_net(path) -> tuple[int, ...]:
    """Conv -> Relu -> AveragePool 2x2 stride 2 -> Flatten -> Gemm."""
    from onnx import helper

    rng = np.random.default_rng(22)
    node, inits = _conv(rng, "c", "x", 2, 4, [3, 3], pads=[1, 1, 1, 1])
    nodes = [node, helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("AveragePool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"])]
    node, more = _gemm(rng, "y", "f", 4 * 3 * 3, 3)
    _save(path, "avg2x2", [*nodes, node], inits + more, (2, 6, 6), "y", 3)
    return (2, 6, 6)


def test_two_by_two_pool_of_a_quantized_network_is_refused(tmp_path) -> None:
    """The pool's output has its input's scale (onnxruntime's quantizer): sums 2 mod 4 are exact ties that the
    float32 rounding of each value decides. ``inspect`` and ``compile`` say so; the golden model is exact."""
    from systolix.compiler.compile import compile_model
    from systolix.compiler.where import runs_on
    from systolix.errors import SystolixError
    from systolix.frontend.importer import import_model

    quantized_net(tmp_path, _two_by_two_net)
    model = import_model(tmp_path / "q.onnx").ir
    pool = next(layer for layer in model.layers if layer.op == "QLinearAveragePool")
    assert np.float32(pool.x_quant.scale) == np.float32(pool.y_quant.scale)
    assert runs_on(model)[pool.name].startswith("refused: onnxruntime averages in float32, and windows of 4 cells")
    with pytest.raises(SystolixError, match=r"give different outputs \(-?\d+, -?\d+\): the float32 rounding"):
        compile_model(model, AcceleratorConfig.preset("4x4"))
    assert simulate(tmp_path / "q.onnx", random=8, backend="golden", layers=True).comparison.mismatches == 0


@needs_verilator
@pytest.mark.parametrize("fmt", ["qoperator", "qdq"])
def test_average_pools_in_a_quantized_network(tmp_path, fmt: str) -> None:
    """AveragePool in a float network quantized by systolix (QDQ is fused to QLinearAveragePool by the integer
    canonical form): every layer bit-exact on the RTL."""
    quantized_net(tmp_path, _avgpool_net, quant_format=fmt)
    result = simulate(tmp_path / "q.onnx", random=8, backend="verilator", layers=True,
                      config=AcceleratorConfig.preset("4x4"))
    cmp = result.comparison
    assert cmp.mismatches == 0, cmp.first_mismatch
    pools = [layer for layer in cmp.layers if layer.op == "QLinearAveragePool" and layer.elements]
    assert len(pools) == 2
