"""QLinearGlobalAveragePool (com.microsoft): an integer sum, then the one requantization.

onnxruntime (``core/mlas/lib/qlgavgpool.cpp``) sums each channel in int32 with the bias
``-x_zp * HW`` and requantizes with ``scale = f32(x_s / f32(y_s * f32(HW)))``. It refuses
``HW >= 2**24`` and scales outside ``[2**-32, 256)``; so does this function.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from systolix.errors import SystolixError
from systolix.quantize.requant import gap_output_scale, requantize

__all__ = ["qlinear_global_average_pool"]


def qlinear_global_average_pool(
    x: ArrayLike,
    x_scale: float,
    x_zp: int,
    y_scale: float,
    y_zp: int,
    qmin: int,
    qmax: int,
    *,
    out_dtype: DTypeLike | None = None,
) -> np.ndarray:
    """Global average pooling of codes over all spatial axes (NCHW, keeps the spatial axes as 1).

    Parameters
    ----------
    x : array_like
        Codes [N, C, *spatial] (at least one spatial axis).
    x_scale, x_zp, y_scale, y_zp : float, int
        Quantization parameters of input and output.
    qmin, qmax : int
        Output code range.
    out_dtype : dtype, optional
        Cast the result to this type (default: int32 values).

    Returns
    -------
    numpy.ndarray
        Codes [N, C, 1, ...].

    Raises
    ------
    SystolixError
        Where onnxruntime refuses: ``HW >= 2**24`` or a scale outside ``[2**-32, 256)``.
    """
    x = np.asarray(x)
    if x.ndim < 3:
        raise SystolixError(f"global average pool input must have spatial axes, not shape {list(x.shape)}")
    hw = int(np.prod(x.shape[2:]))
    if hw >= 1 << 24:
        raise SystolixError(f"global average pool over {hw} elements: onnxruntime refuses 2**24 or more")
    scale = gap_output_scale(x_scale, y_scale, hw)
    if not (2.0**-32 <= float(scale[0]) < 256.0):
        raise SystolixError(
            f"global average pool scale {float(scale[0])!r} is outside [2**-32, 256): onnxruntime refuses it"
        )
    axes = tuple(range(2, x.ndim))
    acc = x.astype(np.int64).sum(axis=axes, keepdims=True) - int(x_zp) * hw
    acc = acc.astype(np.uint32).view(np.int32)
    q = requantize(acc, scale, y_zp, qmin, qmax)
    return q if out_dtype is None else q.astype(out_dtype)
