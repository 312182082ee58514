"""QLinearAdd / QLinearMul by a per-channel constant on the accelerator's RTL (Verilator), against onnxruntime.

Every channel's 256-entry table (computed by onnxruntime) runs as a requantized depthwise pass,
``w * (x - x_zp) + b`` (:mod:`systolix.quantize.table_affine`); additions that need a weight above 127 use
several taps of dilation 0 (they all read the same pixel). QOperator models built directly (``[C, 1, 1]`` and
``[1, C, 1, 1]`` constants, 1D/2D/dense inputs, int8 and uint8) and a float network quantized to QDQ and
QOperator by onnxruntime's quantizer (through ``systolix.quantize``).
"""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from systolix.arch.config import AcceleratorConfig
from systolix.compiler.compile import compile_model
from systolix.frontend.importer import import_model
from systolix.sim.simulate import simulate
from tests.compiler.test_networks import _conv, _gemm, _save, quantized_net
from tests.sim.channel_const_models import channel_const_model

needs_verilator = pytest.mark.skipif(shutil.which("make") is None or shutil.which("perl") is None
                                     or shutil.which("g++") is None,
                                     reason="the Verilator build needs make, perl and g++")

CASES = {
    "2d-c11-s8": dict(dtype="int8", sample_shape=(6, 5, 7), const_shape="c11", seed=1),
    "2d-1c11-u8": dict(dtype="uint8", sample_shape=(5, 4, 3), const_shape="1c11", seed=2),
    "1d-c1-u8": dict(dtype="uint8", sample_shape=(7, 9), const_shape="c11", seed=3),
    "dense-s8": dict(dtype="int8", sample_shape=(9,), const_shape="1c11", seed=4),
    "2d-6taps-u8": dict(dtype="uint8", sample_shape=(6, 5, 7), const_shape="c11", seed=12),
}
#: Cases whose Add needs taps of dilation 0 (a weight above 127).
TAPS = {"dense-s8": 3, "2d-6taps-u8": 6}


@needs_verilator
@pytest.mark.parametrize("case", sorted(CASES))
def test_per_channel_constant_on_the_accelerator(tmp_path, case: str) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(channel_const_model(**CASES[case]), str(path))
    config = AcceleratorConfig.preset("4x4")
    program = compile_model(import_model(path).ir, config)
    assert len(program.instructions) == 3  # Add, Mul, HALT: each one depthwise pass
    add = program.instructions[0]
    assert (add.k_h, add.dil_h) == (TAPS.get(case, 1), 0)
    result = simulate(path, random=24, backend="verilator", layers=True, config=config)
    cmp = result.comparison
    assert cmp.mismatches == 0, cmp.first_mismatch
    ops = {layer.op: layer.elements for layer in cmp.layers}
    assert ops["QLinearAdd"] > 0 and ops["QLinearMul"] > 0


def test_additions_use_taps_of_dilation_zero(tmp_path) -> None:
    """Across seeds some per-channel additions need a weight above 127: the instruction has k_h > 1 taps of
    dilation 0, and the functional model (the hardware's contract) still equals onnxruntime."""
    from systolix.compiler.model import run_program
    from systolix.sim.onnxruntime_runner import run_onnxruntime

    config = AcceleratorConfig.preset("8x8")
    multi = 0
    for seed in range(12):
        path = tmp_path / f"m{seed}.onnx"
        onnx.save(channel_const_model(dtype="int8" if seed % 2 else "uint8", sample_shape=(11, 3, 4), seed=seed,
                                      ops=("QLinearAdd",)), str(path))
        imported = import_model(path)
        program = compile_model(imported.ir, config)
        (add,) = program.instructions[:-1]
        assert add.dil_h == 0 and add.taps == add.k_h
        multi += add.k_h > 1
        dtype = imported.ir.inputs[0].dtype
        info = np.iinfo(dtype)
        x = np.random.default_rng(seed).integers(info.min, info.max + 1, (16, 11, 3, 4)).astype(dtype)
        got = run_program(program, config, {"x": x})["y"]
        np.testing.assert_array_equal(got, run_onnxruntime(imported.reference, {"x": x}, ["y"])["y"])
    assert multi >= 1


def _channel_net(path) -> tuple[int, ...]:
    """Conv -> Relu -> MaxPool -> Mul by a [C, 1, 1] constant -> Add of a [1, C, 1, 1] constant -> Conv -> GAP
    -> Flatten -> Gemm (a per-channel scale and shift that no Conv right before can absorb)."""
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(31)
    node, inits = _conv(rng, "c", "x", 3, 6, [3, 3], pads=[1, 1, 1, 1])
    inits += [numpy_helper.from_array(rng.uniform(0.5, 1.5, (6, 1, 1)).astype(np.float32), "scale"),
              numpy_helper.from_array(rng.normal(0, 0.5, (1, 6, 1, 1)).astype(np.float32), "shift")]
    nodes = [node, helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Mul", ["p", "scale"], ["m"]), helper.make_node("Add", ["m", "shift"], ["a"])]
    node, more = _conv(rng, "d", "a", 6, 5, [3, 3])
    nodes += [node, helper.make_node("GlobalAveragePool", ["d"], ["g"]), helper.make_node("Flatten", ["g"], ["f"])]
    node, last = _gemm(rng, "y", "f", 5, 3)
    _save(path, "channel_consts", [*nodes, node], inits + more + last, (3, 10, 10), "y", 3)
    return (3, 10, 10)


@needs_verilator
@pytest.mark.parametrize("fmt", ["qoperator", "qdq"])
def test_per_channel_constants_in_a_quantized_network(tmp_path, fmt: str) -> None:
    quantized_net(tmp_path, _channel_net, quant_format=fmt)
    result = simulate(tmp_path / "q.onnx", random=8, backend="verilator", layers=True,
                      config=AcceleratorConfig.preset("4x4"))
    cmp = result.comparison
    assert cmp.mismatches == 0, cmp.first_mismatch
    ops = {layer.op: layer.elements for layer in cmp.layers}
    assert ops.get("QLinearAdd", 0) > 0 and ops.get("QLinearMul", 0) > 0


@pytest.mark.parametrize("shape", [(6, 1, 1), (6, 1), (6,), (6, 2, 1)])
def test_one_element_spans_batched_and_per_sample(tmp_path, shape) -> None:
    """Per-channel constants on tensors with one element per channel (a squeeze-excitation style [N, C, 1, 1]):
    the tables, computed with 256 codes per channel, equal onnxruntime on the model at batch 64 and batch 1."""
    from systolix.quantize.golden_model import run_golden
    from systolix.sim.onnxruntime_runner import run_onnxruntime

    for seed, dtype in ((0, "int8"), (1, "uint8"), (2, "int8")):
        path = tmp_path / f"m{seed}.onnx"
        onnx.save(channel_const_model(dtype=dtype, sample_shape=shape, seed=seed), str(path))
        imported = import_model(path)
        info = np.iinfo(dtype)
        x = np.random.default_rng(seed).integers(info.min, info.max + 1, (64, *shape)).astype(dtype)
        golden = run_golden(imported.ir, {"x": x})["y"]
        np.testing.assert_array_equal(golden, run_onnxruntime(imported.reference, {"x": x}, ["y"])["y"])
        for i in range(4):
            np.testing.assert_array_equal(golden[i : i + 1],
                                          run_onnxruntime(imported.reference, {"x": x[i : i + 1]}, ["y"])["y"])
