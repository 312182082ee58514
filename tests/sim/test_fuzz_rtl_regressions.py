"""RTL mismatches the fuzzer found on Verilator, now exact (``tests/compiler/test_input_zero_point.py``).

Seeds 8, 58 and 242 (a MaxPool on the graph input, a Flatten, then QLinearMatMul / QGemm): the dense
layer subtracted the zero point recorded for the MaxPool's rows (none: 0, or -128 for uint8 storage)
instead of its own ``a_zero_point``. The golden model was exact; the compiled program was not.
"""

from __future__ import annotations

import shutil

import onnx
import pytest

from systolix.arch.config import AcceleratorConfig
from systolix.sim.fuzz import run_case
from systolix.sim.simulate import simulate
from tests.compiler.test_input_zero_point import alias_zero_point_model
from tests.sim.model_builders import describe_mismatches

needs_verilator = pytest.mark.skipif(shutil.which("make") is None or shutil.which("perl") is None
                                     or shutil.which("g++") is None,
                                     reason="the Verilator build needs make, perl and g++")


@needs_verilator
@pytest.mark.parametrize("seed", [8, 58, 242])
def test_fuzz_seed_exact_on_verilator_4x4(seed):
    result, _ = run_case(seed, backend="verilator", config=AcceleratorConfig.preset("4x4"))
    assert result.outcome == "exact", result.detail


@needs_verilator
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_alias_consumers_zero_points_on_verilator(tmp_path, dtype):
    path = tmp_path / "model.onnx"
    onnx.save(alias_zero_point_model(dtype=dtype), path)
    sim = simulate(path, random=4, seed=2, backend="verilator", layers=True, config=AcceleratorConfig.preset("4x4"))
    assert sim.comparison.mismatches == 0, describe_mismatches(sim.comparison)
    assert {layer.name for layer in sim.comparison.layers} >= {"dense", "conv"}
