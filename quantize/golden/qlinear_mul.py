"""QLinearMul (com.microsoft) as onnxruntime computes it on x86: an exact integer product, then float32.

onnxruntime's x86 kernel is the SSE2 one of ``core/mlas/lib/qlmul.cpp`` (there is no AVX2 file for it, so
no FMA contraction happens)::

    ratio = f32(f32(a_s * b_s) / c_s)              # ScaleA * ScaleB / ScaleC, left to right
    p     = (a - a_zp) * (b - b_zp)                # exact: 16-bit operands, 32-bit product (|p| <= 65025)
    v     = f32(f32(p) * ratio)                    # cvtepi32_ps is exact here; one float32 multiply
    w     = f32(v + f32(c_zp))                     # the zero point added in float, BEFORE rounding
    q     = saturate(cvtps2dq(w))                  # RNE; packs to int16, then to the output type

The zero point is added before the rounding to an integer, so ``w`` is rounded twice (to float32, then to
an integer): ``RNE(w)`` is not ``RNE(v) + c_zp`` when ``v``'s fraction does not survive the float32 sum
(e.g. ``v = 0.5 + 2**-24`` and ``c_zp = 100``: ``w = 100.5``, which rounds to 100, not 101).

The product is commutative and the broadcasting helper (``qlinear_binary_op.cc``) only chooses which
operand is the per-span scalar and swaps A and B when the first is (``f32(a_s * b_s)`` is symmetric), so
every broadcast form computes the same formula per element. ``cvtps2dq`` gives ``-2**31`` for anything
outside the int32 range (saturating to the type's minimum whatever the sign): :func:`cvtps_epi32`.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from .qlinear_add import cvtps_epi32

__all__ = ["mul_ratio", "qlinear_mul"]

_F32 = np.float32


def mul_ratio(a_scale: float, b_scale: float, c_scale: float) -> np.float32:
    """``f32(f32(a_s * b_s) / c_s)``: the one float32 constant of the kernel."""
    with np.errstate(all="ignore"):
        return _F32(_F32(_F32(a_scale) * _F32(b_scale)) / _F32(c_scale))


def qlinear_mul(
    a: ArrayLike,
    a_scale: float,
    a_zp: int,
    b: ArrayLike,
    b_scale: float,
    b_zp: int,
    c_scale: float,
    c_zp: int,
    qmin: int,
    qmax: int,
) -> np.ndarray:
    """QLinearMul of two quantized tensors (numpy broadcasting), bit-exact with onnxruntime on x86.

    Parameters
    ----------
    a, b : array_like
        Integer codes (int8 or uint8 values), broadcast together.
    a_scale, a_zp, b_scale, b_zp, c_scale, c_zp : float, int
        Per-tensor quantization parameters of A, B and the output.
    qmin, qmax : int
        Saturation range of the output type.

    Returns
    -------
    numpy.ndarray
        int32 codes of the broadcast shape.
    """
    ratio = mul_ratio(a_scale, b_scale, c_scale)
    p = (np.asarray(a).astype(np.int64) - int(a_zp)) * (np.asarray(b).astype(np.int64) - int(b_zp))
    with np.errstate(all="ignore"):
        v = (p.astype(_F32) * ratio).astype(_F32)
        w = (v + _F32(int(c_zp))).astype(_F32)
    return np.clip(cvtps_epi32(w), qmin, qmax).astype(np.int32)
