"""QLinearAdd golden model: exact FMA emulation, both kernel variants, broadcasting, the probe."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from systolix.quantize.golden import fma_f32, probe_qlinear_add_variant, qlinear_add
from systolix.quantize.golden.qlinear_add import qlinear_add_kernel

INFO = {np.int8: (-128, 127), np.uint8: (0, 255)}


def _f32(x: Fraction) -> Fraction:
    """Independent IEEE float32 rounding (RNE) of a rational, normal and subnormal ranges."""
    if x == 0:
        return Fraction(0)
    sign, x = (-1 if x < 0 else 1), abs(x)
    e = x.numerator.bit_length() - x.denominator.bit_length()
    while Fraction(2) ** e > x:
        e -= 1
    while Fraction(2) ** (e + 1) <= x:
        e += 1
    ulp = Fraction(2) ** (max(e, -126) - 23)
    q, r = divmod(x, ulp)
    if r * 2 > ulp or (r * 2 == ulp and q % 2 == 1):
        q += 1
    return sign * q * ulp


def _frac(v) -> Fraction:
    return Fraction(float(v))


def test_fma_is_correctly_rounded() -> None:
    """About 35,000 FMAs against exact rationals: random, cancelling, half-ulp addends, and
    double-rounding traps where only the round-to-odd step gets the right answer."""
    rng = np.random.default_rng(41)
    n = 10_000
    a = (rng.standard_normal(n) * np.exp2(rng.integers(-20, 20, n))).astype(np.float32)
    b = (rng.standard_normal(n) * np.exp2(rng.integers(-20, 20, n))).astype(np.float32)
    c_random = (rng.standard_normal(n) * np.exp2(rng.integers(-40, 40, n))).astype(np.float32)
    c_cancel = (-(a.astype(np.float64) * b)).astype(np.float32)  # a*b + c is the tiny rounding error
    p = a.astype(np.float64) * b
    c_half = (np.spacing(p.astype(np.float32)) * 0.5 * rng.choice([-1, 1], n)).astype(np.float32)
    # Double-rounding traps: a * b an exact float32 midpoint (odd 12-bit x odd 13-bit integers with a
    # 25-bit product), c far below a float64 ulp of it, so f32(f64(a * b + c)) ties to even wrongly.
    ia = rng.integers(2**10, 2**11, n) * 2 + 1
    ib = rng.integers(2**11, 2**12, n) * 2 + 1
    mid = ia * ib >= 2**24
    shift = rng.integers(-30, 30, n)
    a_mid = np.ldexp(ia.astype(np.float64), shift).astype(np.float32)[mid]
    b_mid = ib.astype(np.float32)[mid]
    c_mid = np.ldexp(rng.choice([-1.0, 1.0], n), shift - 31).astype(np.float32)[mid]
    checked = naive_wrong = 0
    for aa, bb, c in ((a, b, c_random), (a, b, c_cancel), (a, b, c_half), (a_mid, b_mid, c_mid)):
        got = fma_f32(aa, bb, c)
        assert got.dtype == np.float32 and got.shape == aa.shape
        naive = (aa.astype(np.float64) * bb + c).astype(np.float32)
        for ai, bi, ci, gi, ni in zip(aa, bb, c, got, naive, strict=True):
            want = _f32(_frac(ai) * _frac(bi) + _frac(ci))
            assert _frac(gi) == want, (ai, bi, ci)
            checked += 1
            naive_wrong += _frac(ni) != want
    assert checked > 32_000
    assert naive_wrong > 1000  # the plain float64 sum rounded to float32 fails these


def _sse2_reference(a, ra, az, b, rb, bz, cz, scalar_b=False) -> int:
    """The sse2 kernel's float32 sequence in exact rationals with an independent rounding."""
    fixed = _f32(cz - _f32(_f32(ra * az) + _f32(rb * bz)))
    if scalar_b:
        r = _f32(_f32(fixed + _f32(b * rb)) + _f32(a * ra))
    else:
        r = _f32(_f32(fixed + _f32(a * ra)) + _f32(b * rb))
    return round(r)  # Python rounds half to even


def _avx2_reference(a, ra, az, b, rb, bz, cz) -> int:
    fixed = _f32(cz - _f32(ra * az + _f32(rb * bz)))
    return round(_f32(a * ra + _f32(b * rb + fixed)))


@pytest.mark.parametrize("variant", ["avx2", "sse2"])
def test_kernel_formulas_against_rationals(variant: str) -> None:
    """4,000 (a, b) pairs per variant over 40 parameter sets against exact-rational references."""
    rng = np.random.default_rng(42)
    for _ in range(40):
        s = rng.uniform(1e-3, 0.1, 3).astype(np.float32)
        az, bz, cz = (int(v) for v in rng.integers(-128, 128, 3))
        a = rng.integers(-128, 128, 100)
        b = rng.integers(-128, 128, 100)
        ra, rb = _f32(_frac(s[0]) / _frac(s[2])), _f32(_frac(s[1]) / _frac(s[2]))
        scalar_b = variant == "sse2" and bool(rng.integers(0, 2))
        got = qlinear_add_kernel(
            a, s[0], az, b, s[1], bz, s[2], cz, -(2**20), 2**20, variant=variant, scalar_b=scalar_b
        )
        if variant == "avx2":
            want = [_avx2_reference(int(x), ra, az, int(y), rb, bz, cz) for x, y in zip(a, b, strict=True)]
        else:
            want = [
                _sse2_reference(int(x), ra, az, int(y), rb, bz, cz, scalar_b)
                for x, y in zip(a, b, strict=True)
            ]
        np.testing.assert_array_equal(got, np.array(want))


def test_probe_finds_local_variant() -> None:
    assert probe_qlinear_add_variant() in ("avx2", "sse2")
    assert probe_qlinear_add_variant() is probe_qlinear_add_variant()  # cached


@pytest.mark.parametrize("xdt", [np.int8, np.uint8])
def test_all_pairs_match_onnxruntime(ort_node, xdt) -> None:
    """All 65,536 (a, b) pairs for 12 random parameter sets, in the local variant."""
    rng = np.random.default_rng(43)
    lo, hi = INFO[xdt]
    codes = np.arange(lo, hi + 1)
    a, b = np.repeat(codes, 256).astype(xdt), np.tile(codes, 256).astype(xdt)
    for _ in range(12):
        s = rng.uniform(1e-3, 0.1, 3).astype(np.float32)
        zp = rng.integers(lo, hi + 1, 3).astype(xdt)
        inputs = [
            ("a", a, False),
            ("as", s[0], True),
            ("az", zp[0], True),
            ("b", b, False),
            ("bs", s[1], True),
            ("bz", zp[1], True),
            ("cs", s[2], True),
            ("cz", zp[2], True),
        ]
        want = ort_node("QLinearAdd", inputs, [("c", xdt)], domain="com.microsoft")[0]
        got = qlinear_add(a, s[0], int(zp[0]), b, s[1], int(zp[1]), s[2], int(zp[2]), lo, hi, out_dtype=xdt)
        assert got.shape == want.shape and got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)


EXTREME_SCALES = [
    (0.022, 0.021, 1e-9),    # sums beyond int32: cvtps2dq gives INT_MIN, i.e. the minimum, not the maximum
    (0.022, 0.021, 3e-39),   # denormal output scale: the ratios overflow to inf
    (0.02, 1e30, 42.0),      # one huge ratio
    (1e-40, 0.02, 0.03),     # a denormal ratio
    (1e-45, 0.02, 1e3),      # a ratio that underflows to zero
    (3e38, 0.02, 1e-3),      # inf ratio: NaN where the code equals the zero point
]


@pytest.mark.parametrize("scales", EXTREME_SCALES)
@pytest.mark.parametrize("xdt", [np.int8, np.uint8])
def test_extreme_scales_match_onnxruntime(ort_node, scales, xdt) -> None:
    """Regression: the golden model clipped out-of-range float sums to the nearest end (and warned
    about overflow) while onnxruntime's vector kernel gives the type's minimum; all 65,536 pairs."""
    lo, hi = INFO[xdt]
    codes = np.arange(lo, hi + 1)
    a, b = np.repeat(codes, 256).astype(xdt), np.tile(codes, 256).astype(xdt)
    s = np.array(scales, dtype=np.float32)
    zp = np.array([lo + 3, hi - 7, lo + 100]).astype(xdt)
    inputs = [("a", a, False), ("as", s[0], True), ("az", zp[0], True), ("b", b, False),
              ("bs", s[1], True), ("bz", zp[1], True), ("cs", s[2], True), ("cz", zp[2], True)]
    want = ort_node("QLinearAdd", inputs, [("c", xdt)], domain="com.microsoft")[0]
    with np.errstate(all="raise"):  # no NumPy warning may escape
        got = qlinear_add(a, s[0], int(zp[0]), b, s[1], int(zp[1]), s[2], int(zp[2]), lo, hi, out_dtype=xdt)
    np.testing.assert_array_equal(got, want)


SHAPES = [
    ((4, 5), (1,)),
    ((1,), (4, 5)),
    ((3, 1), (1, 5)),
    ((3, 5), (3, 1)),
    ((2, 3, 4), (4,)),
    ((1,), (1,)),
    ((2, 1, 4), (1, 3, 1)),
    ((2, 8, 1, 1), (1, 8, 5, 7)),
    ((2, 8, 5, 7), (1, 8, 1, 1)),
    ((), (3,)),
    ((6,), ()),
]


@pytest.mark.parametrize(("shape_a", "shape_b"), SHAPES)
def test_broadcasting_matches_onnxruntime(ort_node, shape_a, shape_b) -> None:
    rng = np.random.default_rng(44)
    for xdt in (np.int8, np.uint8):
        lo, hi = INFO[xdt]
        for _ in range(10):
            s = rng.uniform(1e-3, 0.1, 3).astype(np.float32)
            zp = rng.integers(lo, hi + 1, 3).astype(xdt)
            a = rng.integers(lo, hi + 1, shape_a).astype(xdt)
            b = rng.integers(lo, hi + 1, shape_b).astype(xdt)
            inputs = [
                ("a", a, False),
                ("as", s[0], True),
                ("az", zp[0], True),
                ("b", b, False),
                ("bs", s[1], True),
                ("bz", zp[1], True),
                ("cs", s[2], True),
                ("cz", zp[2], True),
            ]
            want = ort_node("QLinearAdd", inputs, [("c", xdt)], domain="com.microsoft")[0]
            got = qlinear_add(
                a, s[0], int(zp[0]), b, s[1], int(zp[1]), s[2], int(zp[2]), lo, hi, out_dtype=xdt
            )
            assert got.shape == want.shape and got.dtype == want.dtype
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("first_is_constant", [False, True])
def test_span_scalar_paths_exhaustive(ort_node, first_is_constant: bool) -> None:
    """Every code against every per-span constant (256 x 256), 25 parameter sets: the operand swap
    onnxruntime does when input A is the constant one is required (measured: without it, mismatches)."""
    rng = np.random.default_rng(45)
    codes = np.arange(-128, 128)
    full, col = np.tile(codes, (256, 1)).astype(np.int8), codes.reshape(256, 1).astype(np.int8)
    a, b = (col, full) if first_is_constant else (full, col)
    unswapped_mismatch = 0
    for _ in range(25):
        s = rng.uniform(1e-3, 0.1, 3).astype(np.float32)
        zp = rng.integers(-128, 128, 3).astype(np.int8)
        inputs = [
            ("a", a, False),
            ("as", s[0], True),
            ("az", zp[0], True),
            ("b", b, False),
            ("bs", s[1], True),
            ("bz", zp[1], True),
            ("cs", s[2], True),
            ("cz", zp[2], True),
        ]
        want = ort_node("QLinearAdd", inputs, [("c", np.int8)], domain="com.microsoft")[0]
        args = (s[0], int(zp[0]), s[1], int(zp[1]), s[2], int(zp[2]))
        got = qlinear_add(
            a, args[0], args[1], b, args[2], args[3], args[4], args[5], -128, 127, out_dtype=np.int8
        )
        np.testing.assert_array_equal(got, want)
        variant = probe_qlinear_add_variant()
        ab, bb = np.broadcast_arrays(a, b)
        plain = qlinear_add_kernel(ab, *args[:2], bb, *args[2:], -128, 127, variant=variant)
        unswapped_mismatch += int(np.count_nonzero(plain != want))
    if first_is_constant:
        assert unswapped_mismatch > 0
