"""MaxPool on 8-bit codes: an integer maximum; padding positions are ignored."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

from systolix.errors import SystolixError
from systolix.quantize.golden._window import out_size, spatial_params, windows

__all__ = ["max_pool"]


def max_pool(
    x: ArrayLike,
    *,
    kernel: Sequence[int],
    strides: Sequence[int] | None = None,
    pads: Sequence[int] | None = None,
    dilations: Sequence[int] | None = None,
    ceil_mode: bool = False,
) -> np.ndarray:
    """Integer max pooling, as onnxruntime's MaxPool on int8/uint8.

    Parameters
    ----------
    x : array_like
        Integer codes [N, C, L] or [N, C, H, W].
    kernel, strides, pads, dilations : sequence of int
        ONNX attributes (``pads``: all begins then all ends).
    ceil_mode : bool
        ONNX ``ceil_mode`` (a window starting in the end padding is dropped, as onnxruntime does).

    Returns
    -------
    numpy.ndarray
        Same dtype as ``x``, [N, C, *out_spatial].
    """
    x = np.asarray(x)
    if x.ndim not in (3, 4):
        raise SystolixError(f"max_pool input must be 3-D or 4-D, not {x.ndim}-D")
    nsp = x.ndim - 2
    kernel, strides, pb, pe, dil = spatial_params(nsp, kernel, strides, pads, dilations)
    x4 = x[:, :, None, :] if nsp == 1 else x
    if nsp == 1:
        kernel, strides, pb, pe, dil = [1, *kernel], [1, *strides], [0, *pb], [0, *pe], [1, *dil]
    out = [
        out_size(x4.shape[2 + i], kernel[i], strides[i], pb[i], pe[i], dil[i], ceil_mode) for i in range(2)
    ]
    # Extra end padding so that every (ceil_mode) window fits; padding never wins the maximum.
    ends = [
        max(pe[i], (out[i] - 1) * strides[i] + dil[i] * (kernel[i] - 1) + 1 - x4.shape[2 + i] - pb[i])
        for i in range(2)
    ]
    sentinel = np.iinfo(np.int64).min
    xp = np.pad(
        x4.astype(np.int64), ((0, 0), (0, 0), (pb[0], ends[0]), (pb[1], ends[1])), constant_values=sentinel
    )
    y = windows(xp, kernel, strides, dil, out).max(axis=(-2, -1))
    if np.any(y == sentinel):
        raise SystolixError("a max_pool window lies entirely in the padding")
    y = y.astype(x.dtype)
    return y[:, :, 0, :] if nsp == 1 else y
