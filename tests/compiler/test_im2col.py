"""Host-side im2col of a first convolution: the window extraction against a direct loop, and compiled
networks with and without it against the golden model."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
from onnx import helper

from systolix.arch.config import PRESETS
from systolix.arch.isa import Opcode
from systolix.compiler.compile import compile_model
from systolix.compiler.im2col import Window, im2col
from systolix.compiler.model import run_program
from systolix.frontend import ir
from systolix.frontend.importer import import_model
from systolix.quantize.golden_model import run_golden
from systolix.quantize.ptq import QuantizationWarning, quantize_model
from tests.compiler.test_networks import _conv, _gemm, _save, net1d

PRESET_NAMES = ("4x4", "8x8", "16x16")


def _windows_by_loop(x: np.ndarray, kernel, strides, pads, dilations, pad_value: int) -> np.ndarray:
    """[N, C, H, W] -> [N, C*kh*kw, oh, ow], one cell at a time (pads: top, left, bottom, right)."""
    n, c, h, w = x.shape
    kh, kw = kernel
    oh = (h + pads[0] + pads[2] - dilations[0] * (kh - 1) - 1) // strides[0] + 1
    ow = (w + pads[1] + pads[3] - dilations[1] * (kw - 1) - 1) // strides[1] + 1
    out = np.empty((n, c * kh * kw, oh, ow), dtype=x.dtype)
    for ci in range(c):
        for ky in range(kh):
            for kx in range(kw):
                for oy in range(oh):
                    for ox in range(ow):
                        iy = oy * strides[0] - pads[0] + ky * dilations[0]
                        ix = ox * strides[1] - pads[1] + kx * dilations[1]
                        inside = 0 <= iy < h and 0 <= ix < w
                        out[:, (ci * kh + ky) * kw + kx, oy, ox] = x[:, ci, iy, ix] if inside else pad_value
    return out


@pytest.mark.parametrize(("kernel", "strides", "pads", "dilations"),
                         [((3, 3), (1, 1), (1, 1, 1, 1), (1, 1)), ((5, 2), (2, 3), (0, 2, 3, 1), (1, 2)),
                          ((2, 3), (3, 1), (2, 0, 0, 2), (2, 2)), ((1, 1), (1, 1), (0, 0, 0, 0), (1, 1))])
def test_im2col_2d_matches_a_direct_loop(kernel, strides, pads, dilations):
    rng = np.random.default_rng(sum(kernel) + sum(pads))
    x = rng.integers(0, 256, (2, 3, 7, 9)).astype(np.uint8)
    window = Window(kernel, strides, pads, dilations, 2)
    got = im2col(x, window, 77)
    want = _windows_by_loop(x, kernel, strides, pads, dilations, 77)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_im2col_1d_matches_a_direct_loop():
    x = np.random.default_rng(1).integers(-128, 128, (3, 2, 11)).astype(np.int8)
    window = Window((1, 4), (1, 2), (0, 3, 0, 1), (1, 2), 1)
    got = im2col(x, window, -5)
    want = _windows_by_loop(x[:, :, None, :], (1, 4), (1, 2), (0, 3, 0, 1), (1, 2), -5)[:, :, 0, :]
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def net_first(path: Path) -> tuple[int, ...]:
    """A first convolution with 2 channels, kernel 3x4, stride (2, 1), dilation (2, 1), asymmetric pads;
    then Relu -> 1x1 Conv -> GlobalAveragePool -> Flatten -> Gemm."""
    rng = np.random.default_rng(5)
    nodes, inits = [], []
    for node, init in (_conv(rng, "c1", "x", 2, 6, [3, 4], strides=[2, 1], dilations=[2, 1], pads=[1, 0, 2, 3]),
                       _conv(rng, "c2", "r1", 6, 5, [1, 1])):
        nodes.append(node)
        inits.extend(init)
        if node.output[0] == "c1":
            nodes.append(helper.make_node("Relu", ["c1"], ["r1"]))
    nodes.append(helper.make_node("GlobalAveragePool", ["c2"], ["g"]))
    nodes.append(helper.make_node("Flatten", ["g"], ["f"]))
    node, init = _gemm(rng, "y", "f", 5, 4)
    nodes.append(node)
    inits.extend(init)
    _save(path, "net_first", nodes, inits, (2, 13, 11), "y", 4)
    return (2, 13, 11)


@pytest.fixture(scope="module", params=[(net_first, "int8"), (net_first, "uint8"), (net1d, "uint8")],
                ids=lambda p: f"{p[0].__name__}-{p[1]}")
def network(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> ir.Model:
    build, act = request.param
    d = tmp_path_factory.mktemp(f"{build.__name__}_{act}")
    shape = build(d / "float.onnx")
    np.savez(d / "calib.npz", x=np.random.default_rng(2).normal(0, 1, (32, *shape)).astype(np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", QuantizationWarning)
        quantize_model(d / "float.onnx", d / "calib.npz", d / "int.onnx", activation_type=act)
    return import_model(d / "int.onnx").ir


def _samples(model: ir.Model, n: int) -> dict[str, np.ndarray]:
    info = model.inputs[0]
    lo, hi = np.iinfo(np.dtype(info.dtype)).min, np.iinfo(np.dtype(info.dtype)).max
    x = np.random.default_rng(9).integers(lo, hi + 1, (n, *info.shape[1:]))
    x[: n // 2] = np.where(np.random.default_rng(10).random(x[: n // 2].shape) < 0.5, lo, hi)  # extremes
    return {info.name: x.astype(np.dtype(info.dtype))}


@pytest.mark.parametrize("preset", PRESET_NAMES)
def test_first_conv_over_im2col_is_bit_exact_and_faster(network: ir.Model, preset: str) -> None:
    config = dataclasses.replace(PRESETS[preset], act_buffer_depth=8192)
    inputs = _samples(network, 10)
    golden = run_golden(network, inputs)
    packed = compile_model(network, config, keep_all=True)
    plain = compile_model(network, config, keep_all=True, im2col=False)
    (windows,) = [t for t in packed.input_transform if t.op == "Im2col"]
    assert not [t for t in plain.input_transform if t.op == "Im2col"]
    first = network.layers[0]
    assert windows.layer == first.name and windows.input == first.inputs[0]
    # The first convolution is a 1x1 convolution over K = C*kh*kw channels, ceil(K/L) tiles per block.
    lanes = config.rows
    k = first.in_shapes[0][1] * int(np.prod(first.kernel))
    (ins,) = [i for i in packed.instructions if i.opcode == Opcode.MATMUL and i.layer == 0]
    assert (ins.k_h, ins.k_w, ins.stride_h, ins.stride_w, ins.pad_top, ins.pad_left) == (1, 1, 1, 1, 0, 0)
    assert ins.taps == -(-k // lanes) and (ins.out_h, ins.out_w) == (ins.in_h, ins.in_w)
    for program in (packed, plain):
        got = run_program(program, config, inputs)
        for name, want in golden.items():
            assert got[name].shape == want.shape and got[name].dtype == want.dtype, name
            np.testing.assert_array_equal(got[name], want, err_msg=name)
    assert packed.layers[0].cycles < plain.layers[0].cycles
    assert packed.layers[0].macs == plain.layers[0].macs == first.macs
    assert "im2col" in packed.layers[0].note


def test_im2col_is_dropped_when_its_tensor_does_not_fit(network: ir.Model) -> None:
    config = PRESETS["8x8"]
    plain = compile_model(network, dataclasses.replace(config, act_buffer_depth=8192), im2col=False)
    packed = compile_model(network, dataclasses.replace(config, act_buffer_depth=8192))
    assert packed.act_rows > plain.act_rows  # the windows take more rows than the input
    tight = dataclasses.replace(config, act_buffer_depth=plain.act_rows)
    program = compile_model(network, tight)
    assert not [t for t in program.input_transform if t.op == "Im2col"]
    assert program.act_rows == plain.act_rows
    inputs = _samples(network, 4)
    golden = run_golden(network, inputs)
    got = run_program(program, tight, inputs)
    for name in (t.name for t in network.outputs):
        np.testing.assert_array_equal(got[name], golden[name])
