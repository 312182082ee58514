"""The integer QLinearMul of the MUL unit against the float32 golden kernel, exhaustively.

For each parameter set every one of the 65,536 (a, b) code pairs is compared with
``systolix.quantize.golden.qlinear_mul`` (onnxruntime's x86 float32 sequence, checked against onnxruntime
in ``tests/quantize/golden/test_golden_qlinear_mul.py``): random scales and zero points over every mix of
int8 and uint8 tensors, dyadic scales (exact ``x.5`` ties), scales one ulp off a dyadic value (sums within
a float32 ulp of ``x.5``), tiny ratios (products only in the sticky bit) and ratios at the unit's limit.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from systolix.arch.mul_arith import (
    MUL_PARAM_BITS,
    MulParams,
    mul_param_layout,
    mul_params,
    pack_mul_params,
    qmul_model,
    unpack_mul_params,
)
from systolix.errors import SystolixError
from systolix.quantize.golden.qlinear_mul import qlinear_mul

RANGES = {"int8": (-128, 127), "uint8": (0, 255)}
TYPES = list(itertools.product(("int8", "uint8"), repeat=3))


def quant(scale: float, zp: int, dtype: str) -> SimpleNamespace:
    lo, hi = RANGES[dtype]
    return SimpleNamespace(scale=np.float32(scale), zero_point=np.int64(zp), dtype=dtype, qmin=lo, qmax=hi)


def check_all_pairs(qa, qb, qy) -> None:
    params = mul_params(qa, qb, qy)
    a = np.arange(qa.qmin, qa.qmax + 1)[:, None]
    b = np.arange(qb.qmin, qb.qmax + 1)[None, :]
    want = qlinear_mul(a, qa.scale, int(qa.zero_point), b, qb.scale, int(qb.zero_point), qy.scale,
                       int(qy.zero_point), qy.qmin, qy.qmax)
    offset = {"uint8": 128, "int8": 0}
    got = qmul_model(a - offset[qa.dtype], b - offset[qb.dtype], params).astype(np.int64) + offset[qy.dtype]
    assert got.shape == want.shape == (256, 256)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("types", TYPES, ids=["-".join(t) for t in TYPES])
def test_random_parameters(types) -> None:
    rng = np.random.default_rng(sum(map(ord, "".join(types))))
    for _ in range(12):
        scales = [np.exp(rng.uniform(-7, 0)), np.exp(rng.uniform(-7, 0))]
        scales.append(scales[0] * scales[1] * np.exp(rng.uniform(-6, 9)))  # ratios up to ~400: saturating products
        qs = [quant(s, rng.integers(*RANGES[t], endpoint=True), t) for s, t in zip(scales, types, strict=True)]
        check_all_pairs(*qs)


@pytest.mark.parametrize("scales,zps", [
    ((0.25, 0.125, 2.0), (3, -7, 11)),                        # dyadic ratio 2**-6: many exact ties
    ((0.5, 0.5 + 2.0**-24, 4.0), (0, 0, 100)),                 # one ulp above a dyadic ratio
    ((0.5, 0.5 - 2.0**-25, 4.0), (-20, 9, -99)),               # one ulp below
    ((2.0**-30, 2.0**-30, 1.0), (5, 0, 3)),                   # products only in the sticky bit
    ((1e-20, 1e-20, 1.0), (5, 0, -3)),                        # float32 denormal products
    ((0.05, 0.01, 0.0), (0, 0, 0)),                           # infinite ratio: refused below, not here
])
def test_targeted_parameters(scales, zps) -> None:
    qs = [quant(s, z, "int8") for s, z in zip(scales, zps, strict=True)]
    if scales[2] == 0.0:
        with pytest.raises(SystolixError, match="is not a finite non-negative float32"):
            mul_params(*qs)
        return
    check_all_pairs(*qs)


@pytest.mark.parametrize("ratio", [0.126, 0.5, 1.0, 3.0, 255.0, 4000.0, 2.0**16 * (1 - 2.0**-10)])
def test_large_ratios_saturate_like_onnxruntime(ratio) -> None:
    """Products beyond the window are clamped (the output saturates with their sign): exact up to the limit."""
    check_all_pairs(quant(1.0, 0, "int8"), quant(ratio, 0, "int8"), quant(1.0, 5, "int8"))
    if ratio < 2.0**30 / (200 * 252):  # max|p| = 200 * 252 with these uint8 zero points
        check_all_pairs(quant(1.0, 200, "uint8"), quant(ratio, 3, "uint8"), quant(1.0, 255, "uint8"))


def test_ratio_beyond_the_int32_conversion_is_refused() -> None:
    """``max|p| * ratio + 256 >= 2**30``: zero points 0 (int8), max|p| = 128 * 128, limit 2**16."""
    with pytest.raises(SystolixError, match=r"^QLinearMul: the scale ratio a_scale \* b_scale / c_scale = 65536 is "
                                            r"too large for the MUL unit \(at most 6\.554e\+04 with these zero "
                                            r"points: beyond, onnxruntime's int32 conversion overflows\)$"):
        mul_params(quant(1.0, 0, "int8"), quant(2.0**16, 0, "int8"), quant(1.0, 0, "int8"))


def test_params_pack_round_trip_and_layout() -> None:
    p = MulParams(m=(1 << 23) + 12345, sh=-41, a_bias=255, b_bias=-255, c_zp=-128, lo=-128, hi=127, out_off=-128)
    word = pack_mul_params(p)
    assert 0 <= word < 1 << MUL_PARAM_BITS
    assert unpack_mul_params(word) == p
    assert mul_param_layout().size == MUL_PARAM_BITS == 96
    with pytest.raises(SystolixError, match="MUL parameter a_bias=600 does not fit 10 bits"):
        MulParams(m=0, sh=0, a_bias=600, b_bias=0, c_zp=0, lo=0, hi=0, out_off=0)
