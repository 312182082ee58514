"""QLinearMul golden model against onnxruntime: every (a, b) code pair, int8 and uint8, broadcast forms."""

from __future__ import annotations

import numpy as np
import pytest

from systolix.quantize.golden import qlinear_mul
from systolix.quantize.golden.qlinear_mul import mul_ratio


def _inputs(a, a_s, a_zp, b, b_s, b_zp, c_s, c_zp, dt):
    return [("a", a, False), ("a_s", np.float32(a_s), True), ("a_zp", dt(a_zp), True),
            ("b", b, False), ("b_s", np.float32(b_s), True), ("b_zp", dt(b_zp), True),
            ("c_s", np.float32(c_s), True), ("c_zp", dt(c_zp), True)]


def _params(rng, dt):
    info = np.iinfo(dt)
    a_s, b_s = (np.float32(np.exp(rng.uniform(-6, 0))) for _ in range(2))
    c_s = np.float32(a_s * b_s * np.exp(rng.uniform(0, 7)))
    return a_s, b_s, c_s, *(int(rng.integers(info.min, info.max + 1)) for _ in range(3))


@pytest.mark.parametrize("dt", [np.uint8, np.int8])
def test_all_pairs_match_onnxruntime(ort_node, dt) -> None:
    """All 65,536 pairs for 12 random parameter sets per type."""
    rng = np.random.default_rng(11 if dt is np.uint8 else 12)
    info = np.iinfo(dt)
    codes = np.arange(info.min, info.max + 1).astype(dt)
    a, b = np.meshgrid(codes, codes, indexing="ij")
    for _ in range(12):
        a_s, b_s, c_s, a_zp, b_zp, c_zp = _params(rng, dt)
        want = ort_node("QLinearMul", _inputs(a, a_s, a_zp, b, b_s, b_zp, c_s, c_zp, dt), [("c", dt)],
                        domain="com.microsoft")[0]
        got = qlinear_mul(a, a_s, a_zp, b, b_s, b_zp, c_s, c_zp, info.min, info.max)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want.astype(np.int64))


@pytest.mark.parametrize("shape_a,shape_b", [((2, 6, 4, 5), (2, 6, 1, 1)), ((1, 6, 1, 1), (1, 6, 4, 5)),
                                             ((3, 7), (3, 1)), ((5,), (1,))])
def test_broadcasting_matches_onnxruntime(ort_node, shape_a, shape_b) -> None:
    """The scalar-operand spans (either input) compute the same formula per element."""
    rng = np.random.default_rng(len(shape_a) * 10 + shape_b[-1])
    dt = np.uint8
    for _ in range(6):
        a_s, b_s, c_s, a_zp, b_zp, c_zp = _params(rng, dt)
        a = rng.integers(0, 256, shape_a).astype(dt)
        b = rng.integers(0, 256, shape_b).astype(dt)
        want = ort_node("QLinearMul", _inputs(a, a_s, a_zp, b, b_s, b_zp, c_s, c_zp, dt), [("c", dt)],
                        domain="com.microsoft")[0]
        got = qlinear_mul(a, a_s, a_zp, b, b_s, b_zp, c_s, c_zp, 0, 255)
        assert got.shape == want.shape
        np.testing.assert_array_equal(got, want.astype(np.int64))


def test_zero_point_is_added_before_rounding(ort_node) -> None:
    """``v = f32(p * ratio)`` just above x.5 with a large output zero point: the float32 sum drops the bits
    that made it round up, so onnxruntime's code is one below ``RNE(v) + c_zp`` (rounding once)."""
    a_s, b_s, c_s = np.float32(1.0), np.float32(0.5 + 2.0**-24), np.float32(1.0)
    ratio = mul_ratio(a_s, b_s, c_s)
    assert ratio == np.float32(0.5 + 2.0**-24)
    a, b = np.array([1, 3], np.uint8), np.array([1, 1], np.uint8)  # p = 1, 3: v = 0.5+, 1.5+
    want = ort_node("QLinearMul", _inputs(a, a_s, 0, b, b_s, 0, c_s, 100, np.uint8), [("c", np.uint8)],
                    domain="com.microsoft")[0]
    got = qlinear_mul(a, a_s, 0, b, b_s, 0, c_s, 100, 0, 255)
    np.testing.assert_array_equal(got, want.astype(np.int64))
    once = np.rint(a.astype(np.float64) * b * ratio).astype(np.int64) + 100
    np.testing.assert_array_equal(want.astype(np.int64), [100, 102])
    np.testing.assert_array_equal(once, [101, 102])
