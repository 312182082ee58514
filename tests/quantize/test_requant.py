"""The integer-only requantization against its float32 form, exact rationals and onnxruntime."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from systolix.errors import SystolixError
from systolix.quantize.requant import (
    gap_output_scale,
    output_scale,
    qgemm_output_scale,
    requantize,
    requantize_float32,
    scale_to_mantissa_exponent,
)


def _random_acc(rng: np.random.Generator, n: int) -> np.ndarray:
    """int32 accumulators spread over all magnitudes (uniform bit length), both signs, plus extremes."""
    bits = rng.integers(0, 32, n)
    acc = rng.integers(0, 1 << 62, n) >> (62 - bits)
    acc = np.where(rng.random(n) < 0.5, -acc, acc)
    acc[:4] = [-(2**31), 2**31 - 1, 0, -1]
    return np.clip(acc, -(2**31), 2**31 - 1).astype(np.int32)


def _random_scales(rng: np.random.Generator, n: int, lo: float = -34.0, hi: float = 2.0) -> np.ndarray:
    return np.exp2(rng.uniform(lo, hi, n)).astype(np.float32)


def _compare(acc: np.ndarray, scale: np.ndarray, zp: int, qmin: int, qmax: int) -> int:
    a = requantize(acc, scale, zp, qmin, qmax, channel_axis=0)
    b = requantize_float32(acc, scale, zp, qmin, qmax, channel_axis=0)
    assert a.shape == b.shape == acc.shape and a.dtype == b.dtype == np.int32
    return int(np.count_nonzero(a != b))


def test_random_pairs_match_float32() -> None:
    """2M random (acc, scale) pairs, narrow (8-bit) and wide output ranges: no mismatch."""
    rng = np.random.default_rng(1)
    n = 1_000_000
    acc = _random_acc(rng, n)
    scale = _random_scales(rng, n)
    assert _compare(acc, scale, 5, -128, 127) == 0
    assert _compare(acc, scale, 0, -(2**30), 2**30) == 0


def _near_ties(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs with acc * scale within a few ulps of k + 1/2 (k an integer of up to 2**20)."""
    scale = _random_scales(rng, n, -24.0, 0.0)
    k = rng.integers(0, 1 << rng.integers(1, 21, n))
    target = (k + 0.5) / scale.astype(np.float64)
    acc = np.rint(target).astype(np.int64) + rng.integers(-2, 3, n)
    keep = (acc > 0) & (acc < 2**31)
    sign = np.where(rng.random(n) < 0.5, -1, 1)
    return (sign * acc)[keep].astype(np.int32), scale[keep]


def test_near_ties_match_float32() -> None:
    """1M constructed near-tie pairs (wide range, so no clamping hides a difference): no mismatch."""
    rng = np.random.default_rng(2)
    acc, scale = _near_ties(rng, 1_000_000)
    assert acc.size > 800_000
    v = np.abs(acc.astype(np.float64) * scale.astype(np.float64))
    assert np.count_nonzero(np.abs(v - np.floor(v) - 0.5) < 1e-6) > 10_000  # really near ties
    assert _compare(acc, scale, 0, -(2**30), 2**30) == 0
    assert _compare(acc, scale, -3, -128, 127) == 0


def test_exact_ties() -> None:
    """Power-of-two scales make exact ties: half to even, symmetric in sign."""
    acc = np.array([1, 3, 5, 7, -1, -3, -5, 2**24 + 1, 2**24 + 3, -(2**31)], dtype=np.int32)
    scale = np.full(acc.shape, 0.5, dtype=np.float32)
    expected = [0, 2, 2, 4, 0, -2, -2, 2**23, 2**23 + 2, -(2**30)]
    got = requantize(acc, scale, 0, -(2**31), 2**31 - 1, channel_axis=0)
    np.testing.assert_array_equal(got, np.array(expected, dtype=np.int32))
    assert _compare(acc, scale, 0, -(2**31), 2**31 - 1) == 0


def test_extreme_scales_match_float32() -> None:
    """Scales from 2**-140 (denormal) to 2**40 (overflowing products saturate): no mismatch."""
    rng = np.random.default_rng(3)
    n = 200_000
    acc = _random_acc(rng, n)
    scale = _random_scales(rng, n, -140.0, 40.0)
    assert _compare(acc, scale, 7, -128, 127) == 0
    assert _compare(acc, scale, 0, -(2**20), 2**20) == 0


def _to_fraction(x: np.float32) -> Fraction:
    return Fraction(float(x))


def test_mantissa_exponent_is_exact() -> None:
    rng = np.random.default_rng(4)
    bits = rng.integers(1, 0x7F800000, 20_000, dtype=np.int64).astype(np.uint32)  # all positive finite
    scale = bits.view(np.float32)
    m, e = scale_to_mantissa_exponent(scale)
    assert m.dtype == e.dtype == np.int64
    assert np.all((m >= 2**23) & (m < 2**24))
    for s, mi, ei in zip(scale[:2000], m[:2000], e[:2000], strict=True):
        assert Fraction(int(mi)) / Fraction(2) ** int(ei) == _to_fraction(s)
    den = np.array([1, 2, 3, 0x7FFFFF], dtype=np.uint32).view(np.float32)
    m, e = scale_to_mantissa_exponent(den)
    for s, mi, ei in zip(den, m, e, strict=True):
        assert 2**23 <= mi < 2**24
        assert Fraction(int(mi)) / Fraction(2) ** int(ei) == _to_fraction(s)


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0, "0.0"), (-0.5, "-0.5"), (float("inf"), "inf"), (float("nan"), "nan")],
)
def test_bad_scale_message(value: float, text: str) -> None:
    with pytest.raises(SystolixError) as info:
        scale_to_mantissa_exponent(np.array([1.0, value], dtype=np.float32))
    assert str(info.value) == f"requantization scale must be a positive finite float32, not {text}"


@pytest.mark.parametrize(("value", "text"), [(-0.5, "-0.5"), (float("nan"), "nan")])
def test_negative_or_nan_scale_refused(value: float, text: str) -> None:
    with pytest.raises(SystolixError) as info:
        requantize(np.array([1], np.int32), np.array([value], np.float32), 0, -128, 127)
    assert str(info.value) == f"requantization scale must be zero, positive or +inf, not {text}"


@pytest.mark.parametrize(("qmin", "qmax", "zp"), [(-128, 127, 5), (0, 255, 200), (-128, 127, -128)])
def test_zero_and_infinite_scales(qmin: int, qmax: int, zp: int) -> None:
    """Regression: an underflowed (0) or overflowed (inf) scale was refused although onnxruntime runs it:
    0 gives the zero point; inf gives the top for acc > 0, qmin otherwise (maxps(NaN, lo) is lo)."""
    acc = np.array([[-5, 0, 7, -(2**31), 2**31 - 1, 0]], dtype=np.int32).T
    scale = np.array([0.0, np.inf, 1e-45, 3e38], dtype=np.float32)
    got = requantize(np.broadcast_to(acc, (6, 4)), scale, zp, qmin, qmax)
    want = requantize_float32(np.broadcast_to(acc, (6, 4)), scale, zp, qmin, qmax)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got[:, 0], np.full(6, zp))
    np.testing.assert_array_equal(got[:, 1], [qmin, qmin, qmax, qmin, qmax, qmin])


def test_scale_formulas_left_to_right() -> None:
    """The float32 scale formulas against exact rationals rounded step by step."""
    rng = np.random.default_rng(5)

    for _ in range(300):
        xs, ys, alpha = (np.float32(v) for v in rng.uniform(1e-3, 1.0, 3))
        ws = rng.uniform(1e-4, 1e-1, 4).astype(np.float32)
        hw = int(rng.integers(1, 5000))
        fx, fy, fa = _to_fraction(xs), _to_fraction(ys), _to_fraction(alpha)
        got = output_scale(xs, ws, ys)
        want = [_round_f32(_round_f32(fx * _to_fraction(w)) / fy) for w in ws]
        assert [Fraction(float(g)) for g in got] == want
        got = qgemm_output_scale(alpha, xs, ws, ys)
        want = [_round_f32(_round_f32(_round_f32(fa * fx) * _to_fraction(w)) / fy) for w in ws]
        assert [Fraction(float(g)) for g in got] == want
        got = gap_output_scale(xs, ys, hw)
        assert got.dtype == np.float32 and got.shape == (1,)
        assert Fraction(float(got[0])) == _round_f32(fx / _round_f32(fy * hw))


def _round_f32(x: Fraction) -> Fraction:
    """Independent float32 rounding (RNE) of a positive rational, normal range."""
    assert x > 0
    e = x.numerator.bit_length() - x.denominator.bit_length()
    if Fraction(2) ** e > x:
        e -= 1
    while Fraction(2) ** (e + 1) <= x:
        e += 1
    ulp = Fraction(2) ** (e - 23)
    q, r = divmod(x, ulp)
    if r * 2 > ulp or (r * 2 == ulp and q % 2 == 1):
        q += 1
    return q * ulp


def _ort_qgemm_with_bias(acc: np.ndarray, b_scale: np.ndarray, y_scale: float, y_zp: int) -> np.ndarray:
    """onnxruntime QGemm on zero inputs, so that its accumulator is exactly the int32 bias ``acc``."""
    n, m = acc.shape
    inits = [
        numpy_helper.from_array(np.array(1.0, np.float32), "as"),
        numpy_helper.from_array(np.array(0, np.int8), "az"),
        numpy_helper.from_array(np.zeros((m, 1), np.int8), "b"),
        numpy_helper.from_array(b_scale.astype(np.float32), "bs"),
        numpy_helper.from_array(np.zeros(m, np.int8), "bz"),
        numpy_helper.from_array(acc.astype(np.int32), "c"),
        numpy_helper.from_array(np.array(y_scale, np.float32), "ys"),
        numpy_helper.from_array(np.array(y_zp, np.int8), "yz"),
    ]
    node = helper.make_node(
        "QGemm", ["a", "as", "az", "b", "bs", "bz", "c", "ys", "yz"], ["y"], domain="com.microsoft", transB=1
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("a", TensorProto.INT8, [n, 1])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [n, m])],
        initializer=inits,
    )
    opsets = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=10)
    so = ort.SessionOptions()
    so.add_session_config_entry("session.x64quantprecision", "1")
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"a": np.zeros((n, 1), np.int8)})[0]


def test_against_onnxruntime_near_ties() -> None:
    """Near-tie accumulators injected through QGemm's bias: onnxruntime's own requantization agrees."""
    rng = np.random.default_rng(6)
    m, n = 16, 4096
    y_scale = 1.0
    b_scale = _random_scales(rng, m, -14.0, -4.0)  # the effective scale is f32(f32(1 * b_s) / 1) = b_s
    k = rng.integers(-120, 120, (n, m))
    target = (k + 0.5) / b_scale.astype(np.float64)
    acc = np.rint(target).astype(np.int64) + rng.integers(-1, 2, (n, m))
    acc = np.clip(acc, -(2**31), 2**31 - 1).astype(np.int32)
    got = _ort_qgemm_with_bias(acc, b_scale, y_scale, 3)
    scale = qgemm_output_scale(1.0, 1.0, b_scale, y_scale)
    mine = requantize(acc, scale, 3, -128, 127).astype(np.int8)
    assert mine.shape == got.shape and mine.dtype == got.dtype
    np.testing.assert_array_equal(mine, got)


def test_near_ties_need_both_roundings() -> None:
    """The near-tie set is sharp: dropping step 3 (one rounding of a * M / 2**E) gives mismatches."""
    from systolix.quantize.requant import round_shift_rne, round_to_significant_bits

    rng = np.random.default_rng(2)
    acc, scale = _near_ties(rng, 200_000)
    m, e = scale_to_mantissa_exponent(scale)
    a = round_to_significant_bits(np.abs(acc.astype(np.int64)), 24)
    single = round_shift_rne(a * m, np.minimum(e, 62)) * np.sign(acc)
    want = requantize_float32(acc, scale, 0, -(2**30), 2**30, channel_axis=0)
    assert np.count_nonzero(single != want) > 1000  # measured: 18488 of 168821
