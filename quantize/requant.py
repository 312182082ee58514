"""The one requantization arithmetic: int32 accumulator -> 8-bit output code.

onnxruntime (``MlasRequantizeOutput`` and the fused convolution kernels) turns an int32
accumulator into an output code with float32 operations: ``v = f32(acc)``, ``v = f32(v * scale)``,
clamp to ``[qmin - zp, qmax - zp]``, round half to even, add the zero point. This module gives
that sequence twice: :func:`requantize_float32` does it literally in float32 (a cross-check only),
and :func:`requantize` does it with integers only, which is the contract the hardware requantizer
implements and the golden model uses.

The integer form. Write the float32 scale as ``M * 2**-E`` where ``M`` is the 24-bit significand
with its hidden bit (``2**23 <= M < 2**24``) and ``E`` an integer (:func:`scale_to_mantissa_exponent`;
denormal scales are normalised the same way, with a larger ``E``). For each accumulator:
(1) take ``a = |acc|`` and round it to 24 significant bits, ties to even -- the int32 to float32
conversion, which only changes values with ``|acc| >= 2**24``; (2) form the exact product
``X = a * M``, below ``2**56``; (3) round ``X`` to 24 significant bits, ties to even -- the rounding
of the float32 multiply: find the bit length ``n`` of ``X`` and, when ``n > 24``, round away its
``n - 24`` low bits; (4) shift right by ``E`` with round half to even, ``r = RNE(X' / 2**E)`` -- the
float to int conversion; (5) restore the sign, ``q = clamp(sign(acc) * r, qmin - zp, qmax - zp) + zp``.
Rounding half to even is symmetric in sign, so working on magnitudes is exact, and clamping after
rounding equals clamping before because the bounds are integers. Both roundings (3) and (4) are
needed: a single rounding of ``a * M / 2**E`` is wrong near ties. A float32 overflow (possible only
for scales near the float32 maximum) saturates in both forms.

The scales fed to requantization are formed in float32, left to right, exactly as onnxruntime does:
:func:`output_scale` (QLinearConv, QLinearMatMul), :func:`qgemm_output_scale` (QGemm) and
:func:`gap_output_scale` (QLinearGlobalAveragePool).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from systolix.errors import SystolixError

__all__ = [
    "bit_length",
    "gap_output_scale",
    "output_scale",
    "qgemm_output_scale",
    "requantize",
    "requant_constants",
    "requantize_float32",
    "round_shift_rne",
    "round_to_significant_bits",
    "scale_to_mantissa_exponent",
]

_F32 = np.float32


def _f32_vector(value: ArrayLike) -> np.ndarray:
    return np.asarray(value, dtype=_F32).reshape(-1)


def _f32_scalar(value: ArrayLike, what: str) -> np.float32:
    arr = np.asarray(value, dtype=_F32).reshape(-1)
    if arr.size != 1:
        raise SystolixError(f"{what} must be a single value, not {arr.size} values")
    return arr[0]


def output_scale(x_scale: ArrayLike, w_scale: ArrayLike, y_scale: ArrayLike) -> np.ndarray:
    """Requantization scale of QLinearConv and QLinearMatMul.

    Parameters
    ----------
    x_scale, y_scale : float
        Input and output scales (one value each).
    w_scale : float or array_like
        Weight scale, per tensor or per output channel.

    Returns
    -------
    numpy.ndarray
        float32, one value per weight scale: ``f32(f32(x_s * w_s[c]) / y_s)``.
    """
    xs = _f32_scalar(x_scale, "x_scale")
    ys = _f32_scalar(y_scale, "y_scale")
    with np.errstate(all="ignore"):  # float32 overflow and underflow as onnxruntime has them
        prod = (xs * _f32_vector(w_scale)).astype(_F32)
        return (prod / ys).astype(_F32)


def qgemm_output_scale(
    alpha: float, a_scale: ArrayLike, b_scale: ArrayLike, y_scale: ArrayLike
) -> np.ndarray:
    """Requantization scale of com.microsoft QGemm: ``f32(f32(f32(alpha * a_s) * b_s[c]) / y_s)``.

    Parameters
    ----------
    alpha : float
        The QGemm ``alpha`` attribute (a float32 attribute).
    a_scale, y_scale : float
        Scales of A and of the output.
    b_scale : float or array_like
        Scale of B, per tensor or per column.

    Returns
    -------
    numpy.ndarray
        float32 scales, one per value of ``b_scale``.
    """
    al = _f32_scalar(alpha, "alpha")
    a_s = _f32_scalar(a_scale, "a_scale")
    ys = _f32_scalar(y_scale, "y_scale")
    with np.errstate(all="ignore"):
        t = _F32(al * a_s)
        prod = (t * _f32_vector(b_scale)).astype(_F32)
        return (prod / ys).astype(_F32)


def gap_output_scale(x_scale: ArrayLike, y_scale: ArrayLike, hw: int) -> np.ndarray:
    """Requantization scale of QLinearGlobalAveragePool: ``f32(x_s / f32(y_s * f32(hw)))``.

    Parameters
    ----------
    x_scale, y_scale : float
        Input and output scales.
    hw : int
        Number of pooled elements (product of the spatial dimensions).

    Returns
    -------
    numpy.ndarray
        A float32 array of one element.
    """
    xs = _f32_scalar(x_scale, "x_scale")
    ys = _f32_scalar(y_scale, "y_scale")
    with np.errstate(all="ignore"):
        denom = _F32(ys * _F32(hw))
        return np.array([xs / denom], dtype=_F32)


def requant_constants(
    scale: ArrayLike, y_zp: ArrayLike, qmin: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The integer constants of requantization, one set per scale: ``(M, E, zero point)``.

    They cover every float32 scale onnxruntime can form from finite quantization parameters:

    - positive, normal or denormal: ``scale == M * 2**-E`` (:func:`scale_to_mantissa_exponent`), the
      zero point unchanged;
    - zero (an underflowed product or quotient): ``M = 0``, so every output is the zero point, as
      ``f32(acc) * 0`` is;
    - ``+inf`` (an overflowed one): ``f32(acc) * inf`` is ``+-inf`` or, for ``acc == 0``, NaN, which
      x86's ``maxps`` against the lower bound turns into the lower bound: the output is the top of the
      range for ``acc > 0`` and ``qmin`` otherwise (measured on QLinearConv, depthwise, QLinearMatMul,
      int8 and uint8). Given here as ``M = 2**23, E = 0`` (every non-zero accumulator saturates) with
      the zero point replaced by ``qmin``, which makes ``acc == 0`` come out as ``qmin`` too.

    Parameters
    ----------
    scale : array_like
        float32 scales.
    y_zp : array_like
        Output zero point, one value or one per scale.
    qmin : int
        Lowest output code.

    Returns
    -------
    (M, E, zp) : tuple of numpy.ndarray
        int64 arrays of the shape of ``scale``.

    Raises
    ------
    SystolixError
        A negative or NaN scale (onnxruntime's quantizers never write one).
    """
    s = np.asarray(scale, dtype=_F32)
    zp = np.broadcast_to(np.asarray(y_zp, dtype=np.int64), s.shape).copy()
    bad = np.isnan(s) | (s < 0)
    if np.any(bad):
        first = s[bad].reshape(-1)[0]
        raise SystolixError(f"requantization scale must be zero, positive or +inf, not {float(first)!r}")
    zero, inf = s == 0, np.isinf(s)
    mant, exp = scale_to_mantissa_exponent(np.where(zero | inf, _F32(1), s))
    mant = np.where(zero, 0, mant)
    exp = np.where(inf, 0, exp)
    zp = np.where(inf, np.int64(qmin), zp)
    return mant.astype(np.int64), exp.astype(np.int64), zp.astype(np.int64)


def scale_to_mantissa_exponent(scale: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Split float32 scales into integer mantissa and exponent: ``scale == M * 2**-E`` exactly.

    Parameters
    ----------
    scale : array_like
        float32 scale(s); converted to float32 first.

    Returns
    -------
    (M, E) : tuple of numpy.ndarray
        int64 arrays of the same shape as ``scale``; ``2**23 <= M < 2**24`` (the significand with
        its hidden bit). Denormal scales are normalised, so their ``E`` exceeds 149.

    Raises
    ------
    SystolixError
        If a scale is zero, negative, infinite or NaN.
    """
    s = np.asarray(scale, dtype=_F32)
    bad = ~np.isfinite(s) | (s <= 0)
    if np.any(bad):
        first = s[bad].reshape(-1)[0]
        raise SystolixError(f"requantization scale must be a positive finite float32, not {float(first)!r}")
    bits = s.view(np.uint32).astype(np.int64)
    biased = (bits >> 23) & 0xFF
    frac = bits & 0x7FFFFF
    normal = biased > 0
    mant = np.where(normal, frac | (1 << 23), frac)
    exp = np.where(normal, 150 - biased, 149)
    # Normalise denormals: shift the significand up until its top bit is bit 23.
    shift = 23 - (bit_length(mant) - 1)
    mant = mant << shift
    exp = exp + shift
    return mant.astype(np.int64), exp.astype(np.int64)


def bit_length(x: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 values (0 for 0), exactly, vectorised.

    Parameters
    ----------
    x : numpy.ndarray
        Non-negative integers below ``2**62``.

    Returns
    -------
    numpy.ndarray
        int64 array, ``floor(log2(x)) + 1`` (and 0 where ``x == 0``).
    """
    x = np.asarray(x, dtype=np.int64)
    _, e = np.frexp(x.astype(np.float64))
    e = e.astype(np.int64)
    # float64 may round x up to the next power of two: correct that case.
    too_big = (e > 0) & (x < np.left_shift(np.int64(1), np.maximum(e - 1, 0)))
    return np.where(too_big, e - 1, e)


def round_shift_rne(x: np.ndarray, shift: np.ndarray | int) -> np.ndarray:
    """``RNE(x / 2**shift)`` for non-negative int64 ``x`` and ``0 <= shift <= 62``.

    Parameters
    ----------
    x : numpy.ndarray
        Non-negative int64 values.
    shift : numpy.ndarray or int
        Right-shift amounts, broadcast against ``x``.

    Returns
    -------
    numpy.ndarray
        int64, the quotient rounded half to even.
    """
    x = np.asarray(x, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    q = x >> s
    rem = x - (q << s)
    half = np.where(s > 0, np.left_shift(np.int64(1), np.maximum(s - 1, 0)), 1)
    up = (rem > half) | ((rem == half) & (s > 0) & ((q & 1) == 1))
    return q + up.astype(np.int64)


def round_to_significant_bits(x: np.ndarray, bits: int = 24) -> np.ndarray:
    """Round non-negative int64 values to ``bits`` significant bits, ties to even.

    Parameters
    ----------
    x : numpy.ndarray
        Non-negative int64 values below ``2**62``.
    bits : int
        Number of significant bits kept (24 for float32).

    Returns
    -------
    numpy.ndarray
        int64 values; unchanged where ``x < 2**bits``.
    """
    x = np.asarray(x, dtype=np.int64)
    drop = np.maximum(bit_length(x) - bits, 0)
    return round_shift_rne(x, drop) << drop


def _channel_view(values: np.ndarray, ndim: int, channel_axis: int) -> np.ndarray:
    """Reshape a per-channel vector so that it broadcasts along ``channel_axis`` of an ndim array."""
    if values.size == 1:
        return values.reshape(())
    axis = channel_axis % ndim
    shape = [1] * ndim
    shape[axis] = values.size
    return values.reshape(shape)


def _bounds(y_zp: ArrayLike, qmin: int, qmax: int, ndim: int, channel_axis: int):
    zp = _channel_view(np.asarray(y_zp, dtype=np.int64).reshape(-1), ndim, channel_axis)
    return zp, np.int64(qmin) - zp, np.int64(qmax) - zp


def requantize(
    acc: ArrayLike,
    scale: ArrayLike,
    y_zp: ArrayLike,
    qmin: int,
    qmax: int,
    *,
    channel_axis: int = 1,
) -> np.ndarray:
    """Integer-only requantization (module docstring), bit-exact with onnxruntime's float32 sequence.

    Parameters
    ----------
    acc : array_like
        int32 accumulator values (already wrapped to int32).
    scale : array_like
        float32 scale, one value or one per channel along ``channel_axis``.
    y_zp : array_like
        Output zero point, one value or one per channel.
    qmin, qmax : int
        Output code range (for example -128, 127).
    channel_axis : int, optional
        Axis of ``acc`` that per-channel ``scale``/``y_zp`` run along (default 1, the channel axis
        of NCHW and the column axis of a matrix product).

    Returns
    -------
    numpy.ndarray
        int32 codes in ``[qmin, qmax]``, same shape as ``acc``; the caller casts to the output type.
    """
    acc = np.asarray(acc)
    if acc.ndim == 0:
        return requantize(acc.reshape(1), scale, y_zp, qmin, qmax, channel_axis=0).reshape(())
    a64 = acc.astype(np.int64)
    sc = np.asarray(scale, dtype=_F32).reshape(-1)
    zp_in = np.asarray(y_zp, dtype=np.int64).reshape(-1)
    if zp_in.size != 1 and sc.size == 1:
        sc = np.broadcast_to(sc, zp_in.shape)
    mant, exp, zp_eff = requant_constants(sc, zp_in if zp_in.size == sc.size else zp_in[0], qmin)
    mant = _channel_view(mant, acc.ndim, channel_axis)
    exp = _channel_view(exp, acc.ndim, channel_axis)
    zp, lo, hi = _bounds(zp_eff, qmin, qmax, acc.ndim, channel_axis)

    mag = np.abs(a64)
    a24 = round_to_significant_bits(mag, 24)  # step 1: int32 -> float32
    prod = a24 * mant  # step 2: exact, < 2**56
    x24 = round_to_significant_bits(prod, 24)  # step 3: float32 multiply rounding
    # Step 4: RNE shift by E. X' < 2**56, so any E >= 58 gives 0 (as does E = 58).
    e = np.broadcast_to(exp, x24.shape)
    r = round_shift_rne(x24, np.clip(e, 0, 58))
    # Scales >= 2**24 (E <= 0): a left shift; any non-zero result then exceeds every 8/16-bit bound.
    neg_e = e <= 0
    if np.any(neg_e):
        left = np.minimum(-e, 5)
        big = np.where(-e > 5, np.where(x24 > 0, np.int64(1) << 61, 0), x24 << left)
        r = np.where(neg_e, big, r)
    signed = np.where(a64 < 0, -r, r)  # step 5
    q = np.clip(signed, lo, hi) + zp
    return q.astype(np.int32)


def requantize_float32(
    acc: ArrayLike,
    scale: ArrayLike,
    y_zp: ArrayLike,
    qmin: int,
    qmax: int,
    *,
    channel_axis: int = 1,
) -> np.ndarray:
    """onnxruntime's float32 requantization sequence, literally (a cross-check for :func:`requantize`).

    ``v = f32(acc)``; ``v = f32(v * scale)``; clamp to ``[qmin - zp, qmax - zp]``; round half to
    even; add ``zp``. Same parameters and result as :func:`requantize`.
    """
    acc = np.asarray(acc)
    if acc.ndim == 0:
        return requantize_float32(acc.reshape(1), scale, y_zp, qmin, qmax, channel_axis=0).reshape(())
    sc = _channel_view(np.asarray(scale, dtype=_F32).reshape(-1), acc.ndim, channel_axis)
    zp, lo, hi = _bounds(y_zp, qmin, qmax, acc.ndim, channel_axis)
    with np.errstate(over="ignore", invalid="ignore"):
        v = acc.astype(np.int32).astype(_F32) * sc
    v = v.astype(_F32)
    # x86 maxps(v, lo) returns lo when v is NaN (0 * inf); numpy's maximum would keep the NaN.
    v = np.where(np.isnan(v), lo.astype(_F32), v)
    v = np.minimum(np.maximum(v, lo.astype(_F32)), hi.astype(_F32))
    q = np.rint(v).astype(np.int64) + zp
    return q.astype(np.int32)
