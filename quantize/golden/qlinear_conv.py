"""QLinearConv: integer convolution accumulate, then the one requantization.

The accumulator is ``sum((x - x_zp) * (w - w_zp)) + bias`` wrapped to int32, as onnxruntime's
integer kernels compute it; padding is filled with ``x_zp`` and so adds nothing. The sum is done
with im2col and a float64 matrix product: every product of two 8-bit differences is below ``2**16``
and a float64 sum of integers is exact while every partial sum stays below ``2**53``, so for any
reduction length below ``2**37`` the float64 result is the exact integer (checked at run time).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from systolix.errors import SystolixError
from systolix.quantize.golden._window import out_size, spatial_params, windows
from systolix.quantize.requant import requantize

__all__ = ["conv_accumulate", "qlinear_conv"]


def conv_accumulate(
    x: ArrayLike,
    x_zp: int,
    w: ArrayLike,
    w_zp: ArrayLike,
    bias: ArrayLike | None,
    *,
    strides: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    dilations: Sequence[int] | None = None,
    group: int = 1,
) -> np.ndarray:
    """int32 accumulators of a quantized convolution.

    Parameters
    ----------
    x : array_like
        Input codes, [N, C, L] or [N, C, H, W].
    x_zp : int
        Input zero point (fills the padding).
    w : array_like
        Weight codes, [M, C/group, *kernel].
    w_zp : int or array_like
        Weight zero point, per tensor or one per output channel.
    bias : array_like or None
        int32 bias [M], or None.
    strides, pads, dilations : sequence of int, optional
        ONNX attributes; ``pads`` in ONNX order (all begins, then all ends). Default 1 / 0 / 1.
    group : int
        Number of groups (``group == C == M`` for depthwise).

    Returns
    -------
    numpy.ndarray
        int32 [N, M, *out_spatial].
    """
    x = np.asarray(x)
    w = np.asarray(w)
    if x.ndim not in (3, 4) or w.ndim != x.ndim:
        raise SystolixError(f"conv input and weight must both be 3-D or 4-D, not {x.ndim}-D and {w.ndim}-D")
    nsp = x.ndim - 2
    kernel, strides, pb, pe, dil = spatial_params(nsp, w.shape[2:], strides, pads, dilations)
    n, c = x.shape[:2]
    m, cg = w.shape[:2]
    if group < 1 or c % group or m % group or cg != c // group:
        raise SystolixError(
            f"group {group} does not fit {c} input channels, {m} output channels and weights [{m}, {cg}, ...]"
        )
    if nsp == 1:  # treat 1-D as 2-D with H = 1
        x, w = x[:, :, None, :], w[:, :, None, :]
        kernel, strides, pb, pe, dil = [1, *kernel], [1, *strides], [0, *pb], [0, *pe], [1, *dil]
    out = [out_size(x.shape[2 + i], kernel[i], strides[i], pb[i], pe[i], dil[i]) for i in range(2)]

    xd = x.astype(np.float64) - float(x_zp)
    xp = np.pad(xd, ((0, 0), (0, 0), (pb[0], pe[0]), (pb[1], pe[1])))
    wzp = np.asarray(w_zp, dtype=np.float64).reshape(-1)
    if wzp.size not in (1, m):
        raise SystolixError(f"w_zero_point must have 1 or {m} values, not {wzp.size}")
    wd = w.astype(np.float64) - (wzp.reshape(-1, 1, 1, 1) if wzp.size == m else wzp[0])
    k = cg * kernel[0] * kernel[1]
    if k * float(np.abs(xd).max(initial=0)) * float(np.abs(wd).max(initial=0)) >= 2.0**53:
        raise SystolixError("convolution sums are too large for the exact float64 accumulation")

    win = windows(xp, kernel, strides, dil, out)  # [N, C, Ho, Wo, kh, kw]
    # im2col per group: [G, N*Ho*Wo, Cg*kh*kw] @ [G, Cg*kh*kw, M/G].
    win = win.reshape(n, group, cg, out[0], out[1], kernel[0], kernel[1])
    cols = win.transpose(1, 0, 3, 4, 2, 5, 6).reshape(group, n * out[0] * out[1], k)
    wmat = wd.reshape(group, m // group, k).transpose(0, 2, 1)
    acc = np.matmul(cols, wmat)  # [G, P, M/G], exact integers
    acc = acc.transpose(1, 0, 2).reshape(n, out[0], out[1], m).transpose(0, 3, 1, 2)
    acc = acc.astype(np.int64)
    if bias is not None:
        b = np.asarray(bias, dtype=np.int64).reshape(-1)
        if b.size != m:
            raise SystolixError(f"bias must have {m} values, not {b.size}")
        acc = acc + b.reshape(1, m, 1, 1)
    acc = acc.astype(np.uint32).view(np.int32)  # int32 wrap-around
    return acc[:, :, 0, :] if nsp == 1 else acc


def qlinear_conv(
    x: ArrayLike,
    x_zp: int,
    w: ArrayLike,
    w_zp: ArrayLike,
    bias: ArrayLike | None,
    scale: ArrayLike,
    y_zp: int,
    qmin: int,
    qmax: int,
    *,
    strides: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    dilations: Sequence[int] | None = None,
    group: int = 1,
    out_dtype: DTypeLike | None = None,
) -> np.ndarray:
    """QLinearConv: :func:`conv_accumulate` then :func:`~systolix.quantize.requant.requantize`.

    Parameters
    ----------
    x, x_zp, w, w_zp, bias, strides, pads, dilations, group
        As for :func:`conv_accumulate`.
    scale : array_like
        float32 requantization scale per output channel (or one), from
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
        Output codes [N, M, *out_spatial].
    """
    acc = conv_accumulate(
        x, x_zp, w, w_zp, bias, strides=strides, pads=pads, dilations=dilations, group=group
    )
    q = requantize(acc, scale, y_zp, qmin, qmax, channel_axis=1)
    return q if out_dtype is None else q.astype(out_dtype)
