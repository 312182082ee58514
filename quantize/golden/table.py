"""Construction of 256-entry lookup tables for unary ops on 8-bit codes (pure, no onnxruntime).

onnxruntime builds such tables as ``table[i] = QuantizeLinear(f(f32(x_s * (i - x_zp))), y_s, y_zp)``
(``contrib_ops/cpu/quantization/qlinear_lookup_table.cc``), with the full range of the type.
Tables are in code order (:mod:`.lookup`). Tables of ops whose float function depends on the
instruction set (QLinearSigmoid, tanh, ...) are obtained by running onnxruntime itself on the
256 codes; that is done in the frontend, not here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import DTypeLike

from systolix.errors import SystolixError
from systolix.quantize.golden.quantize_linear import quantize_linear

__all__ = ["all_codes", "leaky_relu_table", "requant_table", "unary_table"]

_F32 = np.float32


def all_codes(dtype: DTypeLike) -> np.ndarray:
    """The 256 codes of an 8-bit type in increasing order (the table index order)."""
    info = np.iinfo(np.dtype(dtype))
    if info.bits != 8:
        raise SystolixError(f"tables are for 8-bit codes, not {np.dtype(dtype)}")
    return np.arange(info.min, info.max + 1, dtype=np.int64)


def unary_table(
    x_scale: float,
    x_zp: int,
    y_scale: float,
    y_zp: int,
    f: Callable[[np.ndarray], np.ndarray],
    dtype: DTypeLike,
    *,
    qmin: int | None = None,
    qmax: int | None = None,
) -> np.ndarray:
    """Table of ``QuantizeLinear(f(f32(x_s * (code - x_zp))), y_s, y_zp)`` over all codes.

    Parameters
    ----------
    x_scale, x_zp, y_scale, y_zp : float, int
        Quantization parameters of input and output (same 8-bit type).
    f : callable
        float32 array -> float32 array.
    dtype : dtype
        int8 or uint8.
    qmin, qmax : int, optional
        Output code range; default (and onnxruntime's) the full range of ``dtype``.

    Returns
    -------
    numpy.ndarray
        256 codes of ``dtype`` in code order.
    """
    codes = all_codes(dtype)
    info = np.iinfo(np.dtype(dtype))
    lo = info.min if qmin is None else int(qmin)
    hi = info.max if qmax is None else int(qmax)
    with np.errstate(over="ignore", invalid="ignore"):  # IEEE overflow to inf, as in onnxruntime
        xf = (_F32(x_scale) * (codes - int(x_zp)).astype(_F32)).astype(_F32)
        yf = np.asarray(f(xf), dtype=_F32)
    return quantize_linear(yf, y_scale, y_zp, lo, hi, out_dtype=dtype)


def requant_table(x_scale: float, x_zp: int, y_scale: float, y_zp: int, dtype: DTypeLike) -> np.ndarray:
    """Identity table: re-express codes of (x_s, x_zp) in (y_s, y_zp), as QLinearConcat does."""
    return unary_table(x_scale, x_zp, y_scale, y_zp, lambda v: v, dtype)


def leaky_relu_table(
    x_scale: float, x_zp: int, y_scale: float, y_zp: int, alpha: float, dtype: DTypeLike
) -> np.ndarray:
    """QLinearLeakyRelu table: ``f(v) = v if v >= 0 else f32(alpha * v)`` (alpha a float32).

    Parameters
    ----------
    x_scale, x_zp, y_scale, y_zp : float, int
        Quantization parameters of input and output.
    alpha : float
        The ``alpha`` attribute.
    dtype : dtype
        int8 or uint8.

    Returns
    -------
    numpy.ndarray
        256 codes of ``dtype`` in code order.
    """
    a = _F32(alpha)
    return unary_table(
        x_scale, x_zp, y_scale, y_zp, lambda v: np.where(v >= 0, v, (a * v).astype(_F32)), dtype
    )
