"""A build folder compiled with ``--device ecp5-25f`` (a 2x2 array, memories sized to the model) on Verilator."""

from __future__ import annotations

import json
import shutil

import pytest

from systolix.compiler.build import build
from systolix.sim.simulate import simulate
from tests.conftest import REPO

needs_verilator = pytest.mark.skipif(shutil.which("make") is None or shutil.which("perl") is None
                                     or shutil.which("g++") is None,
                                     reason="the Verilator build needs make, perl and g++")


@needs_verilator
def test_device_sized_build_is_bit_exact(tmp_path) -> None:
    out = tmp_path / "b25f"
    build(REPO / "tests" / "corpus" / "tf_keras_cnn_tflite_int8.onnx", out, None, device="ecp5-25f")
    config = json.loads((out / "config.json").read_text())
    assert (config["rows"], config["cols"]) == (2, 2)
    result = simulate(out, random=6, backend="verilator", layers=True)
    assert result.comparison.mismatches == 0, result.comparison.first_mismatch
    assert result.comparison.elements > 0
