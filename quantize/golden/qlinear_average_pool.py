"""QLinearAveragePool (com.microsoft), which onnxruntime computes in float32.

``contrib_ops/cpu/quantization/qlinear_pool.cc``: each code is dequantized,
``xf = f32(x_s * f32(x - x_zp))``; a float32 running sum over the window's valid cells runs rows
outer, columns inner, from 0; the sum is divided by the count (the kernel area with
``count_include_pad``, else the number of valid cells); then
``q = clamp(RNE(f32(f32(s / y_s) + f32(y_zp))), qmin, qmax)`` -- the zero point is added before
rounding. The window is clipped to the input (``hend = min(hstart + k, H)``), also in ceil mode.
When the kernel covers the whole input with no padding, onnxruntime uses the integer global
average path instead (:mod:`.qlinear_global_average_pool`); so does this function.

The sum is vectorised over output positions by visiting kernel offsets in the same order and
adding 0.0 for padding cells: adding zero leaves every partial float32 sum unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from systolix.errors import SystolixError
from systolix.quantize.golden._window import out_size, spatial_params
from systolix.quantize.golden.qlinear_global_average_pool import qlinear_global_average_pool

__all__ = ["qlinear_average_pool"]

_F32 = np.float32


def qlinear_average_pool(
    x: ArrayLike,
    x_scale: float,
    x_zp: int,
    y_scale: float,
    y_zp: int,
    qmin: int,
    qmax: int,
    *,
    kernel: Sequence[int],
    strides: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    count_include_pad: bool = False,
    ceil_mode: bool = False,
    out_dtype: DTypeLike | None = None,
) -> np.ndarray:
    """Average pooling of codes, exactly as onnxruntime's float32 QLinearAveragePool.

    Parameters
    ----------
    x : array_like
        Codes [N, C, L] or [N, C, H, W].
    x_scale, x_zp, y_scale, y_zp : float, int
        Quantization parameters of input and output.
    qmin, qmax : int
        Output code range (onnxruntime saturates to the full type range).
    kernel, strides, pads : sequence of int
        ONNX attributes (``pads``: all begins then all ends).
    count_include_pad, ceil_mode : bool
        ONNX attributes.
    out_dtype : dtype, optional
        Cast the result to this type (default: int32 values).

    Returns
    -------
    numpy.ndarray
        Codes [N, C, *out_spatial].
    """
    x = np.asarray(x)
    if x.ndim not in (3, 4):
        raise SystolixError(f"average pool input must be 3-D or 4-D, not {x.ndim}-D")
    nsp = x.ndim - 2
    kernel, strides, pb, pe, _ = spatial_params(nsp, kernel, strides, pads, None)
    if list(x.shape[2:]) == kernel and not any(pb) and not any(pe):
        return qlinear_global_average_pool(x, x_scale, x_zp, y_scale, y_zp, qmin, qmax, out_dtype=out_dtype)
    x4 = x[:, :, None, :] if nsp == 1 else x
    if nsp == 1:
        kernel, strides, pb, pe = [1, *kernel], [1, *strides], [0, *pb], [0, *pe]
    size = x4.shape[2:]
    out = [out_size(size[i], kernel[i], strides[i], pb[i], pe[i], 1, ceil_mode) for i in range(2)]

    with np.errstate(over="ignore", invalid="ignore"):  # IEEE infinities and NaNs, as in onnxruntime
        xf = (_F32(x_scale) * (x4.astype(np.int64) - int(x_zp)).astype(_F32)).astype(_F32)
        ends = [max(pe[i], (out[i] - 1) * strides[i] + kernel[i] - size[i] - pb[i]) for i in range(2)]
        xp = np.pad(xf, ((0, 0), (0, 0), (pb[0], ends[0]), (pb[1], ends[1])))
        n, c = x4.shape[:2]
        s = np.zeros((n, c, out[0], out[1]), dtype=_F32)
        (kh, kw), (sh, sw) = kernel, strides
        for i in range(kh):
            for j in range(kw):
                s = (s + xp[:, :, i : i + (out[0] - 1) * sh + 1 : sh, j : j + (out[1] - 1) * sw + 1 : sw]).astype(
                    _F32
                )
        if count_include_pad:
            count = np.full((out[0], out[1]), kh * kw, dtype=np.int64)
        else:
            counts = []
            for ax in range(2):
                start = np.arange(out[ax]) * strides[ax] - pb[ax]
                end = np.minimum(start + kernel[ax], size[ax])
                counts.append(end - np.maximum(start, 0))
            count = np.outer(counts[0], counts[1])
        s = (s / count.astype(_F32)).astype(_F32)
        v = ((s / _F32(y_scale)).astype(_F32) + _F32(y_zp)).astype(_F32)
    # onnxruntime converts to int32 before saturating: NaN or a value outside the int32 range gives INT32_MIN
    # (x86 cvtss2si), which saturates to qmin.
    inside = (v >= -(2.0**31)) & (v < 2.0**31)
    q = np.clip(np.where(inside, np.rint(np.where(inside, v, 0)), -(2.0**31)).astype(np.int64), qmin, qmax)
    q = q.astype(np.int32)
    q = q[:, :, 0, :] if nsp == 1 else q
    return q if out_dtype is None else q.astype(out_dtype)
