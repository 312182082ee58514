"""The integer QLinearAdd of the ADD unit against the float32 golden kernels, exhaustively.

For each parameter set every one of the 65,536 (a, b) code pairs is compared with
``systolix.quantize.golden.qlinear_add`` (onnxruntime's float32 sequence, emulated exactly in
NumPy). Parameter sets: random scales and zero points (int8 and uint8 tensors, both kernels, the
single-element operand swap), and targeted ones -- dyadic scales (many exact ``x.5`` ties), scales one
ulp off a dyadic value (sums within a float32 ulp of ``x.5``, where rounding twice differs from
rounding once), tiny ratios (products below the fixed-point window), ratios near the unit's limit.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from systolix.arch import add_arith
from systolix.arch.add_arith import (
    ADD_PARAM_BITS,
    TABLE_BITS,
    add_images,
    add_param_layout,
    add_table_layout,
    pack_add_params,
    qadd_model,
    unpack_add_params,
)
from systolix.errors import SystolixError
from systolix.quantize.golden.qlinear_add import qlinear_add, qlinear_add_kernel

RANGES = {"int8": (-128, 127), "uint8": (0, 255)}
VARIANTS = ("avx2", "sse2")


def quant(scale: float, zp: int, dtype: str) -> SimpleNamespace:
    lo, hi = RANGES[dtype]
    return SimpleNamespace(scale=np.float32(scale), zero_point=np.int64(zp), dtype=dtype, qmin=lo, qmax=hi)


def all_pairs(dtype: str) -> tuple[np.ndarray, np.ndarray]:
    codes = np.arange(256, dtype=np.int64) + RANGES[dtype][0]
    return np.repeat(codes, 256), np.tile(codes, 256)


def golden(a, b, scales, zps, dtype, variant, swap):
    lo, hi = RANGES[dtype]
    (sa, sb, sc), (za, zb, zc) = scales, zps
    if swap:  # what qlinear_add does for a single-element output
        return qlinear_add_kernel(b, sb, zb, a, sa, za, sc, zc, lo, hi, variant=variant, scalar_b=True)
    return qlinear_add(a, sa, za, b, sb, zb, sc, zc, lo, hi, variant=variant)


def mismatches(scales, zps, dtype: str, variant: str, swap: bool = False) -> tuple[int, int]:
    """(pairs where the model differs from golden, pairs where rounding once would differ)."""
    a, b = all_pairs(dtype)
    images = add_images(*(quant(s, z, dtype) for s, z in zip(scales, zps, strict=True)), variant, swap=swap)
    offset = 128 if dtype == "uint8" else 0
    got = qadd_model(a - offset, b - offset, images)
    assert got.dtype == np.int8 and got.shape == a.shape
    expected = golden(a, b, scales, zps, dtype, variant, swap).astype(np.int64)
    return int(np.count_nonzero(got.astype(np.int64) + offset != expected)), _single_rounding_diff(
        a - offset, b - offset, images, expected - offset)


def _single_rounding_diff(a, b, images, expected) -> int:
    """How many pairs a datapath without the float32 rounding (RNE of the exact sum) gets wrong."""
    p = images.params
    u, v = (a, b) if p.table_on_a else (b, a)
    x, xs = add_arith._product(v, p)
    s = images.value[u + 128] + x
    st = images.sticky[u + 128] | xs
    q = s >> 32
    rem = s - (q << 32)
    up = (rem > 1 << 31) | ((rem == 1 << 31) & ((st != 0) | (q & 1 == 1)))
    q = np.clip(q + up, p.lo, p.hi) + p.out_off
    return int(np.count_nonzero(q != expected))


def random_sets(rng: np.random.Generator, count: int):
    for index in range(count):
        dtype = ("int8", "uint8")[index % 2]
        lo, hi = RANGES[dtype]
        sc = np.float32(2.0 ** rng.uniform(-9, -1))
        ratios = 2.0 ** rng.uniform(-12, 5, size=2)
        if index % 10 == 9:
            ratios[rng.integers(2)] = 2.0 ** rng.uniform(-30, -12)  # products below the window
        scales = (np.float32(sc * ratios[0]), np.float32(sc * ratios[1]), sc)
        yield scales, tuple(int(z) for z in rng.integers(lo, hi + 1, size=3)), dtype, index % 7 == 3


def targeted_sets(rng: np.random.Generator, count: int):
    """Dyadic scales, and scales one ulp away from dyadic ones: sums on and next to x.5."""
    for index in range(count):
        dtype = ("int8", "uint8")[index % 2]
        lo, hi = RANGES[dtype]
        exps = rng.integers(-4, 3, size=2)
        odd = rng.choice([1, 1, 3, 5, 7], size=2)
        scales = [np.float32(o * 2.0**e / 4) for o, e in zip(odd, exps, strict=True)] + [np.float32(1.0)]
        kind = index % 3
        if kind:  # nudge the ratios by one ulp (up or down)
            direction = np.inf if kind == 1 else -np.inf
            scales[:2] = [np.nextafter(s, np.float32(direction)) for s in scales[:2]]
        scales = [np.float32(s * 2.0**-7) for s in scales]  # keep the ratios, move the scales
        if index % 11 == 5:  # near the unit's ratio limit
            scales[rng.integers(2)] = np.float32(scales[2] * rng.uniform(40, 62))
        yield tuple(scales), tuple(int(z) for z in rng.integers(lo, hi + 1, size=3)), dtype, index % 5 == 2


@pytest.mark.parametrize("variant", VARIANTS)
def test_random_sets_exhaustive(variant):
    rng = np.random.default_rng(sum(map(ord, variant)))
    sets = list(random_sets(rng, 300))
    bad = [(s, z, d, sw) for s, z, d, sw in sets if mismatches(s, z, d, variant, sw)[0]]
    assert bad == []
    assert {d for _, _, d, _ in sets} == {"int8", "uint8"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_near_tie_sets_exhaustive(variant):
    rng = np.random.default_rng(7 + sum(map(ord, variant)))
    total_sensitive = 0
    for scales, zps, dtype, swap in targeted_sets(rng, 60):
        wrong, sensitive = mismatches(scales, zps, dtype, variant, swap)
        assert wrong == 0, (scales, zps, dtype, swap)
        total_sensitive += sensitive
    # The sets reach the double rounding: rounding the exact sum once would fail on many pairs.
    assert total_sensitive > 1000


#: Sets where the sticky bit decides: sums ``x.5 + half an ulp +- a sliver below 2**-32`` (avx2, int8).
#: A, B: products ``a * ra`` with bits below the window (``ra = 2**-25 * (1 + 2**-15)``) against table
#: values ``0.5``, ``+-(0.5 + 2**-24)``; C: a table value ``2**-33`` (below the window) against the
#: exact product ``97 * ra = 0.5 + 2**-25``.
STICKY_SETS = {
    "A": ((2.0**-25 * (1 + 2.0**-15), 0.5 + 2.0**-24, 1.0), (0, 0, 0)),
    "B": ((2.0**-25 * (1 + 2.0**-15), 0.5, 1.0), (0, 0, 0)),
    "C": ((172961 * 2.0**-25, 8388611 * 2.0**-33, 1.0), (0, 3, 0)),
}


@pytest.mark.parametrize("name", list(STICKY_SETS))
def test_sticky_sets_exhaustive(name):
    scales, zps = STICKY_SETS[name]
    scales = tuple(np.float32(s) for s in scales)
    assert mismatches(scales, zps, "int8", "avx2")[0] == 0
    images = add_images(*(quant(s, z, "int8") for s, z in zip(scales, zps, strict=True)), "avx2")
    assert images.sticky.any() or images.params.sh < 0


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_many_sets_exhaustive(variant):
    rng = np.random.default_rng(99 + sum(map(ord, variant)))
    for scales, zps, dtype, swap in [*random_sets(rng, 3000), *targeted_sets(rng, 1000)]:
        assert mismatches(scales, zps, dtype, variant, swap)[0] == 0, (scales, zps, dtype, swap)


def test_swap_is_onnxruntimes_single_element_path():
    """``swap=True`` reproduces ``qlinear_add`` on one-element tensors (its operand swap)."""
    rng = np.random.default_rng(3)
    scales, zps = (np.float32(0.031), np.float32(0.017), np.float32(0.04)), (5, -20, 3)
    images = add_images(*(quant(s, z, "int8") for s, z in zip(scales, zps, strict=True)), "avx2", swap=True)
    a, b = rng.integers(-128, 128, size=(2, 300))
    expected = [qlinear_add(np.array([x]), scales[0], zps[0], np.array([y]), scales[1], zps[1], scales[2],
                            zps[2], -128, 127, variant="avx2")[0] for x, y in zip(a, b, strict=True)]
    np.testing.assert_array_equal(qadd_model(a, b, images), np.array(expected, dtype=np.int8))


def test_packing_roundtrip_and_layouts():
    images = add_images(quant(0.02, 3, "uint8"), quant(0.03, 200, "uint8"), quant(0.05, 9, "uint8"), "sse2")
    p = images.params
    assert unpack_add_params(images.prm_row) == p
    assert images.prm_row < 1 << ADD_PARAM_BITS and pack_add_params(p) == images.prm_row
    assert (p.v_off, p.out_off, p.lo, p.hi, p.round_product, p.table_on_a) == (128, -128, 0, 255, 1, 1)
    assert add_param_layout().size == ADD_PARAM_BITS
    assert add_table_layout().size == TABLE_BITS
    assert images.table.shape == (256,) and images.table.dtype == np.int64
    assert int(images.table.min()) >= 0 and int(images.table.max()) < 1 << TABLE_BITS
    value = images.table & ((1 << (TABLE_BITS - 1)) - 1)
    value = np.where(value >= 1 << (TABLE_BITS - 2), value - (1 << (TABLE_BITS - 1)), value)
    np.testing.assert_array_equal(value, images.value)
    np.testing.assert_array_equal(images.table >> (TABLE_BITS - 1), images.sticky)


@pytest.mark.parametrize(("scales", "variant", "message"), [
    ((1.0, 0.01, 0.005), "avx2",
     "QLinearAdd: the scale ratio a_scale / c_scale = 200 is too large for the ADD unit (at most 124)"),
    ((0.01, 1.0, 0.005), "sse2",
     "QLinearAdd: the scale ratio b_scale / c_scale = 200 is too large for the ADD unit (at most 124)"),
    ((0.5, 3e38, 1e-3), "sse2", "QLinearAdd: the scale ratio b_scale / c_scale = inf overflows float32; "
     "the ADD unit cannot compute it"),
    ((0.1, 0.1, 0.1), "neon", "QLinearAdd variant must be 'avx2' or 'sse2', not 'neon'"),
])
def test_errors(scales, variant, message):
    with pytest.raises(SystolixError) as info:
        add_images(*(quant(s, 0, "int8") for s in scales), variant)
    assert str(info.value) == message


def test_large_table_side_ratio_is_clamped_exactly():
    """A huge ratio on the table side is fine: out-of-range entries saturate either way."""
    scales, zps = (0.004, 3.0, 0.01), (0, 1, -2)
    assert mismatches(scales, zps, "int8", "avx2")[0] == 0
    images = add_images(*(quant(s, z, "int8") for s, z in zip(scales, zps, strict=True)), "avx2")
    assert int(np.abs(images.value).max()) < 1 << 46


EXTREME_SETS = [
    (0.022, 0.021, 1e-9),   # both ratios ~2e7: products beyond the unit's range (refused)
    (0.02, 1e8, 0.04),      # table-side ratio 2.5e9: sums beyond int32, cvtps2dq gives INT_MIN
    (0.5, 1e30, 42.0),      # table-side ratio 2.4e28
    (1e-45, 0.02, 1e3),     # product ratio underflows to zero
    (1e-40, 0.02, 0.03),    # denormal product ratio
    (0.02, 1e-40, 0.03),    # denormal table-side ratio
    (0.5, 3e38, 1e-3),      # table-side ratio overflows to inf: every sum is NaN or inf
]


@pytest.mark.parametrize("scales", EXTREME_SETS)
@pytest.mark.parametrize("dtype", ["int8", "uint8"])
def test_extreme_scales_exact_or_refused(scales, dtype):
    """Regression: outside the unit's range the compiler refused while the golden model disagreed with
    onnxruntime; within it, zero/denormal ratios were refused and overflowing sums saturated the wrong
    way. Now every set is either exact on all 65,536 pairs or refused by add_images."""
    rng = np.random.default_rng(int(scales[2] * 1e3) % 1000)
    lo = -128 if dtype == "int8" else 0
    zps = tuple(int(z) for z in rng.integers(lo, lo + 256, 3))
    for variant in VARIANTS:
        try:
            bad, _ = mismatches(scales, zps, dtype, variant)
        except SystolixError as e:
            assert "too large for the ADD unit" in str(e) or "overflows float32" in str(e)
            continue
        assert bad == 0, (variant, scales, zps)


def test_extreme_scales_covered():
    """The sets above that the unit must run (avx2): zero, denormal and huge table-side ratios."""
    for scales in EXTREME_SETS[1:6]:
        for dtype in ("int8", "uint8"):
            zps = (0, 3, -7) if dtype == "int8" else (128, 3, 200)
            assert mismatches(scales, zps, dtype, "avx2")[0] == 0
