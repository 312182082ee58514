"""LpPool (p = 2) integer definition: against an exact per-element reference, and its distance to onnxruntime."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from systolix.quantize.golden.lp_pool import lp_pool2


def _reference(acc: int, k: Fraction) -> int:
    """Nearest integer to sqrt(acc) * k, ties to even, by exhaustive rational comparison."""
    target = acc * k * k
    n = 0
    while Fraction(2 * n + 1, 2) ** 2 < target:
        n += 1
    # n is the smallest integer with (n + 1/2)**2 >= target: n, or a tie between n and n + 1
    if Fraction(2 * n + 1, 2) ** 2 == target and n % 2 == 1:
        n += 1
    return n


def test_matches_exact_reference_with_ties() -> None:
    """Random codes (2x2 windows, padded) and scales whose ratio makes many exact x.5 values (K = 1/2: a
    perfect square times 1/4), every element against the exact reference."""
    rng = np.random.default_rng(4)
    for x_s, y_s, zp in ((0.5, 1.0, 0), (0.037, 0.05, 3), (1.0, 2.0, -7)):
        x = rng.integers(-128, 128, size=(2, 3, 5, 6)).astype(np.int8)
        got = lp_pool2(x, x_s, zp, y_s, 0, -128, 127, kernel=[2, 2], strides=[1, 2], pads=[1, 0, 0, 1])
        k = Fraction(float(np.float32(x_s))) / Fraction(float(np.float32(y_s)))
        d = np.pad(x.astype(np.int64) - zp, ((0, 0), (0, 0), (1, 0), (0, 1)))
        want = np.zeros(got.shape, dtype=np.int64)
        for idx in np.ndindex(*got.shape):
            n, c, i, j = idx
            acc = int((d[n, c, i : i + 2, 2 * j : 2 * j + 2] ** 2).sum())
            want[idx] = min(127, _reference(acc, k))
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_ties_round_to_even() -> None:
    """acc = 1, 9, 25 with K = 1/2: exactly 0.5, 1.5, 2.5 -> 0, 2, 2."""
    x = np.array([1, 3, 5], dtype=np.int8).reshape(1, 3, 1)
    got = lp_pool2(x, 0.5, 0, 1.0, 0, -128, 127, kernel=[1])
    np.testing.assert_array_equal(got.reshape(-1), [0, 2, 2])


def test_distance_to_onnxruntime_float_pool() -> None:
    """onnxruntime's DQ -> LpPool -> Q in float32 is within one code of the integer definition."""
    rng = np.random.default_rng(8)
    x = rng.integers(0, 256, size=(4, 6, 9, 9)).astype(np.uint8)
    xs, xz, ys, yz = np.float32(0.021), np.uint8(17), np.float32(0.09), np.uint8(5)

    inits = [numpy_helper.from_array(np.array(v), n) for n, v in (("xs", xs), ("xz", xz), ("ys", ys), ("yz", yz))]
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
             helper.make_node("LpPool", ["xf"], ["yf"], p=2, kernel_shape=[3, 3]),
             helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "lp", [helper.make_tensor_value_info("x", TensorProto.UINT8, list(x.shape))],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = lp_pool2(x, xs, int(xz), ys, int(yz), 0, 255, kernel=[3, 3])
    assert got.shape == want.shape
    diff = np.abs(got.astype(np.int64) - want)
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.01
