"""Non-global average pools compiled for the accelerator, run by the functional model, against onnxruntime.

Generated QLinearAveragePool models (1D and 2D, kernels 1-3, strides 1-3, begin/end pads, count_include_pad 0
and 1, ceil_mode, int8 and uint8, the three presets, channel counts that end inside a channel block): every
output element must equal onnxruntime's. A case may only be refused for the reasons the compiler gives for
average pools (a divisor changing along the width, or onnxruntime's float32 result not being an integer
function of the window sum); most are not.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest

from systolix.arch.config import PRESETS
from systolix.arch.isa import Mode, Opcode
from systolix.compiler.compile import compile_model
from systolix.compiler.model import run_program
from systolix.compiler.where import runs_on
from systolix.errors import SystolixError
from systolix.frontend.importer import import_model
from systolix.sim.onnxruntime_runner import run_onnxruntime
from tests.sim.model_builders import qlinear_pool_model

CASES = 48
_REASONS = ("the divisor changes from column to column", "give different outputs")


def _case(index: int) -> tuple[dict, tuple[int, ...], str, str]:
    rng = np.random.default_rng(1000 + index)
    nsp = 1 if index % 3 == 0 else 2
    kernel = [int(v) for v in rng.integers(1, 4, nsp)]
    kernel[0] = max(kernel[0], 2)
    pads = [int(rng.integers(0, k)) for k in kernel] * 2
    pads = [int(rng.integers(0, k)) for k in kernel] + pads[nsp:]
    include = index % 2 == 1
    if nsp == 2 and not include and index % 4:
        pads[1] = pads[3] = 0  # padded along the height only: row bands of their own divisor
    attrs = dict(kernel_shape=kernel, strides=[int(v) for v in rng.integers(1, 4, nsp)], pads=pads,
                 count_include_pad=int(include), ceil_mode=int(index % 4 >= 2))
    shape = (int(rng.integers(1, 20)), *(int(v) for v in rng.integers(4, 13, nsp)))
    return attrs, shape, "int8" if index % 2 else "uint8", ("4x4", "8x8", "16x16")[index % 3]


def test_generated_average_pools_bit_exact(tmp_path) -> None:
    ran = refused = elements = 0
    for index in range(CASES):
        attrs, shape, dtype, preset = _case(index)
        path = tmp_path / f"pool{index}.onnx"
        onnx.save(qlinear_pool_model("QLinearAveragePool", dtype=dtype, sample_shape=shape, seed=index, **attrs),
                  str(path))
        imported = import_model(path)
        config = dataclasses.replace(PRESETS[preset], act_buffer_depth=8192)
        where = runs_on(imported.ir)["qpool"]
        try:
            program = compile_model(imported.ir, config)
        except SystolixError as error:
            assert any(reason in str(error) for reason in _REASONS), (index, attrs, str(error))
            assert where.startswith("refused: ")
            refused += 1
            continue
        assert where == "array (window sums, one scale per divisor)"
        assert all(i.opcode == Opcode.MATMUL and i.mode == Mode.DEPTHWISE for i in program.instructions[:-1])
        lo, hi = (-128, 128) if dtype == "int8" else (0, 256)
        x = np.random.default_rng(index).integers(lo, hi, (16, *shape)).astype(dtype)
        name = imported.ir.inputs[0].name
        got = run_program(program, config, {name: x})
        want = run_onnxruntime(imported.reference, {name: x}, ["y"])["y"]
        assert np.unique(want).size > 4
        np.testing.assert_array_equal(got["y"], want, err_msg=f"case {index}: {attrs} {shape} {dtype} {preset}")
        ran += 1
        elements += want.size
    print(f"average pools: {ran} cases bit-exact ({elements:,} elements), {refused} refused")
    assert ran >= CASES - 8 and refused >= 1, (ran, refused)


@pytest.mark.parametrize("include", [0, 1])
def test_row_bands_and_blocks(tmp_path, include: int) -> None:
    """count_include_pad=0 with height padding and ceil_mode: one instruction per (band, channel block);
    count_include_pad=1: one instruction for the whole layer."""
    path = tmp_path / "pool.onnx"
    onnx.save(qlinear_pool_model("QLinearAveragePool", sample_shape=(10, 9, 8), seed=3, kernel_shape=[3, 2],
                                 strides=[2, 2], pads=[1, 0, 1, 0], ceil_mode=1, count_include_pad=include), str(path))
    imported = import_model(path)
    config = PRESETS["8x8"]
    program = compile_model(imported.ir, config)
    # rows: windows at -1 (2 cells), 1, 3, 5 (3 cells), 7 (2 cells, the ceil window): three bands, two blocks
    assert len(program.instructions) - 1 == (1 if include else 3 * 2)
    x = np.random.default_rng(0).integers(-128, 128, (32, 10, 9, 8)).astype(np.int8)
    got = run_program(program, config, {"x": x})["y"]
    np.testing.assert_array_equal(got, run_onnxruntime(imported.reference, {"x": x}, ["y"])["y"])
