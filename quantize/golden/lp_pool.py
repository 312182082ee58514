"""LpPool with p = 2 on quantized tensors: systolix's integer definition (onnxruntime has no quantized LpPool).

onnxruntime computes ``LpPool`` only in float32; a quantized model keeps it as ``DQ -> LpPool -> Q``, whose
result depends on float32 rounding inside the pool. systolix defines its integer meaning instead, with one
rounding, from exact integers::

    acc = sum over the window of (x - x_zp)**2     # exact; padding cells hold x_zp (ONNX pads with 0.0)
    q   = clamp(RNE(sqrt(acc) * K) + y_zp, qmin, qmax)      with K = x_s / y_s (exact, of the float32 scales)

``RNE(sqrt(acc) * K)`` is the integer nearest to the real value (ties to even), decided exactly: ``n`` is the
answer when ``(n - 1/2)**2 <= acc * K**2 <= (n + 1/2)**2`` (with the tie rule at the bounds), compared in
rationals where float64 leaves it within a margin. It is what ``Q(LpPool(DQ(x)))`` would give with exact
arithmetic; onnxruntime's float32 pool differs near the ``x.5`` boundaries
(``benchmarks/lp_pool_distance.py`` measures how often on real data).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
from numpy.typing import ArrayLike

from systolix.errors import SystolixError

from ._window import out_size, spatial_params, windows

__all__ = ["lp_pool2", "lp_pool2_sums"]


def lp_pool2_sums(x: ArrayLike, x_zp: int, *, kernel: Sequence[int], strides: Sequence[int] | None = None,
                  pads: Sequence[int] | None = None, dilations: Sequence[int] | None = None) -> np.ndarray:
    """``sum((x - x_zp)**2)`` over every window (int64), ``x`` [N, C, L] or [N, C, H, W]."""
    x = np.asarray(x)
    if x.ndim not in (3, 4):
        raise SystolixError(f"lp_pool input must be 3-D or 4-D, not {x.ndim}-D")
    nsp = x.ndim - 2
    kernel, strides, pb, pe, dil = spatial_params(nsp, kernel, strides, pads, dilations)
    x4 = x[:, :, None, :] if nsp == 1 else x
    if nsp == 1:
        kernel, strides, pb, pe, dil = [1, *kernel], [1, *strides], [0, *pb], [0, *pe], [1, *dil]
    out = [out_size(x4.shape[2 + i], kernel[i], strides[i], pb[i], pe[i], dil[i]) for i in range(2)]
    d = x4.astype(np.int64) - int(x_zp)
    dp = np.pad(d * d, ((0, 0), (0, 0), (pb[0], pe[0]), (pb[1], pe[1])))
    acc = windows(dp, kernel, strides, dil, out).sum(axis=(-2, -1))
    return acc[:, :, 0, :] if nsp == 1 else acc


def _rne_sqrt_times(acc: np.ndarray, k: Fraction) -> np.ndarray:
    """``RNE(sqrt(acc) * k)`` exactly, for int64 ``acc >= 0`` and a rational ``k > 0``."""
    approx = np.sqrt(acc.astype(np.float64)) * float(k)
    n = np.floor(approx + 0.5).astype(np.int64)
    close = np.abs(approx - np.floor(approx) - 0.5) < 1e-6
    k2 = k * k
    for index in zip(*np.nonzero(close), strict=True):
        target = int(acc[index]) * k2                          # (sqrt(acc) * k)**2, exact
        m = math.isqrt(math.floor(target))                     # an integer near sqrt(target)
        best = None
        for cand in range(max(m - 2, 0), m + 3):
            lo, hi = (Fraction(2 * cand - 1, 2)) ** 2, (Fraction(2 * cand + 1, 2)) ** 2
            if (cand == 0 or lo < target or (lo == target and cand % 2 == 0)) and (
                    target < hi or (target == hi and cand % 2 == 0)):
                best = cand
                break
        n[index] = best
    return n


def lp_pool2(
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
    dilations: Sequence[int] | None = None,
) -> np.ndarray:
    """LpPool (p = 2) of quantized codes in systolix's integer definition (module docstring).

    Parameters
    ----------
    x : array_like
        Integer codes [N, C, L] or [N, C, H, W].
    x_scale, x_zp, y_scale, y_zp : float, int
        Per-tensor quantization of the input and the output (float32 scales).
    qmin, qmax : int
        Output range.
    kernel, strides, pads, dilations : sequence of int
        ONNX attributes (``pads``: all begins then all ends).

    Returns
    -------
    numpy.ndarray
        int32 codes [N, C, *out_spatial].
    """
    k = Fraction(float(np.float32(x_scale))) / Fraction(float(np.float32(y_scale)))
    if k <= 0:
        raise SystolixError("lp_pool2: the scales must be positive")
    acc = lp_pool2_sums(x, x_zp, kernel=kernel, strides=strides, pads=pads, dilations=dilations)
    return np.clip(_rne_sqrt_times(acc, k) + int(y_zp), qmin, qmax).astype(np.int32)
