"""QGemm (com.microsoft) and QLinearMatMul: integer matrix product, then the one requantization.

The accumulator is ``(a - a_zp) @ (b - b_zp) + bias`` wrapped to int32. As for convolution the sum
is computed with a float64 matrix product, exact while partial sums stay below ``2**53``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from systolix.errors import SystolixError
from systolix.quantize.requant import requantize

__all__ = ["matmul_accumulate", "qgemm"]


def matmul_accumulate(
    a: ArrayLike, a_zp: int, b: ArrayLike, b_zp: ArrayLike, bias: ArrayLike | None
) -> np.ndarray:
    """int32 accumulators ``(a - a_zp) @ (b - b_zp) + bias`` (numpy matmul broadcasting).

    Parameters
    ----------
    a : array_like
        Codes [..., N, K].
    a_zp : int
        Zero point of ``a``.
    b : array_like
        Codes [..., K, M] (the caller transposes for ``transB``).
    b_zp : int or array_like
        Zero point of ``b``, per tensor or one per column (M values).
    bias : array_like or None
        int32 values broadcastable to the result (typically [M]), or None.

    Returns
    -------
    numpy.ndarray
        int32 [..., N, M].
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim < 2 or b.ndim < 2 or a.shape[-1] != b.shape[-2]:
        raise SystolixError(f"matrix shapes {list(a.shape)} and {list(b.shape)} do not multiply")
    m = b.shape[-1]
    bz = np.asarray(b_zp, dtype=np.float64).reshape(-1)
    if bz.size not in (1, m):
        raise SystolixError(f"b_zero_point must have 1 or {m} values, not {bz.size}")
    ad = a.astype(np.float64) - float(a_zp)
    bd = b.astype(np.float64) - (bz if bz.size == m else bz[0])
    k = a.shape[-1]
    if k * float(np.abs(ad).max(initial=0)) * float(np.abs(bd).max(initial=0)) >= 2.0**53:
        raise SystolixError("matrix product sums are too large for the exact float64 accumulation")
    acc = np.matmul(ad, bd).astype(np.int64)
    if bias is not None:
        acc = acc + np.asarray(bias, dtype=np.int64)
    return acc.astype(np.uint32).view(np.int32)


def qgemm(
    a: ArrayLike,
    a_zp: int,
    b: ArrayLike,
    b_zp: ArrayLike,
    bias: ArrayLike | None,
    scale: ArrayLike,
    y_zp: int,
    qmin: int,
    qmax: int,
    *,
    out_dtype: DTypeLike | None = None,
) -> np.ndarray:
    """QGemm / QLinearMatMul: :func:`matmul_accumulate` then requantization per column.

    Parameters
    ----------
    a, a_zp, b, b_zp, bias
        As for :func:`matmul_accumulate` (``bias=None`` for QLinearMatMul).
    scale : array_like
        float32 scale, one or one per column, from
        :func:`~systolix.quantize.requant.qgemm_output_scale` or
        :func:`~systolix.quantize.requant.output_scale`.
    y_zp : int
        Output zero point.
    qmin, qmax : int
        Output code range.
    out_dtype : dtype, optional
        Cast the result to this type (default: int32 values).

    Returns
    -------
    numpy.ndarray
        Output codes [..., N, M].
    """
    acc = matmul_accumulate(a, a_zp, b, b_zp, bias)
    q = requantize(acc, scale, y_zp, qmin, qmax, channel_axis=-1)
    return q if out_dtype is None else q.astype(out_dtype)
