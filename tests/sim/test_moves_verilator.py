"""Data movement and per-channel tables on the accelerator's RTL (Verilator), against onnxruntime.

Float networks with a channel shuffle, a Transpose of H and W, a Concat along H, W or the length (or of inputs
ending inside a channel block), ShuffleNet v2 units (Split / Slice of the channels, Concat, shuffle, a crop of
H), or a PRelu with one slope per channel, quantized by onnxruntime's quantizer (QDQ and QOperator, int8 and
uint8; odd channel counts, so that channel blocks end inside a block): every tensor of every sample equal to
onnxruntime's, and the new layers' cycles exactly as the compiler predicts.
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
from tests.sim.move_models import concat_net, prelu_net, shuffle_net, shufflenet_v2_net, transpose_net

needs_verilator = pytest.mark.skipif(shutil.which("make") is None or shutil.which("perl") is None
                                     or shutil.which("g++") is None,
                                     reason="the Verilator build needs make, perl and g++")

CASES = {  # builder, options, format, activations, the layer op that moves, where it runs, its opcodes
    "shuffle-c6g2-qdq-s8": (shuffle_net, dict(channels=6, groups=2, size=(5, 3)), "qdq", "int8", "Reshape",
                            "array (channel permutation as a 1x1 convolution)", {"MATMUL"}),
    "shuffle-c9g3-1d-qop-u8": (shuffle_net, dict(channels=9, groups=3, size=(7,)), "qoperator", "uint8", "Reshape",
                               "array (channel permutation as a 1x1 convolution)", {"MATMUL"}),
    "shuffle-folded-c9g3-qdq-s8": (shuffle_net, dict(channels=9, groups=3, conv_group=1), "qdq", "int8",
                                   "QLinearConv", "array", {"MATMUL"}),
    "transpose-hw-qdq-u8": (transpose_net, dict(channels=7, size=(3, 5)), "qdq", "uint8", "Transpose",
                            "vector (pixel copies)", {"MAXPOOL"}),
    "concat-h-qdq-s8": (concat_net, dict(axis=2), "qdq", "int8", "QLinearConcat", "vector (copy)", {"LUT"}),
    "concat-w-qop-u8": (concat_net, dict(axis=3, size=(2, 3)), "qoperator", "uint8", "QLinearConcat",
                        "vector (copy)", {"LUT"}),
    "concat-1d-qop-s8": (concat_net, dict(axis=-1, size=(6,)), "qoperator", "int8", "QLinearConcat",
                         "vector (copy)", {"LUT"}),
    "concat-c-unaligned-qop-u8": (concat_net, dict(axis=1, channels=5), "qoperator", "uint8", "QLinearConcat",
                                  "vector (copy)", {"LUT", "MATMUL"}),
    "shufflenet-v2-c10-split-qdq-s8": (shufflenet_v2_net, dict(channels=10, units=2), "qdq", "int8", "Slice",
                                       "array (channel selection as a 1x1 convolution)", {"MATMUL"}),
    "shufflenet-v2-c12-crop-qop-u8": (shufflenet_v2_net, dict(channels=12, size=(5, 3), crop=True, split="Slice"),
                                      "qoperator", "uint8", "Slice", "vector (pixel copies)", {"MAXPOOL"}),
    "prelu-c6-qdq-s8": (prelu_net, dict(), "qdq", "int8", "PRelu", "vector (per-channel tables, one per lane)",
                        {"LUT"}),
    "prelu-c9-qop-u8": (prelu_net, dict(channels=9, slope_rank=4), "qoperator", "uint8", "PRelu",
                        "vector (per-channel tables, one per lane)", {"LUT"}),
    "prelu-c5-1d-qdq-u8": (prelu_net, dict(channels=5, size=(7,)), "qdq", "uint8", "PRelu",
                           "vector (per-channel tables, one per lane)", {"LUT"}),
}


@needs_verilator
@pytest.mark.parametrize("case", CASES)
def test_moves_bit_exact(tmp_path, case) -> None:
    build, options, fmt, act, op, unit, opcodes = CASES[case]
    q = quantized_net(tmp_path, lambda p: build(p, **options), quant_format=fmt, activation_type=act)
    model = import_model(q).ir
    where = runs_on(model)
    moving = [layer for layer in model.layers if layer.op == op and where[layer.name] == unit]
    if case.startswith("shuffle-folded"):  # the second convolution, which reads the shuffle through its weights
        moving = moving[1:]
    assert len(moving) == (4 if case.startswith("shufflenet-v2-c10") else 1), where
    config = AcceleratorConfig.preset("4x4")
    program = compile_model(model, config)
    for layer in moving:
        (plan,) = [p for p in program.layers if p.name == layer.name]
        assert {program.instructions[k].opcode.name for k in plan.instructions} == opcodes
    result = simulate(q, random=8, backend="verilator", layers=True, config=config)
    cmp = result.comparison
    assert cmp.samples == 8 and cmp.elements > 0
    assert cmp.mismatches == 0, cmp.first_mismatch
    for layer in moving:
        assert layer.name in {compared.name for compared in cmp.layers}
        (measured,) = [m for m in result.hardware["hardware_layers"] if m["name"] == layer.name]
        assert measured["cycles"] == measured["predicted_cycles"] > 0, measured
