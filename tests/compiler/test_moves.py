"""Data movement mid-graph (``compiler/moves.py``), Concat along H / W, per-channel tables on the lookup unit.

Unit checks of the movement classification with expected maps worked out here by formula; the identity
requantization of the channel-permutation convolution over every code and zero point; then generated networks
(odd channel counts and sizes, int8 / uint8, QDQ / QOperator) quantized by onnxruntime's quantizer, compiled
for 4x4 and 8x8 arrays and run by the functional model, every tensor against the golden model (itself
checked against onnxruntime in ``tests/sim``; the RTL runs in ``tests/sim/test_moves_verilator.py``).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from systolix.arch import params
from systolix.arch.config import AcceleratorConfig
from systolix.compiler.compile import compile_model
from systolix.compiler.model import requantize_lanes, run_program
from systolix.compiler.moves import classify_move, pixel_runs
from systolix.compiler.where import runs_on
from systolix.errors import SystolixError
from systolix.frontend import ir
from systolix.frontend.importer import import_model
from systolix.quantize import requant
from systolix.quantize.golden_model import run_golden
from tests.compiler.test_networks import quantized_net
from tests.sim.move_models import concat_net, prelu_net, shuffle_net, shufflenet_v2_net, transpose_net


def test_channel_shuffle_is_a_channel_permutation() -> None:
    c, g, h, w = 12, 3, 2, 3
    order = np.arange(c * h * w).reshape(g, c // g, h, w).transpose(1, 0, 2, 3).reshape(c, h, w)
    kind, sources = classify_move(order, (1, c, h, w), (1, c, h, w))
    # input channel a*(C/g) + b (group a, member b) goes to output channel b*g + a
    expected = np.empty(c, np.int64)
    for a in range(g):
        for b in range(c // g):
            expected[b * g + a] = a * (c // g) + b
    assert kind == "channels"
    np.testing.assert_array_equal(sources, expected)


def test_transpose_of_h_and_w_is_a_pixel_permutation() -> None:
    c, h, w = 5, 3, 4
    order = np.arange(c * h * w).reshape(c, h, w).transpose(0, 2, 1)
    kind, sources = classify_move(order, (1, c, h, w), (1, c, w, h))
    assert kind == "pixels"
    np.testing.assert_array_equal(sources, [y * w + x for x in range(w) for y in range(h)])


@pytest.mark.parametrize("perm, out", [((0, 2, 3, 1), (1, 3, 4, 5)), ((0, 2, 1, 3), (1, 3, 5, 4))])
def test_channels_into_pixels_is_refused(perm, out) -> None:
    order = np.arange(60).reshape(5, 3, 4).transpose([p - 1 for p in perm[1:]])
    with pytest.raises(SystolixError, match=r"^it moves data between channels and pixels; .* not both \(\[5, 3, 4\] "
                                            rf"-> \[{', '.join(map(str, out[1:]))}\]\)$"):
        classify_move(order, (1, 5, 3, 4), out)


def test_pixel_runs() -> None:
    # H = 3, W = 5 transposed: output row x reads input rows x, x + 5, x + 10
    sources = np.arange(15).reshape(3, 5).T.reshape(-1)
    assert pixel_runs(sources) == [(0, 3, 0, 5), (3, 3, 1, 5), (6, 3, 2, 5), (9, 3, 3, 5), (12, 3, 4, 5)]
    assert pixel_runs(np.array([3, 1, 2, 0])) == [(0, 1, 3, 1), (1, 2, 1, 1), (3, 1, 0, 1)]


@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_scale_one_requantization_is_the_identity(dtype) -> None:
    """The channel-permutation convolution's requantization: accumulator ``code - zp`` (int8 storage), scale 1.0,
    the same zero point out, the dtype's clamp: every code of every zero point comes back unchanged."""
    qmin = -128 if dtype == "int8" else 0
    shift = 128 if dtype == "uint8" else 0
    mant, exp, _ = requant.requant_constants(np.float32(1.0), 0, qmin)
    assert float(mant) * 2.0 ** -float(exp) == 1.0
    codes = np.arange(qmin, qmin + 256)
    for zp in range(qmin, qmin + 256):
        channel = params.ChannelParams(bias=0, m=int(mant), e=int(exp), zp=zp - shift, lo=qmin - shift,
                                       hi=qmin + 255 - shift)
        acc = (codes - zp)[:, None]  # (code - shift) - (zp - shift)
        out = requantize_lanes(acc, [channel]) + shift
        np.testing.assert_array_equal(out[:, 0], codes)


def _exact(ir_model: ir.Model, presets=("4x4", "8x8"), samples: int = 3) -> None:
    x = ir_model.inputs[0]
    lo = -128 if x.dtype == "int8" else 0
    data = np.random.default_rng(0).integers(lo, lo + 256, (samples, *x.shape[1:])).astype(x.dtype)
    golden = run_golden(ir_model, {x.name: data})
    for preset in presets:
        config = AcceleratorConfig.preset(preset)
        program = compile_model(ir_model, config, keep_all=True)
        out = run_program(program, config, {x.name: data})
        compared = [name for name in out if name in golden]
        assert {layer.output for layer in ir_model.layers} <= set(compared)
        for name in compared:
            assert out[name].shape == golden[name].shape and out[name].dtype == golden[name].dtype, name
            np.testing.assert_array_equal(out[name], golden[name], err_msg=f"{preset}: {name}")


SHUFFLES = {
    "c6-g2-5x3-qdq-s8": (dict(channels=6, groups=2, size=(5, 3)), "qdq", "int8"),
    "c9-g3-3x4-qop-u8": (dict(channels=9, groups=3, size=(3, 4)), "qoperator", "uint8"),
    "c12-g4-1d7-qdq-u8": (dict(channels=12, groups=4, size=(7,)), "qdq", "uint8"),
    "c10-g5-2x2-qop-s8": (dict(channels=10, groups=5, size=(2, 2)), "qoperator", "int8"),
}


@pytest.mark.parametrize("case", SHUFFLES)
def test_channel_shuffle_networks(tmp_path, case) -> None:
    options, fmt, act = SHUFFLES[case]
    model = import_model(quantized_net(tmp_path, lambda p: shuffle_net(p, **options), quant_format=fmt,
                                       activation_type=act)).ir
    where = runs_on(model)
    assert [where[layer.name] for layer in model.layers if layer.op in ("Reshape", "Transpose")] == [
        "alias (no data moved)", "alias (a view: no data moved)", "array (channel permutation as a 1x1 convolution)"]
    _exact(model)


@pytest.mark.parametrize("fmt, act", [("qdq", "uint8"), ("qoperator", "int8")])
def test_channel_shuffle_folded_into_a_convolution(tmp_path, fmt, act) -> None:
    """A shuffle read only by a convolution of one group moves no data: the convolution's weights take the
    permutation (its input channel ``c`` reads stored channel ``sources[c]``)."""
    model = import_model(quantized_net(tmp_path, lambda p: shuffle_net(p, channels=9, groups=3, conv_group=1),
                                       quant_format=fmt, activation_type=act)).ir
    where = runs_on(model)
    assert [where[layer.name] for layer in model.layers if layer.op in ("Reshape", "Transpose")] == [
        "alias (no data moved)", "alias (a view: no data moved)", "alias (folded into the next convolution's weights)"]
    program = compile_model(model, AcceleratorConfig.preset("4x4"))
    moved = [p for p in program.layers if p.op in ("Reshape", "Transpose")]
    assert all(not p.instructions for p in moved)
    (conv,) = [p for p in program.layers if p.op == "QLinearConv" and "before a channel shuffle" in p.note]
    assert len(conv.instructions) == 1
    _exact(model)


def test_two_channel_shuffles_in_a_row(tmp_path) -> None:
    """The second shuffle's Transpose reads a view through the first: the first shuffle's 4-D output is written
    (not the second's 5-D reshape of it, which has no accelerator layout), then the second moves it again."""
    model = import_model(quantized_net(tmp_path, lambda p: shuffle_net(p, channels=12, groups=3, repeat=2),
                                       quant_format="qoperator", activation_type="int8")).ir
    where = runs_on(model)
    moved = [layer.name for layer in model.layers if where[layer.name].startswith("array (channel permutation")]
    assert moved == [layer.name for layer in model.layers if layer.op == "Reshape"][1::2]
    _exact(model)


@pytest.mark.parametrize("size, fmt, act", [((3, 5), "qdq", "uint8"), ((6, 2), "qoperator", "int8"),
                                            ((1, 7), "qdq", "int8")])
def test_transpose_networks(tmp_path, size, fmt, act) -> None:
    model = import_model(quantized_net(tmp_path, lambda p: transpose_net(p, channels=7, size=size),
                                       quant_format=fmt, activation_type=act)).ir
    (tr,) = [layer for layer in model.layers if layer.op == "Transpose"]
    expected = "alias (a view: no data moved)" if 1 in size else "vector (pixel copies)"  # H or W of 1: a reshape
    assert runs_on(model)[tr.name] == expected
    _exact(model)


@pytest.mark.parametrize("size, axis, fmt, act", [((3, 4), 2, "qdq", "int8"), ((3, 4), 3, "qoperator", "uint8"),
                                                  ((5, 2), -2, "qoperator", "int8"), ((6,), 2, "qdq", "uint8"),
                                                  ((2, 3), 1, "qdq", "int8")])
def test_concat_networks(tmp_path, size, axis, fmt, act) -> None:
    model = import_model(quantized_net(tmp_path, lambda p: concat_net(p, size=size, axis=axis, channels=4 if axis == 1
                                                                        else 5),
                                       quant_format=fmt, activation_type=act)).ir
    (cat,) = [layer for layer in model.layers if layer.kind == "concat"]
    assert runs_on(model)[cat.name] == "vector (copy)"
    _exact(model, presets=("4x4",) if axis == 1 else ("4x4", "8x8"))


@pytest.mark.parametrize("options, fmt, act", [(dict(), "qdq", "int8"), (dict(channels=9, slope_rank=4), "qoperator",
                                                                            "uint8"),
                                               (dict(channels=5, size=(7,)), "qdq", "uint8"),
                                               (dict(channels=17, size=(2, 3)), "qoperator", "int8")])
def test_prelu_per_channel_networks(tmp_path, options, fmt, act) -> None:
    path = quantized_net(tmp_path, lambda p: prelu_net(p, **options), quant_format=fmt, activation_type=act)
    float_where = runs_on(import_model(tmp_path / "float.onnx").ir)
    assert "vector (per-channel tables, once quantized)" in float_where.values()
    model = import_model(path).ir
    (prelu,) = [layer for layer in model.layers if layer.kind == "channel_lookup"]
    assert runs_on(model)[prelu.name] == "vector (per-channel tables, one per lane)"
    _exact(model)


@pytest.mark.parametrize("channels, fmt, act", [(3, "qdq", "int8"), (5, "qoperator", "uint8"), (6, "qdq", "uint8")])
def test_concat_of_inputs_ending_inside_a_channel_block(tmp_path, channels, fmt, act) -> None:
    """Channel Concat of inputs whose channels are not a multiple of L: each input is copied to a block of its own
    in an aligned copy, then a channel permutation packs it (one more MATMUL instruction)."""
    model = import_model(quantized_net(tmp_path, lambda p: concat_net(p, axis=1, channels=channels),
                                       quant_format=fmt, activation_type=act)).ir
    (cat,) = [layer for layer in model.layers if layer.kind == "concat"]
    program = compile_model(model, AcceleratorConfig.preset("4x4"))
    (plan,) = [p for p in program.layers if p.name == cat.name]
    opcodes = [program.instructions[k].opcode.name for k in plan.instructions]
    assert opcodes == ["LUT", "LUT", "LUT", "MATMUL"]
    _exact(model)


@pytest.mark.parametrize("options, fmt, act", [
    (dict(channels=8), "qdq", "int8"),
    (dict(channels=10, split="Slice"), "qoperator", "uint8"),  # halves of 5 channels: Concat packs them
    (dict(channels=12, size=(5, 3), crop=True), "qdq", "uint8"),
    (dict(channels=6, size=(3, 6), crop=True, split="Slice"), "qoperator", "int8"),
    (dict(channels=10, units=3), "qoperator", "int8"),
    (dict(channels=8, units=2, split="Slice", crop=True), "qdq", "uint8"),
])
def test_shufflenet_v2_units(tmp_path, options, fmt, act) -> None:
    model = import_model(quantized_net(tmp_path, lambda p: shufflenet_v2_net(p, **options), quant_format=fmt,
                                       activation_type=act)).ir
    where = runs_on(model)
    slices = [layer for layer in model.layers if layer.kind == "slice"]
    kinds = sorted(where[layer.name] for layer in slices)
    units = options.get("units", 1)
    expected = ["array (channel selection as a 1x1 convolution)"] * 2 * units + (["vector (pixel copies)"] if
                                                                                 options.get("crop") else [])
    assert kinds == sorted(expected)
    # the split of a shuffled tensor selects from the stored tensor; the last shuffle is written for the crop, or
    # folded into the weights of the convolution that reads it
    shuffles = [where[layer.name] for layer in model.layers if layer.op == "Reshape" and len(layer.out_shape) == 4]
    last = ("array (channel permutation as a 1x1 convolution)" if options.get("crop") else
            "alias (folded into the next convolution's weights)")
    assert shuffles == ["alias (no data moved)"] * (units - 1) + [last]
    _exact(model)


def test_split_becomes_slices(tmp_path) -> None:
    from systolix.frontend.normalize import normalize

    shufflenet_v2_net(tmp_path / "f.onnx", channels=6, units=2)
    out = normalize(onnx.load(str(tmp_path / "f.onnx")), quantized=False)
    (fired,) = [f for f in out.fired if f.name == "split-as-slices"]
    assert fired.applied and fired.detail == "2 Split node(s) as one Slice per output"
    slices = [n for n in out.model.graph.node if n.op_type == "Slice"]
    assert [list(n.output) for n in slices] == [["a0"], ["b0"], ["a1"], ["b1"]]
    assert not [n for n in out.model.graph.node if n.op_type == "Split"]
    assert not {"sp0", "sp1"} & {i.name for i in out.model.graph.initializer}
