"""QuantizeLinear and DequantizeLinear as onnxruntime computes them (MLAS, float32).

QuantizeLinear: ``RNE(clamp(f32(x / s), qmin - zp, qmax - zp)) + zp`` -- a true float32 division,
not a multiplication by the reciprocal; clamping in float before rounding.
DequantizeLinear: ``f32(f32(q - zp) * s)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

__all__ = ["dequantize_linear", "quantize_linear"]

_F32 = np.float32


def quantize_linear(
    x: ArrayLike,
    scale: float,
    zp: int,
    qmin: int,
    qmax: int,
    *,
    out_dtype: DTypeLike | None = None,
) -> np.ndarray:
    """Quantize float32 values to codes (per-tensor scale and zero point).

    Parameters
    ----------
    x : array_like
        Values, converted to float32 first.
    scale : float
        float32 scale.
    zp : int
        Zero point.
    qmin, qmax : int
        Code range (the full range of the output type in onnxruntime).
    out_dtype : dtype, optional
        Cast the result to this type (default: int32 values).

    Returns
    -------
    numpy.ndarray
        Codes, same shape as ``x``.
    """
    xf = np.asarray(x, dtype=_F32)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        v = (xf / _F32(scale)).astype(_F32)
    # x86 maxps(v, lo) returns lo for a NaN v (0/0, inf/inf): MLAS clamps with it before converting.
    v = np.where(np.isnan(v), _F32(qmin - zp), v)
    v = np.minimum(np.maximum(v, _F32(qmin - zp)), _F32(qmax - zp))
    q = (np.rint(v).astype(np.int64) + int(zp)).astype(np.int32)
    return q if out_dtype is None else q.astype(out_dtype)


def dequantize_linear(q: ArrayLike, scale: float, zp: int) -> np.ndarray:
    """Dequantize codes to float32: ``f32(q - zp) * s`` (per-tensor).

    Parameters
    ----------
    q : array_like
        Integer codes.
    scale : float
        float32 scale.
    zp : int
        Zero point.

    Returns
    -------
    numpy.ndarray
        float32 values.
    """
    d = (np.asarray(q).astype(np.int64) - int(zp)).astype(_F32)
    with np.errstate(over="ignore", invalid="ignore"):  # IEEE overflow to inf, as in onnxruntime
        return (d * _F32(scale)).astype(_F32)
