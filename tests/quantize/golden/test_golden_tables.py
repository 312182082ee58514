"""Lookup tables (QLinearLeakyRelu), QLinearConcat, QuantizeLinear, DequantizeLinear against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

from systolix.errors import SystolixError
from systolix.quantize.golden import (
    dequantize_linear,
    leaky_relu_table,
    lookup,
    qlinear_concat,
    quantize_linear,
)
from systolix.quantize.golden.table import all_codes

INFO = {np.int8: (-128, 127), np.uint8: (0, 255)}


@pytest.mark.parametrize("xdt", [np.int8, np.uint8])
def test_leaky_relu_table_matches_onnxruntime(ort_node, xdt) -> None:
    """All 256 codes through QLinearLeakyRelu for 40 random parameter sets."""
    rng = np.random.default_rng(51)
    lo, hi = INFO[xdt]
    x = all_codes(xdt).astype(xdt)
    for _ in range(40):
        xs, ys = np.float32(rng.uniform(0.005, 0.2)), np.float32(rng.uniform(0.005, 0.2))
        xz, yz = xdt(rng.integers(lo, hi + 1)), xdt(rng.integers(lo, hi + 1))
        alpha = float(np.float32(rng.uniform(0.0, 0.5)))
        inputs = [("x", x, False), ("xs", xs, True), ("xz", xz, True), ("ys", ys, True), ("yz", yz, True)]
        want = ort_node("QLinearLeakyRelu", inputs, [("y", xdt)], domain="com.microsoft", alpha=alpha)[0]
        table = leaky_relu_table(xs, int(xz), ys, int(yz), alpha, xdt)
        assert table.shape == (256,) and table.dtype == np.dtype(xdt)
        got = lookup(x, table)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


def test_lookup_index_convention() -> None:
    table = np.arange(256, dtype=np.int32) * 3
    np.testing.assert_array_equal(lookup(np.array([-128, -1, 0, 127], np.int8), table), [0, 381, 384, 765])
    np.testing.assert_array_equal(lookup(np.array([0, 255], np.uint8), table), [0, 765])
    np.testing.assert_array_equal(lookup(np.array([-128, 127]), table, signed=True), [0, 765])
    np.testing.assert_array_equal(lookup(np.array([-128, 127]), table, -128), [0, 765])
    with pytest.raises(SystolixError) as info:
        lookup(np.array([1], np.int32), table)
    assert str(info.value) == "lookup codes must be int8 or uint8 (or say qmin= or signed=), not int32"
    with pytest.raises(SystolixError) as info:
        lookup(np.array([300]), table, 0)
    assert str(info.value) == "lookup code out of the table's range [0, 255]"


@pytest.mark.parametrize("xdt", [np.int8, np.uint8])
def test_qlinear_concat_matches_onnxruntime(ort_node, xdt) -> None:
    """30 random concatenations of 1-4 inputs along various axes; some inputs share the output's
    parameters (copied), others are re-quantized through a table."""
    rng = np.random.default_rng(52)
    lo, hi = INFO[xdt]
    for _ in range(30):
        count = int(rng.integers(1, 5))
        shape = [int(s) for s in rng.integers(1, 5, 3)]
        axis = int(rng.integers(-3, 3))
        ys, yz = np.float32(rng.uniform(0.005, 0.2)), xdt(rng.integers(lo, hi + 1))
        xs, params, inputs = [], [], [("ys", ys, True), ("yz", yz, True)]
        for i in range(count):
            shp = list(shape)
            shp[axis] = int(rng.integers(1, 4))
            x = rng.integers(lo, hi + 1, shp).astype(xdt)
            if rng.random() < 0.3:
                x_s, xz = ys, yz
            else:
                x_s, xz = np.float32(rng.uniform(0.005, 0.2)), xdt(rng.integers(lo, hi + 1))
            xs.append(x)
            params.append((float(x_s), int(xz)))
            inputs += [(f"x{i}", x, False), (f"xs{i}", x_s, True), (f"xz{i}", xz, True)]
        want = ort_node("QLinearConcat", inputs, [("y", xdt)], domain="com.microsoft", axis=axis)[0]
        got = qlinear_concat(xs, params, float(ys), int(yz), lo, hi, axis=axis)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("xdt", [np.int8, np.uint8])
def test_quantize_linear_matches_onnxruntime(ort_node, xdt) -> None:
    """20 parameter sets x 5,000 values, a third of them exact ties and near ties of x / s."""
    rng = np.random.default_rng(53)
    lo, hi = INFO[xdt]
    for _ in range(20):
        s, zp = np.float32(rng.uniform(1e-3, 0.5)), xdt(rng.integers(lo, hi + 1))
        x = (rng.standard_normal(5000) * 60 * s).astype(np.float32)
        k = rng.integers(-300, 300, 1700) + 0.5
        x[:1700] = (k * s).astype(np.float32)
        x[1700:1800] = np.nextafter(x[1700:1800], np.float32(np.inf))
        inputs = [("x", x, False), ("s", s, True), ("z", zp, True)]
        want = ort_node("QuantizeLinear", inputs, [("y", xdt)])[0]
        got = quantize_linear(x, s, int(zp), lo, hi, out_dtype=xdt)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("xdt", [np.int8, np.uint8])
def test_dequantize_linear_matches_onnxruntime(ort_node, xdt) -> None:
    rng = np.random.default_rng(54)
    lo, hi = INFO[xdt]
    q = all_codes(xdt).astype(xdt)
    for _ in range(20):
        s, zp = np.float32(rng.uniform(1e-3, 0.5)), xdt(rng.integers(lo, hi + 1))
        want = ort_node(
            "DequantizeLinear", [("q", q, False), ("s", s, True), ("z", zp, True)], [("y", np.float32)]
        )[0]
        got = dequantize_linear(q, s, int(zp))
        assert got.shape == want.shape and got.dtype == want.dtype == np.float32
        np.testing.assert_array_equal(got.view(np.int32), want.view(np.int32))
