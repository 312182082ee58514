"""MaxPool, QLinearAveragePool and QLinearGlobalAveragePool golden models against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from systolix.errors import SystolixError
from systolix.quantize.golden import max_pool, qlinear_average_pool, qlinear_global_average_pool

INFO = {np.int8: (-128, 127), np.uint8: (0, 255)}


def _pool_case(rng: np.random.Generator, nsp: int, dilation: bool):
    kernel = [int(k) for k in rng.integers(1, 4, nsp)]
    dil = [int(d) for d in rng.integers(1, 3, nsp)] if dilation else [1] * nsp
    strides = [int(s) for s in rng.integers(1, 4, nsp)]
    pads = [int(rng.integers(0, k)) for k in kernel] + [int(rng.integers(0, k)) for k in kernel]
    size = [int(s) + d * (k - 1) for s, d, k in zip(rng.integers(1, 9, nsp), dil, kernel, strict=True)]
    return kernel, dil, strides, pads, size


@pytest.mark.parametrize("xdt", [np.int8, np.uint8])
def test_max_pool_matches_onnxruntime(ort_node, xdt) -> None:
    """60 random cases: 1-D/2-D, strides 1-3, asymmetric pads, dilation 1-2, ceil_mode."""
    rng = np.random.default_rng(31)
    lo, hi = INFO[xdt]
    for index in range(60):
        nsp = 1 + index % 2
        kernel, dil, strides, pads, size = _pool_case(rng, nsp, True)
        ceil_mode = index % 3 == 0
        x = rng.integers(lo, hi + 1, (2, 3, *size)).astype(xdt)
        attrs = dict(kernel_shape=kernel, strides=strides, pads=pads, dilations=dil, ceil_mode=int(ceil_mode))
        want = ort_node("MaxPool", [("x", x, False)], [("y", xdt)], **attrs)[0]
        got = max_pool(x, kernel=kernel, strides=strides, pads=pads, dilations=dil, ceil_mode=ceil_mode)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def _avg_inputs(rng, x, xdt):
    lo, hi = INFO[xdt]
    xs, ys = np.float32(rng.uniform(0.005, 0.2)), np.float32(rng.uniform(0.005, 0.2))
    xz, yz = xdt(rng.integers(lo, hi + 1)), xdt(rng.integers(lo, hi + 1))
    inputs = [("x", x, False), ("xs", xs, True), ("xz", xz, True), ("ys", ys, True), ("yz", yz, True)]
    return inputs, (float(xs), int(xz), float(ys), int(yz), lo, hi)


@pytest.mark.parametrize("xdt", [np.int8, np.uint8])
def test_qlinear_average_pool_matches_onnxruntime(ort_node, xdt) -> None:
    """80 random cases: 1-D/2-D, strides 1-3, asymmetric pads, count_include_pad, ceil_mode."""
    rng = np.random.default_rng(32)
    for index in range(80):
        nsp = 1 + index % 2
        kernel, _, strides, pads, size = _pool_case(rng, nsp, False)
        include, ceil_mode = index % 4 in (1, 3), index % 3 == 0
        x = rng.integers(*INFO[xdt], (2, 3, *size), endpoint=True).astype(xdt)
        inputs, params = _avg_inputs(rng, x, xdt)
        attrs = dict(
            kernel_shape=kernel,
            strides=strides,
            pads=pads,
            count_include_pad=int(include),
            ceil_mode=int(ceil_mode),
        )
        want = ort_node("QLinearAveragePool", inputs, [("y", xdt)], domain="com.microsoft", **attrs)[0]
        got = qlinear_average_pool(
            x,
            *params,
            kernel=kernel,
            strides=strides,
            pads=pads,
            count_include_pad=include,
            ceil_mode=ceil_mode,
            out_dtype=xdt,
        )
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("xdt", [np.int8, np.uint8])
def test_average_pool_whole_input_takes_global_path(ort_node, xdt) -> None:
    """A kernel covering the whole unpadded input: onnxruntime's integer global path (30 cases)."""
    rng = np.random.default_rng(33)
    for index in range(30):
        size = [int(s) for s in rng.integers(1, 12, 1 + index % 2)]
        x = rng.integers(*INFO[xdt], (2, 5, *size), endpoint=True).astype(xdt)
        inputs, params = _avg_inputs(rng, x, xdt)
        want = ort_node(
            "QLinearAveragePool", inputs, [("y", xdt)], domain="com.microsoft", kernel_shape=size
        )[0]
        got = qlinear_average_pool(x, *params, kernel=size, out_dtype=xdt)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("xdt", [np.int8, np.uint8])
def test_qlinear_global_average_pool_matches_onnxruntime(ort_node, xdt) -> None:
    """40 random cases, 1-D and 2-D spatial."""
    rng = np.random.default_rng(34)
    for index in range(40):
        size = [int(s) for s in rng.integers(1, 20, 1 + index % 2)]
        x = rng.integers(*INFO[xdt], (2, 7, *size), endpoint=True).astype(xdt)
        inputs, params = _avg_inputs(rng, x, xdt)
        want = ort_node(
            "QLinearGlobalAveragePool", inputs, [("y", xdt)], domain="com.microsoft", channels_last=0
        )[0]
        got = qlinear_global_average_pool(x, *params, out_dtype=xdt)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_global_average_pool_refuses_what_onnxruntime_refuses() -> None:
    x = np.zeros((1, 1, 4, 4), np.int8)
    with pytest.raises(SystolixError) as info:
        qlinear_global_average_pool(x, 1.0, 0, 1e-6, 0, -128, 127)
    assert str(info.value).startswith("global average pool scale ")
    assert str(info.value).endswith(" is outside [2**-32, 256): onnxruntime refuses it")
