"""The bundled example on the smallest configuration built for an iCE40 UP5K (1x1, only the max-pool and lookup
units, a narrow program memory, act and wgt in single-port banks): bit-exact on Verilator, with the cycles the
cycle model predicts up to a few per MATMUL. Slow: a Verilator build of its own (1-3 minutes) and about one
inference per second (370,000 cycles each)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from systolix.arch.config import AcceleratorConfig
from systolix.cli import main
from tests.conftest import EXAMPLE

#: Measured on this configuration (docs/boards.md): it does not fit an UP5K yet, so it is no preset.
UP5K_CANDIDATE = AcceleratorConfig(
    rows=1, cols=1, act_buffer_depth=32768, weight_buffer_depth=65536, acc_memory_depth=256, param_memory_depth=256,
    program_memory_depth=32, lut_memory_depth=1024, add_table_depth=256, pe_product_register=False,
    vector_units=("maxpool", "lut"), narrow_program=True, spram_buffers=True)


@pytest.mark.slow
def test_bundled_example_bit_exact_on_the_up5k_candidate(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(UP5K_CANDIDATE.to_json())
    folder = tmp_path / "build"
    assert main(["compile", str(EXAMPLE / "model.onnx"), "--calib", str(EXAMPLE / "calib.npz"), "--config",
                 str(config), "-o", str(folder)]) == 0
    program = json.loads((folder / "program.json").read_text())
    half = UP5K_CANDIDATE.act_buffer_depth // 2
    for instr in program["instructions"][:-1]:  # every layer writes the other bank than it reads
        assert instr["out_base"] // half != instr["in_base"] // half
    with np.load(EXAMPLE / "test.npz") as data:
        np.savez(tmp_path / "some.npz", x=data["x"][:40])
    report = tmp_path / "sim.json"
    assert main(["simulate", str(folder), "--inputs", str(tmp_path / "some.npz"), "--backend", "verilator",
                 "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["bit_exact"] and result["mismatches"] == 0 and result["samples"] == 40
    assert result["compared_elements"] == 40 * (28 * 28 + 10)
    assert 0 <= result["cycles"] - result["predicted_cycles"] <= 4 * 5  # five MATMULs, a few cycles each
