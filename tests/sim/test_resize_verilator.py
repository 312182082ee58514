"""Nearest-neighbour Resize on the accelerator's RTL (Verilator), against onnxruntime.

A float network with two Resize layers (the first with the case's factors and modes, the second torch's
default ``x2``), quantized by onnxruntime's quantizer (through ``systolix.quantize``): every tensor of every
sample equal to onnxruntime's, and the RESIZE instructions' cycles exactly as the compiler predicts.
"""

from __future__ import annotations

import shutil

import pytest

from systolix.arch.config import AcceleratorConfig
from systolix.compiler.compile import compile_model
from systolix.compiler.where import runs_on
from systolix.frontend.importer import import_model
from systolix.sim.simulate import simulate
from tests.compiler.test_networks import quantized_net
from tests.sim.resize_models import upsample_net

needs_verilator = pytest.mark.skipif(shutil.which("make") is None or shutil.which("perl") is None
                                     or shutil.which("g++") is None,
                                     reason="the Verilator build needs make, perl and g++")

CASES = {  # (format, activations, upsample_net options)
    "torch-default-qop-u8": ("qoperator", "uint8", dict()),
    "half-pixel-3x2-qdq-s8": ("qdq", "int8", dict(factors=(3, 2), transform="half_pixel",
                                                   nearest="round_prefer_floor")),
    "tf-nn-2x3-ceil-qdq-u8": ("qdq", "uint8", dict(factors=(2, 3), transform="tf_half_pixel_for_nn",
                                                   nearest="round_prefer_ceil")),
    "align-corners-1x4-qop-s8": ("qoperator", "int8", dict(factors=(1, 4), transform="align_corners",
                                                           nearest="floor")),
}
DEFAULT = {"torch-default-qop-u8", "half-pixel-3x2-qdq-s8"}


@needs_verilator
@pytest.mark.parametrize("case", [pytest.param(c, marks=() if c in DEFAULT else pytest.mark.slow) for c in CASES])
def test_upsampling_bit_exact(tmp_path, case) -> None:
    fmt, act, options = CASES[case]
    q = quantized_net(tmp_path, lambda p: upsample_net(p, **options), quant_format=fmt, activation_type=act)
    ir = import_model(q).ir
    where = runs_on(ir)
    assert [where[layer.name] for layer in ir.layers if layer.op == "Resize"] == ["vector (nearest upsampling)"] * 2
    config = AcceleratorConfig.preset("4x4")
    program = compile_model(ir, config)
    assert sum(ins.opcode.name == "RESIZE" for ins in program.instructions) == 2
    result = simulate(q, random=8, backend="verilator", layers=True, config=config)
    cmp = result.comparison
    assert cmp.samples == 8 and cmp.elements > 0
    assert cmp.mismatches == 0, cmp.first_mismatch
    assert {layer.op for layer in cmp.layers} >= {"Resize"}
    resizes = [layer for layer in result.hardware["hardware_layers"] if layer["op"] == "Resize"]
    assert len(resizes) == 2
    for layer in resizes:
        assert layer["cycles"] == layer["predicted_cycles"], layer
